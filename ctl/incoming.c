/* handoffd: the destination side of a migration (peer.h has the
 * messages).
 *
 * One conversation per migration, in the peer connection's thread.
 * Everything made for the migration (image files, the VM directory,
 * temporary exports, the share receiver, the stream relay, QEMU,
 * database rows) is removed again unless the source's
 * MIGRATION_COMPLETE arrives and the VM resumes here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "channel.h"
#include "daemon.h"
#include "db.h"
#include "def-check.h"
#include "events.h"
#include "jsonutil.h"
#include "log.h"
#include "migrate-common.h"
#include "migrate.h"
#include "names.h"
#include "peer.h"
#include "peer-check.h"
#include "policy.h"
#include "proc.h"
#include "psk.h"
#include "sockets.h"
#include "uri.h"
#include "vm.h"
#include "volume.h"

struct incoming {
  char id[80];
  char vm[65];
  char source[65];
  char src_ip[64];
  char mode[16];
  json_t *src_def;              /* As the source has it. */
  json_t *def;                  /* Rewritten for this host. */
  json_t *objects;
  json_t *events;
  char images[PATH_MAX + 128];  /* images/NAME */
  int64_t timeout_ms;
  bool made_images;
  bool volume_ready;            /* Volume mode: READY sent (mounted). */
};

static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static char active_vms[16][65];         /* active_lock */

bool
incoming_active (const char *vm)
{
  bool r = false;

  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < 16; ++i)
    if (strcmp (active_vms[i], vm) == 0)
      r = true;
  pthread_mutex_unlock (&active_lock);
  return r;
}

static int
claim_active (const char *vm)
{
  int rv = -1;

  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < 16 && rv == -1; ++i)
    if (strcmp (active_vms[i], vm) == 0)
      break;
  for (size_t i = 0; i < 16 && rv == -1; ++i)
    if (!active_vms[i][0]) {
      snprintf (active_vms[i], sizeof active_vms[i], "%s", vm);
      rv = 0;
    }
  pthread_mutex_unlock (&active_lock);
  return rv;
}

static void
release_active (const char *vm)
{
  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < 16; ++i)
    if (strcmp (active_vms[i], vm) == 0)
      active_vms[i][0] = '\0';
  pthread_mutex_unlock (&active_lock);
}

static void drop_confirmed (json_t *row, const char *why);

static json_t *
answer (const char *type, const char *reason)
{
  json_t *a = peer_msg (type);
  if (reason)
    json_object_set_new (a, "reason", json_string (reason));
  return a;
}

/* ------------------------------------------------------------------ */
/* Ports and processes */

static int
listen_host (char *buf, size_t len)
{
  struct uri u;
  char err[256];

  if (!hd.listen || uri_parse (hd.listen, &u, err, sizeof err) == -1)
    return -1;
  snprintf (buf, len, "%s", u.host);
  uri_free (&u);
  return 0;
}

/* A port nobody listens on at ADDR (the kernel picks it). */
static int
free_port (const char *addr)
{
  struct sockaddr_in sin = { .sin_family = AF_INET };
  socklen_t sl = sizeof sin;
  int fd, port = -1;

  if (inet_pton (AF_INET, addr, &sin.sin_addr) != 1)
    return -1;
  fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  if (bind (fd, (struct sockaddr *) &sin, sizeof sin) == 0 &&
      getsockname (fd, (struct sockaddr *) &sin, &sl) == 0)
    port = ntohs (sin.sin_port);
  close (fd);
  return port;
}

/* Is something listening on PORT (this network namespace)?  Read from
 * /proc rather than connecting: a probe would count as a client. */
static bool
port_listening (int port)
{
  FILE *f = fopen ("/proc/self/net/tcp", "re");
  char line[512];
  bool found = false;

  if (!f)
    return false;
  /* Terminates: end of file. */
  while (!found && fgets (line, sizeof line, f)) {
    /* "  N: LOCALADDR:PORT REMADDR:PORT ST ..." in hex. */
    char *p = strchr (line, ':'), *end;
    if (!p || !(p = strchr (p + 1, ':')))
      continue;
    unsigned long lport = strtoul (p + 1, &end, 16);
    if (end == p + 1 || !(p = strchr (end, ':')))
      continue;
    p = strchr (p, ' ');
    if (!p)
      continue;
    unsigned long st = strtoul (p, &end, 16);
    if (end != p && (int) lport == port && st == 0x0A)
      found = true;
  }
  fclose (f);
  return found;
}

static int
wait_listening (int port, pid_t pid, int timeout_ms)
{
  int64_t deadline = clock_ms () + timeout_ms;

  /* Terminates: listening, the process died, or the deadline. */
  while (!port_listening (port)) {
    if (clock_ms () >= deadline || kill (pid, 0) == -1)
      return -1;
    usleep (20000);
  }
  return 0;
}

static pid_t
spawn_in_run (struct incoming *in, const char *leaf, char *const argv[],
              char *err, size_t errlen)
{
  char pid[PATH_MAX], log[PATH_MAX], name[64];

  snprintf (name, sizeof name, "%s.pid", leaf);
  vm_run_path (in->vm, name, pid, sizeof pid);
  snprintf (name, sizeof name, "%s.log", leaf);
  vm_run_path (in->vm, name, log, sizeof log);
  return proc_spawn (argv, NULL, log, pid, err, errlen);
}

/* ------------------------------------------------------------------ */

static void
abort_local (struct incoming *in, const char *why)
{
  log_info ("migration %s: dropping incoming VM %s: %s (logs in %s/logs/%s)",
            in->id, in->vm, why, hd.state_dir, in->id);
  vm_save_logs (in->vm, in->id);
  vm_stop (in->vm);
  if (in->made_images) {
    char err[1024];
    if (remove_beneath (hd.images_dir, in->images, err, sizeof err) == -1)
      log_error ("migration %s: cannot remove what it received: %s", in->id,
                 err);
  }
  db_begin ();
  json_t *row = db_vm_get (in->vm);
  if (row) {
    db_vm_delete (in->vm);
    json_decref (row);
  }
  db_events_delete (in->vm);
  db_commit ();
  db_journal_end (in->id, "aborted", why);
}

/* Where a file of the source's VM directory lives here. */
static json_t *
rebase (const char *file, const char *src_dir, const char *dst_dir)
{
  size_t n = src_dir ? strlen (src_dir) : 0;
  char buf[PATH_MAX * 2];

  if (src_dir && dst_dir && strncmp (file, src_dir, n) == 0 &&
      file[n] == '/') {
    snprintf (buf, sizeof buf, "%s%s", dst_dir, file + n);
    return json_string (buf);
  }
  return json_string (file);
}

static json_t *
prepare (struct incoming *in, json_t *msg)
{
  char err[2048], addr[128], dirpath[PATH_MAX + 256];
  char mig_psk[PATH_MAX], key_text[512];
  json_t *def, *objects, *disks, *d, *ep_disks = json_array (), *ep;
  const char *src_dir;
  size_t i;

  /* The message passed peer_check_message; what this host's policy
   * says of boot files is checked here. */
  def = json_object_get (msg, "def");
  objects = json_object_get (msg, "objects");
  {
    json_t *boot_dirs = policy_dirs ("boot_dirs", err, sizeof err);
    int r = boot_dirs ? def_check_received (def, boot_dirs, err, sizeof err)
      : -1;
    json_decref (boot_dirs);
    if (r == -1)
      goto failed;
  }
  if (strcmp (json_string_value (json_object_get (def, "name")),
              in->vm) != 0) {
    snprintf (err, sizeof err, "the definition names another VM");
    goto failed;
  }
  if (listen_host (addr, sizeof addr) == -1) {
    snprintf (err, sizeof err, "this host has no peer address");
    goto failed;
  }
  in->src_def = json_incref (def);
  in->objects = json_deep_copy (objects);
  in->def = json_deep_copy (def);
  snprintf (in->images, sizeof in->images, "%s/%s", hd.images_dir, in->vm);
  if (mkdir (in->images, 0700) == -1) {
    snprintf (err, sizeof err, "%.1500s: %s", in->images, strerror (errno));
    goto failed;
  }
  in->made_images = true;
  {
    char run[PATH_MAX];
    vm_run_path (in->vm, NULL, run, sizeof run);
    if (mkdir (run, 0700) == -1 && errno != EEXIST) {
      snprintf (err, sizeof err, "%.1500s: %s", run, strerror (errno));
      goto failed;
    }
  }
  /* A key for this migration only: its exports, share and stream
   * accept nobody but the source that holds it. */
  vm_run_path (in->vm, "mig.psk", mig_psk, sizeof mig_psk);
  {
    char e2[512];
    FILE *f;
    if (psk_keygen (mig_psk, "handoff-migration", 1, e2, sizeof e2) == -1 ||
        !(f = fopen (mig_psk, "re"))) {
      snprintf (err, sizeof err, "migration key: %s", e2);
      goto failed;
    }
    if (!fgets (key_text, sizeof key_text, f))
      key_text[0] = '\0';
    fclose (f);
    key_text[strcspn (key_text, "\r\n")] = '\0';
  }
  src_dir = json_string_value (json_object_get (def, "dir"));
  snprintf (dirpath, sizeof dirpath, "%s/dir", in->images);
  if (src_dir) {
    json_object_set_new (in->def, "dir", json_string (dirpath));
    for (const char *const *k = (const char *const[]) { "kernel", "initrd",
                                                        NULL }; *k; ++k)
      if (json_string_value (json_object_get (def, *k)))
        json_object_set_new (in->def, *k, rebase (json_string_value (
                               json_object_get (def, *k)), src_dir, dirpath));
  }

  /* One fresh image and one TLS export per disk, for the source only. */
  disks = json_object_get (in->def, "disks");
  json_array_foreach (disks, i, d) {
    char path[PATH_MAX * 2], base[PATH_MAX], leaf[32], portarg[16];
    char pskarg[PATH_MAX + 16];
    const char *src = json_string_value (json_object_get (d, "path"));
    json_int_t size = json_integer_value (json_object_get (d, "size"));
    int port = free_port (addr), fd;
    pid_t p;

    snprintf (base, sizeof base, "%s", src);
    /* A disk that was received before is called diskN-NAME already:
     * keep NAME, so names do not grow with every move. */
    const char *leafname = basename (base), *dash;
    if (strncmp (leafname, "disk", 4) == 0 &&
        (dash = strchr (leafname, '-')) != NULL &&
        strspn (leafname + 4, "0123456789") == (size_t) (dash - leafname - 4) &&
        dash > leafname + 4 && dash[1])
      leafname = dash + 1;
    if (path_check_leaf ("disk file name", leafname, err, sizeof err) == -1)
      goto failed;
    snprintf (path, sizeof path, "%s/disk%zu-%s", in->images, i, leafname);
    fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1 || ftruncate (fd, (off_t) size) == -1) {
      snprintf (err, sizeof err, "%.1500s: %s", path, strerror (errno));
      if (fd >= 0)
        close (fd);
      goto failed;
    }
    close (fd);
    json_object_set_new (d, "path", json_string (path));
    if (port < 0) {
      snprintf (err, sizeof err, "no free port on %s", addr);
      goto failed;
    }
    snprintf (pskarg, sizeof pskarg, "--tls-psk=%s", mig_psk);
    snprintf (leaf, sizeof leaf, "export%zu", i);
    /* The port was free when we looked; another socket may take it
     * before nbdkit binds it: then try another (three times). */
    for (int attempt = 0;; ++attempt) {
      char logleaf[48], tail[512];
      snprintf (portarg, sizeof portarg, "%d", port);
      char *argv[] = {
        (char *) "/usr/sbin/nbdkit", (char *) "-f", (char *) "-i", addr,
        (char *) "-p", portarg, (char *) "--tls=require", pskarg,
        (char *) "file", path, NULL,
      };
      if (access (argv[0], X_OK) == -1)
        argv[0] = (char *) "/usr/bin/nbdkit";
      p = spawn_in_run (in, leaf, argv, err, sizeof err);
      if (p < 0)
        goto failed;
      if (wait_listening (port, p, 10000) == 0)
        break;
      snprintf (logleaf, sizeof logleaf, "%s.log", leaf);
      vm_log_tail (in->vm, logleaf, 2, tail, sizeof tail);
      if (attempt == 2 || kill (p, 0) == 0) {
        snprintf (err, sizeof err, "the export of disk %zu did not start%s%s",
                  i, tail[0] ? ": " : "", tail);
        goto failed;
      }
      log_warn ("migration %s: the export of disk %zu on port %d failed "
                "(%s); trying another port", in->id, i, port, tail);
      port = free_port (addr);
    }
    char u[160];
    snprintf (u, sizeof u, "nbds://%s:%d/", addr, port);
    json_array_append_new (ep_disks, json_string (u));
  }
  ep = json_pack ("{s:o}", "disks", ep_disks);
  ep_disks = NULL;

  if (src_dir) {
    int port = free_port (addr);
    char listen[160], ctl[PATH_MAX];
    pid_t p;
    snprintf (listen, sizeof listen, "tcp://%s:%d", addr, port);
    vm_run_path (in->vm, "share-recv.ctl", ctl, sizeof ctl);
    char *argv[] = {
      (char *) hd.share_bin, (char *) "serve", (char *) "--listen", listen,
      (char *) "--root", dirpath, (char *) "--psk", mig_psk,
      (char *) "--control", ctl, NULL,
    };
    p = port < 0 ? -1 : spawn_in_run (in, "share-recv", argv, err, sizeof err);
    if (p < 0 || wait_listening (port, p, 10000) == -1) {
      if (p >= 0)
        snprintf (err, sizeof err, "the share receiver did not start");
      json_decref (ep);
      goto failed;
    }
    json_object_set_new (ep, "share", json_string (listen));
  }
  {
    int port = free_port (addr);
    char listen[160], to[PATH_MAX + 8], sock[PATH_MAX];
    pid_t p;
    snprintf (listen, sizeof listen, "tcp://%s:%d", addr, port);
    vm_run_path (in->vm, "incoming.sock", sock, sizeof sock);
    uri_unix (sock, to, sizeof to);
    char *argv[] = {
      (char *) hd.xfer_bin, (char *) "relay", (char *) "--listen", listen,
      (char *) "--to", to, (char *) "--psk", mig_psk,
      (char *) "--buffer", (char *) MIGRATION_RELAY_BUFFER, NULL,
    };
    p = port < 0 ? -1 : spawn_in_run (in, "relay-in", argv, err, sizeof err);
    if (p < 0 || wait_listening (port, p, 10000) == -1) {
      if (p >= 0)
        snprintf (err, sizeof err, "the stream relay did not start");
      json_decref (ep);
      goto failed;
    }
    json_object_set_new (ep, "xfer", json_string (listen));
  }
  db_journal_detail (in->id, json_pack ("{s:s, s:O, s:s}", "mode", in->mode,
                                        "def", in->def, "images",
                                        in->images));
  db_journal_phase (in->id, "prepared", "exports, share and relay ready");
  hd_crash_point ("prepared");
  json_object_set_new (ep, "psk", json_string (key_text));
  json_t *a = answer ("SUCCESS", NULL);
  json_object_set_new (a, "endpoints", ep);
  return a;

 failed:
  json_decref (ep_disks);
  log_error ("migration %s: cannot prepare %s: %s", in->id, in->vm, err);
  return answer ("INSTANTIATION_ERROR", err);
}

static json_t *
start_vm (struct incoming *in)
{
  char err[2048], partial[PATH_MAX + 32];
  const char *dir = json_string_value (json_object_get (in->def, "dir"));

  if (!in->def)
    return answer ("FAILED", "START_VM before MANAGEMENT_STATE");
  snprintf (partial, sizeof partial, "%s.handoff-partial", dir ? dir : "");
  if (vm_start (in->vm, in->def, true, dir ? partial : NULL, err,
                sizeof err) == -1)
    return answer ("INSTANTIATION_ERROR", err);
  /* MIGRATION events tell when the stream started and ended here. */
  json_t *r = vm_qmp (in->vm, "migrate-set-capabilities", json_pack (
                        "{s:[{s:s, s:b}]}", "capabilities", "capability",
                        "events", "state", 1), 5000, err, sizeof err);
  json_decref (r);
  db_journal_phase (in->id, "vm_started", "QEMU waits for the stream");
  hd_crash_point ("vm_started");
  return answer ("SUCCESS", NULL);
}

/* The VM comes alive here.  Returns ACK or FAILED. */
static json_t *
complete (struct incoming *in, bool *resumed_r)
{
  char err[1024];
  int64_t until = clock_ms () + hd.io_timeout_ms;
  const char *dir = json_string_value (json_object_get (in->def, "dir"));
  struct stat st;
  double resumed;

  *resumed_r = false;
  db_journal_phase (in->id, "completing", "the source has sent everything");
  hd_crash_point ("completing");
  /* Terminates: QEMU completes or fails loading, or time runs out. */
  for (;;) {
    json_t *q = vm_qmp (in->vm, "query-migrate", NULL, 5000, err, sizeof err);
    const char *s = q ? json_string_value (json_object_get (q, "status"))
      : NULL;
    bool ok = s && strcmp (s, "completed") == 0;
    bool bad = !s || strcmp (s, "failed") == 0;
    json_decref (q);
    if (ok)
      break;
    if (bad || clock_ms () > until) {
      char tail[512];
      vm_log_tail (in->vm, "qemu.log", 2, tail, sizeof tail);
      snprintf (err, sizeof err, "QEMU here did not load the stream (%s)%s%s",
                s ? s : "no answer", tail[0] ? ": " : "", tail);
      return answer ("FAILED", err);
    }
    usleep (10000);
  }
  if (dir && (stat (dir, &st) == -1 || !S_ISDIR (st.st_mode)))
    return answer ("FAILED", "the VM directory was not committed here");

  db_begin ();
  if (db_vm_put (in->vm, in->def, "running") == -1 ||
      db_objects_replace (in->vm, in->objects) == -1 ||
      events_store_incoming (in->vm, in->events ? in->events
                             : json_array ()) == -1) {
    db_rollback ();
    return answer ("FAILED", "cannot record the VM here");
  }
  db_commit ();
  vm_qmp_forget_events (in->vm);
  json_t *r = vm_qmp (in->vm, "cont", NULL, 10000, err, sizeof err);
  if (!r)
    return answer ("FAILED", err);
  json_decref (r);
  resumed = vm_qmp_wait_event (in->vm, "RESUME", 5000);
  if (resumed == 0)
    resumed = (double) wall_ms () / 1000.0;
  *resumed_r = true;
  db_journal_phase (in->id, "resumed", "the VM runs here");
  hd_crash_point ("resumed");
  json_t *a = answer ("ACK", NULL);
  json_object_set_new (a, "resumed_at", json_real (resumed));
  return a;
}

/* The "migrated" event, after the held ones: the VM's hooks learn it
 * runs on another host (its host component ID changed). */
void
post_migrated (const char *vm, const char *from, const char *id)
{
  char err[256];
  bool queued;
  json_t *reply = NULL;
  json_t *payload = json_pack ("{s:s, s:s, s:s, s:s}", "from",
                               from && from[0] ? from : "unknown", "to",
                               hd.name, "migration", id, "host_id",
                               hd.host_id);

  if (events_post (vm, "migrated", payload, &queued, &reply, err,
                   sizeof err) == -1)
    log_warn ("VM %s: cannot post its 'migrated' event: %s", vm, err);
  json_decref (payload);
  json_decref (reply);
}

/* After the ACK: what does not touch the downtime.  RUNNING: the VM's
 * QEMU runs (else it died after the VM was taken in: the VM stays
 * here, stopped). */
static void
settle_in (struct incoming *in, bool running)
{
  char err[1024];

  hd_crash_point ("settling");
  /* The temporary exports and the relay have done their work. */
  vm_stop_helpers (in->vm, "export");
  vm_stop_helpers (in->vm, "relay");
  if (running && json_string_value (json_object_get (in->def, "dir")) &&
      vm_mount_share (in->vm, in->def, err, sizeof err) == -1)
    log_error ("VM %s: %s", in->vm, err);
  hd_crash_point ("share_mounted");
  db_journal_end (in->id, "done", running ? "running here"
                  : "taken in; its QEMU died here: kept, stopped (crashed)");
  events_deliver_queued (in->vm);
  post_migrated (in->vm, in->source, in->id);
  log_info ("migration %s: VM %s runs here", in->id, in->vm);
}

static void
peer_ip (struct channel *c, char *buf, size_t len)
{
  const char *n = chan_peer_name (c);
  const char *colon = strrchr (n, ':');
  size_t k = colon ? (size_t) (colon - n) : strlen (n);

  if (n[0] == '[' && k > 2)
    snprintf (buf, len, "%.*s", (int) (k - 2), n + 1);
  else
    snprintf (buf, len, "%.*s", (int) k, n);
}

/* The conversation broke (the source gone, silent, or talking
 * nonsense): drop what was made - but mounted volumes wait for the
 * source's word (volume.h). */
static void
lost (struct incoming *in, const char *why)
{
  if (in->volume_ready)
    volume_settle_in (in->id);
  else
    abort_local (in, why);
}

/* START_MIGRATION and what follows on this connection. */
static json_t *
receive (json_t *req, struct channel *c)
{
  struct incoming in = { .timeout_ms = 600000 };
  const char *id, *vm, *source, *mode = "live";
  json_t *needs, *a, *row;
  uint64_t timeout_s = 600;
  char err[1024], reason[1024];
  bool resumed = false, done = false;

  if (msg_get_string (req, "id", true, &id, err, sizeof err) != 0 ||
      msg_get_string (req, "vm", true, &vm, err, sizeof err) != 0 ||
      msg_get_string (req, "source", true, &source, err, sizeof err) != 0 ||
      msg_get_string (req, "mode", false, &mode, err, sizeof err) == -1 ||
      msg_get_u64 (req, "timeout_s", false, &timeout_s, err,
                   sizeof err) == -1 ||
      msg_get_object (req, "needs", true, &needs, err, sizeof err) != 0) {
    log_error ("refused a migration from %s: %s", chan_peer_name (c), err);
    return answer ("DENIED", err);
  }
  peer_ip (c, in.src_ip, sizeof in.src_ip);
  {
    const char *uri = hd_peer_uri (source);
    struct uri u;
    if (uri && strncmp (uri, "tcp://", 6) == 0 &&
        uri_parse (uri, &u, err, sizeof err) == 0) {
      bool same = strcmp (u.host, in.src_ip) == 0;
      uri_free (&u);
      if (!same) {
        snprintf (reason, sizeof reason, "host '%s' connects from %s, not "
                  "its address", source, in.src_ip);
        log_error ("refused a migration: %s", reason);
        return answer ("DENIED", reason);
      }
    }
  }
  row = db_vm_get (vm);
  if (row || claim_active (vm) == -1) {
    json_decref (row);
    snprintf (reason, sizeof reason, "a VM named '%s' is already here", vm);
    log_error ("refused a migration from %s: %s", source, reason);
    return answer ("DENIED", reason);
  }
  if (policy_admit (source, needs, reason, sizeof reason) == -1) {
    release_active (vm);
    log_info ("refused VM %s from %s: %s", vm, source, reason);
    return answer ("DENIED", reason);
  }
  snprintf (in.id, sizeof in.id, "%s", id);
  snprintf (in.vm, sizeof in.vm, "%s", vm);
  snprintf (in.source, sizeof in.source, "%s", source);
  snprintf (in.mode, sizeof in.mode, "%s", mode);
  in.timeout_ms = (int64_t) timeout_s * 1000 + hd.io_timeout_ms;
  db_journal_start (in.id, vm, "destination", source,
                    json_pack ("{s:s}", "mode", mode));
  a = answer ("PERMITTED", NULL);
  if (chan_send_json (c, a) == -1) {
    json_decref (a);
    abort_local (&in, "the source went away");
    release_active (vm);
    return NULL;
  }
  json_decref (a);
  log_info ("migration %s: taking VM %s from %s (%s)", id, vm, source, mode);
  hd_crash_point ("admitted");

  /* Terminates: the migration ends (complete, abort, failure, the
   * source gone or silent). */
  while (!done) {
    bool eof = false;
    json_t *msg = chan_recv_json (c, hd.io_timeout_ms * 2, &eof);
    bool bad_frame = !msg && !eof && errno == EPROTO;
    const char *type = msg ? json_string_value (json_object_get (msg, "type"))
      : NULL;
    json_t *reply = NULL;
    bool fatal = false;

    if (!msg) {
      if (bad_frame) {
        /* A frame that is no message: say why, then give up. */
        snprintf (reason, sizeof reason, "malformed message: %s",
                  chan_bad_json (c));
        a = answer ("FAILED", reason);
        chan_send_json (c, a);
        json_decref (a);
      }
      lost (&in, eof ? "the source closed the connection"
            : bad_frame ? reason
            : "the source is silent or sent a bad frame");
      break;
    }
    if (!type)
      type = "";
    if (peer_check_message (msg, err, sizeof err) == -1) {
      char q[48];
      snprintf (reason, sizeof reason, "malformed %s: %.900s",
                type[0] ? name_quote (type, q, sizeof q) : "message", err);
      log_error ("migration %s from %s: %s", in.id, source, reason);
      reply = answer (strcmp (type, "MANAGEMENT_STATE") == 0
                      ? "INSTANTIATION_ERROR" : "FAILED", reason);
      fatal = true;
    }
    else if (strcmp (type, "PING") == 0)
      reply = answer ("PONG", NULL);
    else if (strcmp (type, "MANAGEMENT_STATE") == 0 &&
        strcmp (in.mode, "live") == 0 && !in.def) {
      reply = prepare (&in, msg);
      fatal = strcmp (json_string_value (json_object_get (reply, "type")),
                      "SUCCESS") != 0;
    }
    else if (strcmp (type, "START_VM") == 0 && in.def) {
      reply = start_vm (&in);
      fatal = strcmp (json_string_value (json_object_get (reply, "type")),
                      "SUCCESS") != 0;
    }
    else if (strcmp (type, "QUEUED_EVENTS") == 0 && in.def) {
      json_decref (in.events);
      in.events = json_incref (json_object_get (msg, "events"));
      reply = answer ("SUCCESS", NULL);
    }
    else if (strcmp (type, "MANAGEMENT_UPDATE") == 0 && in.def) {
      json_object_update (in.objects, json_object_get (msg, "objects"));
      reply = answer ("SUCCESS", NULL);
    }
    else if (strcmp (type, "MIGRATION_COMPLETE") == 0 && in.def) {
      reply = complete (&in, &resumed);
      fatal = !resumed;
      done = true;
    }
    else if (strcmp (type, "VOLUME_HANDOFF") == 0 &&
             strcmp (in.mode, "volume") == 0 && !in.volume_ready) {
      reply = volume_receive (in.id, in.vm, in.source, msg);
      if (!reply)
        /* A volume stays mounted: no answer can be true yet; the
         * source will ask (and is told "active" until it is let go). */
        break;
      in.volume_ready = strcmp (json_string_value (json_object_get (
                                  reply, "type")), "READY") == 0;
      done = !in.volume_ready;
    }
    else if (strcmp (type, "VOLUME_COMMIT") == 0 && in.volume_ready) {
      reply = volume_commit (in.id, in.vm, in.source, msg);
      in.volume_ready = false;
      done = true;
    }
    else if (strcmp (type, "ABORT") == 0) {
      const char *why = json_string_value (json_object_get (msg, "reason"));
      snprintf (reason, sizeof reason, "the source aborted: %s",
                why ? why : "no reason given");
      if (in.volume_ready)
        volume_drop (in.id, reason);
      else
        abort_local (&in, reason);
      in.volume_ready = false;
      reply = answer ("ABORTED", NULL);
      done = true;
    }
    else {
      snprintf (reason, sizeof reason, "unexpected message '%.32s' here",
                type);
      log_error ("migration %s from %s: %s", in.id, source, reason);
      reply = answer ("FAILED", reason);
      fatal = true;
    }
    json_decref (msg);
    if (fatal && !resumed) {
      lost (&in, json_string_value (json_object_get (reply, "reason")));
      in.volume_ready = false;
      done = true;
    }
    if (chan_send_json (c, reply) == -1 && !done) {
      json_decref (reply);
      lost (&in, "the source went away");
      break;
    }
    json_decref (reply);
  }
  if (resumed && strcmp (in.mode, "live") == 0)
    settle_in (&in, true);
  release_active (vm);
  json_decref (in.src_def);
  json_decref (in.def);
  json_decref (in.objects);
  json_decref (in.events);
  return NULL;
}

static bool
is_volume (json_t *row)
{
  const char *mode = json_string_value (json_object_get (
                                          json_object_get (row, "detail"),
                                          "mode"));
  return mode && strcmp (mode, "volume") == 0;
}

/* QUERY_MIGRATION and ABORT_MIGRATION. */
static json_t *
about (json_t *req, bool abort_it)
{
  const char *id;
  char err[256];
  json_t *j;
  const char *state = "unknown";

  if (msg_get_string (req, "id", true, &id, err, sizeof err) != 0)
    return answer ("FAILED", err);
  j = db_journal_get (id);
  if (j && strcmp (json_string_value (json_object_get (j, "role")),
                   "source") == 0 && !abort_it) {
    /* A destination asks whether this source still holds the VM
     * before it deletes what it received: "released" only once the
     * source let go. */
    const char *res = json_string_value (json_object_get (j, "result"));
    if (is_volume (j))
      state = volume_source_state (j);
    else
      state = res && strcmp (res, "done") == 0 ? "released" : "held";
  }
  else if (j && strcmp (json_string_value (json_object_get (j, "role")),
                        "source") == 0)
    state = "held";
  else if (j && is_volume (j))
    state = volume_destination_state (j, abort_it);
  else if (j && strcmp (json_string_value (json_object_get (j, "role")),
                        "destination") == 0) {
    const char *res = json_string_value (json_object_get (j, "result"));
    const char *phase = json_string_value (json_object_get (j, "phase"));
    const char *vm = json_string_value (json_object_get (j, "vm"));
    bool ended = res && res[0];
    if ((ended && strcmp (res, "done") == 0) ||
        (!ended && strcmp (phase, "resumed") == 0))
      state = "resumed";
    else if (ended)
      state = "aborted";
    else if (strcmp (phase, "dropping") == 0) {
      /* Decided: the VM does not run here.  The source asking to drop
       * it is its word that it holds the VM. */
      if (abort_it)
        drop_confirmed (j, "the source asked");
      state = "aborted";
    }
    else if (abort_it && !incoming_active (vm)) {
      struct incoming in = { .made_images = true };
      snprintf (in.id, sizeof in.id, "%.79s", id);
      snprintf (in.vm, sizeof in.vm, "%.64s", vm);
      snprintf (in.images, sizeof in.images, "%s/%s", hd.images_dir, vm);
      abort_local (&in, "the source asked");
      state = "aborted";
    }
    else
      state = "active";
  }
  json_decref (j);
  json_t *a = answer ("STATUS", NULL);
  json_object_set_new (a, "state", json_string (state));
  return a;
}

json_t *
incoming_handle (json_t *req, struct channel *c, void *opaque)
{
  const char *type = json_string_value (json_object_get (req, "type"));

  (void) opaque;
  char err[1024];

  if (peer_check_message (req, err, sizeof err) == -1) {
    bool start = type && strcmp (type, "START_MIGRATION") == 0;
    log_error ("peer %s: %s refused: %s", chan_peer_name (c),
               start ? "a migration" : "a message", err);
    return answer (start ? "DENIED" : "FAILED", err);
  }
  if (strcmp (type, "START_MIGRATION") == 0)
    return receive (req, c);
  if (strcmp (type, "QUERY_MIGRATION") == 0)
    return about (req, false);
  if (strcmp (type, "ABORT_MIGRATION") == 0)
    return about (req, true);
  /* The source's ABORT after this side already gave up: nothing left. */
  if (strcmp (type, "ABORT") == 0)
    return answer ("ABORTED", NULL);
  /* A reachability check ('handoff peers'). */
  if (strcmp (type, "PING") == 0)
    return answer ("PONG", NULL);
  log_error ("peer %s sent '%.32s' outside a migration", chan_peer_name (c),
             type);
  return answer ("FAILED", "unexpected message outside a migration");
}

/* The received files of a migration that will not run here, once the
 * source confirmed it holds the VM: removed; the journal entry ends. */
static void
drop_confirmed (json_t *row, const char *why)
{
  const char *id = json_string_value (json_object_get (row, "id"));
  const char *vm = json_string_value (json_object_get (row, "vm"));
  struct incoming in = { .made_images = true };

  snprintf (in.id, sizeof in.id, "%.79s", id);
  snprintf (in.vm, sizeof in.vm, "%.64s", vm);
  snprintf (in.images, sizeof in.images, "%s/%s", hd.images_dir, vm);
  abort_local (&in, why);
}

int
incoming_settle_drop (json_t *row, int timeout_ms)
{
  const char *id = json_string_value (json_object_get (row, "id"));
  const char *vm = json_string_value (json_object_get (row, "vm"));
  const char *source = json_string_value (json_object_get (row, "peer"));
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
  a = migration_query_peer (source, id, timeout_ms, err, sizeof err);
  state = a ? json_string_value (json_object_get (a, "state")) : NULL;
  if (!state) {
    log_warn ("migration %s: VM %s does not run here; its received files "
              "stay until %s confirms it holds the VM (%s)", id, vm, source,
              err);
    json_decref (a);
    return -1;
  }
  if (strcmp (state, "held") == 0)
    drop_confirmed (row, "the source confirmed it holds the VM");
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
incoming_recover (json_t *row)
{
  const char *id = json_string_value (json_object_get (row, "id"));
  const char *vm = json_string_value (json_object_get (row, "vm"));
  const char *phase = json_string_value (json_object_get (row, "phase"));
  const char *source = json_string_value (json_object_get (row, "peer"));
  json_t *detail = json_object_get (row, "detail");
  const char *mode = json_string_value (json_object_get (detail, "mode"));
  struct incoming in = { .made_images = true };
  char state[64];

  if (mode && strcmp (mode, "volume") == 0) {
    volume_recover_destination (row);
    return;
  }
  snprintf (in.id, sizeof in.id, "%.79s", id);
  snprintf (in.vm, sizeof in.vm, "%.64s", vm);
  snprintf (in.source, sizeof in.source, "%.64s", source ? source : "");
  snprintf (in.images, sizeof in.images, "%s/%s", hd.images_dir, vm);
  in.def = json_incref (json_object_get (detail, "def"));
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
    if (vm_qemu_alive (vm)) {
      char err[256];
      vm_run_state (vm, state, sizeof state);
      if (strcmp (state, "running") != 0) {
        json_t *r = vm_qmp (vm, "cont", NULL, 10000, err, sizeof err);
        json_decref (r);
      }
      db_journal_phase (id, "resumed", "resumed after a restart");
      log_info ("migration %s: VM %s was taken in; finishing", id, vm);
      settle_in (&in, true);
    }
    else {
      log_error ("migration %s: VM %s was taken in, but its QEMU died here: "
                 "it stays defined here, stopped (crashed), with its disks "
                 "and directory; 'handoff start %s' boots it", id, vm, vm);
      vm_stop_processes (vm);
      db_vm_set_state (vm, "crashed");
      settle_in (&in, false);
    }
  }
  else if (strcmp (phase, "completing") == 0 ||
           strcmp (phase, "resumed") == 0) {
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
    abort_local (&in, "the daemon restarted before the VM was taken in");
  json_decref (vmrow);
  json_decref (in.def);
}
