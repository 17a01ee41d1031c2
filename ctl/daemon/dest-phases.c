/* handoffd: the destination's phases (dest-phases.h): admission done,
 * prepare (fresh images, temporary exports, a share receiver and a
 * stream relay, all for this migration's key only), start QEMU waiting
 * for the stream, complete (the VM comes alive here), settle in; and
 * dropping everything when the migration does not end here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "def-check.h"
#include "dest-phases.h"
#include "errors.h"
#include "events.h"
#include "log.h"
#include "nbd-tls.h"
#include "migration.h"
#include "names.h"
#include "peer.h"
#include "policy.h"
#include "proc.h"
#include "psk.h"
#include "record.h"
#include "transport.h"
#include "uri.h"
#include "vm.h"


json_t *
dest_answer (const char *type, const char *reason)
{
  json_t *a = peer_msg (type);
  if (reason)
    json_object_set_new (a, "reason", json_string (reason));
  return a;
}

/* Ports and processes */

int
dest_listen_host (char *buf, size_t len)
{
  struct uri u;
  char err[256];

  if (!hd.listen || uri_parse (hd.listen, &u, err, sizeof err) == -1)
    return -1;
  snprintf (buf, len, "%s", u.host);
  uri_free (&u);
  return 0;
}

int
dest_free_port (const char *addr)
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

static pid_t
spawn_in_run (struct incoming *in, const char *leaf, char *const argv[],
              char *const env[], char *err, size_t errlen)
{
  char pid[PATH_MAX], log[PATH_MAX], name[64];

  snprintf (name, sizeof name, "%s.pid", leaf);
  vm_run_path (in->vm, name, pid, sizeof pid);
  snprintf (name, sizeof name, "%s.log", leaf);
  vm_run_path (in->vm, name, log, sizeof log);
  return proc_spawn (argv, env, log, pid, err, errlen);
}


void
dest_drop (struct incoming *in, const char *why)
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

/* The temporary export of disk I: a fresh image at PATH served by
 * nbdkit with TLS on ADDR, for the holder of the migration key only.
 * Its URI into EP_DISKS.  0 or -1 (err). */
static int
prepare_disk_export (struct incoming *in, size_t i, const char *path,
                     const char *addr, const char *mig_psk, json_t *ep_disks,
                     char *err, size_t errlen)
{
  char leaf[32], portarg[16], pskarg[PATH_MAX + 16], u[160];
  int port = dest_free_port (addr);
  pid_t p;

  if (port < 0)
    return set_error (err, errlen, "no free port on %s", addr);
  snprintf (pskarg, sizeof pskarg, "--tls-psk=%s", mig_psk);
  snprintf (leaf, sizeof leaf, "export%zu", i);
  /* The port was free when we looked; another socket may take it
   * before nbdkit binds it: then try another (three times). */
  for (int attempt = 0;; ++attempt) {
    char logleaf[48], tail[512];
    snprintf (portarg, sizeof portarg, "%d", port);
    char *argv[] = {
      (char *) "/usr/sbin/nbdkit", (char *) "-f", (char *) "-i",
      (char *) addr, (char *) "-p", portarg, (char *) "--tls=require",
      pskarg, (char *) "file", (char *) path, NULL,
    };
    /* AES-GCM rather than ChaCha20 on its TLS (nbd-tls.c). */
    char *env[] = { (char *) nbd_tls_env (), NULL };
    if (access (argv[0], X_OK) == -1)
      argv[0] = (char *) "/usr/bin/nbdkit";
    p = spawn_in_run (in, leaf, argv, env, err, errlen);
    if (p < 0)
      return -1;
    if (proc_wait_port (port, p, 10000) == 0)
      break;
    snprintf (logleaf, sizeof logleaf, "%s.log", leaf);
    vm_log_tail (in->vm, logleaf, 2, tail, sizeof tail);
    if (attempt == 2 || kill (p, 0) == 0)
      return set_error (err, errlen, "the export of disk %zu did not "
                        "start%s%s", i, tail[0] ? ": " : "", tail);
    log_warn ("migration %s: the export of disk %zu on port %d failed "
              "(%s); trying another port", in->id, i, port, tail);
    port = dest_free_port (addr);
  }
  snprintf (u, sizeof u, "nbds://%s:%d/", addr, port);
  json_array_append_new (ep_disks, json_string (u));
  return 0;
}

/* One fresh image per disk of in->def (rewritten to point at it), each
 * with its export.  The endpoints' "disks", or NULL (err). */
static json_t *
prepare_disks (struct incoming *in, const char *addr, const char *mig_psk,
               char *err, size_t errlen)
{
  json_t *disks = json_object_get (in->def, "disks"), *d;
  json_t *ep_disks = json_array ();
  size_t i;

  json_array_foreach (disks, i, d) {
    char path[PATH_MAX * 2], base[PATH_MAX];
    const char *src = json_string_value (json_object_get (d, "path"));
    json_int_t size = json_integer_value (json_object_get (d, "size"));
    const char *leafname, *dash;
    int fd;

    snprintf (base, sizeof base, "%s", src);
    /* A disk that was received before is called diskN-NAME already:
     * keep NAME, so names do not grow with every move. */
    leafname = basename (base);
    if (strncmp (leafname, "disk", 4) == 0 &&
        (dash = strchr (leafname, '-')) != NULL &&
        strspn (leafname + 4, "0123456789") == (size_t) (dash - leafname - 4) &&
        dash > leafname + 4 && dash[1])
      leafname = dash + 1;
    if (path_check_leaf ("disk file name", leafname, err, errlen) == -1)
      goto failed;
    snprintf (path, sizeof path, "%s/disk%zu-%s", in->images, i, leafname);
    fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1 || ftruncate (fd, (off_t) size) == -1) {
      set_error (err, errlen, "%.1500s: %s", path, strerror (errno));
      if (fd >= 0)
        close (fd);
      goto failed;
    }
    close (fd);
    json_object_set_new (d, "path", json_string (path));
    if (prepare_disk_export (in, i, path, addr, mig_psk, ep_disks, err,
                             errlen) == -1)
      goto failed;
  }
  return ep_disks;

 failed:
  json_decref (ep_disks);
  return NULL;
}

/* A helper listening on a free port of ADDR (argv[LISTEN_ARG] is set to
 * its tcp:// address): the share receiver or the stream relay.  Its
 * address, or NULL (err). */
static json_t *
prepare_listener (struct incoming *in, const char *leaf, const char *what,
                  const char *addr, char **argv, size_t listen_arg,
                  char *err, size_t errlen)
{
  int port = dest_free_port (addr);
  char listen[160];
  pid_t p;

  if (port < 0) {
    set_error (err, errlen, "no free port on %s", addr);
    return NULL;
  }
  snprintf (listen, sizeof listen, "tcp://%s:%d", addr, port);
  argv[listen_arg] = listen;
  p = spawn_in_run (in, leaf, argv, NULL, err, errlen);
  if (p < 0)
    return NULL;
  if (proc_wait_port (port, p, 10000) == -1) {
    set_error (err, errlen, "the %s did not start", what);
    return NULL;
  }
  return json_string (listen);
}

/* The RAM stream's relay on rdma://ADDR, proving the source with the
 * migration key MIG_PSK as its token, carrying to TO; with TCP_TOO, on
 * tcp://ADDR as well (TLS with the same key), for a source whose RDMA
 * set-up fails.  Sets EP's "xfer" (and "xfer_tcp"): 0, or -1 (err; it
 * was stopped). */
static int
prepare_rdma_relay (struct incoming *in, json_t *ep, const char *addr,
                    char *to, char *mig_psk, bool tcp_too, char *err,
                    size_t errlen)
{
  int port = dest_free_port (addr), tcp_port = -1;
  char listen[160], tcp_listen[160], needle[200], log[PATH_MAX];
  char pidfile[PATH_MAX];
  size_t n = 0;
  pid_t p;

  /* free_port finds a port nothing holds now, and may find the same
   * one twice. */
  for (int tries = 0; port >= 0 && tcp_too && tries < 4 &&
         (tcp_port < 0 || tcp_port == port); ++tries)
    tcp_port = dest_free_port (addr);
  if (tcp_port == port)
    tcp_port = -1;
  if (port < 0 || (tcp_too && tcp_port < 0))
    return set_error (err, errlen, "no free port on %s", addr);
  snprintf (listen, sizeof listen, "rdma://%s:%d", addr, port);
  snprintf (tcp_listen, sizeof tcp_listen, "tcp://%s:%d", addr, tcp_port);
  char *argv[16];
  argv[n++] = (char *) hd.xfer_bin;
  argv[n++] = (char *) "relay";
  argv[n++] = (char *) "-v";
  argv[n++] = (char *) "--listen";
  argv[n++] = listen;
  if (tcp_too) {
    argv[n++] = (char *) "--listen";
    argv[n++] = tcp_listen;
    argv[n++] = (char *) "--psk";
    argv[n++] = mig_psk;
  }
  argv[n++] = (char *) "--to";
  argv[n++] = to;
  argv[n++] = (char *) "--token-file";
  argv[n++] = mig_psk;
  argv[n++] = (char *) "--buffer";
  argv[n++] = (char *) MIGRATION_RELAY_BUFFER;
  argv[n] = NULL;
  p = spawn_in_run (in, "relay-in", argv, NULL, err, errlen);
  if (p < 0)
    return -1;
  /* No socket table lists an RDMA CM listener: its log says when.
   * The relay opens its listeners in order: the last one's line says
   * both are up. */
  vm_run_path (in->vm, "relay-in.log", log, sizeof log);
  snprintf (needle, sizeof needle, "relay: listening on %s,",
            tcp_too ? tcp_listen : listen);
  if (proc_wait_log (log, needle, p, 10000) == -1) {
    char tail[512];
    proc_log_tail (log, 2, tail, sizeof tail);
    vm_run_path (in->vm, "relay-in.pid", pidfile, sizeof pidfile);
    proc_stop (pidfile, "handoff-xfer", 2000);
    return set_error (err, errlen, "the RDMA stream relay did not start: %s",
                      tail);
  }
  json_object_set_new (ep, "xfer", json_string (listen));
  if (tcp_too)
    json_object_set_new (ep, "xfer_tcp", json_string (tcp_listen));
  return 0;
}

/* The RAM stream's relay: over RDMA if the source asked for it (or
 * left it to this host, and this host has it; then over TCP too, should
 * the source fail to set RDMA up), else over TCP.  Sets EP's "xfer"
 * (and "xfer_tcp"): 0, or -1 (err). */
static int
prepare_relay (struct incoming *in, json_t *ep, json_t *msg,
               const char *addr, char *mig_psk, char *err, size_t errlen)
{
  const char *ask = json_string_value (json_object_get (msg, "transport"));
  char sock[PATH_MAX], to[PATH_MAX + 8];
  bool rdma;
  json_t *v;

  vm_run_path (in->vm, "incoming.sock", sock, sizeof sock);
  uri_unix (sock, to, sizeof to);
  if (transport_dest_choose (ask, &rdma, err, errlen) == -1)
    return -1;
  if (rdma) {
    /* Only RDMA was wanted (by the source, or by this host): TCP would
     * be refused anyway. */
    bool either = strcmp (ask, "auto") == 0 &&
      hd.transport != TRANSPORT_RDMA;
    if (prepare_rdma_relay (in, ep, addr, to, mig_psk, either, err,
                            errlen) == 0)
      return 0;
    /* Before the VM pauses, an RDMA set-up that fails costs nothing
     * but the transport - unless RDMA was required. */
    if (!either)
      return -1;
    log_warn ("migration %s: %s; the RAM stream goes over TCP instead",
              in->id, err);
  }
  char *argv[] = {
    (char *) hd.xfer_bin, (char *) "relay", (char *) "--listen", NULL,
    (char *) "--to", to, (char *) "--psk", mig_psk,
    (char *) "--buffer", (char *) MIGRATION_RELAY_BUFFER, NULL,
  };
  v = prepare_listener (in, "relay-in", "stream relay", addr, argv, 3,
                        err, errlen);
  if (!v)
    return -1;
  json_object_set_new (ep, "xfer", v);
  return 0;
}

/* A key for this migration only: its exports, share and stream accept
 * nobody but the source that holds it.  Its text into KEY_TEXT. */
static int
make_migration_key (struct incoming *in, char *mig_psk, size_t psklen,
                    char *key_text, size_t keylen, char *err, size_t errlen)
{
  char e2[512] = "";

  vm_run_path (in->vm, "mig.psk", mig_psk, psklen);
  if (psk_keygen_text (mig_psk, "handoff-migration", 1, key_text, keylen, e2,
                       sizeof e2) == -1)
    return set_error (err, errlen, "migration key: %s", e2);
  return 0;
}

/* The VM's definition for this host: checked against its policy,
 * its directory (and the boot files in it) rebased into images/NAME.
 * Makes images/NAME and run/NAME. */
static int
adopt_definition (struct incoming *in, json_t *def, json_t *objects,
                  char *dirpath, size_t dirlen, char *err, size_t errlen)
{
  json_t *boot_dirs = policy_dirs ("boot_dirs", err, errlen);
  const char *src_dir;
  char run[PATH_MAX];
  int r;

  r = boot_dirs ? def_check_received (def, boot_dirs, err, errlen) : -1;
  json_decref (boot_dirs);
  if (r == -1)
    return -1;
  if (strcmp (json_string_value (json_object_get (def, "name")),
              in->vm) != 0)
    return set_error (err, errlen, "the definition names another VM");
  in->src_def = json_incref (def);
  in->objects = json_deep_copy (objects);
  in->def = json_deep_copy (def);
  snprintf (in->images, sizeof in->images, "%s/%s", hd.images_dir, in->vm);
  if (mkdir (in->images, 0700) == -1)
    return set_error (err, errlen, "%.1500s: %s", in->images,
                      strerror (errno));
  in->made_images = true;
  vm_run_path (in->vm, NULL, run, sizeof run);
  if (mkdir (run, 0700) == -1 && errno != EEXIST)
    return set_error (err, errlen, "%.1500s: %s", run, strerror (errno));
  src_dir = json_string_value (json_object_get (def, "dir"));
  snprintf (dirpath, dirlen, "%s/dir", in->images);
  if (src_dir) {
    json_object_set_new (in->def, "dir", json_string (dirpath));
    for (const char *const *k = (const char *const[]) { "kernel", "initrd",
                                                        NULL }; *k; ++k)
      if (json_string_value (json_object_get (def, *k)))
        json_object_set_new (in->def, *k, rebase (json_string_value (
                               json_object_get (def, *k)), src_dir, dirpath));
  }
  return 0;
}

json_t *
dest_prepare (struct incoming *in, json_t *msg)
{
  char err[2048], addr[128], dirpath[PATH_MAX + 256];
  char mig_psk[PATH_MAX], key_text[512], ctl[PATH_MAX];
  json_t *ep = NULL, *v;

  /* The message passed peer_check_message; what this host's policy
   * says is checked here. */
  if (dest_listen_host (addr, sizeof addr) == -1) {
    set_error (err, sizeof err, "this host has no peer address");
    goto failed;
  }
  if (adopt_definition (in, json_object_get (msg, "def"),
                        json_object_get (msg, "objects"), dirpath,
                        sizeof dirpath, err, sizeof err) == -1 ||
      make_migration_key (in, mig_psk, sizeof mig_psk, key_text,
                          sizeof key_text, err, sizeof err) == -1 ||
      !(v = prepare_disks (in, addr, mig_psk, err, sizeof err)))
    goto failed;
  ep = json_pack ("{s:o}", "disks", v);
  if (json_string_value (json_object_get (in->def, "dir"))) {
    vm_run_path (in->vm, "share-recv.ctl", ctl, sizeof ctl);
    char *argv[] = {
      (char *) hd.share_bin, (char *) "serve", (char *) "--listen", NULL,
      (char *) "--root", dirpath, (char *) "--psk", mig_psk,
      (char *) "--control", ctl, NULL,
    };
    if (!(v = prepare_listener (in, "share-recv", "share receiver", addr,
                                argv, 3, err, sizeof err)))
      goto failed;
    json_object_set_new (ep, "share", v);
  }
  if (prepare_relay (in, ep, msg, addr, mig_psk, err, sizeof err) == -1)
    goto failed;
  v = json_object_get (ep, "xfer");
  db_journal_detail (in->id, json_pack ("{s:s, s:O, s:s}", "mode", in->mode,
                                        "def", in->def, "images",
                                        in->images));
  db_journal_phase (in->id, "prepared",
                    strncmp (json_string_value (v), "rdma://", 7) != 0
                    ? "exports, share and relay ready (RAM over TCP)"
                    : json_object_get (ep, "xfer_tcp")
                    ? "exports, share and relay ready (RAM over RDMA, or "
                    "TCP should the source fail to set RDMA up)"
                    : "exports, share and relay ready (RAM over RDMA)");
  hd_crash_point ("prepared");
  json_object_set_new (ep, "psk", json_string (key_text));
  json_t *a = dest_answer ("SUCCESS", NULL);
  json_object_set_new (a, "endpoints", ep);
  return a;

 failed:
  json_decref (ep);
  log_error ("migration %s: cannot prepare %s: %s", in->id, in->vm, err);
  return dest_answer ("INSTANTIATION_ERROR", err);
}

json_t *
dest_start_vm (struct incoming *in, bool prewarm)
{
  char err[2048], partial[PATH_MAX + 32];
  const char *dir = json_string_value (json_object_get (in->def, "dir"));

  if (!in->def)
    return dest_answer ("FAILED", "START_VM before MANAGEMENT_STATE");
  snprintf (partial, sizeof partial, "%s.handoff-partial", dir ? dir : "");
  if (vm_start (in->vm, in->def, true, dir ? partial : NULL, err,
                sizeof err) == -1)
    return dest_answer ("INSTANTIATION_ERROR", err);
  /* MIGRATION events tell when the stream started and ended here. */
  json_t *caps = json_pack ("[{s:s, s:b}, {s:s, s:b}, {s:s, s:b}]",
                            "capability", "events", "state", 1,
                            "capability", "return-path", "state", prewarm,
                            "capability", "switchover-ack", "state",
                            prewarm);
  json_t *r = vm_qmp (in->vm, "migrate-set-capabilities",
                      json_pack ("{s:o}", "capabilities", caps), 5000, err,
                      sizeof err);
  if (!r && prewarm)
    /* Without them the source could not hold this destination warm. */
    return dest_answer ("INSTANTIATION_ERROR", err);
  json_decref (r);
  db_journal_phase (in->id, "vm_started", "QEMU waits for the stream");
  hd_crash_point ("vm_started");
  return dest_answer ("SUCCESS", NULL);
}

/* The VM's directory (if it has one) is in its final place: the
 * source's share commit renamed it there. */
static bool
dir_committed (struct incoming *in)
{
  const char *dir = json_string_value (json_object_get (in->def, "dir"));
  struct stat st;

  return !dir || (stat (dir, &st) == 0 && S_ISDIR (st.st_mode));
}

/* The VM comes alive here.  Returns ACK or FAILED. */
/* Wait until QEMU here has loaded the whole stream and the VM's
 * directory is committed: 0, or -1 with the FAILED answer in *FAIL_R. */
static int
await_loaded (struct incoming *in, json_t **fail_r)
{
  char err[1024];
  int64_t until = clock_ms () + hd.io_timeout_ms;

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
      *fail_r = dest_answer ("FAILED", err);
      return -1;
    }
    usleep (10000);
  }
  if (!dir_committed (in)) {
    *fail_r = dest_answer ("FAILED", "the VM directory was not committed "
                           "here");
    return -1;
  }
  return 0;
}

json_t *
dest_load (struct incoming *in)
{
  json_t *fail;

  db_journal_phase (in->id, "loading", "the source has sent everything; "
                    "another destination may win");
  hd_crash_point ("loading");
  if (await_loaded (in, &fail) == -1)
    return fail;
  in->loaded = true;
  db_journal_phase (in->id, "loaded", "loaded and paused: waiting for the "
                    "source to choose");
  hd_crash_point ("loaded");
  json_t *a = dest_answer ("LOADED", NULL);
  json_object_set_new (a, "loaded_at", json_real ((double) wall_ms ()
                                                  / 1000.0));
  return a;
}

/* The VM, its objects and its held events recorded as this host's, in
 * STATE, in one transaction: 0, or -1 (nothing recorded). */
static int
record_here (struct incoming *in, const char *state)
{
  db_begin ();
  if (db_vm_put (in->vm, in->def, state) == -1 ||
      db_objects_replace (in->vm, in->objects) == -1 ||
      events_store_incoming (in->vm, in->events ? in->events
                             : json_array ()) == -1) {
    db_rollback ();
    return -1;
  }
  db_commit ();
  return 0;
}

/* Record the VM as this host's and resume it: past this point it is
 * never deleted here (dest-recover.c). */
static json_t *
take_in (struct incoming *in, bool *resumed_r)
{
  char err[1024];
  double resumed;

  /* Fleet mode: the source moved the VM's ownership here before it
   * said so; a cluster naming another host overrules it. */
  if (!cluster_may_take (in->vm, err, sizeof err))
    return dest_answer ("FAILED", err);
  if (record_here (in, "running") == -1)
    return dest_answer ("FAILED", "cannot record the VM here");
  vm_qmp_forget_events (in->vm);
  json_t *r = vm_qmp (in->vm, "cont", NULL, 10000, err, sizeof err);
  if (!r)
    return dest_answer ("FAILED", err);
  json_decref (r);
  resumed = vm_qmp_wait_event (in->vm, "RESUME", 5000);
  if (resumed == 0)
    resumed = (double) wall_ms () / 1000.0;
  *resumed_r = true;
  db_journal_phase (in->id, "resumed", "the VM runs here");
  hd_crash_point ("resumed");
  json_t *a = dest_answer ("ACK", NULL);
  json_object_set_new (a, "resumed_at", json_real (resumed));
  return a;
}

json_t *
dest_resume (struct incoming *in, bool *resumed_r)
{
  *resumed_r = false;
  db_journal_phase (in->id, "completing", "the source chose this host");
  hd_crash_point ("completing");
  return take_in (in, resumed_r);
}

json_t *
dest_complete (struct incoming *in, bool *resumed_r)
{
  json_t *fail;

  *resumed_r = false;
  db_journal_phase (in->id, "completing", "the source has sent everything");
  hd_crash_point ("completing");
  if (await_loaded (in, &fail) == -1)
    return fail;
  return take_in (in, resumed_r);
}

json_t *
dest_complete_offline (struct incoming *in, bool *taken_r)
{
  *taken_r = false;
  db_journal_phase (in->id, "completing", "the source has sent every disk "
                    "and file (offline)");
  hd_crash_point ("completing");
  /* The source completed the disks and committed the share before it
   * asked: the committed directory is the proof of the files. */
  if (!dir_committed (in))
    return dest_answer ("FAILED", "the VM directory was not committed here");
  if (record_here (in, "stopped") == -1)
    return dest_answer ("FAILED", "cannot record the VM here");
  *taken_r = true;
  /* "resumed": past the point of no return, as for a live VM (the
   * source releases its copy once it hears it). */
  db_journal_phase (in->id, "resumed", "taken in, stopped (offline)");
  hd_crash_point ("resumed");
  return dest_answer ("ACK", NULL);
}

/* After the ACK: what does not touch the downtime.  RUNNING: the VM's
 * QEMU runs (else it died after the VM was taken in: the VM stays
 * here, stopped). */
void
dest_settle_in (struct incoming *in, bool running)
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
  bool offline = strcmp (in->mode, "offline") == 0;
  db_journal_end (in->id, "done", running ? "running here"
                  : offline ? "here, stopped (offline)"
                  : "taken in; its QEMU died here: kept, stopped (crashed)");
  events_deliver_queued (in->vm);
  events_post_migrated (in->vm, in->source, in->id);
  log_info ("migration %s: VM %s %s here", in->id, in->vm,
            offline ? "is" : "runs");
}

void
dest_cascade (struct incoming *in)
{
  json_t *c = in->cascade;
  char err[2048];
  int rc;

  if (!c)
    return;
  /* peer_check_message saw its fields; the rest are the defaults. */
  json_t *req = json_pack ("{s:s, s:s, s:O, s:b, s:b}", "op", "migrate",
                           "vm", in->vm, "to", json_object_get (c, "to"),
                           "prewarm", json_is_true (json_object_get (
                                                      c, "prewarm")),
                           "follow", 0);
  for (const char *const *k = (const char *const[]) { "max_downtime_ms",
                                                      "warm_exit", NULL };
       req && *k; ++k)
    if (json_object_get (c, *k))
      json_object_set (req, *k, json_object_get (c, *k));
  struct migration *m = req ? migration_start (req, err, sizeof err, &rc)
    : NULL;
  if (m) {
    log_info ("migration %s: VM %s goes on to %s (--cascade): migration %s",
              in->id, in->vm, json_string_value (json_object_get (c, "to")),
              m->id);
    record_put (m);
  }
  else
    log_error ("migration %s: VM %s runs here, but cannot go on to %s "
               "(--cascade): %s", in->id, in->vm,
               json_string_value (json_object_get (c, "to")),
               req ? err : "out of memory");
  json_decref (req);
}
