/* handoffd: start-up recovery of the migrations this host was
 * receiving when its daemon died (dest-recover.h).
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "dest-phases.h"
#include "dest-recover.h"
#include "log.h"
#include "peer.h"
#include "vm.h"
#include "volume.h"


/* The received files of a migration that will not run here, once the
 * source confirmed it holds the VM: removed; the journal entry ends. */
void
dest_drop_confirmed (json_t *row, const char *why)
{
  struct journal_row r = journal_row_read (row);
  const char *id = r.id, *vm = r.vm;
  struct incoming in = { .made_images = true };

  snprintf (in.id, sizeof in.id, "%.79s", id);
  snprintf (in.vm, sizeof in.vm, "%.64s", vm);
  snprintf (in.images, sizeof in.images, "%s/%s", hd.images_dir, vm);
  dest_drop (&in, why);
}

int
dest_settle_drop (json_t *row, int timeout_ms)
{
  struct journal_row r = journal_row_read (row);
  const char *id = r.id, *vm = r.vm, *source = r.peer;
  char err[512], note[PATH_MAX + 1024];
  json_t *a;
  const char *state;

  if (!hd_peer_uri (source)) {
    snprintf (note, sizeof note, "VM %s does not run here; what was "
              "received stays in %s/%s: %s is not a peer this host can "
              "ask whether it holds the VM (remove it once it does)", vm,
              hd.images_dir, vm, source);
    log_error ("migration %s: %s", id, note);
    db_journal_end (id, "aborted", note);
    return 0;
  }
  a = peer_query_migration (source, id, timeout_ms, err, sizeof err);
  state = a ? json_string_value (json_object_get (a, "state")) : NULL;
  if (!state) {
    log_warn ("migration %s: VM %s does not run here; its received files "
              "stay until %s confirms it holds the VM (%s)", id, vm, source,
              err);
    json_decref (a);
    return -1;
  }
  if (strcmp (state, "held") == 0)
    dest_drop_confirmed (row, "the source confirmed it holds the VM");
  else if (strcmp (state, "discarded") == 0)
    dest_drop_confirmed (row, "the source says another destination runs "
                         "the VM");
  else {
    snprintf (note, sizeof note, "VM %s does not run here, and %s says it "
              "is %.32s there: what was received stays in %s/%s for an "
              "operator", vm, source, state, hd.images_dir, vm);
    log_error ("migration %s: %s", id, note);
    db_journal_end (id, "aborted", note);
  }
  json_decref (a);
  return 0;
}

/* Start-up: a migration this host was receiving when the daemon died. */
void
dest_recover (json_t *row)
{
  struct journal_row r = journal_row_read (row);
  const char *id = r.id, *vm = r.vm, *phase = r.phase, *source = r.peer;
  json_t *detail = r.detail;
  struct incoming in = { .made_images = true };
  char state[64];

  if (r.volume) {
    volume_recover_destination (row);
    return;
  }
  snprintf (in.id, sizeof in.id, "%.79s", id);
  snprintf (in.vm, sizeof in.vm, "%.64s", vm);
  snprintf (in.source, sizeof in.source, "%.64s", source);
  snprintf (in.images, sizeof in.images, "%s/%s", hd.images_dir, vm);
  in.def = json_incref (json_object_get (detail, "def"));
  snprintf (in.mode, sizeof in.mode, "%s",
            json_string_value (json_object_get (detail, "mode"))
            ? json_string_value (json_object_get (detail, "mode")) : "live");
  json_t *vmrow = db_vm_get (vm);

  if (strcmp (phase, "dropping") == 0) {
    /* Decided before the restart; the files wait for the source. */
  }
  else if (vmrow && (strcmp (phase, "resumed") == 0 ||
                     strcmp (phase, "completing") == 0)) {
    /* The record is written only once the resume is decided: past the
     * point of no return.  The source may have let go (it deletes its
     * copy once told), so the VM is this host's whether or not its
     * QEMU survived: never deleted here. */
    if (strcmp (in.mode, "offline") == 0) {
      /* Taken in stopped: it stays so. */
      log_info ("migration %s: VM %s was taken in (offline); finishing", id,
                vm);
      vm_stop_processes (vm);
      dest_settle_in (&in, false);
    }
    else if (vm_qemu_alive (vm)) {
      char err[256];
      vm_run_state (vm, state, sizeof state);
      if (strcmp (state, "running") != 0) {
        json_decref (vm_qmp (vm, "cont", NULL, 10000, err, sizeof err));
      }
      db_journal_phase (id, "resumed", "resumed after a restart");
      log_info ("migration %s: VM %s was taken in; finishing", id, vm);
      dest_settle_in (&in, true);
    }
    else {
      log_error ("migration %s: VM %s was taken in, but its QEMU died here: "
                 "it stays defined here, stopped (crashed), with its disks "
                 "and directory; 'handoff start %s' boots it", id, vm, vm);
      vm_stop_processes (vm);
      db_vm_set_state (vm, "crashed");
      dest_settle_in (&in, false);
    }
  }
  else if (strcmp (phase, "completing") == 0 ||
           strcmp (phase, "resumed") == 0 ||
           strcmp (phase, "loading") == 0 || strcmp (phase, "loaded") == 0) {
    /* Everything may be here, but the resume was not decided: the VM
     * does not run here (the source, paused, resumes it when it asks).
     * The received files stay until the source confirms it holds the
     * VM. */
    log_info ("migration %s: VM %s was not taken in before the restart; "
              "it does not run here", id, vm);
    vm_save_logs (vm, id);
    vm_stop (vm);
    db_journal_phase (id, "dropping", "not taken in; the received files "
                      "wait for the source's word");
  }
  else
    dest_drop (&in, "the daemon restarted before the VM was taken in");
  json_decref (vmrow);
  json_decref (in.def);
}
