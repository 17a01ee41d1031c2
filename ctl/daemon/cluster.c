/* handoffd: fleet mode.  See cluster.h for the keys, etcd.c for why
 * etcd.
 *
 * THE ONE RULE: a host starts or resumes a VM only while the cluster
 * names it as the VM's owner, and the owner changes only in one etcd
 * transaction that compares the revision its writer last read.  The
 * source of a migration makes that transaction at the cutover, before
 * it tells a destination to resume, so two hosts are never both told
 * to run a VM: a second writer's compare fails.  When the outcome of
 * the transaction is unknown (etcd did not answer), nobody resumes the
 * VM until a read says who owns it.  cluster-fence.c pauses this
 * host's VMs when its lease may end.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cleanup.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "etcd.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "transport.h"
#include "uri.h"

/* The cluster's peers: appended, never freed, so the strings
 * cluster_peer_uri returns stay valid; a later entry for the same name
 * (a new address) wins. */
struct member {
  char *name;
  char *uri;
};

static struct {
  struct etcd *etcd;
  struct etcd *fast;            /* The lease's: short timeouts */
  char prefix[256];
  int ttl_s;
  int64_t lease;                /* atomic: two threads use it */
  int64_t lease_until;          /* lock: mono ms the lease surely lives to */
  bool fenced;                  /* lock: the VMs below are paused */
  bool draining;                /* lock: evacuating, or emptied */
  json_t *fenced_vms;           /* lock: names */
  pthread_t thread;             /* Refreshes the lease */
  pthread_t entry_thread;       /* Refreshes this host's entry, the members */
  bool entry_started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stopping;
  struct member *members;
  size_t nmembers;
} cl = {
  .lock = PTHREAD_MUTEX_INITIALIZER,
};

static void cluster_stop_threads (void);

bool
cluster_enabled (void)
{
  return cl.etcd != NULL;
}

int
cluster_ttl_s (void)
{
  return cl.ttl_s;
}

static void
key_of (char *buf, size_t len, const char *kind, const char *name)
{
  snprintf (buf, len, "%s/%s/%s", cl.prefix, kind, name);
}

/* FIELD of /proc/meminfo ("MemAvailable:"), in MiB, or -1. */
static long long
meminfo_mib (const char *field)
{
  CLEANUP_FCLOSE FILE *f = fopen ("/proc/meminfo", "r");
  char line[256];
  size_t n = strlen (field);

  while (f && fgets (line, sizeof line, f))
    if (strncmp (line, field, n) == 0)
      return strtoll (line + n, NULL, 10) / 1024;
  return -1;
}

/* What the VMs defined here and not stopped may use: their memory, in
 * MiB.  A guest's RAM counts whole: MemAvailable only shrinks as the
 * guest touches its pages, and placement must not fill a host on the
 * strength of pages its guests have not touched yet. */
static long long
memory_vms_mib (json_t *vms)
{
  long long sum = 0;
  json_t *row;
  size_t i;

  json_array_foreach (vms, i, row) {
    const char *state = json_string_value (json_object_get (row, "state"));
    if (state && strcmp (state, "stopped") != 0)
      sum += json_integer_value (json_object_get (json_object_get (row, "def"),
                                                  "memory"));
  }
  return sum;
}

static double
load_1min (void)
{
  CLEANUP_FCLOSE FILE *f = fopen ("/proc/loadavg", "r");
  char line[128];

  if (!f || !fgets (line, sizeof line, f))
    return -1;
  return strtod (line, NULL);
}

/* This host's member object: where peers reach it, what it has free. */
static json_t *
host_object (void)
{
  struct statvfs sv;
  json_t *vms = db_vm_list ();
  char why[256];
  long long disk = -1;

  if (statvfs (hd.images_dir, &sv) == 0)
    disk = (long long) (sv.f_bavail * sv.f_frsize / (1024 * 1024));
  long long total = meminfo_mib ("MemTotal:");
  long long avail = meminfo_mib ("MemAvailable:");
  long long used = memory_vms_mib (vms);
  long long room = total - used < avail ? total - used : avail;
  pthread_mutex_lock (&cl.lock);
  bool draining = cl.draining;
  pthread_mutex_unlock (&cl.lock);
  json_t *o = json_pack ("{s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:f, s:I, "
                         "s:b, s:b, s:s, s:s?}",
                         "name", hd.name, "uri", hd.listen,
                         "memory_free_mib", (json_int_t) (room < 0 ? 0 : room),
                         "memory_total_mib", (json_int_t) total,
                         "memory_vms_mib", (json_int_t) used,
                         "vcpus", (json_int_t) sysconf (_SC_NPROCESSORS_ONLN),
                         "disk_free_mib", (json_int_t) disk,
                         "load1", load_1min (),
                         "vms", (json_int_t) json_array_size (vms),
                         "rdma", transport_rdma_here (why, sizeof why),
                         "draining", draining,
                         "version", HANDOFF_VERSION,
                         /* Where the CLI reaches this host's handoffd
                          * from elsewhere (evacuate, undrain). */
                         "admin", hd.admin);
  json_decref (vms);
  return o;
}

/* This host's key, written under its lease.  Not on the lease's
 * thread: it may take etcd's full time limit. */
static int
register_host (char *err, size_t errlen)
{
  char key[512];
  CLEANUP_FREE char *v = NULL;
  json_t *o = host_object ();

  if (o)
    v = json_dumps (o, JSON_COMPACT);
  json_decref (o);
  if (!v)
    return set_error (err, errlen, "out of memory");
  key_of (key, sizeof key, "hosts", hd.name);
  return etcd_put (cl.etcd, key, v,
                   __atomic_load_n (&cl.lease, __ATOMIC_RELAXED), err, errlen);
}



int
cluster_set_draining (bool on, char *err, size_t errlen)
{
  if (!cl.etcd)
    return set_error (err, errlen, "this host is not in a cluster "
                      "(handoffd --cluster)");
  pthread_mutex_lock (&cl.lock);
  bool was = cl.draining;
  cl.draining = on;
  pthread_mutex_unlock (&cl.lock);
  if (was != on)
    log_info ("cluster: this host %s", on ? "drains: placement passes it "
              "over and it admits no incoming VM" : "takes VMs again");
  /* Now, not at the next refresh: placement elsewhere reads it. */
  return register_host (err, errlen);
}

bool
cluster_draining (void)
{
  pthread_mutex_lock (&cl.lock);
  bool on = cl.draining;
  pthread_mutex_unlock (&cl.lock);
  return on;
}

/* The lease lives at least until SENT (mono ms) + TTL_S. */
static void
lease_alive (int64_t sent, int ttl_s)
{
  pthread_mutex_lock (&cl.lock);
  cl.lease_until = sent + (int64_t) ttl_s * 1000;
  pthread_mutex_unlock (&cl.lock);
}

static int
new_lease (char *err, size_t errlen)
{
  int64_t sent = clock_ms (), id;
  int ttl;

  if (etcd_lease_grant (cl.etcd, cl.ttl_s, &id, &ttl, err, errlen) == -1)
    return -1;
  __atomic_store_n (&cl.lease, id, __ATOMIC_RELAXED);
  lease_alive (sent, ttl);
  return register_host (err, errlen);
}

/* How long before the lease's end the fence falls. */
static int64_t
fence_margin_ms (void)
{
  int64_t m = (int64_t) cl.ttl_s * 1000 / 4;

  return m < 1000 ? 1000 : m;
}

/* The lease is live, with the fence's margin to spare. */
static bool
lease_live (void)
{
  pthread_mutex_lock (&cl.lock);
  bool live = !cl.fenced && clock_ms () < cl.lease_until - fence_margin_ms ();
  pthread_mutex_unlock (&cl.lock);
  return live;
}

bool
cluster_lease_live (void)
{
  return cl.etcd && lease_live ();
}

int64_t
cluster_lease_end (void)
{
  pthread_mutex_lock (&cl.lock);
  int64_t end = cl.lease_until;
  pthread_mutex_unlock (&cl.lock);
  return end;
}

int64_t
cluster_fence_due (void)
{
  return cluster_lease_end () - fence_margin_ms ();
}

void
cluster_set_fenced (bool fenced)
{
  pthread_mutex_lock (&cl.lock);
  cl.fenced = fenced;
  pthread_mutex_unlock (&cl.lock);
}

void
cluster_fenced_add (const char *vm)
{
  pthread_mutex_lock (&cl.lock);
  json_array_append_new (cl.fenced_vms, json_string (vm));
  pthread_mutex_unlock (&cl.lock);
}

json_t *
cluster_fenced_take (void)
{
  pthread_mutex_lock (&cl.lock);
  json_t *vms = cl.fenced_vms;
  cl.fenced_vms = json_array ();
  pthread_mutex_unlock (&cl.lock);
  return vms;
}

/* The peer table's latest URI for NAME, or NULL. */
static const char *
member_uri (const char *name)
{
  const char *uri = NULL;

  pthread_mutex_lock (&cl.lock);
  for (size_t i = cl.nmembers; i-- > 0 && !uri;)
    if (strcmp (cl.members[i].name, name) == 0)
      uri = cl.members[i].uri;
  pthread_mutex_unlock (&cl.lock);
  return uri;
}

/* What the member list says now, into the peer table. */
static void
refresh_members (void)
{
  char err[512];
  json_t *list = cluster_hosts (err, sizeof err), *o;
  size_t i;

  if (!list) {
    log_debug ("cluster: cannot list the members: %s", err);
    return;
  }
  json_array_foreach (list, i, o) {
    const char *name = json_string_value (json_object_get (o, "name"));
    const char *uri = json_string_value (json_object_get (o, "uri"));
    const char *known = name ? member_uri (name) : NULL;
    struct uri u;
    char e2[256];

    /* A member names itself: only a name and a tcp:// URI that parse
     * become a peer, and only once per change. */
    if (name && uri && strcmp (name, hd.name) != 0 &&
        name_check_host (name, e2, sizeof e2) == 0 &&
        (!known || strcmp (known, uri) != 0) &&
        uri_parse (uri, &u, e2, sizeof e2) == 0) {
      if (u.scheme == URI_SCHEME_TCP) {
        pthread_mutex_lock (&cl.lock);
        struct member *m = realloc (cl.members,
                                    (cl.nmembers + 1) * sizeof *m);
        if (m) {
          cl.members = m;
          m[cl.nmembers].name = strdup (name);
          m[cl.nmembers].uri = strdup (uri);
          if (m[cl.nmembers].name && m[cl.nmembers].uri)
            cl.nmembers++;
        }
        pthread_mutex_unlock (&cl.lock);
        log_info ("cluster: peer %s at %s", name, uri);
      }
      uri_free (&u);
    }
  }
  json_decref (list);
}

/* Waits, with the lock held, until *NEXT (mono ms; moved on by a
 * quarter of the TTL, or to now if that has passed): false if told to
 * stop meanwhile. */
static bool
wait_turn (int64_t *next)
{
  *next += cl.ttl_s * 1000 / 4;
  if (*next < clock_ms ())
    *next = clock_ms ();
  struct timespec ts = abstime_of_ms (*next);
  /* Terminates: wakes at NEXT, or when told to stop. */
  while (!cl.stopping && clock_ms () < *next)
    pthread_cond_timedwait (&cl.cond, &cl.lock, &ts);
  return !cl.stopping;
}

/* Runs TURN every quarter of the TTL until told to stop. */
static void
every_quarter_ttl (void (*turn) (void))
{
  int64_t next = clock_ms ();

  pthread_mutex_lock (&cl.lock);
  while (wait_turn (&next)) {
    pthread_mutex_unlock (&cl.lock);
    turn ();
    pthread_mutex_lock (&cl.lock);
  }
  pthread_mutex_unlock (&cl.lock);
}

/* One refresh of the lease.  Each asks every member at once and waits
 * for the first answer until the fence would fall (at least a quarter
 * of the TTL): members cut off or without a leader cost nothing while
 * one answers, and a loaded etcd that answers in seconds rather than
 * milliseconds still keeps the lease, where a short limit per member
 * would let the fence fall on a healthy cluster. */
static void
refresh_lease (void)
{
  char err[512];
  int ttl = 0;
  int64_t sent = clock_ms ();
  int64_t within = cluster_fence_due () - sent, slot = cl.ttl_s * 1000 / 4;

  if (within < slot)
    within = slot;
  if (etcd_lease_keepalive (cl.fast, __atomic_load_n (&cl.lease,
                                                       __ATOMIC_RELAXED),
                            (int) within, &ttl, err, sizeof err) == -1) {
    metrics_lease_refresh (-1);
    log_warn ("cluster: cannot refresh this host's lease: %s", err);
  }
  else if (ttl == 0) {
    /* Expired (etcd was out of reach longer than the TTL): this host
     * dropped out of the member list; it joins again. */
    log_warn ("cluster: this host's lease expired; joining again");
    if (new_lease (err, sizeof err) == -1)
      log_warn ("cluster: cannot join again: %s", err);
  }
  else {
    lease_alive (sent, ttl);
    metrics_lease_refresh ((double) (clock_ms () - sent) / 1000.0);
    /* Slower than the pace of refreshes: the operator's early word
     * that etcd is loaded, before a fence says so. */
    if (clock_ms () - sent > slot)
      log_warn ("cluster: etcd took %" PRId64 " ms to refresh this "
                "host's lease (TTL %d s)", clock_ms () - sent, ttl);
  }
}

/* The lease's thread: refresh_lease every quarter of the TTL, timed
 * from the last one's start, and nothing else, so that nothing else's
 * wait delays a refresh. */
static void *
keepalive_main (void *arg)
{
  (void) arg;
  every_quarter_ttl (refresh_lease);
  return NULL;
}

/* This host's entry (its free capacity, read by placement) and the
 * member list (the peers), kept current at the lease's pace but on
 * their own thread: the entry lives under the lease, so a late update
 * costs nothing but stale figures. */
static void
refresh_entry (void)
{
  char err[512];

  if (register_host (err, sizeof err) == -1)
    log_warn ("cluster: cannot update this host's entry: %s", err);
  refresh_members ();
}

static void *
entry_main (void *arg)
{
  (void) arg;
  every_quarter_ttl (refresh_entry);
  return NULL;
}

int
cluster_start (const char *urls, const char *prefix, int ttl_s, char *err,
               size_t errlen)
{
  pthread_condattr_t ca;

  if (curl_global_init (CURL_GLOBAL_DEFAULT) != 0)
    return set_error (err, errlen, "curl_global_init failed");
  /* The refreshes wait on the monotonic clock: a wall-clock step must
   * not change their pace. */
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&cl.cond, &ca);
  pthread_condattr_destroy (&ca);
  cl.fenced_vms = json_array ();
  cl.etcd = etcd_new (urls, err, errlen);
  if (!cl.etcd)
    return -1;
  cl.fast = etcd_new (urls, err, errlen);
  if (!cl.fast ||
      etcd_set_tls (cl.etcd, hd.cluster_ca, hd.cluster_cert, hd.cluster_key,
                    err, errlen) == -1 ||
      etcd_set_tls (cl.fast, hd.cluster_ca, hd.cluster_cert, hd.cluster_key,
                    err, errlen) == -1) {
    etcd_free (cl.etcd);
    etcd_free (cl.fast);
    cl.etcd = cl.fast = NULL;
    return -1;
  }
  if (!etcd_tls (cl.etcd))
    log_warn ("cluster: etcd over plain HTTP: whoever reaches its members "
              "can read and change who owns each VM; outside a closed "
              "network use etcds:// and --cluster-ca");
  etcd_set_timeout (cl.fast, ttl_s * 1000 / 6 < 1000 ? ttl_s * 1000 / 6
                    : 1000);
  snprintf (cl.prefix, sizeof cl.prefix, "%s", prefix);
  cl.ttl_s = ttl_s;
  if (new_lease (err, errlen) == -1)
    goto fail;
  refresh_members ();
  const struct hd_peer_source src = { .uri = cluster_peer_uri };
  hd_set_peer_source (&src);
  if (pthread_create (&cl.thread, NULL, keepalive_main, NULL) != 0) {
    set_error (err, errlen, "cannot start a thread");
    goto fail;
  }
  if (pthread_create (&cl.entry_thread, NULL, entry_main, NULL) != 0) {
    cluster_stop_threads ();
    set_error (err, errlen, "cannot start a thread");
    goto fail;
  }
  cl.entry_started = true;
  log_info ("cluster: joined %s as %s (lease %" PRIx64 ", TTL %d s)", urls,
            hd.name, (uint64_t) __atomic_load_n (&cl.lease, __ATOMIC_RELAXED),
            ttl_s);
  return 0;

 fail:
  etcd_free (cl.etcd);
  etcd_free (cl.fast);
  cl.etcd = cl.fast = NULL;
  return -1;
}

static void
cluster_stop_threads (void)
{
  pthread_mutex_lock (&cl.lock);
  cl.stopping = true;
  pthread_cond_broadcast (&cl.cond);
  pthread_mutex_unlock (&cl.lock);
  pthread_join (cl.thread, NULL);
  if (cl.entry_started)
    pthread_join (cl.entry_thread, NULL);
  cl.entry_started = false;
}

void
cluster_stop (void)
{
  char err[512];

  if (!cl.etcd)
    return;
  cluster_stop_threads ();
  if (etcd_lease_revoke (cl.fast, __atomic_load_n (&cl.lease,
                                                    __ATOMIC_RELAXED), err, sizeof err) == -1)
    log_warn ("cluster: cannot leave (the lease expires by itself): %s", err);
}

/* VM's owner (malloc'd; NULL: none) and its revision: 0 or -1. */
static int
read_owner (const char *vm, char **owner_r, int64_t *rev_r, char *err,
            size_t errlen)
{
  char key[512];
  int r;

  key_of (key, sizeof key, "vms", vm);
  *owner_r = NULL;
  *rev_r = 0;
  r = etcd_get (cl.etcd, key, owner_r, rev_r, NULL, err, errlen);
  return r == -1 ? -1 : 0;
}

int
cluster_owner (const char *vm, char **owner_r, char *err, size_t errlen)
{
  int64_t rev;

  *owner_r = NULL;
  if (!cl.etcd)
    return set_error (err, errlen, "not in a cluster");
  return read_owner (vm, owner_r, &rev, err, errlen);
}

int
cluster_owner_check (const char *vm, int64_t *rev_r, char *err, size_t errlen)
{
  char key[512];

  *rev_r = 0;
  if (!cl.etcd)
    return 0;
  if (!lease_live ())
    return set_error (err, errlen, "this host's cluster lease is not live "
                      "(etcd has not answered it in time): it starts and "
                      "moves no VM until it is");
  key_of (key, sizeof key, "vms", vm);
  /* Terminates: each turn either decides or lost a race to a write
   * that changed the key, and there are three turns. */
  for (int turn = 0; turn < 3; ++turn) {
    CLEANUP_FREE char *owner = NULL;
    int64_t rev;
    char e2[512];

    if (read_owner (vm, &owner, &rev, e2, sizeof e2) == -1)
      return set_error (err, errlen, "cannot ask the cluster who owns %s: %s",
                        vm, e2);
    if (owner && strcmp (owner, hd.name) == 0) {
      *rev_r = rev;
      return 0;
    }
    if (owner)
      return set_error (err, errlen, "the cluster says host %s owns %s: it "
                        "does not run here", owner, vm);
    /* Nobody's yet (a VM from before fleet mode, or new): this host's. */
    int r = etcd_swap (cl.etcd, key, 0, hd.name, 0, e2, sizeof e2);
    if (r == 1)
      log_info ("cluster: %s is this host's", vm);
    else if (r == -1)
      log_warn ("cluster: claiming %s: %s; asking again", vm, e2);
  }
  return set_error (err, errlen, "cannot claim %s in the cluster: its owner "
                    "keeps changing", vm);
}

int
cluster_claim_vm (const char *vm, char *err, size_t errlen)
{
  int64_t rev;

  return cluster_owner_check (vm, &rev, err, errlen);
}

int
cluster_move_vm (const char *vm, const char *to, int64_t rev, char *err,
                 size_t errlen)
{
  char key[512], e2[512];
  int64_t t0;
  int r;

  if (!cl.etcd)
    return 0;
  key_of (key, sizeof key, "vms", vm);
  t0 = clock_us ();
  r = etcd_swap (cl.etcd, key, rev, to, 0, e2, sizeof e2);
  if (r == 1) {
    log_info ("cluster: %s now belongs to %s (%" PRId64 " us)", vm, to,
              clock_us () - t0);
    return 0;
  }
  if (r == 0)
    return set_error (err, errlen, "the cluster's owner of %s changed during "
                      "the migration: not moved", vm);
  return set_error (err, errlen, "cannot move %s's ownership to %s: %s", vm,
                    to, e2);
}

/* NAME is one of LIST's comma-separated names. */
static bool
in_list (const char *name, const char *list)
{
  size_t n = strlen (name);

  for (const char *p = list; *p;) {
    size_t len = strcspn (p, ",");
    if (len == n && strncmp (p, name, n) == 0)
      return true;
    p += len;
    if (*p == ',')
      p++;
  }
  return false;
}

bool
cluster_may_resume (const char *vm, const char *to, char *err, size_t errlen)
{
  char key[512], e2[512];

  if (!cl.etcd)
    return true;
  if (!lease_live ()) {
    /* Fenced: it resumes with the others when the fence lifts. */
    cluster_fenced_add (vm);
    set_error (err, errlen, "this host's cluster lease is not live: %s "
               "resumes when it is, if it is still this host's", vm);
    return false;
  }
  key_of (key, sizeof key, "vms", vm);
  /* Terminates: a bounded number of reads, each with a time limit. */
  for (int turn = 0; turn < 5; ++turn) {
    CLEANUP_FREE char *owner = NULL;
    int64_t rev;

    if (turn > 0)
      sleep (1);
    if (read_owner (vm, &owner, &rev, e2, sizeof e2) == -1)
      continue;
    if (!owner || strcmp (owner, hd.name) == 0)
      return true;
    if (!to || !in_list (owner, to)) {
      set_error (err, errlen, "the cluster says host %s owns %s", owner, vm);
      return false;
    }
    /* The cutover's transaction went through, and TO never ran it. */
    int r = etcd_swap (cl.etcd, key, rev, hd.name, 0, e2, sizeof e2);
    if (r == 1) {
      log_info ("cluster: %s is this host's again", vm);
      return true;
    }
  }
  set_error (err, errlen, "cannot learn from the cluster who owns %s: %s", vm,
             e2);
  return false;
}

bool
cluster_may_take (const char *vm, char *err, size_t errlen)
{
  if (!cl.etcd)
    return true;
  /* The source moved the ownership here, in the transaction that
   * decides, before it said "resume": asking etcd again would only
   * lengthen the blackout.  This host's own lease must be live: a
   * fenced host resumes nothing.  A refresh may be on its way (etcd
   * slow for a moment): waiting a quarter of the TTL for it costs the
   * blackout that much at worst, and saves a rollback. */
  int64_t t0 = clock_ms (), until = t0 + (int64_t) cl.ttl_s * 1000 / 4;
  /* Terminates: the clock reaches UNTIL. */
  while (!lease_live () && clock_ms () < until)
    usleep (50 * 1000);
  if (clock_ms () - t0 >= 50)
    log_warn ("cluster: %s waited %" PRId64 " ms for this host's lease to "
              "be live", vm, clock_ms () - t0);
  if (!lease_live ()) {
    set_error (err, errlen, "this host's cluster lease is not live: it "
               "resumes no VM (%s) until it is", vm);
    return false;
  }
  return true;
}

void
cluster_release_vm (const char *vm)
{
  CLEANUP_FREE char *owner = NULL;
  char key[512], err[512];
  int64_t rev;

  if (!cl.etcd)
    return;
  key_of (key, sizeof key, "vms", vm);
  if (read_owner (vm, &owner, &rev, err, sizeof err) == -1 ||
      (owner && strcmp (owner, hd.name) == 0 &&
       etcd_delete_if (cl.etcd, key, rev, err, sizeof err) == -1))
    log_warn ("cluster: cannot release %s: %s", vm, err);
}

json_t *
cluster_hosts (char *err, size_t errlen)
{
  char prefix[512];
  json_t *list, *out, *kv;
  size_t i;

  if (!cl.etcd)
    return set_error (err, errlen, "this host is not in a cluster "
                      "(handoffd --cluster)"), NULL;
  key_of (prefix, sizeof prefix, "hosts", "");
  /* For the operator, placement and the entry's thread: none of them
   * holds the lease's refresh back, so each may wait for a slow etcd. */
  list = etcd_list (cl.etcd, prefix, err, errlen);
  if (!list)
    return NULL;
  out = json_array ();
  json_array_foreach (list, i, kv) {
    json_t *o = json_loads (json_string_value (json_object_get (kv, "value")),
                            0, NULL);
    if (json_is_object (o))
      json_array_append_new (out, o);
    else
      json_decref (o);
  }
  json_decref (list);
  return out;
}

const char *
cluster_peer_uri (const char *name)
{
  const char *uri = member_uri (name);

  /* A host that joined since the last refresh: ask now. */
  if (!uri && cl.etcd) {
    refresh_members ();
    uri = member_uri (name);
  }
  return uri;
}
