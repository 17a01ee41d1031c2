/* handoffd: the source side of a live migration, phase by phase
 * (DESIGN.md §1): admission, prepare, storage, start_vm, memory,
 * cutover; then the release here, or the rollback.  Runs in the
 * migration's own thread (migration.c); record.h has the record it
 * fills in.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "channel-proto.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "events.h"
#include "exitcodes.h"
#include "log.h"
#include "peer.h"
#include "peer-check.h"
#include "proc.h"
#include "psk.h"
#include "record.h"
#include "source-dests.h"
#include "source-each.h"
#include "source-end.h"
#include "source-helpers.h"
#include "source-mirror.h"
#include "source-share.h"
#include "source-relay.h"
#include "source-streams.h"
#include "source-warm.h"
#include "source.h"
#include "transport.h"
#include "uri.h"
#include "vm.h"

#define POLL_MS 200
#define MAX_COMPLETIONS 10  /* 8 disks, the share, the ownership */

/* ------------------------------------------------------------------ */
/* Phases */

static int
check_time (struct migration *m, int *rc, char *err, size_t errlen)
{
  if (record_aborted (m)) {
    pthread_mutex_lock (&m->lock);
    const char *why = m->abort_why ? m->abort_why : "by request";
    pthread_mutex_unlock (&m->lock);
    *rc = RC_ROLLED_BACK;
    return set_error (err, errlen, "aborted %s", why);
  }
  if (!m->holding && clock_ms () > m->deadline) {
    *rc = RC_TIMEOUT;
    return set_error (err, errlen, "timed out after %" PRIu64 " s",
                      m->timeout_s);
  }
  return source_keepalive (m, rc, err, errlen);
}

/* START_MIGRATION to destination I; ARG: the disk bytes it needs. */
static int
admit_step (struct migration *m, size_t i, void *arg, int *code, char *err,
            size_t errlen)
{
  struct dest *d = &m->dests[i];
  uint64_t disk_bytes = *(const uint64_t *) arg;
  json_t *a;

  d->told = true;               /* Until it says yes, nothing to drop. */
  d->peer = peer_connect (d->host, err, errlen);
  if (!d->peer) {
    *code = RC_UNREACHABLE;
    return -1;
  }
  a = peer_call (d->peer, json_pack (
    "{s:s, s:s, s:s, s:s, s:s, s:I, s:{s:O, s:O, s:I}}",
    "type", "START_MIGRATION", "id", m->id, "vm", m->vm, "source", hd.name,
    "mode", m->mode, "timeout_s", (json_int_t) m->timeout_s, "needs",
    "memory", json_object_get (m->def, "memory"),
    "vcpus", json_object_get (m->def, "vcpus"),
    "disk_bytes", (json_int_t) (strcmp (m->mode, "volume") == 0 ? 0
                                : disk_bytes)),
                 hd.io_timeout_ms, err, errlen);
  *code = !a ? RC_UNREACHABLE : RC_DENIED;
  if (!a || peer_expect (a, "PERMITTED", err, errlen) == -1) {
    json_decref (a);
    return -1;
  }
  json_decref (a);
  d->admitted = true;
  d->told = false;
  return 0;
}

static int
phase_admission (struct migration *m, int *rc, char *err, size_t errlen)
{
  uint64_t disk_bytes = vm_allocated_bytes (m->def);

  /* Whether RAM can go over RDMA from here is known before anyone is
   * asked: --transport rdma without it changes nothing anywhere. */
  if (strcmp (m->mode, "live") == 0 &&
      transport_source_ask (m->transport, &m->transport_ask, err,
                            errlen) == -1) {
    *rc = RC_ERROR;
    return -1;
  }
  record_set_phase (m, "admission", "asking %s to take %s", m->to, m->vm);
  /* Every destination is asked at once and each answer waited for:
   * a refusal or an unreachable host costs only its own time limit. */
  if (source_each_dest (m, "START_MIGRATION", admit_step, &disk_bytes, 0,
                        "failed", rc, err, errlen) == -1)
    return -1;
  for (size_t i = 0; i < m->ndests; ++i)
    if (source_alive_dest (m, i))
      record_dest (m, i, "copying", NULL);
  return 0;
}

/* Which transport destination D chose for the RAM stream (its stream
 * address says), kept for 'status'; -1 (err) if not what was asked. */
static int
note_transport (struct migration *m, struct dest *d, char *err,
                size_t errlen)
{
  const char *xfer = json_string_value (json_object_get (d->endpoints,
                                                         "xfer"));
  const char *ask = m->transport_ask ? m->transport_ask : "tcp";
  bool rdma = xfer && strncmp (xfer, "rdma://", 7) == 0;

  if (!xfer)
    return 0;                   /* peer_check_endpoints says why. */
  if ((rdma && strcmp (ask, "tcp") == 0) ||
      (!rdma && strcmp (ask, "rdma") == 0))
    return set_error (err, errlen, "%s offers its RAM stream over %s; %s "
                      "was asked", d->host, rdma ? "RDMA" : "TCP",
                      strcmp (ask, "rdma") == 0 ? "RDMA" : "TCP");
  pthread_mutex_lock (&m->lock);
  snprintf (d->transport, sizeof d->transport, "%s", rdma ? "rdma" : "tcp");
  pthread_mutex_unlock (&m->lock);
  log_info ("migration %s: RAM to %s over %s%s", m->id, d->host,
            rdma ? "RDMA" : "TCP",
            !rdma && strcmp (ask, "auto") == 0
            ? " (it has no RDMA on its peer address, or may not use it)" : "");
  return 0;
}

/* MANAGEMENT_STATE to destination I: its endpoints, checked, and its
 * key for this migration's data written to its psk.  0, or -1 (err). */
static int
prepare_step (struct migration *m, size_t i, void *arg, int *code,
              char *err, size_t errlen)
{
  struct dest *d = &m->dests[i];
  json_t *a;
  struct uri u;
  char e2[256], name[32];
  int r = -1;

  (void) arg;
  *code = RC_ROLLED_BACK;
  json_t *msg = json_pack ("{s:s, s:O, s:O}", "type", "MANAGEMENT_STATE",
                           "def", m->def, "objects", m->objects);
  if (msg && m->transport_ask)
    json_object_set_new (msg, "transport", json_string (m->transport_ask));
  a = peer_call (d->peer, msg, hd.io_timeout_ms * 2, err, errlen);
  if (!a || peer_expect (a, "SUCCESS", err, errlen) == -1) {
    json_decref (a);
    return -1;
  }
  d->endpoints = json_incref (json_object_get (a, "endpoints"));
  json_decref (a);
  if (note_transport (m, d, err, errlen) == -1)
    return -1;
  /* Only the destination's own address may come back. */
  if (uri_parse (hd_peer_uri (d->host), &u, e2, sizeof e2) == 0) {
    r = peer_check_endpoints (d->endpoints, u.host, m->ndisks, m->has_dir,
                              err, errlen);
    uri_free (&u);
  }
  else
    set_error (err, errlen, "%s: %s", d->host, e2);
  if (r == -1)
    return -1;
  const char *key = json_string_value (json_object_get (d->endpoints, "psk"));
  if (i == 0)
    snprintf (name, sizeof name, "mig.psk");
  else
    snprintf (name, sizeof name, "mig%zu.psk", i);
  vm_run_path (m->vm, name, d->psk, sizeof d->psk);
  return psk_write_line (d->psk, key, err, errlen);
}

static int
phase_prepare (struct migration *m, int *rc, char *err, size_t errlen)
{
  record_set_phase (m, "prepare", "%s prepares disks, a share and a stream "
             "listener", m->to);
  m->prepared_at = wall_ms ();
  if (source_each_dest (m, "MANAGEMENT_STATE", prepare_step, NULL, 0,
                        "failed", rc, err, errlen) == -1)
    return -1;
  if (!m->via[0])
    return 0;
  /* The proxy is asked now, before any data moves: one that refuses
   * costs no copy.  Whether the switch-over is held is decided with it
   * (phase_start_vm), for its relay merges the return paths only then. */
  m->hold = m->prewarm || record_dests_alive (m) > 1;
  *rc = RC_ROLLED_BACK;
  return source_ask_proxy (m, err, errlen);
}

static int
phase_storage (struct migration *m, int *rc, char *err, size_t errlen)
{
  bool ready = false;
  int slot = 0;
  /* --bandwidth holds for the whole migration: the disks and the
   * directory copy side by side and share it here; the RAM stream gets
   * it after them (phase_memory).  Mirrored guest writes are not
   * capped: holding them back would stall the guest. */
  uint64_t copy_cap = m->bandwidth
    ? m->bandwidth / (m->ndisks + (m->has_dir ? 1 : 0)) : 0;
  if (m->bandwidth && copy_cap == 0)
    copy_cap = 1;

  record_set_phase (m, "storage", "copying %zu disk%s%s while mirroring writes",
             m->ndisks, m->ndisks == 1 ? "" : "s",
             m->has_dir ? " and the VM directory" : "");
  *rc = RC_ROLLED_BACK;
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = source_alive_dest (m, i);
    if (!d)
      continue;
    json_t *disks = json_object_get (d->endpoints, "disks");
    if (json_array_size (disks) != m->ndisks ||
        (m->has_dir && !json_object_get (d->endpoints, "share")))
      return set_error (err, errlen, "the destination's endpoints do not "
                        "match the VM");
    d->slot = slot++;
  }
  /* A running VM's disks go through the mirror from here on; a stopped
   * one's copy is served by the disk servers started for it. */
  if (strcmp (m->mode, "offline") != 0 &&
      vm_disks_interpose (m->vm, m->def, err, errlen) == -1)
    return -1;
  for (size_t k = 0; k < m->ndisks; ++k) {
    json_t *uris = json_array ();
    for (size_t i = 0; i < m->ndests; ++i) {
      struct dest *d = source_alive_dest (m, i);
      if (!d)
        continue;
      char uri[PATH_MAX + 512];
      json_array_append_new (uris, json_string (source_disk_uri (d, k, uri,
                                                          sizeof uri)));
    }
    json_t *r = source_mirror_call (m, k, json_pack ("{s:s, s:o, s:s, s:I}",
                                              "op", "start",
                                              "destinations", uris,
                                              "mode", "active",
                                              "copy_rate_limit",
                                              (json_int_t) copy_cap),
                             hd.io_timeout_ms, err, errlen);
    if (!r)
      return -1;
    json_decref (r);
  }
  if (m->has_dir && source_share_start (m, copy_cap, rc, err, errlen) == -1)
    return -1;
  /* Terminates: ready, a failure, an abort or the deadline.  The
   * first looks come soon and then back off: a small disk is copied
   * in tens of milliseconds, and a fixed 200 ms wait would add up to
   * that much to every migration of it. */
  int wait_ms = 10;
  while (!ready) {
    if (check_time (m, rc, err, errlen) == -1)
      return -1;
    if (source_sample (m, NULL, &ready, rc, err, errlen) == -1) {
      *rc = RC_ROLLED_BACK;
      return -1;
    }
    /* Several destinations: a quorum of them copied is enough to go
     * on; the others go on copying, and are discarded at the cutover
     * if still behind. */
    if (m->ndests > 1)
      ready = warm_storage_ready (m);
    if (!ready) {
      usleep ((useconds_t) wait_ms * 1000);
      wait_ms = wait_ms * 2 < POLL_MS ? wait_ms * 2 : POLL_MS;
    }
  }
  /* Digests now, while the VM runs, so the commit in the blackout only
   * reads what changes from here on. */
  if (m->has_dir) {
    json_t *r = source_share_call (m, json_pack ("{s:s}", "op", "warm"),
                            hd.io_timeout_ms * 4, err, errlen);
    if (!r)
      return -1;
    json_decref (r);
  }
  return 0;
}

/* START_VM to destination I; ARG: hold the switch-over or not. */
static int
start_vm_step (struct migration *m, size_t i, void *arg, int *code,
               char *err, size_t errlen)
{
  json_t *msg = peer_msg ("START_VM");

  /* ("prewarm": the destination's QEMU acknowledges the switch-over,
   * which lets the source hold it.) */
  if (*(const bool *) arg)
    json_object_set_new (msg, "prewarm", json_true ());
  *code = RC_ROLLED_BACK;
  return peer_ask (m->dests[i].peer, msg, "SUCCESS", 120000, err, errlen);
}

static int
phase_start_vm (struct migration *m, int *rc, char *err, size_t errlen)
{
  /* With several destinations the source, not QEMU, decides when to
   * switch over: --warm-exit, per destination, over --quorum.  (With
   * --via, decided when the proxy was asked: kept, even if a
   * destination was lost since.) */
  if (!m->via[0])
    m->hold = m->prewarm || record_dests_alive (m) > 1;
  record_set_phase (m, "start_vm", "%s starts QEMU waiting for the stream",
                    m->to);
  /* A QEMU slow to start on one host is left behind once the others
   * have theirs. */
  return source_each_dest (m, "START_VM", start_vm_step, &m->hold,
                           EACH_GRACE_MS, "failed", rc, err, errlen);
}

static int
qmp_ok (struct migration *m, const char *cmd, json_t *args, char *err,
        size_t errlen)
{
  json_t *r = vm_qmp (m->vm, cmd, args, 10000, err, errlen);
  if (!r)
    return -1;
  json_decref (r);
  return 0;
}

static int
phase_memory (struct migration *m, int *rc, char *err, size_t errlen)
{
  char sock[PATH_MAX], uri[PATH_MAX + 8];
  bool ready;
  uint64_t alive = 0;

  for (size_t i = 0; i < m->ndests; ++i)
    if (m->dests[i].alive)
      alive++;
  source_describe_ram_over (m);
  /* The relay sends QEMU's stream to each destination: QEMU's share
   * of --bandwidth is the cap over all of them. */
  uint64_t ram_cap = m->bandwidth && alive ? m->bandwidth / alive : 0;
  if (m->bandwidth && ram_cap == 0)
    ram_cap = 1;
  record_set_phase (m, "memory",
                    "moving RAM over %s (max downtime %" PRIu64 " ms)",
                    m->ram_over, m->max_downtime_ms);
  *rc = RC_ROLLED_BACK;
  if (source_start_relay (m, err, errlen) == -1)
    return -1;
  vm_run_path (m->vm, "mig.sock", sock, sizeof sock);
  uri_unix (sock, uri, sizeof uri);
  /* Held warm, QEMU passes over RAM thousands of times a second: no
   * MIGRATION_PASS event for each. */
  json_t *caps = json_pack ("[{s:s, s:b}, {s:s, s:b}]",
                            "capability", "events", "state", !m->hold,
                            "capability", "pause-before-switchover", "state",
                            1);
  /* Held, the relay holds the destinations' SWITCHOVER_ACK: QEMU goes
   * on copying dirtied RAM and never switches over until released.
   * Set either way: a VM that came here held still has them on from
   * its incoming side, and would wait for an acknowledgement a
   * destination not held never sends. */
  json_array_append_new (caps, json_pack ("{s:s, s:b}", "capability",
                                          "return-path", "state", m->hold));
  json_array_append_new (caps, json_pack ("{s:s, s:b}", "capability",
                                          "switchover-ack", "state",
                                          m->hold));
  if (qmp_ok (m, "migrate-set-capabilities", json_pack (
                "{s:o}", "capabilities", caps), err, errlen) == -1 ||
      /* Half the budget for QEMU's last pass: disks, files and the
       * destination's resume take the rest. */
      qmp_ok (m, "migrate-set-parameters", json_pack (
                "{s:I, s:I}", "downtime-limit",
                (json_int_t) (m->max_downtime_ms / 2 ? m->max_downtime_ms / 2
                              : 1),
                "max-bandwidth", (json_int_t) (ram_cap ? ram_cap
                                               : (uint64_t) 1 << 40)),
              err, errlen) == -1)
    return -1;
  vm_qmp_forget_events (m->vm);
  if (qmp_ok (m, "migrate", json_pack ("{s:s}", "uri", uri), err,
              errlen) == -1)
    return -1;

  /* Terminates: QEMU pauses before switchover, fails, or we give up. */
  for (;;) {
    json_t *q;
    const char *st;
    if (check_time (m, rc, err, errlen) == -1)
      return -1;
    source_note_ram_fallback (m);
    q = vm_qmp (m->vm, "query-migrate", NULL, 10000, err, errlen);
    if (!q)
      return -1;
    st = json_string_value (json_object_get (q, "status"));
    if (!st || strcmp (st, "failed") == 0 || strcmp (st, "cancelled") == 0) {
      const char *why = json_string_value (json_object_get (q, "error-desc"));
      char tail[512];
      /* QEMU only sees its socket close; the relay says why. */
      vm_log_tail (m->vm, "relay.log", 2, tail, sizeof tail);
      set_error (err, errlen, "QEMU's migration %s%s%s%s%s%s",
                 st ? st : "vanished", why ? ": " : "", why ? why : "",
                 tail[0] ? " (stream relay: " : "", tail,
                 tail[0] ? ")" : "");
      json_decref (q);
      return -1;
    }
    if (source_sample (m, q, &ready, rc, err, errlen) == -1) {
      json_decref (q);
      return -1;
    }
    bool paused = strcmp (st, "pre-switchover") == 0;
    json_decref (q);
    if (paused) {
      source_note_ram_fallback (m);
      return 0;
    }
    if (m->hold && !m->released) {
      if (m->prewarm && !m->holding && warm_ready (m))
        warm_enter (m);
      else if (m->holding)
        warm_update (m);
      if ((m->holding || !m->prewarm) && warm_cutover_due (m)) {
        if (warm_release (m, rc, err, errlen) == -1)
          return -1;
        for (size_t i = 0; i < m->ndests; ++i)
          if (m->dests[i].admitted && !m->dests[i].alive &&
              !m->dests[i].told)
            source_stop_mirroring (m, &m->dests[i]);
      }
    }
    /* Held warm, QEMU does not stop until it is released: wake at the
     * cutover command instead, which is where a pre-warmed cutover's
     * time is counted from (once it was asked for, the exit condition
     * may still be awaited: then sample as below).  Otherwise wake at
     * QEMU's STOP rather than at the next sample: every millisecond
     * there is downtime. */
    if (!m->holding || m->released || !record_wait_cutover (m, POLL_MS / 2))
      vm_qmp_wait_event (m->vm, "STOP", POLL_MS / 2);
  }
}

/* Completing one disk or the share during the blackout, in a thread
 * of its own so that they overlap each other and QEMU's last pass. */
struct completion {
  struct migration *m;
  int disk;                     /* -1: the share; -2: the ownership */
  pthread_t thread;
  int rv;
  char err[1024];
};

static void *
complete_main (void *arg)
{
  struct completion *c = arg;
  int64_t t0 = clock_ms ();
  json_t *r;

  if (c->disk == -2) {
    /* Fleet mode, one destination: the ownership's transaction goes
     * with the rest, so etcd adds nothing to the blackout unless it is
     * the slowest.  If the cutover fails after it, the rollback takes
     * the VM back (cluster_may_resume): the destination was never told
     * to resume. */
    c->rv = cluster_move_vm (c->m->vm, c->m->dests[0].host, c->m->owner_rev,
                             c->err, sizeof c->err);
    return NULL;
  }
  if (c->disk >= 0)
    r = source_mirror_call (c->m, (size_t) c->disk,
                     json_pack ("{s:s, s:b, s:I}", "op", "complete", "verify",
                                0, "timeout_ms",
                                (json_int_t) hd.io_timeout_ms),
                     hd.io_timeout_ms + 5000, c->err, sizeof c->err);
  else
    r = source_share_call (c->m, json_pack ("{s:s}", "op", "commit"),
                    hd.io_timeout_ms * 4, c->err, sizeof c->err);
  c->rv = r ? 0 : -1;
  json_decref (r);
  if (c->disk >= 0)
    log_info ("migration %s: disk%d completed in %lld ms", c->m->id, c->disk,
              (long long) (clock_ms () - t0));
  else
    log_info ("migration %s: the share committed in %lld ms", c->m->id,
              (long long) (clock_ms () - t0));
  return NULL;
}

/* One destination: MIGRATION_COMPLETE, and it resumes the VM (in
 * fleet mode, the VM is already the destination's: phase_cutover). */
static int
complete_one (struct migration *m, json_t **ack_r, char *err, size_t errlen)
{
  struct dest *d = &m->dests[0];
  json_t *a;

  /* From here the destination decides: a crash now is resolved by
   * asking it (recover.c). */
  m->complete_sent = true;
  record_set_phase (m, "complete_sent",
                    "RAM and devices sent; %s resumes the VM", d->host);
  record_dest (m, 0, "loading", NULL);
  a = source_resume (m, d, peer_msg ("MIGRATION_COMPLETE"), err, errlen);
  if (!a)
    return -1;
  *ack_r = a;
  return 0;
}

/* The blackout: the VM is paused on this host.  QEMU's last pass, the
 * disks, the files and the management state all go at once; the
 * destination resumes the VM only when all of them are there. */
static int
phase_cutover (struct migration *m, double *t_stop, json_t **ack_r, int *rc,
               char *err, size_t errlen)
{
  struct completion comp[MAX_COMPLETIONS];
  size_t ncomp = 0;
  json_t *evs, *objs;
  int rv = -1;

  *t_stop = vm_qmp_event_time (m->vm, "STOP");
  if (*t_stop == 0)
    *t_stop = (double) wall_ms () / 1000.0;
  *rc = RC_ROLLED_BACK;
  /* QEMU's last pass first: it needs nothing else, and the journal
   * entry can be written while it runs. */
  if (qmp_ok (m, "migrate-continue", json_pack ("{s:s}", "state",
                                                "pre-switchover"),
              err, errlen) == -1)
    return -1;
  record_set_phase (m, "cutover", "the VM is paused; completing disks, files, "
             "events and RAM");
  evs = events_freeze (m->vm);
  objs = db_objects_since (m->vm, m->prepared_at);
  for (size_t i = 0; i <= m->ndisks + 1 && ncomp < MAX_COMPLETIONS; ++i) {
    struct completion *c = &comp[ncomp];
    if ((i == m->ndisks && !m->has_dir) ||
        (i == m->ndisks + 1 && (m->ndests != 1 || !cluster_enabled ())))
      continue;
    memset (c, 0, sizeof *c);
    c->m = m;
    c->disk = i == m->ndisks + 1 ? -2 : i == m->ndisks ? -1 : (int) i;
    if (pthread_create (&c->thread, NULL, complete_main, c) != 0) {
      c->rv = -1;
      snprintf (c->err, sizeof c->err, "cannot start a thread");
      complete_main (c);
    }
    else
      ncomp++;
  }
  /* With several, each loader sends its own (source_complete_race):
   * one destination gone silent must not hold up the blackout. */
  if (m->ndests == 1 &&
      source_send_state (&m->dests[0], evs, objs, err, errlen) == -1)
    goto join;
  rv = 0;

 join:
  for (size_t i = 0; i < ncomp; ++i) {
    pthread_join (comp[i].thread, NULL);
    if (comp[i].rv == -1 && rv == 0) {
      snprintf (err, errlen, "%s", comp[i].err);
      rv = -1;
    }
  }
  if (rv == -1)
    goto out;
  rv = -1;
  /* A destination whose copy of a disk or of the files failed on the
   * way is out. */
  if (m->has_dir && m->ndests > 1) {
    json_t *st = source_share_call (m, json_pack ("{s:s}", "op", "status"),
                                    5000, err, errlen);
    int r = st ? source_check_share_dests (m, st, rc, err, errlen) : -1;
    json_decref (st);
    if (r == -1)
      goto out;
  }
  for (size_t k = 0; k < m->ndisks && m->ndests > 1; ++k) {
    json_t *st = source_mirror_call (m, k, json_pack ("{s:s}", "op", "status"),
                              5000, err, errlen);
    int r = st ? source_check_mirror_dests (m, k, st, rc, err, errlen) : -1;
    json_decref (st);
    if (r == -1)
      goto out;
  }

  /* Terminates: QEMU completes or fails the last pass, or time out. */
  int64_t until = clock_ms () + hd.io_timeout_ms;
  for (;;) {
    json_t *q = vm_qmp (m->vm, "query-migrate", NULL, 10000, err, errlen);
    const char *st = q ? json_string_value (json_object_get (q, "status"))
      : NULL;
    if (st && strcmp (st, "completed") == 0) {
      /* Its totals: the result says what the RAM stream moved. */
      json_decref (m->ram_final);
      m->ram_final = q;
      break;
    }
    if (!st || strcmp (st, "failed") == 0 || strcmp (st, "cancelled") == 0 ||
        clock_ms () > until) {
      set_error (err, errlen, "QEMU did not complete the migration (%s)",
                 st ? st : "no answer");
      json_decref (q);
      goto out;
    }
    json_decref (q);
    usleep (5000);
  }
  rv = m->ndests == 1 ? complete_one (m, ack_r, err, errlen)
    : source_complete_race (m, evs, objs, ack_r, rc, err, errlen);
 out:
  json_decref (evs);
  json_decref (objs);
  return rv;
}

/* An offline migration's end (the VM stopped all along): every disk
 * completed and the directory committed, the held events and changed
 * objects sent, then OFFLINE_COMPLETE, and the destination records the
 * VM, stopped.  0 with its ACK in *ACK_R, or -1 (err). */
static int
phase_offline_complete (struct migration *m, json_t **ack_r, int *rc,
                        char *err, size_t errlen)
{
  struct dest *d = &m->dests[0];
  json_t *evs, *objs, *a;
  int r;

  *rc = RC_ROLLED_BACK;
  record_set_phase (m, "completing", "completing %zu disk%s%s",
                    m->ndisks, m->ndisks == 1 ? "" : "s",
                    m->has_dir ? " and the VM directory" : "");
  for (size_t i = 0; i <= m->ndisks; ++i) {
    struct completion c = { .m = m, .disk = i == m->ndisks ? -1 : (int) i };
    if (i == m->ndisks && !m->has_dir)
      break;
    complete_main (&c);
    if (c.rv == -1)
      return set_error (err, errlen, "%s", c.err);
  }
  evs = events_freeze (m->vm);
  objs = db_objects_since (m->vm, m->prepared_at);
  r = source_send_state (d, evs, objs, err, errlen);
  json_decref (evs);
  json_decref (objs);
  if (r == -1 ||
      cluster_move_vm (m->vm, d->host, m->owner_rev, err, errlen) == -1)
    return -1;
  /* From here the destination decides, as for a live VM. */
  m->complete_sent = true;
  record_set_phase (m, "complete_sent", "every disk and file sent; %s "
                    "takes the VM in, stopped", d->host);
  a = peer_call (d->peer, peer_msg ("OFFLINE_COMPLETE"), hd.io_timeout_ms * 2,
                 err, errlen);
  if (!a || peer_expect (a, "ACK", err, errlen) == -1) {
    json_decref (a);
    return -1;
  }
  *ack_r = a;
  return 0;
}

/* The offline migration moved the VM: release it here. */
static json_t *
offline_done (struct migration *m)
{
  record_set_phase (m, "acked", "%s holds the VM (stopped); releasing it "
                    "here", m->to);
  source_release (m->id, m->vm, m->to, m->def, m->delete_source);
  hd_crash_point ("released");
  db_journal_end (m->id, "done", "migrated (offline)");
  log_info ("migration %s: %s is now on %s, stopped", m->id, m->vm, m->to);
  return json_pack ("{s:b, s:s, s:b}", "ok", 1, "mode", "offline",
                    "stopped", 1);
}

/* Every destination that made something and was not told yet, but
 * WINNER (if not NULL): drop it (WHY). */
static void
tell_the_rest (struct migration *m, const char *winner, const char *why)
{
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = &m->dests[i];
    if (d->admitted && !d->told && !(winner && strcmp (winner,
                                                       d->host) == 0))
      peer_abort_migration (d->peer, d->host, m->id, why);
    d->told = true;
  }
}

static const char *
code_name (int rc)
{
  const char *name = rc_code_name (rc);

  return name ? name : "failed";
}

json_t *
source_run_live (struct migration *m)
{
  char err[2048] = "";
  int rc = RC_ERROR;
  json_t *ack = NULL;
  double t_stop = 0;
  int r;
  bool offline = strcmp (m->mode, "offline") == 0;

  r = phase_admission (m, &rc, err, sizeof err);
  if (r == 0) {
    m->admitted = true;
    events_hold (m->vm);
    db_vm_set_state (m->vm, "moving");
    /* A stopped VM's disks and directory are copied from the servers
     * it runs on, started for the copy. */
    if (offline && vm_start_storage (m->vm, m->def, err, sizeof err) == -1) {
      rc = RC_ROLLED_BACK;
      r = -1;
    }
  }
  if (r == 0)
    r = phase_prepare (m, &rc, err, sizeof err);
  if (r == 0)
    r = phase_storage (m, &rc, err, sizeof err);
  if (r == 0 && offline) {
    r = phase_offline_complete (m, &ack, &rc, err, sizeof err);
    json_decref (ack);
    if (r == 0)
      return offline_done (m);
  }
  if (r == 0)
    r = phase_start_vm (m, &rc, err, sizeof err);
  if (r == 0)
    r = phase_memory (m, &rc, err, sizeof err);
  if (r == 0)
    r = phase_cutover (m, &t_stop, &ack, &rc, err, sizeof err);

  if (r == 0) {
    double resumed = json_number_value (json_object_get (ack, "resumed_at"));
    double downtime = resumed > 0 ? (resumed - t_stop) * 1000.0 : -1;
    bool asked_again = json_is_true (json_object_get (ack, "asked_again"));
    /* Until this host knew the VM runs there (with several, the
     * others are told to drop theirs after that). */
    double seen = (m->running_wall ? (double) m->running_wall
                   : (double) wall_ms ()) / 1000.0 - t_stop;
    int64_t running_ms = (m->running_at ? m->running_at : clock_ms ())
      - m->t0;
    json_decref (ack);
    record_set_phase (m, "acked", "the VM runs on %s; releasing it here",
                      m->to);
    tell_the_rest (m, m->to, "another destination runs the VM");
    source_release (m->id, m->vm, m->to, m->def,
                              m->delete_source);
    hd_crash_point ("released");
    db_journal_end (m->id, "done", "migrated");
    log_info ("migration %s: %s now runs on %s; downtime %.1f ms", m->id,
              m->vm, m->to, downtime);
    json_t *res = json_pack ("{s:b, s:s, s:f, s:I}", "ok", 1, "mode",
                             "live", "downtime_seen_ms", seen * 1000.0,
                             "running_after_ms", (json_int_t) running_ms);
    /* Without its ACK there is no time of resuming to measure from. */
    if (downtime >= 0)
      json_object_set_new (res, "downtime_ms", json_real (downtime));
    if (m->cascade[0])
      json_object_set_new (res, "cascade", json_string (m->cascade));
    source_ram_result (m, res);
    if (asked_again)
      json_object_set_new (res, "note", json_sprintf (
                             "the acknowledgement was lost; asked on a new "
                             "connection, %s confirmed it runs the VM",
                             m->to));
    pthread_mutex_lock (&m->lock);
    int64_t asked = m->cutover_at;
    pthread_mutex_unlock (&m->lock);
    if (m->prewarm && asked)
      /* From "handoff cutover" to the VM running on the winner. */
      json_object_set_new (res, "cutover_ms",
                           json_integer ((json_int_t) (m->t0 + running_ms
                                                       - asked)));
    return res;
  }
  if (m->complete_sent) {
    /* The destination may or may not run the VM: never resume here
     * blindly.  recover.c settles it by asking. */
    log_error ("migration %s: %s; the outcome is in doubt, resolving", m->id,
               err);
    source_settle (m->id, m->vm, m->to, m->def, m->delete_source, offline);
    json_t *j = db_journal_get (m->id);
    const char *res = json_string_value (json_object_get (j, "result"));
    bool moved = res && strcmp (res, "done") == 0;
    json_decref (j);
    if (moved)
      return json_pack ("{s:b, s:s, s:b, s:s}", "ok", 1, "mode", m->mode,
                        "stopped", offline, "note", offline
                        ? "the acknowledgement was lost; the destination "
                        "confirmed it holds the VM"
                        : "the acknowledgement was lost; the destination "
                        "confirmed it runs the VM");
    return json_pack ("{s:b, s:s, s:s}", "ok", 0, "error", err, "code",
                      res ? "rolled_back" : "in_doubt");
  }
  if (!m->admitted) {
    /* Refused or unreachable: nothing was begun anywhere. */
    log_error ("migration %s of %s refused: %s", m->id, m->vm, err);
    db_journal_end (m->id, "refused", err);
    return json_pack ("{s:b, s:s, s:s}", "ok", 0, "error", err, "code",
                      code_name (rc));
  }
  log_error ("migration %s of %s failed: %s; rolling back", m->id, m->vm,
             err);
  record_emit (m, json_pack ("{s:s, s:s, s:s}", "event", "phase", "phase",
                      "rollback", "message", err));
  tell_the_rest (m, NULL, err);
  source_rollback (m->vm, m->to, m->ndisks, m->has_dir, offline);
  db_journal_end (m->id, "rolled_back", err);
  return json_pack ("{s:b, s:s, s:s}", "ok", 0, "error", err, "code",
                    code_name (rc));
}
