/* handoffd: cold volume handoff (DESIGN.md §1, "Cold volume handoff").
 *
 * For a VM whose files sit on volumes both hosts see: identify each
 * volume, power the VM off, unregister it, flush and unmount, send the
 * volume identities; the destination finds the disks by signature,
 * checks every extent, mounts them at the same places, registers the
 * VM and starts it.  Nothing is copied.  If the destination fails, the
 * source mounts the volumes again and starts the VM itself.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "daemon.h"
#include "db.h"
#include "events.h"
#include "jsonutil.h"
#include "log.h"
#include "migrate-common.h"
#include "migrate.h"
#include "peer.h"
#include "proc.h"
#include "util.h"
#include "vm.h"

static const char *
volid_bin (void)
{
  static char path[PATH_MAX + 64];
  if (!path[0]) {
    char exe[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
      exe[n] = '\0';
      char *slash = strrchr (exe, '/');
      if (slash)
        *slash = '\0';
      snprintf (path, sizeof path, "%s/../libexec/handoff-volid", exe);
      if (access (path, X_OK) == 0)
        return path;
    }
    snprintf (path, sizeof path, "%s/handoff-volid", HANDOFF_LIBEXECDIR);
  }
  return path;
}

/* The mount point holding PATH: walk up while the device stays. */
static int
mount_point_of (const char *path, char *buf, size_t len)
{
  char cur[PATH_MAX];
  struct stat st, up;

  if (!realpath (path, cur) || stat (cur, &st) == -1)
    return -1;
  /* Terminates: each pass removes a component; "/" stops it. */
  for (;;) {
    char *slash = strrchr (cur, '/');
    char parent[PATH_MAX];
    if (!slash || slash == cur)
      snprintf (parent, sizeof parent, "/");
    else
      snprintf (parent, sizeof parent, "%.*s", (int) (slash - cur), cur);
    if (strcmp (cur, "/") == 0 || stat (parent, &up) == -1 ||
        up.st_dev != st.st_dev)
      break;
    snprintf (cur, sizeof cur, "%s", parent);
  }
  snprintf (buf, len, "%s", cur);
  return 0;
}

static int
run_volid (char *const argv[], char *out, size_t outlen, char *err,
           size_t errlen)
{
  int rc = proc_run (argv, out, outlen, 120000);
  if (rc != 0) {
    snprintf (err, errlen, "handoff-volid %s: %s", argv[1],
              out && out[0] ? out : "failed");
    char *nl = strchr (err, '\n');
    if (nl)
      *nl = '\0';
    return -1;
  }
  return 0;
}

static int
mount_volume (const char *vm, json_t *vol, char *err, size_t errlen)
{
  const char *mnt = json_string_value (json_object_get (vol, "mountpoint"));
  char desc[PATH_MAX], out[4096];
  FILE *f;

  vm_run_path (vm, "volume.json", desc, sizeof desc);
  {
    char run[PATH_MAX];
    vm_run_path (vm, NULL, run, sizeof run);
    mkdir_p (run, 0700);
  }
  f = fopen (desc, "we");
  if (!f || json_dumpf (json_object_get (vol, "descriptor"), f,
                        JSON_COMPACT) == -1) {
    if (f)
      fclose (f);
    snprintf (err, errlen, "%s: %s", desc, strerror (errno));
    return -1;
  }
  fclose (f);
  if (mkdir_p (mnt, 0755) == -1) {
    snprintf (err, errlen, "%s: %s", mnt, strerror (errno));
    return -1;
  }
  char *argv[] = { (char *) volid_bin (), (char *) "mount", desc,
                   (char *) mnt, NULL };
  return run_volid (argv, out, sizeof out, err, errlen);
}

static void
unmount_volume (json_t *vol)
{
  char out[4096], err[256];
  char *argv[] = { (char *) volid_bin (), (char *) "unmount",
                   (char *) json_string_value (json_object_get (vol,
                                                                "mountpoint")),
                   NULL };
  if (run_volid (argv, out, sizeof out, err, sizeof err) == -1)
    log_warn ("%s", err);
}

struct vctx {
  migration_emit_fn emit;
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
  v->emit (v->opaque, json_pack ("{s:s, s:s, s:s}", "event", "phase",
                                 "phase", name, "message", msg));
  hd_crash_point (name);
}

/* Put the VM back on this host after a failed handoff. */
static void
restore_here (const char *vm, json_t *def, json_t *objects, json_t *volumes,
              bool mounted_away)
{
  char err[1024];
  json_t *vol;
  size_t i;

  if (mounted_away)
    json_array_foreach (volumes, i, vol)
      if (mount_volume (vm, vol, err, sizeof err) == -1)
        log_error ("VM %s: cannot mount its volume again: %s", vm, err);
  db_begin ();
  if (!db_vm_get (vm)) {
    db_vm_put (vm, def, "stopped");
    db_objects_replace (vm, objects);
  }
  db_commit ();
  if (vm_start (vm, def, false, NULL, err, sizeof err) == 0)
    db_vm_set_state (vm, "running");
  else
    log_error ("VM %s: cannot start it again here: %s", vm, err);
  events_release (vm, NULL);
}

void
migrate_volume (const char *id, const char *vm, const char *to, json_t *def,
                json_t *objects, uint64_t timeout_s, migration_emit_fn emit,
                void *opaque)
{
  struct vctx v = { .emit = emit, .opaque = opaque, .id = id };
  json_t *volumes = json_array (), *disks = json_object_get (def, "disks");
  json_t *d, *a = NULL;
  struct channel *peer = NULL;
  char err[2048] = "", out[65536];
  const char *code = "rolled_back";
  bool unmounted = false, stopped = false;
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
  if (json_string_value (json_object_get (def, "dir")))
    json_array_append (paths, json_object_get (def, "dir"));
  json_array_foreach (paths, i, d) {
    char mnt[PATH_MAX];
    bool seen = false;
    json_t *vol;
    size_t k;
    if (mount_point_of (json_string_value (d), mnt, sizeof mnt) == -1 ||
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
    char *argv[] = { (char *) volid_bin (), (char *) "identify", mnt,
                     (char *) "--json", NULL };
    if (run_volid (argv, out, sizeof out, err, sizeof err) == -1) {
      json_decref (paths);
      code = "failed";
      goto failed;
    }
    json_t *desc = json_loads (out, 0, NULL);
    if (!desc) {
      snprintf (err, sizeof err, "handoff-volid identify %.1500s: bad output",
                mnt);
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
    /* Terminates: the guest powers off, or we stop QEMU after 20 s.
     * The destination hears from us every 2 s meanwhile (it gives up
     * on a silent source). */
    for (int k = 0; k < 200 && vm_qemu_alive (vm); ++k) {
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
  phase (&v, "unregister", "%s is no longer defined here", vm);
  db_begin ();
  db_vm_delete (vm);
  db_commit ();
  phase (&v, "unmount", "flushing and unmounting %zu volume%s",
         json_array_size (volumes), json_array_size (volumes) == 1 ? "" : "s");
  json_t *vol;
  json_array_foreach (volumes, i, vol) {
    char *argv[] = { (char *) volid_bin (), (char *) "unmount",
                     (char *) json_string_value (json_object_get (vol,
                                                                  "mountpoint")),
                     NULL };
    if (run_volid (argv, out, sizeof out, err, sizeof err) == -1)
      goto failed;
    unmounted = true;
  }
  phase (&v, "handoff", "%s mounts the volumes and starts %s", to, vm);
  a = peer_call (peer, json_pack ("{s:s, s:O, s:O, s:O}", "type",
                                  "VOLUME_HANDOFF", "def", def, "objects",
                                  objects, "volumes", volumes),
                 (int) timeout_s * 1000, err, sizeof err);
  if (!a || peer_expect (a, "ACK", err, sizeof err) == -1)
    goto failed;
  json_decref (a);
  chan_close (peer);
  events_release (vm, to);
  db_journal_end (id, "done", "started on the destination");
  emit (opaque, json_pack ("{s:s, s:b, s:s, s:i}", "event", "result", "ok", 1,
                           "mode", "volume", "copied_bytes", 0));
  json_decref (volumes);
  return;

 failed:
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

json_t *
volume_receive (const char *id, const char *vm, const char *from,
                json_t *msg, char *err, size_t errlen)
{
  json_t *def, *objects, *volumes, *vol;
  size_t i, mounted = 0;
  json_t *a;

  if (msg_get_object (msg, "def", true, &def, err, errlen) != 0 ||
      msg_get_object (msg, "objects", true, &objects, err, errlen) != 0 ||
      msg_get_array (msg, "volumes", true, &volumes, err, errlen) != 0 ||
      vm_def_check (def, err, errlen) == -1)
    return NULL;
  json_array_foreach (volumes, i, vol) {
    const char *mnt = json_string_value (json_object_get (vol, "mountpoint"));
    if (!mnt || mnt[0] != '/' || strstr (mnt, "..") ||
        !json_is_object (json_object_get (vol, "descriptor"))) {
      snprintf (err, errlen, "volume %zu: needs a descriptor and an absolute "
                "mount point", i);
      return NULL;
    }
  }
  db_journal_phase (id, "mounting", "locating the volumes by signature");
  json_array_foreach (volumes, i, vol) {
    if (mount_volume (vm, vol, err, errlen) == -1)
      goto unmount;
    mounted++;
  }
  db_begin ();
  if (db_vm_put (vm, def, "stopped") == -1 ||
      db_objects_replace (vm, objects) == -1) {
    db_rollback ();
    snprintf (err, errlen, "cannot register VM %s", vm);
    goto unmount;
  }
  db_commit ();
  if (vm_start (vm, def, false, NULL, err, errlen) == -1) {
    db_begin ();
    db_vm_delete (vm);
    db_commit ();
    goto unmount;
  }
  db_vm_set_state (vm, "running");
  db_journal_phase (id, "resumed", "started from the volumes");
  db_journal_end (id, "done", "running here");
  post_migrated (vm, from, id);
  log_info ("migration %s: VM %s runs here from its volumes", id, vm);
  a = peer_msg ("ACK");
  json_object_set_new (a, "resumed_at",
                       json_real ((double) wall_ms () / 1000.0));
  return a;

 unmount:
  for (i = 0; i < mounted; ++i)
    unmount_volume (json_array_get (volumes, i));
  {
    char run[PATH_MAX];
    vm_run_path (vm, "volume.json", run, sizeof run);
    unlink (run);
    vm_run_path (vm, NULL, run, sizeof run);
    rmdir (run);
  }
  log_error ("migration %s: cannot take VM %s: %s", id, vm, err);
  return NULL;
}

void
volume_recover_source (json_t *row)
{
  const char *id = json_string_value (json_object_get (row, "id"));
  const char *vm = json_string_value (json_object_get (row, "vm"));
  const char *to = json_string_value (json_object_get (row, "peer"));
  const char *ph = json_string_value (json_object_get (row, "phase"));
  json_t *detail = json_object_get (row, "detail");
  json_t *def = json_object_get (detail, "def");
  char err[512];

  if (strcmp (ph, "handoff") == 0) {
    json_t *a = migration_query_peer (to, id, 60000, err, sizeof err);
    const char *st = a ? json_string_value (json_object_get (a, "state"))
      : NULL;
    if (st && strcmp (st, "resumed") == 0) {
      events_release (vm, to);
      db_journal_end (id, "done", "the destination runs the VM");
      json_decref (a);
      return;
    }
    json_decref (a);
  }
  else
    migration_abort_peer (NULL, to, id, "the source restarted");
  if (def && json_object_get (detail, "volumes")) {
    bool away = strcmp (ph, "unmount") == 0 || strcmp (ph, "handoff") == 0;
    restore_here (vm, def, json_object_get (detail, "objects"),
                  json_object_get (detail, "volumes"), away);
  }
  else if (vm_qemu_alive (vm) == false && def) {
    char e2[512];
    if (vm_start (vm, def, false, NULL, e2, sizeof e2) == 0)
      db_vm_set_state (vm, "running");
  }
  db_journal_end (id, "rolled_back", "the source restarted");
}
