/* handoffd: how a migration ends on its source.  See source-end.h. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "beneath.h"
#include "channel.h"
#include "channel-proto.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "log.h"
#include "source-end.h"
#include "peer.h"
#include "proc.h"
#include "sockets.h"
#include "vm.h"

static void
helper_quiet (const char *vm, const char *sock, int service, json_t *req)
{
  char err[512];
  json_t *r = vm_helper_call (vm, sock, service, req, hd.io_timeout_ms, err,
                              sizeof err);
  json_decref (r);
}

void
source_rollback (const char *vm, const char *to, size_t ndisks, bool has_dir,
                 bool offline)
{
  char err[512], state[64];
  json_t *q;

  /* QEMU first: the guest must run again as soon as possible. */
  q = vm_qmp (vm, "query-migrate", NULL, 10000, err, sizeof err);
  if (q) {
    const char *st = json_string_value (json_object_get (q, "status"));
    if (st && strcmp (st, "completed") != 0 && strcmp (st, "failed") != 0 &&
        strcmp (st, "cancelled") != 0 && strcmp (st, "none") != 0) {
      json_t *r = vm_qmp (vm, "migrate_cancel", NULL, 10000, err, sizeof err);
      json_decref (r);
      /* Terminates: QEMU leaves the migration within the wait. */
      for (int i = 0; i < 250; ++i) {
        json_t *q2 = vm_qmp (vm, "query-migrate", NULL, 5000, err,
                             sizeof err);
        const char *s2 = q2 ? json_string_value (json_object_get (q2,
                                                                  "status"))
          : NULL;
        bool done = !s2 || strcmp (s2, "cancelling") != 0;
        json_decref (q2);
        if (done)
          break;
        usleep (20000);
      }
    }
    json_decref (q);
  }
  vm_run_state (vm, state, sizeof state);
  if (strcmp (state, "paused") == 0 || strcmp (state, "postmigrate") == 0 ||
      strcmp (state, "finish-migrate") == 0) {
    /* Fleet mode: not while the cluster may say it is another host's
     * (the cutover's transaction went through, or etcd cannot say). */
    json_t *r = NULL;
    if (!cluster_may_resume (vm, to, err, sizeof err))
      log_error ("VM %s: left paused: %s", vm, err);
    else if (!(r = vm_qmp (vm, "cont", NULL, 10000, err, sizeof err)))
      log_error ("VM %s: cannot resume it: %s", vm, err);
    json_decref (r);
  }
  for (size_t i = 0; i < ndisks; ++i) {
    char sock[32];
    snprintf (sock, sizeof sock, "disk%zu.ctl", i);
    helper_quiet (vm, sock, CHAN_SERVICE_MIRROR,
                  json_pack ("{s:s}", "op", "cancel"));
  }
  if (has_dir)
    helper_quiet (vm, "share.ctl", CHAN_SERVICE_SHARE_CTL,
                  json_pack ("{s:s}", "op", "abort"));
  vm_stop_helpers (vm, "relay");
  if (offline) {
    /* Its disk servers and share were started for the copy only. */
    vm_stop (vm);
    db_vm_set_state (vm, "stopped");
  }
  else if (vm_qemu_alive (vm)) {
    /* The guest runs again: its disks back on their files, the
     * mirror's nbdkit gone (vm-disks.c). */
    vm_disks_direct (vm, ndisks);
    db_vm_set_state (vm, "running");
  }
  else {
    /* It ran when the migration began: its QEMU died (with its host,
     * or killed).  Its disks are as it left them; 'start' boots it. */
    log_error ("VM %s: its QEMU is gone: stopped (crashed); 'handoff start "
               "%s' boots it", vm, vm);
    vm_stop_processes (vm);
    db_vm_set_state (vm, "crashed");
  }
  events_release (vm, NULL);
  vm_run_state (vm, state, sizeof state);
  log_info ("VM %s rolled back: %s here", vm, state);
}

/* Remove the VM's disks and directory that lie in IMAGES (the copies
 * received from another host), then IMAGES itself. */
static void
remove_received (const char *images, json_t *def)
{
  size_t len = strlen (images), i;
  json_t *d;
  const char *dir = json_string_value (json_object_get (def, "dir"));

  json_array_foreach (json_object_get (def, "disks"), i, d) {
    const char *p = json_string_value (json_object_get (d, "path"));
    if (p && strncmp (p, images, len) == 0 && p[len] == '/')
      unlink (p);
  }
  if (dir && strncmp (dir, images, len) == 0 && dir[len] == '/') {
    char err[1024];
    if (remove_beneath (images, dir, err, sizeof err) == -1)
      log_warn ("%s", err);
  }
  if (rmdir (images) == -1 && errno != ENOENT && errno != ENOTEMPTY)
    log_warn ("remove %s: %m", images);
}

void
source_release (const char *id, const char *vm, const char *to,
                          json_t *def, bool delete_source)
{
  json_t *disks = json_object_get (def, "disks"), *d;
  size_t i;

  /* The console and the helpers' logs stay, under logs/ID. */
  vm_save_logs (vm, id);
  vm_stop (vm);
  db_begin ();
  db_vm_delete (vm);
  db_commit ();
  events_release (vm, to);
  /* Copies this daemon received for the VM (under images/VM) are its
   * own: they go with the VM, or a later return would find them in the
   * way.  The operator's own files stay unless asked. */
  char images[PATH_MAX + 80];
  snprintf (images, sizeof images, "%s/%s", hd.images_dir, vm);
  if (!delete_source) {
    remove_received (images, def);
    return;
  }
  json_array_foreach (disks, i, d)
    unlink (json_string_value (json_object_get (d, "path")));
  const char *dir = json_string_value (json_object_get (def, "dir"));
  if (dir) {
    /* The directory belongs to the one that holds it: never more. */
    char parent[PATH_MAX], err[1024];
    snprintf (parent, sizeof parent, "%s", dir);
    if (remove_beneath (dirname (parent), dir, err, sizeof err) == -1)
      log_warn ("VM %s: --delete-source: %s", vm, err);
  }
  /* The folder of received files goes too once empty. */
  if (rmdir (images) == -1 && errno != ENOENT && errno != ENOTEMPTY)
    log_warn ("remove %s: %m", images);
}

void
source_settle (const char *id, const char *vm, const char *to,
                         json_t *def, bool delete_source, bool offline)
{
  char err[512];
  json_t *a = peer_query_migration (to, id, 60000, err, sizeof err);
  const char *state = a ? json_string_value (json_object_get (a, "state"))
    : NULL;

  if (!state) {
    log_error ("migration %s: %s cannot be asked (%s): VM %s stays %s "
               "here until it can", id, to, err, vm,
               offline ? "stopped" : "paused");
    db_journal_phase (id, "in_doubt", err);
    json_decref (a);
    return;
  }
  if (strcmp (state, "resumed") == 0) {
    source_release (id, vm, to, def, delete_source);
    db_journal_end (id, "done", "the destination runs the VM");
    log_info ("migration %s: %s runs VM %s; released here", id, to, vm);
  }
  else if (strcmp (state, "active") == 0) {
    /* Still deciding: the caller retries later. */
    db_journal_phase (id, "in_doubt", "the destination is still resuming");
  }
  else {
    size_t ndisks = json_array_size (json_object_get (def, "disks"));
    bool has_dir = json_string_value (json_object_get (def, "dir")) != NULL;
    source_rollback (vm, to, ndisks, has_dir, offline);
    db_journal_end (id, "rolled_back", "the destination did not resume it");
  }
  json_decref (a);
}
