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
  struct journal_row r = journal_row_read (row);
  json_t *def = json_object_get (r.detail, "def");
  bool del = json_is_true (json_object_get (r.detail, "delete_source"));
  const char *mode = json_string_value (json_object_get (r.detail, "mode"));
  bool offline = mode && strcmp (mode, "offline") == 0;

  if (r.volume) {
    volume_recover_source (row);
    return;
  }
  if (strcmp (r.phase, "complete_sent") == 0 ||
      strcmp (r.phase, "in_doubt") == 0) {
    source_settle (r.id, r.vm, r.peer, def, del, offline);
    return;
  }
  if (strcmp (r.phase, "acked") == 0) {
    source_release (r.id, r.vm, r.peer, def, del);
    db_journal_end (r.id, "done", "released after a restart");
    return;
  }
  log_info ("migration %s of %s was in phase %s: rolling back", r.id, r.vm,
            r.phase);
  peer_abort_migration (NULL, r.peer, r.id, "the source restarted");
  source_rollback (r.vm, r.peer, json_array_size (json_object_get (def, "disks")),
                   json_string_value (json_object_get (def, "dir")) != NULL,
                   offline);
  db_journal_end (r.id, "rolled_back", "the source restarted");
}

/* One pass over what waits for a peer: sources in doubt (the VM
 * paused here until the destination answers) and destinations
 * dropping a VM (the received files wait for the source's word). */
static void
settle_pending (void)
{
  json_t *rows = db_journal_open (), *row;
  size_t i;

  json_array_foreach (rows, i, row) {
    struct journal_row r = journal_row_read (row);
    /* A migration still in its own thread settles itself. */
    if (r.source ? migration_running (r.id) : receiving_active (r.vm))
      continue;
    if (r.volume && r.source && (strcmp (r.phase, "committed") == 0 ||
                                 strcmp (r.phase, "aborting") == 0))
      volume_recover_source (row);
    else if (r.volume && !r.source &&
             (strcmp (r.phase, "unmount_failed") == 0 ||
              strcmp (r.phase, "committed") == 0))
      volume_recover_destination (row);
    else if (!r.volume && r.source && strcmp (r.phase, "in_doubt") == 0)
      recover_source (row);
    else if (!r.volume && !r.source && strcmp (r.phase, "dropping") == 0)
      dest_settle_drop (row, 0);
  }
  json_decref (rows);
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
      if (strcmp (journal_row_read (row).vm, name) == 0)
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
    if (journal_row_read (row).source)
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
