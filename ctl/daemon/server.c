/* handoffd: the CLI socket's requests (root only, or the admin
 * channel's key holders).  See server.h. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-info.h"
#include "channel.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "def-check.h"
#include "evacuate.h"
#include "events.h"
#include "exitcodes.h"
#include "jsonutil.h"
#include "log.h"
#include "names.h"
#include "migration.h"
#include "record.h"
#include "request-check.h"
#include "peer.h"
#include "proc.h"
#include "sockets.h"
#include "server.h"
#include "transport.h"
#include "vm.h"

/* ------------------------------------------------------------------ *
 * Each op meets only requests request_check passed: its fields are
 * there, of their types, and sound. */

static json_t *
op_define (json_t *req)
{
  json_t *def = json_object_get (req, "def");
  json_t *objects = json_object_get (req, "objects"), *disks, *d;
  const char *name;
  size_t i;

  name = json_string_value (json_object_get (def, "name"));
  disks = json_object_get (def, "disks");
  /* The files are the truth: they must exist, and give the sizes. */
  json_array_foreach (disks, i, d) {
    struct stat st;
    const char *p = json_string_value (json_object_get (d, "path"));
    if (stat (p, &st) == -1 || !S_ISREG (st.st_mode))
      return msg_error_code ("not_found", "disk %s: %s", p,
                        errno ? strerror (errno) : "not a regular file");
    json_object_set_new (d, "size", json_integer ((json_int_t) st.st_size));
  }
  for (const char *const *k = (const char *const[]) { "kernel", "initrd",
                                                      NULL }; *k; ++k) {
    const char *p = json_string_value (json_object_get (def, *k));
    if (p && access (p, R_OK) == -1)
      return msg_error_code ("not_found", "%s %s: %s", *k, p,
                             strerror (errno));
  }
  const char *dir = json_string_value (json_object_get (def, "dir"));
  struct stat st;
  if (dir && (stat (dir, &st) == -1 || !S_ISDIR (st.st_mode)))
    return msg_error_code ("not_found", "dir %s: not a directory", dir);

  db_begin ();
  json_t *old = db_vm_get (name);
  if (old) {
    json_decref (old);
    db_rollback ();
    return msg_error_code ("bad_request", "a VM named '%s' is already defined "
                      "here", name);
  }
  if (db_vm_put (name, def, "stopped") == -1 ||
      (objects && db_objects_replace (name, objects) == -1)) {
    db_rollback ();
    return msg_error_code (NULL, "cannot store VM %s", name);
  }
  db_commit ();
  log_info ("VM %s defined", name);
  return json_pack ("{s:b, s:s}", "ok", 1, "name", name);
}

static json_t *
get_vm (json_t *req, const char **name_r, json_t **row_r)
{
  *name_r = json_string_value (json_object_get (req, "vm"));
  *row_r = db_vm_get (*name_r);
  if (!*row_r)
    return msg_error_code ("not_found", "no VM named '%.64s' here", *name_r);
  return NULL;
}

static json_t *
op_start (json_t *req)
{
  const char *name;
  json_t *row, *e = get_vm (req, &name, &row);
  char err[2048];

  if (e)
    return e;
  {
    const char *st = json_string_value (json_object_get (row, "state"));
    if (strcmp (st, "in_doubt") == 0 || strcmp (st, "incoming") == 0) {
      json_decref (row);
      return msg_error_code (NULL, "VM %s %s", name,
                             strcmp (st, "incoming") == 0
                             ? "is being received from another host"
                             : "is in doubt: its volumes were handed to "
                             "another host that has not said whether it "
                             "runs it; handoffd keeps asking");
    }
  }
  if (vm_claim (name, "starting", err, sizeof err) == -1) {
    json_decref (row);
    return msg_error_code (NULL, "%s", err);
  }
  if (vm_qemu_alive (name)) {
    vm_release (name);
    json_decref (row);
    return msg_error_code (NULL, "VM %s is already running", name);
  }
  int r = vm_start (name, json_object_get (row, "def"), false, NULL, err,
                    sizeof err);
  if (r == 0)
    db_vm_set_state (name, "running");
  vm_release (name);
  json_decref (row);
  if (r == -1)
    return msg_error_code (NULL, "%s", err);
  log_info ("VM %s started", name);
  return json_pack ("{s:b}", "ok", 1);
}

/* The guest's own shutdown: the ACPI power button, then up to
 * TIMEOUT_MS for QEMU to exit.  0 once it is gone; -1 if it still
 * runs (the guest ignored the button or is slow), with nothing
 * changed. */
static int
shutdown_guest (const char *name, uint64_t timeout_ms, char *err,
                size_t errlen)
{
  char pid[PATH_MAX];
  pid_t p;
  json_t *r;

  vm_run_path (name, "qemu.pid", pid, sizeof pid);
  p = proc_alive (pid, "qemu");
  if (p <= 0)
    return 0;
  r = vm_qmp (name, "system_powerdown", NULL, 5000, err, errlen);
  if (!r)
    return -1;
  json_decref (r);
  log_info ("VM %s: ACPI power button pressed; waiting up to %" PRIu64
            " ms for the guest to power off", name, timeout_ms);
  int64_t t0 = clock_ms ();
  if (proc_wait_gone (p, (int) timeout_ms) == 0) {
    log_info ("VM %s powered off %" PRId64 " ms after the ACPI power button",
              name, clock_ms () - t0);
    return 0;
  }
  return set_error (err, errlen, "VM %s did not power off within %" PRIu64
                    " ms of the ACPI power button; it still runs (--force "
                    "powers it off)", name, timeout_ms);
}

static json_t *
op_stop (json_t *req)
{
  const char *name;
  json_t *row, *e = get_vm (req, &name, &row);
  char err[512];
  bool force = json_is_true (json_object_get (req, "force"));
  json_t *t = json_object_get (req, "timeout_ms");
  uint64_t timeout_ms = t ? (uint64_t) json_integer_value (t)
    : STOP_DEFAULT_TIMEOUT_MS;

  if (e)
    return e;
  json_decref (row);
  if (vm_claim (name, "stopping", err, sizeof err) == -1)
    return msg_error_code (NULL, "%s", err);
  if (!force && shutdown_guest (name, timeout_ms, err, sizeof err) == -1) {
    vm_release (name);
    return msg_error_code ("timeout", "%s", err);
  }
  vm_stop (name);
  db_vm_set_state (name, "stopped");
  vm_release (name);
  log_info ("VM %s %s", name, force ? "powered off" : "shut down");
  return json_pack ("{s:b}", "ok", 1);
}

static json_t *
op_undefine (json_t *req)
{
  const char *name;
  json_t *row, *e = get_vm (req, &name, &row);
  char err[256];

  if (e)
    return e;
  if (strcmp (json_string_value (json_object_get (row, "state")),
              "in_doubt") == 0) {
    json_decref (row);
    return msg_error_code (NULL, "VM %s is in doubt (a volume handoff waits "
                           "for its destination's word): it cannot be "
                           "undefined now", name);
  }
  json_decref (row);
  if (vm_claim (name, "undefining", err, sizeof err) == -1)
    return msg_error_code (NULL, "%s", err);
  if (vm_qemu_alive (name)) {
    vm_release (name);
    return msg_error_code (NULL, "VM %s is running: stop it first", name);
  }
  db_begin ();
  db_vm_delete (name);
  db_events_delete (name);
  db_commit ();
  /* Fleet mode: no longer this host's to run (nor anyone's). */
  cluster_release_vm (name);
  vm_release (name);
  return json_pack ("{s:b}", "ok", 1);
}

static json_t *
vm_summary (json_t *row, bool full)
{
  const char *name = json_string_value (json_object_get (row, "name"));
  json_t *def = json_object_get (row, "def");
  char state[64];
  json_t *o;

  vm_run_state (name, state, sizeof state);
  o = json_pack ("{s:s, s:s, s:s, s:O, s:O, s:I}",
                 "name", name,
                 "state", json_string_value (json_object_get (row, "state")),
                 "run_state", state,
                 "memory", json_object_get (def, "memory"),
                 "vcpus", json_object_get (def, "vcpus"),
                 "disks", (json_int_t) json_array_size (json_object_get (def,
                                                                        "disks")));
  if (full) {
    char serial[4096], mnt[4096];
    struct migration *m = migration_find (name);
    vm_run_path (name, "serial.log", serial, sizeof serial);
    vm_run_path (name, "dir", mnt, sizeof mnt);
    json_object_set (o, "def", def);
    json_object_set_new (o, "objects", db_objects_get (name));
    json_object_set_new (o, "serial", json_string (serial));
    if (json_string_value (json_object_get (def, "dir")))
      json_object_set_new (o, "share_mount", json_string (mnt));
    json_object_set_new (o, "events", db_events (name, NULL));
    json_object_set_new (o, "accel", json_string (hd_accel (NULL)));
    if (strcmp (state, "stopped") != 0) {
      /* What QEMU's disks run on: the mirror's NBD nodes exist only
       * while a migration needs them. */
      char err[256];
      json_t *nodes = vm_block_nodes (name, err, sizeof err);
      if (nodes)
        json_object_set_new (o, "block_nodes", nodes);
    }
    if (m) {
      json_object_set_new (o, "migration", record_summary (m));
      record_put (m);
    }
  }
  return o;
}

static json_t *
op_list (void)
{
  json_t *vms = db_vm_list (), *out = json_array (), *v;
  size_t i;

  json_array_foreach (vms, i, v)
    json_array_append_new (out, vm_summary (v, false));
  json_decref (vms);
  return json_pack ("{s:b, s:s, s:o}", "ok", 1, "host", hd.name, "vms", out);
}

static json_t *
op_status (json_t *req)
{
  const char *name;
  json_t *row, *e = get_vm (req, &name, &row), *r;

  if (e)
    return e;
  r = vm_summary (row, true);
  json_decref (row);
  json_object_set_new (r, "ok", json_true ());
  return r;
}

static json_t *
op_event (json_t *req)
{
  const char *vm = json_string_value (json_object_get (req, "vm"));
  const char *type = json_string_value (json_object_get (req, "type"));
  json_t *payload = json_object_get (req, "payload"), *ev = NULL;
  char err[512];
  bool queued = false;

  if (events_post (vm, type, payload, &queued, &ev, err, sizeof err) == -1)
    return msg_error_code (strstr (err, "no VM") ? "not_found" : NULL, "%s",
                           err);
  json_t *r = json_pack ("{s:b, s:b, s:o}", "ok", 1, "queued", queued,
                         "event", ev ? ev : json_null ());
  return r;
}

/* Management objects change any time, also during a migration: what
 * changed after the destination got the VM's state is sent again at
 * cutover. */
static json_t *
op_label (json_t *req)
{
  const char *name, *key;
  json_t *row, *e = get_vm (req, &name, &row), *v;
  json_t *labels = json_object_get (req, "labels");

  if (e)
    return e;
  json_decref (row);
  /* Every label was checked before any is stored: a refusal changed
   * nothing. */
  json_object_foreach (labels, key, v) {
    char k[200];
    snprintf (k, sizeof k, "label:%s", key);
    if (db_object_put (name, k, json_string_value (v)) == -1)
      return msg_error_code (NULL, "cannot store label %s", key);
  }
  return json_pack ("{s:b, s:o}", "ok", 1, "objects", db_objects_get (name));
}

/* Fleet mode's live members, as each last described itself. */
static json_t *
op_cluster_hosts (void)
{
  char err[1024];
  json_t *hosts = cluster_hosts (err, sizeof err);

  if (!hosts)
    return msg_error_code (cluster_enabled () ? "unreachable" : NULL, "%s",
                           err);
  return json_pack ("{s:b, s:s, s:s, s:o}", "ok", 1, "host", hd.name,
                    "lease", cluster_lease_live () ? "live" : "fenced",
                    "hosts", hosts);
}

/* Can each configured peer be reached (TLS with our key) and does it
 * answer? */
static json_t *
op_peers (void)
{
  json_t *list = json_array ();

  for (size_t i = 0; i < hd.npeers; ++i) {
    char err[512] = "";
    int64_t t0 = clock_ms ();
    struct channel *c = peer_connect (hd.peers[i].name, err, sizeof err);
    bool ok = c && peer_ask (c, peer_msg ("PING"), "PONG", hd.io_timeout_ms,
                             err, sizeof err) == 0;
    json_t *p = json_pack ("{s:s, s:s, s:b}", "name", hd.peers[i].name,
                           "uri", hd.peers[i].uri, "ok", ok);
    if (ok)
      json_object_set_new (p, "rtt_ms", json_integer ((json_int_t)
                                                      (clock_ms () - t0)));
    else
      json_object_set_new (p, "error", json_string (err[0] ? err
                                                    : log_last_error ()));
    json_array_append_new (list, p);
    if (c)
      chan_close (c);
  }
  return json_pack ("{s:b, s:o}", "ok", 1, "peers", list);
}

static json_t *
op_host (void)
{
  const char *why;
  const char *accel = hd_accel (&why);
  char info[sizeof hd.host_info];
  size_t n;

  /* Guests read it padded to a fixed size; operators without the
   * padding. */
  snprintf (info, sizeof info, "%s", hd.host_info);
  n = strlen (info);
  while (n > 0 && info[n - 1] == ' ')
    info[--n] = '\0';
  json_t *r = json_pack ("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ok", 1,
                    "host", hd.name, "accel", accel, "accel_reason", why,
                    "version", HANDOFF_VERSION, "state_dir", hd.state_dir,
                    "host_id", hd.host_id, "host_info", info);
  json_object_set_new (r, "revision", json_string (HANDOFF_GIT_REV));
  json_object_set_new (r, "rdma", transport_describe ());
  return r;
}

/* Send PAST (stolen: events already recorded, or NULL), then the
 * migration's events from CURSOR on as they come, then its result. */
static json_t *
follow (struct channel *c, struct migration *m, json_t *past, size_t cursor)
{
  bool done = false, connected = true;
  json_t *last = NULL, *ev;
  size_t i;

  json_array_foreach (past, i, ev)
    if (connected && chan_send_json (c, ev) == -1)
      connected = false;
  json_decref (past);

  /* Terminates: the migration always ends with a result event. */
  while (!done) {
    ev = record_next_event (m, &cursor, 1000, &done);
    if (!ev)
      continue;
    if (done) {
      last = ev;
      break;
    }
    if (connected && chan_send_json (c, ev) == -1)
      connected = false;        /* The migration goes on without us. */
    json_decref (ev);
  }
  record_put (m);
  return last;
}

static json_t *
op_migrate (json_t *req, struct channel *c)
{
  char err[2048];
  int rc = 0;
  struct migration *m = migration_start (req, err, sizeof err, &rc);
  bool follow_it = true;

  if (!m)
    return msg_error_code (rc_code_name (rc), "%s", err);
  msg_get_bool (req, "follow", false, &follow_it, err, sizeof err);
  if (!follow_it) {
    json_t *s = record_summary (m);
    record_put (m);
    json_object_set_new (s, "ok", json_true ());
    return s;
  }
  return follow (c, m, NULL, 0);
}

static json_t *
op_cutover (json_t *req, struct channel *c)
{
  const char *vm = json_string_value (json_object_get (req, "vm"));
  const char *to = json_string_value (json_object_get (req, "to"));
  char err[512];
  struct migration *m;
  size_t cursor;

  int r = migration_cutover (vm, to, &cursor, err, sizeof err, &m);
  if (r < 0)
    return msg_error_code (r == -1 ? "not_found" : NULL, "%s", err);
  return follow (c, m, NULL, cursor);
}

/* The running migration of a VM (its summary; with "watch", its events
 * from now on and its result), else the last one this host took part
 * in, from the journal. */
static json_t *
op_job (json_t *req, struct channel *c)
{
  const char *vm = json_string_value (json_object_get (req, "vm"));
  bool watch = json_is_true (json_object_get (req, "watch"));
  struct migration *m = migration_find (vm);
  json_t *j, *r;

  if (m && watch) {
    /* Joining late: first where it stands (a destination lost before
     * now is still shown lost), then what happens next. */
    size_t cursor;
    json_t *past = record_catch_up (m, &cursor);
    return follow (c, m, past, cursor);
  }
  if (m) {
    r = json_pack ("{s:b, s:b, s:o}", "ok", 1, "active", 1, "job",
                   record_summary (m));
    record_put (m);
    return r;
  }
  j = db_journal_last (vm);
  if (!j)
    return msg_error_code ("not_found", "no migration of '%.64s' on this host",
                           vm);
  /* The definition it carried is not the job's business. */
  json_object_del (j, "detail");
  json_object_set_new (j, "steps", db_journal_steps (
                         json_string_value (json_object_get (j, "id"))));
  r = json_pack ("{s:b, s:b, s:o}", "ok", 1, "active", 0, "last", j);
  return r;
}

static json_t *
op_abort (json_t *req)
{
  const char *vm = json_string_value (json_object_get (req, "vm"));
  char err[512];

  if (migration_abort (vm, err, sizeof err) == -1)
    return msg_error_code ("not_found", "%s", err);
  return json_pack ("{s:b}", "ok", 1);
}

json_t *
server_handle (json_t *req, struct channel *c, void *opaque)
{
  const char *op;
  char err[1024];
  uid_t uid;

  (void) opaque;
  /* The socket is 0600; a daemon started by someone else still only
   * takes orders from its own user (root).  On the admin channel
   * (OPAQUE set) the pre-shared key admitted the client. */
  if (!opaque && (chan_peer_uid (c, &uid) == -1 || uid != geteuid ()))
    return msg_error_code ("denied", "only uid %d may use this socket",
                      (int) geteuid ());
  if (request_check (req, err, sizeof err) == -1)
    return msg_error_code ("bad_request", "%s", err);
  op = json_string_value (json_object_get (req, "op"));
  if (strcmp (op, "define") == 0)
    return op_define (req);
  if (strcmp (op, "undefine") == 0)
    return op_undefine (req);
  if (strcmp (op, "start") == 0)
    return op_start (req);
  if (strcmp (op, "stop") == 0)
    return op_stop (req);
  if (strcmp (op, "list") == 0)
    return op_list ();
  if (strcmp (op, "status") == 0)
    return op_status (req);
  if (strcmp (op, "event") == 0)
    return op_event (req);
  if (strcmp (op, "host") == 0)
    return op_host ();
  if (strcmp (op, "label") == 0)
    return op_label (req);
  if (strcmp (op, "peers") == 0)
    return op_peers ();
  if (strcmp (op, "cluster_hosts") == 0)
    return op_cluster_hosts ();
  if (strcmp (op, "migrate") == 0)
    return op_migrate (req, c);
  if (strcmp (op, "abort") == 0)
    return op_abort (req);
  if (strcmp (op, "cutover") == 0)
    return op_cutover (req, c);
  if (strcmp (op, "evacuate") == 0)
    return evacuate_run (req, c);
  if (strcmp (op, "undrain") == 0)
    return evacuate_undrain (req);
  if (strcmp (op, "job") == 0)
    return op_job (req, c);
  return msg_error_code ("bad_request", "unknown op '%.64s'", op);
}
