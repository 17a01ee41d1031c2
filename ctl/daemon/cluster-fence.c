/* handoffd: fleet mode's fence (cluster-fence.c): this host's VMs
 * paused while its lease may end, resumed when it is live again.
 *
 * A host that cannot refresh its lease stops (pauses) its
 * running VMs before the lease can expire: from then on the cluster
 * may list it as gone, and nothing must run that the cluster cannot
 * account for.  The lease is known to live until the time the last
 * successful refresh was *sent* plus the TTL etcd answered: etcd's
 * leader starts the TTL when the request reaches it, later than that,
 * and a new leader extends every lease.  The fence falls a quarter of
 * the TTL (at least a second) before that bound, which leaves time
 * for QMP's "stop" and for clock-rate differences; a separate thread
 * watches it, so a refresh stuck on an unresponsive member does not
 * delay it.  When a refresh succeeds again (the same lease, or a new
 * one), each fenced VM resumes if the cluster still names this host
 * its owner, and stays paused otherwise.
 *
 * A lost quorum fences too.  etcd expires no lease without a leader,
 * and a new leader gives every lease a full TTL, so the VMs could in
 * truth run on; but a host cannot tell a cluster without quorum from
 * its own partition away from a quorum that can expire its lease
 * (members that do not answer may be dead or cut off, and a firewall
 * that rejects looks like a dead member).  Safety first: the VMs pause,
 * and run on as soon as a refresh gets through.  A longer
 * --cluster-ttl rides out longer etcd outages.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "clock.h"
#include "cluster.h"
#include "cluster-fence.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "vm.h"

static pthread_t thread;
static bool started, stopping;

/* Pause every VM running here: the lease may end before the cluster
 * hears from this host again. */
static void
fence (void)
{
  json_t *vms = db_vm_list (), *row, *paused = json_array ();
  size_t i;

  log_error ("cluster: this host's lease was not refreshed in time: its "
             "bound is %" PRId64 " ms away; pausing its VMs",
             cluster_lease_end () - clock_ms ());
  metrics_fenced ();

  json_array_foreach (vms, i, row) {
    const char *name = json_string_value (json_object_get (row, "name"));
    char state[64], err[512];
    vm_run_state (name, state, sizeof state);
    if (strcmp (state, "running") != 0)
      continue;
    json_t *r = vm_qmp (name, "stop", NULL, 2000, err, sizeof err);
    if (r) {
      /* How far ahead of the lease's bound the pause landed: the
       * operator's measure of the margin (negative: it came late). */
      int64_t ahead = cluster_lease_end () - clock_ms ();
      json_array_append_new (paused, json_string (name));
      log_error ("cluster: this host's lease may end: %s paused (fenced) "
                 "%" PRId64 " ms before the lease's bound, until etcd "
                 "answers again", name, ahead);
    }
    else
      log_error ("cluster: cannot pause %s for the fence: %s", name, err);
    json_decref (r);
  }
  json_decref (vms);
  json_array_foreach (paused, i, row)
    cluster_fenced_add (json_string_value (row));
  json_decref (paused);
}

/* The lease is live again: resume what the fence paused, if it is
 * still this host's. */
static void
unfence (void)
{
  json_t *vms, *v;
  size_t i;

  vms = cluster_fenced_take ();
  log_info ("cluster: this host's lease is live again");
  json_array_foreach (vms, i, v) {
    const char *name = json_string_value (v);
    CLEANUP_FREE char *owner = NULL;
    char state[64], err[512];
    json_t *r = NULL;

    vm_run_state (name, state, sizeof state);
    if (strcmp (state, "paused") != 0)
      continue;
    if (cluster_owner (name, &owner, err, sizeof err) == -1 ||
        !owner || strcmp (owner, hd.name) != 0)
      log_error ("cluster: %s stays paused: %s", name, owner
                 ? "another host owns it now" : err);
    else if (!(r = vm_qmp (name, "cont", NULL, 5000, err, sizeof err)))
      log_error ("cluster: cannot resume %s after the fence: %s", name, err);
    else
      log_info ("cluster: %s resumed: the fence is lifted", name);
    json_decref (r);
  }
  json_decref (vms);
}

/* Watches the lease's bound: the fence falls on time whatever the
 * refreshing thread is stuck on, and lifts when a refresh moved the
 * bound again.  One thread does both, so they never overlap. */
static void *
fence_main (void *arg)
{
  bool fenced = false;

  (void) arg;
  while (!__atomic_load_n (&stopping, __ATOMIC_RELAXED)) {
    usleep (100 * 1000);
    bool due = clock_ms () >= cluster_fence_due ();
    if (due == fenced)
      continue;
    fenced = due;
    cluster_set_fenced (due);
    if (due)
      fence ();
    else
      unfence ();
  }
  return NULL;
}

int
cluster_fence_start (void)
{
  if (!cluster_enabled ())
    return 0;
  if (pthread_create (&thread, NULL, fence_main, NULL) != 0)
    return -1;
  started = true;
  return 0;
}

void
cluster_fence_stop (void)
{
  if (!started)
    return;
  __atomic_store_n (&stopping, true, __ATOMIC_RELAXED);
  pthread_join (thread, NULL);
}
