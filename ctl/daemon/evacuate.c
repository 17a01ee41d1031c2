/* handoffd: evacuate - every VM of this host moved off it, a few at a
 * time, each where fleet mode's placement puts it (--to auto): running
 * VMs live, stopped ones offline, each as 'handoff migrate VM --to
 * auto' would move it, with its own journal, rollback and ownership
 * move.
 *
 * The host drains first (cluster_set_draining): placement anywhere
 * passes it over and it admits no incoming VM, so nothing sent away can
 * be placed back on it meanwhile.  It stays drained after, for the
 * maintenance the evacuation is for, until 'handoff undrain' or a
 * restart of handoffd.  A VM that cannot move stays where it was,
 * running as before (its migration rolls back); the others go on.
 *
 * With --copies N a running VM is copied to N hosts at once (--to
 * auto:N: a multi-destination migration that cuts over to the first
 * that is ready, and discards the others), so one destination failing
 * does not keep it here; fewer when fewer hosts have room for it.
 * Stopped VMs go to one host: a copy of a disk is all they are.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "evacuate.h"
#include "exitcodes.h"
#include "jsonutil.h"
#include "log.h"
#include "migration.h"
#include "record.h"
#include "vm.h"

/* How often the running migrations are looked at. */
#define POLL_US (200 * 1000)

static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static bool running;            /* running_lock: an evacuation runs */

struct evacuation {
  struct channel *c;
  bool connected;               /* The CLI still listens. */
  json_t *moved, *failed;       /* Arrays of what became of each VM. */
  uint64_t max_downtime_ms, timeout_s, bandwidth;
  uint64_t copies;              /* Destinations per running VM, at most */
};

/* EV (stolen) to the CLI, if it still listens; the evacuation goes on
 * without it. */
static void
tell (struct evacuation *ev, json_t *msg)
{
  if (ev->connected && chan_send_json (ev->c, msg) == -1)
    ev->connected = false;
  json_decref (msg);
}

/* The reply to an OP ("evacuate" or "undrain") of HOST, another host:
 * it runs on HOST's own handoffd.  With the admin address HOST gives
 * the cluster (its --admin) the reply names it, for the CLI to send
 * the request there. */
static json_t *
elsewhere (const char *op, const char *host)
{
  char err[512];
  json_t *hosts = cluster_enabled () ? cluster_hosts (err, sizeof err) : NULL;
  json_t *h, *r;
  const char *admin = NULL;
  size_t i;

  json_array_foreach (hosts, i, h) {
    const char *name = json_string_value (json_object_get (h, "name"));
    if (name && strcmp (name, host) == 0)
      admin = json_string_value (json_object_get (h, "admin"));
  }
  if (admin) {
    r = msg_error_code (NULL, "this is host %s, not %s: %s's handoffd takes "
                        "'%s' at %s", hd.name, host, host, op, admin);
    json_object_set_new (r, "admin", json_string (admin));
  }
  else
    r = msg_error_code (NULL, "this is host %s, not %s: '%s' runs on %s's "
                        "own handoffd (handoff --host ADDRESS-OF-%s %s %s; "
                        "the cluster knows no admin address of %s: its "
                        "handoffd --admin)", hd.name, host, op, host, host,
                        op, host, host);
  json_decref (hosts);
  return r;
}

/* VM did not move: why (and the exit status's name), to the CLI and
 * the result. */
static void
not_moved (struct evacuation *ev, const char *vm, const char *code,
           const char *why)
{
  log_warn ("evacuate: %s stays here: %s", vm, why);
  json_array_append_new (ev->failed, json_pack ("{s:s, s:s, s:s}", "vm", vm,
                                                "error", why, "code", code));
  tell (ev, json_pack ("{s:s, s:s, s:s, s:s, s:s}", "event", "vm", "vm", vm,
                       "state", "failed", "error", why, "code", code));
}

/* VM's migration to placement's COPIES hosts (auto:COPIES), or NULL
 * with err and the exit code. */
static struct migration *
start_to (struct evacuation *ev, const char *vm, const char *mode,
          unsigned copies, char *err, size_t errlen, int *rc)
{
  char to[32];

  snprintf (to, sizeof to, "auto:%u", copies);
  json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "op",
                           "migrate", "vm", vm, "to", to, "mode", mode,
                           "max_downtime_ms",
                           (json_int_t) ev->max_downtime_ms, "timeout_s",
                           (json_int_t) ev->timeout_s, "bandwidth",
                           (json_int_t) ev->bandwidth);
  struct migration *m = migration_start (req, err, errlen, rc);

  json_decref (req);
  return m;
}

/* Start moving VM (MODE live or offline): its migration, or NULL. */
static struct migration *
start_one (struct evacuation *ev, const char *vm, const char *mode)
{
  char err[2048], to[sizeof ((struct migration *) 0)->to];
  int rc = RC_ERROR;
  unsigned copies = strcmp (mode, "live") == 0 ? (unsigned) ev->copies : 1;
  struct migration *m;

  /* Terminates: fewer copies each turn, down to one.  Placement that
   * finds too few hosts with room is "not found"; so is a VM gone
   * meanwhile, which one host does not fit either. */
  while (!(m = start_to (ev, vm, mode, copies, err, sizeof err, &rc)) &&
         rc == RC_NOT_FOUND && copies > 1) {
    log_info ("evacuate: %s: %s; with one copy fewer", vm, err);
    copies--;
  }
  if (!m) {
    const char *code = rc_code_name (rc);
    not_moved (ev, vm, code ? code : "failed", err);
    return NULL;
  }
  pthread_mutex_lock (&m->lock);
  snprintf (to, sizeof to, "%s", m->to);
  pthread_mutex_unlock (&m->lock);
  log_info ("evacuate: %s goes to %s (%s)", vm, to, mode);
  tell (ev, json_pack ("{s:s, s:s, s:s, s:s, s:s}", "event", "vm", "vm", vm,
                       "state", "moving", "to", to, "mode", mode));
  return m;
}

/* M ended with RES: what became of its VM, told and kept. */
static void
ended (struct evacuation *ev, struct migration *m, json_t *res)
{
  const char *to = json_string_value (json_object_get (res, "to"));
  json_t *downtime = json_object_get (res, "downtime_ms");

  if (!json_is_true (json_object_get (res, "ok"))) {
    const char *code = json_string_value (json_object_get (res, "code"));
    const char *why = json_string_value (json_object_get (res, "error"));
    not_moved (ev, m->vm, code ? code : "failed", why ? why : "failed");
    return;
  }
  json_t *o = json_pack ("{s:s, s:s}", "vm", m->vm, "to", to ? to : "?");
  if (downtime)
    json_object_set (o, "downtime_ms", downtime);
  json_array_append (ev->moved, o);
  json_object_set_new (o, "event", json_string ("vm"));
  json_object_set_new (o, "state", json_string ("moved"));
  tell (ev, o);
}

/* What to move: [name, mode] pairs; VMs in no state to move (a
 * migration of theirs still in doubt, say) go to the failed list. */
static json_t *
work_list (struct evacuation *ev)
{
  json_t *rows = db_vm_list (), *row, *todo = json_array ();
  size_t i;

  json_array_foreach (rows, i, row) {
    const char *name = json_string_value (json_object_get (row, "name"));
    const char *state = json_string_value (json_object_get (row, "state"));
    char why[256];

    if (vm_qemu_alive (name))
      json_array_append_new (todo, json_pack ("[s, s]", name, "live"));
    else if (strcmp (state, "stopped") == 0)
      json_array_append_new (todo, json_pack ("[s, s]", name, "offline"));
    else {
      snprintf (why, sizeof why, "it is %s, neither running nor stopped",
                state);
      not_moved (ev, name, "failed", why);
    }
  }
  json_decref (rows);
  return todo;
}

/* Move every VM of TODO, PARALLEL at a time; returns once all ended. */
static void
move_all (struct evacuation *ev, json_t *todo, size_t parallel)
{
  struct migration *active[EVACUATE_MAX_PARALLEL] = { NULL };
  size_t next = 0, nactive = 0;

  /* Terminates: each VM is started once, and each migration ends
   * (migration.c: it has a deadline). */
  while (next < json_array_size (todo) || nactive > 0) {
    for (size_t s = 0; s < parallel && next < json_array_size (todo); ++s) {
      if (active[s])
        continue;
      json_t *w = json_array_get (todo, next++);
      active[s] = start_one (ev, json_string_value (json_array_get (w, 0)),
                             json_string_value (json_array_get (w, 1)));
      nactive += active[s] != NULL;
    }
    usleep (POLL_US);
    for (size_t s = 0; s < parallel; ++s) {
      json_t *res = active[s] ? record_result (active[s]) : NULL;
      if (!res)
        continue;
      ended (ev, active[s], res);
      json_decref (res);
      record_put (active[s]);
      active[s] = NULL;
      nactive--;
    }
  }
}

json_t *
evacuate_run (json_t *req, struct channel *c)
{
  struct evacuation ev = { .c = c, .connected = true,
                           .max_downtime_ms = 300, .timeout_s = 600,
                           .copies = 1 };
  const char *host;
  uint64_t parallel = EVACUATE_DEFAULT_PARALLEL;
  char err[1024];

  /* request_check passed it: these are there and sound. */
  msg_get_string (req, "host", true, &host, err, sizeof err);
  msg_get_u64 (req, "parallel", false, &parallel, err, sizeof err);
  msg_get_u64 (req, "max_downtime_ms", false, &ev.max_downtime_ms, err,
               sizeof err);
  msg_get_u64 (req, "timeout_s", false, &ev.timeout_s, err, sizeof err);
  msg_get_u64 (req, "copies", false, &ev.copies, err, sizeof err);
  msg_get_u64 (req, "bandwidth", false, &ev.bandwidth, err, sizeof err);
  if (strcmp (host, hd.name) != 0)
    return elsewhere ("evacuate", host);
  if (!cluster_enabled ())
    return msg_error_code ("not_found", "evacuate needs fleet mode "
                           "(handoffd --cluster): placement picks where each "
                           "VM goes");
  if (!cluster_lease_live ())
    return msg_error_code ("unreachable", "this host's cluster lease is "
                           "not live: it moves no VM until it is");
  pthread_mutex_lock (&running_lock);
  bool busy = running;
  running = true;
  pthread_mutex_unlock (&running_lock);
  if (busy)
    return msg_error_code (NULL, "an evacuation of %s already runs",
                           hd.name);

  if (cluster_set_draining (true, err, sizeof err) == -1)
    log_warn ("evacuate: cannot publish that %s drains (it refuses incoming "
              "VMs all the same): %s", hd.name, err);
  ev.moved = json_array ();
  ev.failed = json_array ();
  json_t *todo = work_list (&ev);
  size_t nvms = json_array_size (todo) + json_array_size (ev.failed);
  log_info ("evacuate: %zu VM%s to move off %s, %u at a time, up to %u "
            "cop%s of each running one", nvms, nvms == 1 ? "" : "s", hd.name,
            (unsigned) parallel, (unsigned) ev.copies,
            ev.copies == 1 ? "y" : "ies");
  tell (&ev, json_pack ("{s:s, s:s, s:I, s:I, s:I}", "event", "evacuate",
                        "host", hd.name, "vms", (json_int_t) nvms,
                        "parallel", (json_int_t) parallel, "copies",
                        (json_int_t) ev.copies));
  move_all (&ev, todo, parallel);
  json_decref (todo);

  size_t nfailed = json_array_size (ev.failed);
  size_t nmoved = json_array_size (ev.moved);
  json_t *r = nfailed == 0 ? json_pack ("{s:b}", "ok", 1)
    : msg_error_code ("rolled_back", "%zu of %zu VM%s did not move off %s "
                      "(each stays here as it was)", nfailed, nvms,
                      nvms == 1 ? "" : "s", hd.name);
  json_object_set_new (r, "host", json_string (hd.name));
  json_object_set_new (r, "moved", ev.moved);
  json_object_set_new (r, "failed", ev.failed);
  json_object_set_new (r, "draining", json_true ());
  log_info ("evacuate: %zu VM%s moved off %s, %zu not", nmoved,
            nmoved == 1 ? "" : "s", hd.name, nfailed);
  pthread_mutex_lock (&running_lock);
  running = false;
  pthread_mutex_unlock (&running_lock);
  return r;
}

json_t *
evacuate_undrain (json_t *req)
{
  const char *host;
  char err[1024];

  msg_get_string (req, "host", true, &host, err, sizeof err);
  if (strcmp (host, hd.name) != 0)
    return elsewhere ("undrain", host);
  /* Held across: no evacuation starts while this one ends the drain. */
  pthread_mutex_lock (&running_lock);
  int r = running ? 1 : cluster_set_draining (false, err, sizeof err);
  pthread_mutex_unlock (&running_lock);
  if (r == 1)
    return msg_error_code (NULL, "an evacuation of %s runs: it drains "
                           "until that ends", hd.name);
  if (r == -1)
    return msg_error_code (cluster_enabled () ? "unreachable" : "not_found",
                           "%s", err);
  return json_pack ("{s:b, s:s, s:b}", "ok", 1, "host", hd.name, "draining",
                    0);
}
