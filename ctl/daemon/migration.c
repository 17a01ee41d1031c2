/* handoffd: migrations this host sends - the API the CLI server calls
 * (migration.h): start one in a thread of its own, find, follow, abort.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "channel.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "exitcodes.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "migration.h"
#include "names.h"
#include "record.h"
#include "request-check.h"
#include "source.h"
#include "source-relay.h"
#include "transport.h"
#include "vm.h"
#include "volume.h"

#define MAX_ACTIVE 16

static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static struct migration *active[MAX_ACTIVE];    /* active_lock */
static bool stopping;           /* active_lock: no new migration */


static int parse_destinations (struct migration *m, const char *to,
                               char *err, size_t errlen, int *rc);

/* The connections of M's destinations, closed. */
static void
close_dests (struct migration *m)
{
  source_end_via (m);
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = &m->dests[i];
    if (d->peer)
      chan_close (d->peer);
    d->peer = NULL;
    json_decref (d->endpoints);
    d->endpoints = NULL;
  }
}

/* A migration id: the VM, this host, the time and a random part. */
static void
make_id (struct migration *m)
{
  unsigned char rnd[6];

  if (getrandom (rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
    memset (rnd, 0, sizeof rnd);
  /* Names cut so that the id fits its 79 characters. */
  snprintf (m->id, sizeof m->id, "%.24s-%.24s-%lld-%02x%02x%02x%02x%02x%02x",
            m->vm, hd.name, (long long) wall_ms (), rnd[0], rnd[1], rnd[2],
            rnd[3], rnd[4], rnd[5]);
}

/* Attempt N (from 1) goes to --to, the next to --fallback if given,
 * and the retries alternate between the two. */
static const char *
attempt_hosts (const struct migration *m, unsigned n)
{
  return m->fallback[0] && n % 2 == 0 ? m->fallback : m->plan_to;
}

/* A failed attempt that left the VM running here, as it was, and that
 * another attempt may follow. */
static bool
may_retry (struct migration *m, json_t *res)
{
  const char *code = json_string_value (json_object_get (res, "code"));

  if (json_is_true (json_object_get (res, "ok")) || !code ||
      record_aborted (m) || m->attempt >= m->attempts)
    return false;
  if (strcmp (code, "denied") != 0 && strcmp (code, "rolled_back") != 0 &&
      strcmp (code, "unreachable") != 0 && strcmp (code, "timeout") != 0)
    return false;
  return vm_qemu_alive (m->vm);
}

/* Set M up for its next attempt (after one that failed with ERROR): a
 * new id and journal entry, its destinations.  0, or -1. */
static int
next_attempt (struct migration *m, const char *error)
{
  unsigned n = m->attempt + 1;
  const char *hosts = attempt_hosts (m, n);
  char err[512];
  int rc;

  close_dests (m);
  memset (m->dests, 0, sizeof m->dests);
  m->ndests = 0;
  if (parse_destinations (m, hosts, err, sizeof err, &rc) == -1) {
    log_error ("migration of %s: attempt %u: %s", m->vm, n, err);
    return -1;
  }
  make_id (m);
  pthread_mutex_lock (&m->lock);
  m->attempt = n;
  snprintf (m->to, sizeof m->to, "%s", hosts);
  snprintf (m->phase, sizeof m->phase, "begin");
  pthread_mutex_unlock (&m->lock);
  m->complete_sent = m->admitted = m->holding = m->released = false;
  m->hold = m->exit_seen = false;
  m->running_at = m->running_wall = 0;
  m->relay_pid = 0;
  m->deadline = clock_ms () + (int64_t) m->timeout_s * 1000;
  log_info ("migration of %s: attempt %u of %u (%s), to %s, after: %s",
            m->vm, n, m->attempts, m->id, hosts, error);
  record_emit (m, json_pack ("{s:s, s:I, s:I, s:s, s:s, s:s}", "event",
                             "attempt", "attempt", (json_int_t) n,
                             "attempts", (json_int_t) m->attempts, "to",
                             hosts, "id", m->id, "previous_error", error));
  db_journal_start (m->id, m->vm, "source", m->dests[0].host, json_pack (
    "{s:s, s:O, s:b, s:s, s:I}", "mode", m->mode, "def", m->def,
    "delete_source", m->delete_source, "to", m->to, "attempt",
    (json_int_t) n));
  return 0;
}

/* A live migration: attempt after attempt until one moves the VM, one
 * leaves it in doubt, or none is left. */
static void
run_live (struct migration *m)
{
  json_t *res;

  /* Terminates: m->attempt grows to m->attempts at most. */
  for (;;) {
    res = source_run_live (m);
    if (!may_retry (m, res))
      break;
    const char *e = json_string_value (json_object_get (res, "error"));
    if (next_attempt (m, e ? e : "failed") == -1)
      break;
    json_decref (res);
  }
  json_object_set_new (res, "attempt", json_integer (m->attempt));
  json_object_set_new (res, "attempts", json_integer (m->attempts));
  record_finish (m, res);
}

/* For --metrics: what M's streams carried (the last samples: the
 * completion's final bytes are a rounding error) and its blackout. */
static void
count_metrics (struct migration *m)
{
  json_t *res = record_result (m);
  json_t *downtime = json_object_get (res, "downtime_ms");
  double disk = 0;

  if (json_is_true (json_object_get (res, "ok")) && json_is_number (downtime))
    metrics_downtime (json_number_value (downtime) / 1000.0);
  json_decref (res);

  for (size_t i = 0; i < m->ndests; ++i)
    disk += m->dests[i].disk_sent;
  metrics_bytes (METRICS_DISK, disk);
  metrics_bytes (METRICS_FILES, m->files_sent);
  metrics_bytes (METRICS_RAM, (double) json_integer_value (json_object_get (
    json_object_get (m->ram_final, "ram"), "transferred")));
}

static void *
migration_thread (void *arg)
{
  struct migration *m = arg;

  if (strcmp (m->mode, "volume") == 0)
    migrate_volume (m->id, m->vm, m->to, m->def, m->objects, m->timeout_s,
                    m->shutdown_ms, record_volume_emit, m);
  else
    run_live (m);
  count_metrics (m);
  close_dests (m);
  cluster_place_done (m->vm);
  vm_release (m->vm);
  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < MAX_ACTIVE; ++i)
    if (active[i] == m)
      active[i] = NULL;
  pthread_mutex_unlock (&active_lock);
  record_put (m);
  return NULL;
}

/* TO: one host, or several separated by commas (the VM is copied to
 * all and runs on the first that has loaded it); request_check saw
 * that they are names, at most MAX_DESTS, none twice.  Each must be a
 * known peer, not this host. */
static int
parse_destinations (struct migration *m, const char *to, char *err,
                    size_t errlen, int *rc)
{
  char list[sizeof m->to], *save = NULL, q[96];

  if (request_check_hosts ("--to", to, err, errlen) == -1)
    return -1;
  snprintf (list, sizeof list, "%s", to);
  for (char *host = strtok_r (list, ",", &save); host;
       host = strtok_r (NULL, ",", &save)) {
    if (strcmp (host, hd.name) == 0)
      return set_error (err, errlen, "%s is this host", host);
    if (!hd_peer_uri (host)) {
      *rc = RC_NOT_FOUND;
      return set_error (err, errlen, "unknown host '%s': give handoffd a "
                        "--peer for it%s", name_quote (host, q, sizeof q),
                        cluster_enabled () ? ", or start it as a member of "
                        "the cluster" : "");
    }
    struct dest *d = &m->dests[m->ndests++];
    snprintf (d->host, sizeof d->host, "%s", host);
    snprintf (d->state, sizeof d->state, "admitting");
    d->alive = true;
    d->slot = -1;
    d->via_index = -1;
  }
  return 0;
}

/* What "migrate" asks for (request_check passed it): the record's
 * fields (not yet started), or NULL with err and the exit code. */
static struct migration *
parse_request (json_t *req, char *err, size_t errlen, int *rc)
{
  const char *vm, *to, *mode = "live", *warm_exit = "converging";
  const char *fallback = "", *cascade = "", *transport = "auto", *via = "";
  uint64_t retries = 0, quorum = 0;
  bool prewarm = false;
  uint64_t max_downtime = 300, bandwidth = 0, timeout = 600;
  uint64_t shutdown_ms = 0;
  bool delete_source = false;
  struct migration *m;

  *rc = RC_ERROR;
  msg_get_string (req, "vm", true, &vm, err, errlen);
  msg_get_string (req, "to", true, &to, err, errlen);
  msg_get_string (req, "mode", false, &mode, err, errlen);
  msg_get_u64 (req, "max_downtime_ms", false, &max_downtime, err, errlen);
  msg_get_u64 (req, "bandwidth", false, &bandwidth, err, errlen);
  msg_get_u64 (req, "timeout_s", false, &timeout, err, errlen);
  msg_get_u64 (req, "shutdown_timeout_ms", false, &shutdown_ms, err, errlen);
  msg_get_bool (req, "delete_source", false, &delete_source, err, errlen);
  msg_get_bool (req, "prewarm", false, &prewarm, err, errlen);
  msg_get_string (req, "fallback", false, &fallback, err, errlen);
  msg_get_u64 (req, "retries", false, &retries, err, errlen);
  msg_get_string (req, "cascade", false, &cascade, err, errlen);
  msg_get_string (req, "via", false, &via, err, errlen);
  msg_get_string (req, "warm_exit", false, &warm_exit, err, errlen);
  msg_get_u64 (req, "quorum", false, &quorum, err, errlen);
  msg_get_string (req, "transport", false, &transport, err, errlen);
  m = calloc (1, sizeof *m);
  if (!m) {
    set_error (err, errlen, "out of memory");
    return NULL;
  }
  /* --to auto[:N]: fleet mode's placement picks the hosts now, and
   * from here on the migration is as if they had been named. */
  char placed[sizeof m->to];
  if (strcmp (to, "auto") == 0 || strncmp (to, "auto:", 5) == 0) {
    unsigned n = to[4] == ':' ? (unsigned) strtoul (to + 5, NULL, 10) : 1;
    if (cluster_place (vm, n, placed, sizeof placed, err, errlen) == -1) {
      *rc = RC_NOT_FOUND;
      free (m);
      return NULL;
    }
    log_info ("migration of %s: --to %s placed it on %s", vm, to, placed);
    to = placed;
  }
  if (parse_destinations (m, to, err, errlen, rc) == -1) {
    free (m);
    return NULL;
  }
  snprintf (m->vm, sizeof m->vm, "%s", vm);
  /* The winner replaces the list once one is decided. */
  snprintf (m->to, sizeof m->to, "%s", to);
  snprintf (m->mode, sizeof m->mode, "%s", mode);
  m->max_downtime_ms = max_downtime;
  m->bandwidth = bandwidth;
  m->timeout_s = timeout;
  m->shutdown_ms = shutdown_ms;
  m->delete_source = delete_source;
  m->prewarm = prewarm;
  if (fallback[0]) {
    /* Checked now as --to is: each attempt parses its list again. */
    struct migration *t = calloc (1, sizeof *t);
    int r = !t ? set_error (err, errlen, "out of memory")
      : parse_destinations (t, fallback, err, errlen, rc);
    free (t);
    if (r == -1) {
      free (m);
      return NULL;
    }
  }
  snprintf (m->plan_to, sizeof m->plan_to, "%s", to);
  snprintf (m->fallback, sizeof m->fallback, "%s", fallback);
  snprintf (m->cascade, sizeof m->cascade, "%s", cascade);
  if (via[0] && strcmp (via, hd.name) == 0) {
    set_error (err, errlen, "--via %s is this host: it relays for itself "
               "already", via);
    free (m);
    return NULL;
  }
  if (via[0] && !hd_peer_uri (via)) {
    char q[96];
    *rc = RC_NOT_FOUND;
    set_error (err, errlen, "unknown host '%s' (--via)",
               name_quote (via, q, sizeof q));
    free (m);
    return NULL;
  }
  snprintf (m->via, sizeof m->via, "%s", via);
  m->attempt = 1;
  m->attempts = (fallback[0] ? 2 : 1) + (unsigned) retries;
  snprintf (m->warm_exit, sizeof m->warm_exit, "%s", warm_exit);
  m->quorum_pct = (unsigned) quorum;
  transport_parse (transport, &m->transport, err, errlen);
  return m;
}

/* Take the VM for migration M: its definition and objects, its claim.
 * 0, or -1 with err (the claim not taken). */
static int
take_vm (struct migration *m, char *err, size_t errlen, int *rc)
{
  json_t *row = db_vm_get (m->vm);

  if (!row) {
    *rc = RC_NOT_FOUND;
    return set_error (err, errlen, "no VM named '%s' here", m->vm);
  }
  if (vm_claim (m->vm, "migrating", err, errlen) == -1) {
    json_decref (row);
    return -1;
  }
  if (!vm_qemu_alive (m->vm) && strcmp (m->mode, "live") == 0) {
    vm_release (m->vm);
    json_decref (row);
    return set_error (err, errlen, "VM %s is not running: a live migration "
                      "needs it running (--offline moves a stopped VM)",
                      m->vm);
  }
  if (strcmp (m->mode, "offline") == 0 &&
      (vm_qemu_alive (m->vm) ||
       strcmp (json_string_value (json_object_get (row, "state")),
               "stopped") != 0)) {
    char state[64];
    snprintf (state, sizeof state, "%s", vm_qemu_alive (m->vm) ? "running"
              : json_string_value (json_object_get (row, "state")));
    vm_release (m->vm);
    json_decref (row);
    return set_error (err, errlen, "VM %s is %s: --offline moves a stopped "
                      "VM ('handoff stop' it first, or migrate it live)",
                      m->vm, state);
  }
  /* Fleet mode: only the VM's owner moves it, and the cutover's
   * transaction compares the revision read here. */
  if (cluster_owner_check (m->vm, &m->owner_rev, err, errlen) == -1) {
    vm_release (m->vm);
    json_decref (row);
    *rc = RC_UNREACHABLE;
    return -1;
  }
  m->def = json_incref (json_object_get (row, "def"));
  m->objects = db_objects_get (m->vm);
  m->ndisks = json_array_size (json_object_get (m->def, "disks"));
  m->has_dir = json_string_value (json_object_get (m->def, "dir")) != NULL;
  json_decref (row);
  return 0;
}

struct migration *
migration_start (json_t *req, char *err, size_t errlen, int *rc)
{
  struct migration *m = parse_request (req, err, errlen, rc);
  pthread_t t;
  size_t slot = MAX_ACTIVE;

  if (!m) {
    /* What placement held for it, if it got that far. */
    cluster_place_done (json_string_value (json_object_get (req, "vm")));
    return NULL;
  }
  if (take_vm (m, err, errlen, rc) == -1) {
    cluster_place_done (m->vm);
    free (m);
    return NULL;
  }
  pthread_mutex_init (&m->lock, NULL);
  pthread_mutex_init (&m->via_lock, NULL);
  pthread_cond_init (&m->cond, NULL);
  m->refs = 2;                  /* The thread's and the caller's. */
  m->events = json_array ();
  make_id (m);
  snprintf (m->phase, sizeof m->phase, "begin");
  m->t0 = clock_ms ();
  m->deadline = m->t0 + (int64_t) m->timeout_s * 1000;
  /* The journal's peer is the host a restart asks about the outcome:
   * the first destination until a winner is decided (source.c). */
  db_journal_start (m->id, m->vm, "source", m->dests[0].host, json_pack (
    "{s:s, s:O, s:b, s:s}", "mode", m->mode, "def", m->def, "delete_source",
    m->delete_source, "to", m->to));

  pthread_mutex_lock (&active_lock);
  bool refused = stopping;
  for (size_t i = 0; i < MAX_ACTIVE && !refused; ++i)
    if (!active[i]) {
      active[i] = m;
      slot = i;
      break;
    }
  pthread_mutex_unlock (&active_lock);
  if (slot == MAX_ACTIVE ||
      pthread_create (&t, NULL, migration_thread, m) != 0) {
    pthread_mutex_lock (&active_lock);
    if (slot < MAX_ACTIVE)
      active[slot] = NULL;
    pthread_mutex_unlock (&active_lock);
    db_journal_end (m->id, "rolled_back", "cannot start");
    cluster_place_done (m->vm);
    vm_release (m->vm);
    m->refs = 1;
    record_put (m);
    set_error (err, errlen, refused ? "handoffd is stopping: it starts no "
               "migration" : "cannot start the migration");
    return NULL;
  }
  pthread_detach (t);
  return m;
}

struct migration *
migration_find (const char *vm)
{
  struct migration *m = NULL;

  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < MAX_ACTIVE; ++i)
    if (active[i] && strcmp (active[i]->vm, vm) == 0) {
      m = active[i];
      pthread_mutex_lock (&m->lock);
      m->refs++;
      pthread_mutex_unlock (&m->lock);
      break;
    }
  pthread_mutex_unlock (&active_lock);
  return m;
}

void
migration_abort_all (const char *why)
{
  pthread_mutex_lock (&active_lock);
  stopping = true;
  for (size_t i = 0; i < MAX_ACTIVE; ++i)
    if (active[i]) {
      pthread_mutex_lock (&active[i]->lock);
      active[i]->abort_requested = true;
      active[i]->abort_why = why;
      pthread_cond_broadcast (&active[i]->cond);
      pthread_mutex_unlock (&active[i]->lock);
    }
  pthread_mutex_unlock (&active_lock);
}

bool
migration_wait_idle (int timeout_ms)
{
  int64_t end = clock_ms () + timeout_ms;

  /* Terminates: no migration left, or the deadline. */
  for (;;) {
    size_t n = 0;
    pthread_mutex_lock (&active_lock);
    for (size_t i = 0; i < MAX_ACTIVE; ++i)
      n += active[i] != NULL;
    pthread_mutex_unlock (&active_lock);
    if (n == 0)
      return true;
    if (clock_ms () >= end)
      return false;
    usleep (100 * 1000);
  }
}

json_t *
migration_list (void)
{
  json_t *out = json_array ();

  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < MAX_ACTIVE; ++i) {
    struct migration *m = active[i];
    if (!m)
      continue;
    pthread_mutex_lock (&m->lock);
    json_array_append_new (out, json_pack ("{s:s, s:s, s:s}", "vm", m->vm,
                                           "phase", m->phase, "to", m->to));
    pthread_mutex_unlock (&m->lock);
  }
  pthread_mutex_unlock (&active_lock);
  return out;
}

bool
migration_running (const char *id)
{
  bool r = false;

  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < MAX_ACTIVE; ++i)
    if (active[i] && strcmp (active[i]->id, id) == 0)
      r = true;
  pthread_mutex_unlock (&active_lock);
  return r;
}

int
migration_cutover (const char *vm, const char *to, size_t *cursor_r,
                   char *err, size_t errlen, struct migration **m_r)
{
  struct migration *m = migration_find (vm);

  *m_r = NULL;
  if (!m)
    return set_error (err, errlen, "no migration of '%s' runs here", vm);
  *cursor_r = record_event_count (m);
  if (record_cutover (m, to, err, errlen) == -1) {
    record_put (m);
    return -2;
  }
  *m_r = m;
  return 0;
}

int
migration_abort (const char *vm, char *err, size_t errlen)
{
  struct migration *m = migration_find (vm);

  if (!m) {
    snprintf (err, errlen, "no migration of '%s' runs here", vm);
    return -1;
  }
  pthread_mutex_lock (&m->lock);
  m->abort_requested = true;
  pthread_cond_broadcast (&m->cond);
  pthread_mutex_unlock (&m->lock);
  record_put (m);
  return 0;
}
