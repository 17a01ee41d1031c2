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
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "events.h"
#include "jsonutil.h"
#include "log.h"
#include "names.h"
#include "peer.h"
#include "record.h"
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
  phase_enter (v->id, name, msg, v->emit, v->opaque);
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
  /* Each step below is done again, harmlessly, by a restart. */
  hd_crash_point ("restore_mounted");
  db_begin ();
  row = db_vm_get (vm);
  if (!row) {
    db_vm_put (vm, def, "stopped");
    db_objects_replace (vm, objects);
  }
  json_decref (row);
  db_commit ();
  hd_crash_point ("restore_recorded");
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
}

/* Settle a committed or aborting handoff with the destination (one
 * conversation, up to TIMEOUT_MS).  0 settled: *RESTORED_R says whether
 * the VM came back here; -1 still in doubt (err says why). */
static int
settle_source (json_t *row, int timeout_ms, bool *restored_r, char *err,
               size_t errlen)
{
  struct journal_row r = journal_row_read (row);
  const char *id = r.id, *vm = r.vm, *to = r.peer, *ph = r.phase;
  json_t *detail = r.detail;
  bool committed = strcmp (ph, "committed") == 0;
  json_t *a;
  const char *st;

  *restored_r = false;
  if (committed)
    a = peer_query_migration (to, id, timeout_ms, err, errlen);
  else {
    /* Aborting: tell it to drop the volumes; it answers "active" while
     * it still holds them (it drops them when its own wait ends). */
    a = peer_query_migration (to, id, 0, err, errlen);
    if (a && strcmp (json_string_value (json_object_get (a, "state")),
                     "active") == 0) {
      json_decref (a);
      a = peer_abort_migration_state (to, id, err, errlen);
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

/* One volume handoff on the source, step by step. */
struct vmove {
  struct vctx v;
  const char *id, *vm, *to;
  json_t *def, *objects;
  json_t *volumes;              /* [{descriptor, mountpoint}] */
  struct channel *peer;
  uint64_t timeout_s, shutdown_ms;
  const char *code;             /* The result's code on failure. */
  bool stopped, unmounted;
  char err[2048];
};

static void
result (struct vmove *mv, bool ok, const char *error, const char *note)
{
  json_t *r = ok
    ? json_pack ("{s:s, s:b, s:s, s:i}", "event", "result", "ok", 1, "mode",
                 "volume", "copied_bytes", 0)
    : json_pack ("{s:s, s:b, s:s, s:s}", "event", "result", "ok", 0, "error",
                 error, "code", mv->code);
  if (note)
    json_object_set_new (r, "note", json_string (note));
  mv->v.emit (mv->v.opaque, r);
}

/* The destination's admission.  0, or -1 with mv->err and mv->code. */
static int
step_admission (struct vmove *mv)
{
  json_t *a;

  phase (&mv->v, "admission", "asking %s to take %s (volume mode)", mv->to,
         mv->vm);
  mv->peer = peer_connect (mv->to, mv->err, sizeof mv->err);
  if (!mv->peer) {
    mv->code = "unreachable";
    return -1;
  }
  a = peer_call (mv->peer, json_pack (
                   "{s:s, s:s, s:s, s:s, s:s, s:I, s:{s:O, s:O, s:i}}",
                   "type", "START_MIGRATION", "id", mv->id, "vm", mv->vm,
                   "source", hd.name, "mode", "volume", "timeout_s",
                   (json_int_t) mv->timeout_s, "needs",
                   "memory", json_object_get (mv->def, "memory"),
                   "vcpus", json_object_get (mv->def, "vcpus"),
                   "disk_bytes", 0),
                 hd.io_timeout_ms, mv->err, sizeof mv->err);
  if (!a || peer_expect (a, "PERMITTED", mv->err, sizeof mv->err) == -1) {
    mv->code = a ? "denied" : "unreachable";
    json_decref (a);
    return -1;
  }
  json_decref (a);
  return 0;
}

/* Every file of the VM must sit on a volume other than the root: the
 * volumes, identified, into mv->volumes and the journal. */
static int
step_identify (struct vmove *mv)
{
  json_t *paths = json_array (), *d, *vol;
  size_t i, k;
  int rv = -1;

  phase (&mv->v, "identify", "identifying the volumes that hold %s", mv->vm);
  mv->code = "failed";
  json_array_foreach (json_object_get (mv->def, "disks"), i, d)
    json_array_append (paths, json_object_get (d, "path"));
  for (const char *const *key = (const char *const[]) { "dir", "kernel",
                                                        "initrd", NULL };
       *key; ++key)
    if (json_string_value (json_object_get (mv->def, *key)))
      json_array_append (paths, json_object_get (mv->def, *key));
  json_array_foreach (paths, i, d) {
    char mnt[PATH_MAX];
    bool seen = false;
    if (volume_mount_point_of (json_string_value (d), mnt, sizeof mnt) == -1 ||
        strcmp (mnt, "/") == 0) {
      set_error (mv->err, sizeof mv->err, "%s is not on a volume of its own",
                 json_string_value (d));
      goto out;
    }
    json_array_foreach (mv->volumes, k, vol)
      if (strcmp (json_string_value (json_object_get (vol, "mountpoint")),
                  mnt) == 0)
        seen = true;
    if (seen)
      continue;
    json_t *desc = volume_identify (mnt, mv->err, sizeof mv->err);
    if (!desc)
      goto out;
    json_array_append_new (mv->volumes, json_pack ("{s:o, s:s}",
                                                   "descriptor", desc,
                                                   "mountpoint", mnt));
  }
  db_journal_detail (mv->id, json_pack ("{s:s, s:O, s:O, s:O}", "mode",
                                        "volume", "def", mv->def, "objects",
                                        mv->objects, "volumes",
                                        mv->volumes));
  mv->code = "rolled_back";
  rv = 0;
 out:
  json_decref (paths);
  return rv;
}

/* The guest powers off (ACPI, then QEMU stopped after the shutdown
 * timeout), the VM is no longer run here, its volumes are flushed and
 * unmounted. */
static int
step_power_off (struct vmove *mv)
{
  json_t *a;

  phase (&mv->v, "power_off", "powering %s off", mv->vm);
  events_hold (mv->vm);
  mv->stopped = true;
  if (vm_qemu_alive (mv->vm)) {
    a = vm_qmp (mv->vm, "system_powerdown", NULL, 5000, mv->err,
                sizeof mv->err);
    json_decref (a);
    /* Terminates: the guest powers off, or we stop QEMU after
     * SHUTDOWN_MS.  The destination hears from us every 2 s meanwhile
     * (it gives up on a silent source). */
    for (uint64_t k = 0; k < mv->shutdown_ms / 100 &&
           vm_qemu_alive (mv->vm); ++k) {
      usleep (100000);
      if (k % 20 != 19)
        continue;
      if (peer_ask (mv->peer, peer_msg ("PING"), "PONG", hd.io_timeout_ms,
                    mv->err, sizeof mv->err) == -1)
        return -1;
    }
  }
  vm_stop (mv->vm);
  /* The VM stays listed ("moving") until the destination runs it: a
   * handoff in doubt shows here. */
  phase (&mv->v, "unregister", "%s is no longer run here", mv->vm);
  db_vm_set_state (mv->vm, "moving");
  phase (&mv->v, "unmount", "flushing and unmounting %zu volume%s",
         json_array_size (mv->volumes),
         json_array_size (mv->volumes) == 1 ? "" : "s");
  mv->unmounted = true;
  return volume_unmount_all (mv->volumes, mv->err, sizeof mv->err);
}

enum step_outcome { STEP_OK, STEP_REFUSED, STEP_UNDECIDED };

/* Step 1: from here the destination may hold the volumes.  STEP_OK on
 * READY; STEP_REFUSED if it said it failed (it holds nothing then);
 * STEP_UNDECIDED if no valid answer came. */
static enum step_outcome
step_handoff (struct vmove *mv)
{
  json_t *a;
  enum step_outcome o = STEP_UNDECIDED;

  phase (&mv->v, "handoff", "%s mounts the volumes and registers %s",
         mv->to, mv->vm);
  a = peer_call (mv->peer, json_pack ("{s:s, s:O, s:O, s:O}", "type",
                                      "VOLUME_HANDOFF", "def", mv->def,
                                      "objects", mv->objects, "volumes",
                                      mv->volumes),
                 (int) mv->timeout_s * 1000, mv->err, sizeof mv->err);
  if (a && peer_expect (a, "FAILED", mv->err, sizeof mv->err) == 0) {
    /* It unmounted whatever it mounted before it said so. */
    snprintf (mv->err, sizeof mv->err, "%s",
              json_string_value (json_object_get (a, "reason")));
    o = STEP_REFUSED;
  }
  else if (a && peer_expect (a, "READY", mv->err, sizeof mv->err) == 0)
    o = STEP_OK;
  json_decref (a);
  return o;
}

/* Step 2: recorded before it is said.  STEP_OK on ACK; STEP_REFUSED if
 * the destination could not start the VM (it let go of the volumes);
 * STEP_UNDECIDED if the answer was lost. */
static enum step_outcome
step_commit (struct vmove *mv)
{
  json_t *a;
  enum step_outcome o = STEP_UNDECIDED;
  int64_t rev;

  /* Fleet mode: the VM becomes the destination's before it may start
   * it.  If it cannot, the destination must drop the volumes, as when
   * its READY was lost. */
  if (cluster_owner_check (mv->vm, &rev, mv->err, sizeof mv->err) == -1 ||
      cluster_move_vm (mv->vm, mv->to, rev, mv->err, sizeof mv->err) == -1) {
    log_error ("migration %s: %s", mv->id, mv->err);
    phase (&mv->v, "aborting", "%s must not start %s (%s); waiting for its "
           "word that it dropped the volumes", mv->to, mv->vm, mv->err);
    return STEP_UNDECIDED;
  }
  phase (&mv->v, "committed", "%s may start %s", mv->to, mv->vm);
  a = peer_call (mv->peer, json_pack ("{s:s, s:o}", "type", "VOLUME_COMMIT",
                                      "events", events_freeze (mv->vm)),
                 hd.io_timeout_ms * 4, mv->err, sizeof mv->err);
  if (a && peer_expect (a, "ACK", mv->err, sizeof mv->err) == 0)
    o = STEP_OK;
  else if (a && json_string_value (json_object_get (a, "reason"))) {
    snprintf (mv->err, sizeof mv->err, "%s",
              json_string_value (json_object_get (a, "reason")));
    o = STEP_REFUSED;
  }
  json_decref (a);
  return o;
}

/* No answer to a step: settle with the destination on a new
 * connection, or leave the VM in doubt for the pending thread. */
static void
settle_after (struct vmove *mv)
{
  json_t *row = db_journal_get (mv->id);
  bool restored;
  char msg[2600];

  if (settle_source (row, hd.io_timeout_ms * 2, &restored, mv->err,
                     sizeof mv->err) == 0) {
    if (restored)
      result (mv, false, "the handoff did not complete; the VM runs here "
              "again", NULL);
    else
      result (mv, true, NULL, "the answer was lost; the destination "
              "confirmed it runs the VM");
  }
  else {
    in_doubt (mv->id, mv->vm, mv->to, mv->err);
    snprintf (msg, sizeof msg, "in doubt: %.2000s; %s stays stopped and its "
              "volumes unmounted until %s answers", mv->err, mv->vm, mv->to);
    mv->code = "in_doubt";
    result (mv, false, msg, NULL);
  }
  json_decref (row);
}

/* A failure before the identities went out: nothing was handed over. */
static void
failed_here (struct vmove *mv)
{
  if (mv->peer && strcmp (mv->code, "denied") != 0)
    peer_abort_migration (mv->peer, mv->to, mv->id, mv->err);
  log_error ("migration %s of %s failed: %s", mv->id, mv->vm, mv->err);
  if (mv->stopped)
    restore_here (mv->vm, mv->def, mv->objects, mv->volumes, mv->unmounted);
  else
    events_release (mv->vm, NULL);
  db_journal_end (mv->id, "rolled_back", mv->err);
  result (mv, false, mv->err, NULL);
}

/* The destination said no and holds nothing: back here. */
static void
refused (struct vmove *mv)
{
  log_error ("migration %s of %s failed: %s", mv->id, mv->vm, mv->err);
  restore_here (mv->vm, mv->def, mv->objects, mv->volumes, true);
  db_journal_end (mv->id, "rolled_back", mv->err);
  result (mv, false, mv->err, NULL);
}

void
migrate_volume (const char *id, const char *vm, const char *to, json_t *def,
                json_t *objects, uint64_t timeout_s, uint64_t shutdown_ms,
                volume_emit_fn emit, void *opaque)
{
  struct vmove mv = {
    .v = { .emit = emit, .opaque = opaque, .id = id },
    .id = id, .vm = vm, .to = to, .def = def, .objects = objects,
    .volumes = json_array (), .timeout_s = timeout_s,
    .shutdown_ms = shutdown_ms, .code = "rolled_back",
  };
  enum step_outcome o;

  if (step_admission (&mv) == -1 || step_identify (&mv) == -1 ||
      step_power_off (&mv) == -1) {
    failed_here (&mv);
    goto out;
  }
  o = step_handoff (&mv);
  if (o == STEP_OK)
    o = step_commit (&mv);
  else if (o == STEP_UNDECIDED) {
    /* No READY: decided now, before anything else, that the destination
     * will not start the VM; it must say it dropped the volumes. */
    log_error ("migration %s: VOLUME_HANDOFF: %s", id, mv.err);
    phase (&mv.v, "aborting", "%s must not start %s; waiting for its word "
           "that it dropped the volumes", to, vm);
  }
  chan_close (mv.peer);
  mv.peer = NULL;
  if (o == STEP_OK) {
    moved (id, vm, to);
    result (&mv, true, NULL, NULL);
  }
  else if (o == STEP_REFUSED)
    refused (&mv);
  else
    settle_after (&mv);
 out:
  if (mv.peer)
    chan_close (mv.peer);
  json_decref (mv.volumes);
}

const char *
volume_source_state (json_t *row)
{
  struct journal_row r = journal_row_read (row);
  const char *res = r.result, *ph = r.phase;

  if (res[0])
    return strcmp (res, "done") == 0 ? "committed" : "aborted";
  if (strcmp (ph, "committed") == 0)
    return "committed";
  if (strcmp (ph, "aborting") == 0)
    return "aborted";
  return "active";
}

void
volume_recover_source (json_t *row)
{
  struct journal_row r = journal_row_read (row);
  const char *id = r.id, *vm = r.vm, *to = r.peer, *ph = r.phase;
  json_t *detail = r.detail;
  json_t *def = json_object_get (detail, "def");
  char err[1024];
  bool restored;

  if (strcmp (ph, "handoff") == 0) {
    /* The identities may have gone out; no decision was recorded.  The
     * decision now: not committed. */
    db_journal_phase (id, "aborting", "the source restarted before it "
                      "committed the handoff");
    hd_crash_point ("recover_aborting");
    json_t *r2 = db_journal_get (id);
    volume_recover_source (r2);
    json_decref (r2);
    return;
  }
  if (strcmp (ph, "committed") == 0 || strcmp (ph, "aborting") == 0) {
    if (settle_source (row, hd.io_timeout_ms, &restored, err,
                       sizeof err) == -1) {
      db_vm_set_state (vm, "in_doubt");
      log_warn ("migration %s: VM %s stays in doubt: %s", id, vm, err);
    }
    return;
  }
  /* Nothing was handed over yet. */
  peer_abort_migration (NULL, to, id, "the source restarted");
  if (def && json_object_get (detail, "volumes"))
    restore_here (vm, def, json_object_get (detail, "objects"),
                  json_object_get (detail, "volumes"), true);
  else if (def && !vm_qemu_alive (vm)) {
    if (vm_start (vm, def, false, NULL, err, sizeof err) == 0)
      db_vm_set_state (vm, "running");
    events_release (vm, NULL);
  }
  db_journal_end (id, "rolled_back", "the source restarted");
}
