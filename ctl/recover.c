/* handoffd: start-up recovery from the journal.
 *
 * A daemon that died during a migration left an open journal entry and
 * detached processes that kept running.  For each entry:
 *
 *  source, before MIGRATION_COMPLETE went out: the destination is told
 *    to drop it and the VM is resumed here;
 *  source, after: the destination is asked whether it runs the VM and
 *    the source follows its answer (if it cannot be asked, the VM stays
 *    paused here and a thread asks again every 10 seconds);
 *  destination: the VM is kept if it was taken in (its record written),
 *    otherwise everything made for it is removed.
 *
 * So the VM runs on exactly one host.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "db.h"
#include "log.h"
#include "migrate-common.h"
#include "migrate.h"
#include "vm.h"

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
    migration_settle_source (id, vm, to, def, del);
    return;
  }
  if (strcmp (phase, "acked") == 0) {
    migration_release_source (id, vm, to, def, del);
    db_journal_end (id, "done", "released after a restart");
    return;
  }
  log_info ("migration %s of %s was in phase %s: rolling back", id, vm,
            phase);
  migration_abort_peer (NULL, to, id, "the source restarted");
  migration_rollback_source (vm, json_array_size (json_object_get (def,
                                                                   "disks")),
                             json_string_value (json_object_get (def, "dir"))
                             != NULL);
  db_journal_end (id, "rolled_back", "the source restarted");
}

static void *
retry_in_doubt (void *arg)
{
  (void) arg;
  /* Terminates: when no entry is left in doubt. */
  for (;;) {
    json_t *rows, *row;
    size_t i, left = 0;
    sleep (10);
    rows = db_journal_open ();
    json_array_foreach (rows, i, row) {
      const char *phase = json_string_value (json_object_get (row, "phase"));
      const char *role = json_string_value (json_object_get (row, "role"));
      if (strcmp (role, "source") == 0 && strcmp (phase, "in_doubt") == 0) {
        recover_source (row);
        left++;
      }
    }
    json_decref (rows);
    if (left == 0)
      return NULL;
  }
}

void
recover_all (void)
{
  json_t *rows = db_journal_open (), *row;
  size_t i;
  bool doubt = false;

  json_array_foreach (rows, i, row) {
    const char *role = json_string_value (json_object_get (row, "role"));
    if (strcmp (role, "source") == 0)
      recover_source (row);
    else
      incoming_recover (row);
  }
  json_decref (rows);

  rows = db_journal_open ();
  json_array_foreach (rows, i, row)
    if (strcmp (json_string_value (json_object_get (row, "phase")),
                "in_doubt") == 0)
      doubt = true;
  json_decref (rows);
  if (doubt) {
    pthread_t t;
    if (pthread_create (&t, NULL, retry_in_doubt, NULL) == 0)
      pthread_detach (t);
  }
}
