/* handoffd: start-up recovery from the journal.
 *
 * A daemon that died during a migration left an open journal entry and
 * detached processes that kept running.  For each entry:
 *
 *  source, before MIGRATION_COMPLETE went out: the destination is told
 *    to drop it and the VM is resumed here;
 *  source, after: the destination is asked whether it runs the VM and
 *    the source follows its answer (if it cannot be asked, the VM stays
 *    paused here and the pending thread asks again);
 *  destination: the VM is kept if it was taken in (its record written:
 *    past the point of no return), running or, if its QEMU died,
 *    stopped ("crashed"), never deleted; otherwise it does not run
 *    here, and what was received is removed - once the source confirms
 *    it holds the VM, if the whole state had arrived.
 *
 * Then VMs recorded as running whose QEMU is gone are marked crashed,
 * and what their run left is cleared.  So the VM runs on exactly one
 * host, and a host that crashed can start its VMs again.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "dest-recover.h"
#include "migration.h"
#include "peer.h"
#include "recover.h"
#include "receiving.h"
#include "source-end.h"
#include "vm.h"
#include "volume.h"

static void
recover_source (json_t *row)
{
  const char *id = json_string_value (json_object_get (row, "id"));
  const char *vm = json_string_value (json_object_get (row, "vm"));
  const char *to = json_string_value (json_object_get (row, "peer"));
  const char *phase = json_string_value (json_object_get (row, "phase"));
  json_t *detail = json_object_get (row, "detail");
  json_t *def = json_object_get (detail, "def");
  bool del = json_is_true (json_object_get (detail, "delete_source"));
  const char *mode = json_string_value (json_object_get (detail, "mode"));

  if (mode && strcmp (mode, "volume") == 0) {
    volume_recover_source (row);
    return;
  }
  if (strcmp (phase, "complete_sent") == 0 ||
      strcmp (phase, "in_doubt") == 0) {
    source_settle (id, vm, to, def, del);
    return;
  }
  if (strcmp (phase, "acked") == 0) {
    source_release (id, vm, to, def, del);
    db_journal_end (id, "done", "released after a restart");
    return;
  }
  log_info ("migration %s of %s was in phase %s: rolling back", id, vm,
            phase);
  peer_abort_migration (NULL, to, id, "the source restarted");
  source_rollback (vm, json_array_size (json_object_get (def,
                                                                   "disks")),
                             json_string_value (json_object_get (def, "dir"))
                             != NULL);
  db_journal_end (id, "rolled_back", "the source restarted");
}

/* One pass over what waits for a peer: sources in doubt (the VM
 * paused here until the destination answers) and destinations
 * dropping a VM (the received files wait for the source's word).
 * Returns how many are still waiting. */
static size_t
settle_pending (void)
{
  json_t *rows = db_journal_open (), *row;
  size_t i, left = 0;

  json_array_foreach (rows, i, row) {
    const char *phase = json_string_value (json_object_get (row, "phase"));
    const char *role = json_string_value (json_object_get (row, "role"));
    const char *mode = json_string_value (json_object_get (
                                            json_object_get (row, "detail"),
                                            "mode"));
    bool volume = mode && strcmp (mode, "volume") == 0;
    bool source = strcmp (role, "source") == 0;
    /* A migration still in its own thread settles itself. */
    if (source ? migration_running (json_string_value (json_object_get (row,
                                                                      "id")))
        : receiving_active (json_string_value (json_object_get (row, "vm"))))
      continue;
    if (volume && source && (strcmp (phase, "committed") == 0 ||
                             strcmp (phase, "aborting") == 0)) {
      if (volume_recover_source (row))
        left++;
    }
    else if (volume && !source && (strcmp (phase, "unmount_failed") == 0 ||
                                   strcmp (phase, "committed") == 0)) {
      if (volume_recover_destination (row))
        left++;
    }
    else if (!volume && source && strcmp (phase, "in_doubt") == 0) {
      recover_source (row);
      left++;
    }
    else if (!volume && !source && strcmp (phase, "dropping") == 0 &&
             dest_settle_drop (row, 0) == -1)
      left++;
  }
  json_decref (rows);
  return left;
}

/* For the daemon's life: settle what waits for a peer, a pass every
 * PENDING_POLL_S seconds (an empty pass is one query of the journal).
 * Migrations that end in doubt at any time are picked up here, without
 * anyone having to call up into this file. */
#define PENDING_POLL_S 2

static void *
pending_thread (void *arg)
{
  (void) arg;
  /* Terminates: with the daemon. */
  for (;;) {
    settle_pending ();
    sleep (PENDING_POLL_S);
  }
  return NULL;
}

/* VMs the journal does not speak for: one recorded as running whose
 * QEMU is gone died with the host (or was killed).  It is stopped now,
 * "crashed", and what its run left is cleared, so that 'handoff start'
 * boots it again. */
static void
recover_vms (void)
{
  json_t *vms = db_vm_list (), *v, *open = db_journal_open (), *row;
  size_t i, k;

  json_array_foreach (vms, i, v) {
    const char *name = json_string_value (json_object_get (v, "name"));
    const char *st = json_string_value (json_object_get (v, "state"));
    bool journaled = false;
    json_array_foreach (open, k, row)
      if (strcmp (json_string_value (json_object_get (row, "vm")), name) == 0)
        journaled = true;
    if (journaled || (strcmp (st, "running") != 0 &&
                      strcmp (st, "moving") != 0) || vm_qemu_alive (name))
      continue;
    log_error ("VM %s was running, but its QEMU is gone (the host or QEMU "
               "died): stopped (crashed); 'handoff start %s' boots it",
               name, name);
    vm_stop_processes (name);
    db_vm_set_state (name, "crashed");
  }
  json_decref (open);
  json_decref (vms);
}

void
recover_all (void)
{
  json_t *rows = db_journal_open (), *row;
  size_t i;
  pthread_t t;

  json_array_foreach (rows, i, row) {
    const char *role = json_string_value (json_object_get (row, "role"));
    if (strcmp (role, "source") == 0)
      recover_source (row);
    else
      dest_recover (row);
  }
  json_decref (rows);
  recover_vms ();

  if (pthread_create (&t, NULL, pending_thread, NULL) == 0)
    pthread_detach (t);
  else
    log_error ("cannot start the thread that settles migrations in doubt");
}
