/* handoffd: cold volume handoff, the source's side.  See volume.h for
 * the two-step rule that keeps a volume mounted on one host at most.
 *
 * Journal phases (source): admission, identify, power_off, unregister,
 * unmount - nothing sent yet: a failure mounts the volumes again here;
 * handoff - the identities went out, no decision yet; committed - the
 * destination may start the VM; aborting - it must not, and this host
 * waits for its word that it dropped the volumes.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "daemon.h"
#include "db.h"
#include "events.h"
#include "jsonutil.h"
#include "log.h"
#include "migrate-common.h"
#include "migrate.h"
#include "names.h"
#include "peer.h"
#include "vm.h"
#include "volume-ops.h"
#include "volume.h"

struct vctx {
  volume_emit_fn emit;
  void *opaque;
  const char *id;
};

static void
phase (struct vctx *v, const char *name, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
phase (struct vctx *v, const char *name, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  db_journal_phase (v->id, name, msg);
  log_info ("migration %s: %s: %s", v->id, name, msg);
  if (v->emit)
    v->emit (v->opaque, json_pack ("{s:s, s:s, s:s}", "event", "phase",
                                   "phase", name, "message", msg));
  hd_crash_point (name);
}

/* The VM runs here again after a handoff that did not happen: its
 * volumes mounted (MOUNTED_AWAY: they had been unmounted), the VM
 * registered and started, its held events delivered. */
static void
restore_here (const char *vm, json_t *def, json_t *objects, json_t *volumes,
              bool mounted_away)
{
  char err[1024];
  json_t *vol, *row;
  size_t i;

  if (mounted_away)
    json_array_foreach (volumes, i, vol) {
      const char *mnt = json_string_value (json_object_get (vol,
                                                            "mountpoint"));
      if (mnt && !volume_is_mounted (mnt) &&
          volume_mount (vm, vol, err, sizeof err) == -1)
        log_error ("VM %s: cannot mount its volume again: %s", vm, err);
    }
  db_begin ();
  row = db_vm_get (vm);
  if (!row) {
    db_vm_put (vm, def, "stopped");
    db_objects_replace (vm, objects);
  }
  json_decref (row);
  db_commit ();
  if (vm_qemu_alive (vm) ||
      vm_start (vm, def, false, NULL, err, sizeof err) == 0)
    db_vm_set_state (vm, "running");
  else {
    log_error ("VM %s: cannot start it again here: %s", vm, err);
    db_vm_set_state (vm, "stopped");
  }
  events_release (vm, NULL);
}

/* The destination runs the VM: it is no longer this host's. */
static void
moved (const char *id, const char *vm, const char *to)
{
  db_begin ();
  db_vm_delete (vm);
  db_commit ();
  events_release (vm, to);
  db_journal_end (id, "done", "started on the destination");
  log_info ("migration %s: %s runs VM %s from its volumes", id, to, vm);
}

/* The outcome cannot be learnt now: the VM stays stopped here, its
 * volumes unmounted, and the retry thread keeps asking. */
static void
in_doubt (const char *id, const char *vm, const char *to, const char *why)
{
  db_vm_set_state (vm, "in_doubt");
  log_error ("migration %s: VM %s is in doubt (%s): it stays stopped and "
             "its volumes unmounted here until %s answers; handoffd keeps "
             "asking", id, vm, why, to);
  recover_kick ();
}

/* Settle a committed or aborting handoff with the destination (one
 * conversation, up to TIMEOUT_MS).  0 settled: *RESTORED_R says whether
 * the VM came back here; -1 still in doubt (err says why). */
static int
settle_source (json_t *row, int timeout_ms, bool *restored_r, char *err,
               size_t errlen)
{
  const char *id = json_string_value (json_object_get (row, "id"));
  const char *vm = json_string_value (json_object_get (row, "vm"));
  const char *to = json_string_value (json_object_get (row, "peer"));
  const char *ph = json_string_value (json_object_get (row, "phase"));
  json_t *detail = json_object_get (row, "detail");
  bool committed = strcmp (ph, "committed") == 0;
  json_t *a;
  const char *st;

  *restored_r = false;
  if (committed)
    a = migration_query_peer (to, id, timeout_ms, err, errlen);
  else {
    /* Aborting: tell it to drop the volumes; it answers "active" while
     * it still holds them (it drops them when its own wait ends). */
    a = migration_query_peer (to, id, 0, err, errlen);
    if (a && strcmp (json_string_value (json_object_get (a, "state")),
                     "active") == 0) {
      json_decref (a);
      a = migration_abort_peer_state (to, id, err, errlen);
    }
  }
  st = a ? json_string_value (json_object_get (a, "state")) : NULL;
  if (!st) {
    json_decref (a);
    return -1;
  }
  if (strcmp (st, "resumed") == 0) {
    if (!committed)
      log_error ("migration %s: %s started VM %s although this host never "
                 "committed the handoff; it runs there", id, to, vm);
    moved (id, vm, to);
  }
  else if (strcmp (st, "aborted") == 0 || strcmp (st, "unknown") == 0) {
    /* Its word: it does not hold the volumes and never will for this
     * migration.  Only now may they be mounted here again. */
    log_info ("migration %s: %s does not hold VM %s's volumes; the VM "
              "comes back here", id, to, vm);
    restore_here (vm, json_object_get (detail, "def"),
                  json_object_get (detail, "objects"),
                  json_object_get (detail, "volumes"), true);
    db_journal_end (id, "rolled_back", committed
                    ? "the destination did not start the VM"
                    : "the handoff was not committed");
    *restored_r = true;
  }
  else {
    snprintf (err, errlen, "%s still holds the migration (%s)", to, st);
    json_decref (a);
    return -1;
  }
  json_decref (a);
  return 0;
}

void
migrate_volume (const char *id, const char *vm, const char *to, json_t *def,
                json_t *objects, uint64_t timeout_s, uint64_t shutdown_ms,
                volume_emit_fn emit, void *opaque)
{
  struct vctx v = { .emit = emit, .opaque = opaque, .id = id };
  json_t *volumes = json_array (), *disks = json_object_get (def, "disks");
  json_t *d, *a = NULL, *row;
  struct channel *peer = NULL;
  char err[2048] = "";
  const char *code = "rolled_back";
  bool unmounted = false, stopped = false, restored;
  size_t i;

  phase (&v, "admission", "asking %s to take %s (volume mode)", to, vm);
  peer = peer_connect (to, err, sizeof err);
  if (!peer) {
    code = "unreachable";
    goto failed;
  }
  a = peer_call (peer, json_pack ("{s:s, s:s, s:s, s:s, s:s, s:I, s:{s:O, "
                                  "s:O, s:i}}", "type", "START_MIGRATION",
                                  "id", id, "vm", vm, "source", hd.name,
                                  "mode", "volume", "timeout_s",
                                  (json_int_t) timeout_s, "needs",
                                  "memory", json_object_get (def, "memory"),
                                  "vcpus", json_object_get (def, "vcpus"),
                                  "disk_bytes", 0),
                 hd.io_timeout_ms, err, sizeof err);
  if (!a || peer_expect (a, "PERMITTED", err, sizeof err) == -1) {
    code = a ? "denied" : "unreachable";
    goto failed;
  }
  json_decref (a);
  a = NULL;

  /* Every file of the VM must sit on a volume other than the root. */
  phase (&v, "identify", "identifying the volumes that hold %s", vm);
  json_t *paths = json_array ();
  json_array_foreach (disks, i, d)
    json_array_append (paths, json_object_get (d, "path"));
  for (const char *const *k = (const char *const[]) { "dir", "kernel",
                                                      "initrd", NULL };
       *k; ++k)
    if (json_string_value (json_object_get (def, *k)))
      json_array_append (paths, json_object_get (def, *k));
  json_array_foreach (paths, i, d) {
    char mnt[PATH_MAX];
    bool seen = false;
    json_t *vol;
    size_t k;
    if (volume_mount_point_of (json_string_value (d), mnt, sizeof mnt) == -1 ||
        strcmp (mnt, "/") == 0) {
      snprintf (err, sizeof err, "%s is not on a volume of its own",
                json_string_value (d));
      json_decref (paths);
      code = "failed";
      goto failed;
    }
    json_array_foreach (volumes, k, vol)
      if (strcmp (json_string_value (json_object_get (vol, "mountpoint")),
                  mnt) == 0)
        seen = true;
    if (seen)
      continue;
    json_t *desc = volume_identify (mnt, err, sizeof err);
    if (!desc) {
      json_decref (paths);
      code = "failed";
      goto failed;
    }
    json_array_append_new (volumes, json_pack ("{s:o, s:s}", "descriptor",
                                               desc, "mountpoint", mnt));
  }
  json_decref (paths);
  db_journal_detail (id, json_pack ("{s:s, s:O, s:O, s:O}", "mode", "volume",
                                    "def", def, "objects", objects,
                                    "volumes", volumes));

  phase (&v, "power_off", "powering %s off", vm);
  events_hold (vm);
  stopped = true;
  if (vm_qemu_alive (vm)) {
    json_t *r = vm_qmp (vm, "system_powerdown", NULL, 5000, err, sizeof err);
    json_decref (r);
    /* Terminates: the guest powers off, or we stop QEMU after
     * SHUTDOWN_MS.  The destination hears from us every 2 s meanwhile
     * (it gives up on a silent source). */
    for (uint64_t k = 0; k < shutdown_ms / 100 && vm_qemu_alive (vm); ++k) {
      usleep (100000);
      if (k % 20 == 19) {
        a = peer_call (peer, peer_msg ("PING"), hd.io_timeout_ms, err,
                       sizeof err);
        if (!a || peer_expect (a, "PONG", err, sizeof err) == -1)
          goto failed;
        json_decref (a);
        a = NULL;
      }
    }
  }
  vm_stop (vm);
  /* The VM stays listed ("moving") until the destination runs it: a
   * handoff in doubt shows here. */
  phase (&v, "unregister", "%s is no longer run here", vm);
  db_vm_set_state (vm, "moving");
  phase (&v, "unmount", "flushing and unmounting %zu volume%s",
         json_array_size (volumes), json_array_size (volumes) == 1 ? "" : "s");
  unmounted = true;
  if (volume_unmount_all (volumes, err, sizeof err) == -1)
    goto failed;

  /* Step 1: from here the destination may hold the volumes. */
  phase (&v, "handoff", "%s mounts the volumes and registers %s", to, vm);
  a = peer_call (peer, json_pack ("{s:s, s:O, s:O, s:O}", "type",
                                  "VOLUME_HANDOFF", "def", def, "objects",
                                  objects, "volumes", volumes),
                 (int) timeout_s * 1000, err, sizeof err);
  if (a && peer_expect (a, "FAILED", err, sizeof err) == 0) {
    /* It unmounted whatever it mounted before it said so. */
    snprintf (err, sizeof err, "%s",
              json_string_value (json_object_get (a, "reason")));
    goto failed_back;
  }
  if (!a || peer_expect (a, "READY", err, sizeof err) == -1)
    goto undecided;
  json_decref (a);
  a = NULL;

  /* Step 2: recorded before it is said. */
  phase (&v, "committed", "%s may start %s", to, vm);
  a = peer_call (peer, json_pack ("{s:s, s:o}", "type", "VOLUME_COMMIT",
                                  "events", events_freeze (vm)),
                 hd.io_timeout_ms * 4, err, sizeof err);
  if (a && peer_expect (a, "ACK", err, sizeof err) == 0) {
    chan_close (peer);
    moved (id, vm, to);
    emit (opaque, json_pack ("{s:s, s:b, s:s, s:i}", "event", "result", "ok",
                             1, "mode", "volume", "copied_bytes", 0));
    json_decref (a);
    json_decref (volumes);
    return;
  }
  if (a && json_string_value (json_object_get (a, "reason"))) {
    snprintf (err, sizeof err, "%s",
              json_string_value (json_object_get (a, "reason")));
    goto failed_back;
  }
  goto settle;

 undecided:
  /* No READY: decided now, before anything else, that the destination
   * will not start the VM; it must say it dropped the volumes. */
  log_error ("migration %s: VOLUME_HANDOFF: %s", id, err);
  phase (&v, "aborting", "%s must not start %s; waiting for its word that "
         "it dropped the volumes", to, vm);
 settle:
  json_decref (a);
  a = NULL;
  chan_close (peer);
  peer = NULL;
  row = db_journal_get (id);
  if (settle_source (row, hd.io_timeout_ms * 2, &restored, err,
                     sizeof err) == 0) {
    bool ok = !restored;
    json_decref (row);
    emit (opaque, ok
          ? json_pack ("{s:s, s:b, s:s, s:i, s:s}", "event", "result", "ok",
                       1, "mode", "volume", "copied_bytes", 0, "note",
                       "the answer was lost; the destination confirmed it "
                       "runs the VM")
          : json_pack ("{s:s, s:b, s:s, s:s}", "event", "result", "ok", 0,
                       "error", "the handoff did not complete; the VM runs "
                       "here again", "code", "rolled_back"));
    json_decref (volumes);
    return;
  }
  json_decref (row);
  in_doubt (id, vm, to, err);
  {
    char msg[2600];
    snprintf (msg, sizeof msg, "in doubt: %.2000s; %s stays stopped and its "
              "volumes unmounted until %s answers", err, vm, to);
    emit (opaque, json_pack ("{s:s, s:b, s:s, s:s}", "event", "result", "ok",
                             0, "error", msg, "code", "in_doubt"));
  }
  json_decref (volumes);
  return;

 failed_back:
  /* The destination said no and holds nothing. */
  json_decref (a);
  a = NULL;
  chan_close (peer);
  peer = NULL;
  log_error ("migration %s of %s failed: %s", id, vm, err);
  restore_here (vm, def, objects, volumes, true);
  db_journal_end (id, "rolled_back", err);
  emit (opaque, json_pack ("{s:s, s:b, s:s, s:s}", "event", "result", "ok", 0,
                           "error", err, "code", code));
  json_decref (volumes);
  return;

 failed:
  /* Nothing was handed over. */
  json_decref (a);
  if (peer) {
    if (strcmp (code, "denied") != 0)
      migration_abort_peer (peer, to, id, err);
    chan_close (peer);
  }
  log_error ("migration %s of %s failed: %s", id, vm, err);
  if (stopped)
    restore_here (vm, def, objects, volumes, unmounted);
  else
    events_release (vm, NULL);
  db_journal_end (id, "rolled_back", err);
  emit (opaque, json_pack ("{s:s, s:b, s:s, s:s}", "event", "result", "ok", 0,
                           "error", err, "code", code));
  json_decref (volumes);
}

const char *
volume_source_state (json_t *row)
{
  const char *res = json_string_value (json_object_get (row, "result"));
  const char *ph = json_string_value (json_object_get (row, "phase"));

  if (res && res[0])
    return strcmp (res, "done") == 0 ? "committed" : "aborted";
  if (strcmp (ph, "committed") == 0)
    return "committed";
  if (strcmp (ph, "aborting") == 0)
    return "aborted";
  return "active";
}

bool
volume_recover_source (json_t *row)
{
  const char *id = json_string_value (json_object_get (row, "id"));
  const char *vm = json_string_value (json_object_get (row, "vm"));
  const char *to = json_string_value (json_object_get (row, "peer"));
  const char *ph = json_string_value (json_object_get (row, "phase"));
  json_t *detail = json_object_get (row, "detail");
  json_t *def = json_object_get (detail, "def");
  char err[1024];
  bool restored;

  if (strcmp (ph, "handoff") == 0) {
    /* The identities may have gone out; no decision was recorded.  The
     * decision now: not committed. */
    db_journal_phase (id, "aborting", "the source restarted before it "
                      "committed the handoff");
    json_t *r2 = db_journal_get (id);
    bool pending = volume_recover_source (r2);
    json_decref (r2);
    return pending;
  }
  if (strcmp (ph, "committed") == 0 || strcmp (ph, "aborting") == 0) {
    if (settle_source (row, hd.io_timeout_ms, &restored, err,
                       sizeof err) == 0)
      return false;
    db_vm_set_state (vm, "in_doubt");
    log_warn ("migration %s: VM %s stays in doubt: %s", id, vm, err);
    return true;
  }
  /* Nothing was handed over yet. */
  migration_abort_peer (NULL, to, id, "the source restarted");
  if (def && json_object_get (detail, "volumes"))
    restore_here (vm, def, json_object_get (detail, "objects"),
                  json_object_get (detail, "volumes"), true);
  else if (def && !vm_qemu_alive (vm)) {
    if (vm_start (vm, def, false, NULL, err, sizeof err) == 0)
      db_vm_set_state (vm, "running");
    events_release (vm, NULL);
  }
  db_journal_end (id, "rolled_back", "the source restarted");
  return false;
}
