/* handoffd: cold volume handoff, the destination's side.  See volume.h
 * for the two-step rule.
 *
 * Journal phases (destination): mounting, mounted (READY sent: the VM
 * registered as "incoming", not started), committed (the source's
 * word: start it), resumed; then done - or aborted, written only once
 * every volume is unmounted again (unmount_failed while one is not:
 * retried, and "active" to a source that asks).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "events.h"
#include "jsonutil.h"
#include "log.h"
#include "names.h"
#include "receiving.h"
#include "peer.h"
#include "policy.h"
#include "sockets.h"
#include "vm.h"
#include "volume-ops.h"
#include "volume.h"

static json_t *
answer (const char *type, const char *reason)
{
  json_t *a = peer_msg (type);
  if (reason)
    json_object_set_new (a, "reason", json_string (reason));
  return a;
}

/* Mount points only where this host's policy lets volume mode mount:
 * a peer must not be able to mount a volume over /etc. */
static int
check_roots (json_t *volumes, char *err, size_t errlen)
{
  json_t *roots = policy_dirs ("volume_roots", err, errlen), *vol, *r;
  size_t i, k;
  int rv = 0;

  if (!roots)
    return -1;
  json_array_foreach (volumes, i, vol) {
    const char *mnt = json_string_value (json_object_get (vol, "mountpoint"));
    bool ok = false;
    json_array_foreach (roots, k, r)
      if (path_is_beneath (mnt, json_string_value (r)))
        ok = true;
    if (!ok) {
      snprintf (err, errlen, "mount point %.1024s is not beneath this host's "
                "volume_roots (policy %s)", mnt, hd.policy);
      rv = -1;
      break;
    }
  }
  json_decref (roots);
  return rv;
}

/* Let go of the volumes of migration ID: unmount them, forget the VM.
 * The journal says "aborted" only once none is mounted; if one stays,
 * phase unmount_failed (retried by the pending thread).  0 or -1. */
int
volume_drop (const char *id, const char *why)
{
  json_t *row = db_journal_get (id);
  const char *vm = json_string_value (json_object_get (row, "vm"));
  json_t *detail = json_object_get (row, "detail");
  json_t *volumes = json_object_get (detail, "volumes");
  char err[1024] = "", run[PATH_MAX];
  int rv = 0;

  if (!row)
    return 0;
  vm_stop (vm);
  if (volume_unmount_all (volumes, err, sizeof err) == -1) {
    log_error ("migration %s: cannot let go of VM %s's volumes: %s; trying "
               "again", id, vm, err);
    db_journal_phase (id, "unmount_failed", err);
    json_decref (row);
    return -1;
  }
  db_begin ();
  db_vm_delete (vm);
  db_events_delete (vm);
  db_commit ();
  vm_run_path (vm, NULL, run, sizeof run);
  rmdir (run);
  db_journal_end (id, "aborted", why);
  log_info ("migration %s: VM %s's volumes dropped here: %s", id, vm, why);
  json_decref (row);
  return rv;
}

json_t *
volume_receive (const char *id, const char *vm, const char *from,
                json_t *msg)
{
  /* The message passed peer_check_message (def_check_on_volumes). */
  json_t *def = json_object_get (msg, "def");
  json_t *objects = json_object_get (msg, "objects");
  json_t *volumes = json_object_get (msg, "volumes"), *vol;
  char err[2048];
  size_t i;

  if (strcmp (json_string_value (json_object_get (def, "name")), vm) != 0) {
    snprintf (err, sizeof err, "the definition names another VM");
    goto refused;
  }
  if (check_roots (volumes, err, sizeof err) == -1)
    goto refused;
  db_journal_detail (id, json_pack ("{s:s, s:O, s:O, s:O, s:s}", "mode",
                                    "volume", "def", def, "objects", objects,
                                    "volumes", volumes, "source", from));
  db_journal_phase (id, "mounting", "locating the volumes by signature");
  json_array_foreach (volumes, i, vol)
    if (volume_mount (vm, vol, err, sizeof err) == -1) {
      char e2[1024];
      if (volume_unmount_all (volumes, e2, sizeof e2) == -1) {
        /* Cannot say "nothing is mounted": the source must wait. */
        log_error ("migration %s: %s", id, e2);
        db_journal_phase (id, "unmount_failed", e2);
        return NULL;
      }
      goto refused;
    }
  db_begin ();
  if (db_vm_put (vm, def, "incoming") == -1 ||
      db_objects_replace (vm, objects) == -1) {
    db_rollback ();
    snprintf (err, sizeof err, "cannot register VM %s", vm);
    if (volume_drop (id, err) == -1)
      return NULL;
    return answer ("FAILED", err);
  }
  db_commit ();
  db_journal_phase (id, "mounted", "registered; waiting for the source to "
                    "commit");
  hd_crash_point ("mounted");
  log_info ("migration %s: VM %s's volumes are mounted here; waiting for %s "
            "to commit", id, vm, from);
  return answer ("READY", NULL);

 refused:
  log_error ("migration %s: cannot take VM %s: %s", id, vm, err);
  db_journal_end (id, "aborted", err);
  return answer ("FAILED", err);
}

/* The source committed: start the VM here.  0, or -1 (err) with the
 * volumes let go again (or the journal left open if one stays). */
static int
start_here (const char *id, json_t *events, char *err, size_t errlen)
{
  json_t *row = db_journal_get (id);
  const char *vm = json_string_value (json_object_get (row, "vm"));
  const char *from = json_string_value (json_object_get (
                                          json_object_get (row, "detail"),
                                          "source"));
  json_t *vmrow = db_vm_get (vm);
  int rv = -1;

  db_journal_phase (id, "committed", "the source recorded the handover");
  log_info ("migration %s: the source committed the handoff; starting VM %s",
            id, vm);
  hd_crash_point ("volume_committed");
  if (!vmrow) {
    snprintf (err, errlen, "VM %s is not registered here", vm);
    volume_drop (id, err);
    goto out;
  }
  if (events && events_store_incoming (vm, events) == -1)
    log_warn ("migration %s: VM %s's held events could not be stored", id,
              vm);
  if (!vm_qemu_alive (vm) &&
      vm_start (vm, json_object_get (vmrow, "def"), false, NULL, err,
                errlen) == -1) {
    char why[2200];
    snprintf (why, sizeof why, "cannot start it: %s", err);
    vm_save_logs (vm, id);
    volume_drop (id, why);
    goto out;
  }
  db_vm_set_state (vm, "running");
  db_journal_phase (id, "resumed", "started from the volumes");
  db_journal_end (id, "done", "running here");
  events_deliver_queued (vm);
  events_post_migrated (vm, from, id);
  log_info ("migration %s: VM %s runs here from its volumes", id, vm);
  rv = 0;
 out:
  json_decref (vmrow);
  json_decref (row);
  return rv;
}

json_t *
volume_commit (const char *id, const char *vm, const char *from,
               json_t *msg)
{
  char err[2048];
  json_t *a;

  (void) vm;
  (void) from;
  if (start_here (id, json_object_get (msg, "events"), err,
                  sizeof err) == -1)
    return answer ("FAILED", err);
  a = answer ("ACK", NULL);
  json_object_set_new (a, "resumed_at",
                       json_real ((double) wall_ms () / 1000.0));
  return a;
}

/* Ask the source of ID, until TIMEOUT_MS, whether it committed: its
 * state, "unreachable" or "undecided". */
static const char *
ask_source (json_t *row, int timeout_ms, char *err, size_t errlen)
{
  struct journal_row r = journal_row_read (row);
  const char *id = r.id, *from = r.peer;
  int64_t deadline = clock_ms () + timeout_ms;
  static __thread char state[32];

  if (!hd_peer_uri (from)) {
    snprintf (err, errlen, "%s is not a peer this host can ask", from);
    return "unreachable";
  }
  /* Terminates: an answer other than "active", or the deadline. */
  for (;;) {
    int64_t left = deadline - clock_ms ();
    json_t *a = peer_query_migration (from, id, left > 0 ? (int) left : 0,
                                      err, errlen);
    const char *st = a ? json_string_value (json_object_get (a, "state"))
      : NULL;
    snprintf (state, sizeof state, "%s", st ? st : "unreachable");
    json_decref (a);
    if (strcmp (state, "active") != 0 || clock_ms () >= deadline)
      break;
    snprintf (err, errlen, "%s has not decided yet", from);
    sleep (1);
  }
  return strcmp (state, "active") == 0 ? "undecided" : state;
}

/* What the source says decides; without its word in time, the volumes
 * are let go (the source then learns "aborted" and mounts them). */
static void
settle_with_source (const char *id, int timeout_ms)
{
  json_t *row = db_journal_get (id);
  char err[1024] = "", why[1200];
  const char *st;

  if (!row)
    return;
  st = ask_source (row, timeout_ms, err, sizeof err);
  if (strcmp (st, "committed") == 0) {
    if (start_here (id, NULL, err, sizeof err) == -1)
      log_error ("migration %s: %s", id, err);
  }
  else {
    if (strcmp (st, "aborted") == 0)
      snprintf (why, sizeof why, "the source did not commit the handoff");
    else
      snprintf (why, sizeof why, "the source did not confirm the handoff "
                "in time (%.1000s)", err);
    volume_drop (id, why);
  }
  json_decref (row);
}

void
volume_settle_in (const char *id)
{
  log_warn ("migration %s: the source went away before it committed; "
            "asking it", id);
  settle_with_source (id, hd.io_timeout_ms * 2);
}

void
volume_recover_destination (json_t *row)
{
  struct journal_row r = journal_row_read (row);
  const char *id = r.id, *vm = r.vm, *ph = r.phase;
  char err[2048];

  if (strcmp (ph, "resumed") == 0) {
    /* Started: the VM is this host's, running or not. */
    if (!vm_qemu_alive (vm)) {
      log_error ("migration %s: VM %s was started here, but its QEMU is "
                 "gone: stopped (crashed); 'handoff start %s' boots it", id,
                 vm, vm);
      vm_stop_processes (vm);
      db_vm_set_state (vm, "crashed");
    }
    db_journal_end (id, "done", "running here");
    return;
  }
  if (strcmp (ph, "committed") == 0) {
    if (start_here (id, NULL, err, sizeof err) == -1)
      log_error ("migration %s: %s", id, err);
  }
  else if (strcmp (ph, "unmount_failed") == 0)
    volume_drop (id, "the source did not commit the handoff");
  else if (strcmp (ph, "mounting") == 0 || strcmp (ph, "mounted") == 0)
    settle_with_source (id, hd.io_timeout_ms);
  else
    /* Before VOLUME_HANDOFF: nothing mounted. */
    volume_drop (id, "the daemon restarted before the volumes came");
}

const char *
volume_destination_state (json_t *row, bool abort_it)
{
  struct journal_row r = journal_row_read (row);
  const char *res = r.result, *ph = r.phase, *id = r.id, *vm = r.vm;

  if (res[0])
    return strcmp (res, "done") == 0 ? "resumed" : "aborted";
  if (strcmp (ph, "resumed") == 0)
    return "resumed";
  if (strcmp (ph, "committed") == 0 || receiving_active (vm) || !abort_it)
    return "active";
  /* Not being received, not committed: the source's word to drop it. */
  return volume_drop (id, "the source asked") == 0 ? "aborted" : "active";
}
