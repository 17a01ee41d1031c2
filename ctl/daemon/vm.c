/* handoffd: the QEMU driver.  See vm.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "channel.h"
#include "cleanup.h"
#include "cluster.h"
#include "config.h"
#include "def-check.h"
#include "errors.h"
#include "hostid.h"
#include "jsonutil.h"
#include "log.h"
#include "nbd-tls.h"
#include "names.h"
#include "proc.h"
#include "uri.h"
#include "util.h"
#include "vm.h"

#define MAX_DISKS DEF_MAX_DISKS
#define NAME_MAX_LEN 64

void
vm_run_path (const char *name, const char *leaf, char *buf, size_t len)
{
  snprintf (buf, len, "%s/%s%s%s", hd.run_dir, name, leaf ? "/" : "",
            leaf ? leaf : "");
}

void
vm_log_tail (const char *name, const char *leaf, int lines, char *buf,
             size_t len)
{
  char log[PATH_MAX];

  vm_run_path (name, leaf, log, sizeof log);
  proc_log_tail (log, lines, buf, len);
}

static const char *
def_str (json_t *def, const char *key)
{
  return json_string_value (json_object_get (def, key));
}

/* A boot file for QEMU.  One inside the VM's directory is opened
 * here, beneath that directory (through the share's mount, or DIR_NOW
 * while a share is still partial), and handed to QEMU as descriptor
 * TARGET_FD: a symlink in the directory - which may have come from
 * another host - cannot point QEMU at a file of this host.  Others
 * (the operator's, or the policy's boot_dirs) are passed by name.
 * *FD_R is the descriptor to hand over, or -1. */
static int
boot_file (const char *name, json_t *def, const char *file,
           const char *dir_now, int target_fd, int *fd_r, char *buf,
           size_t len, char *err, size_t errlen)
{
  const char *dir = def_str (def, "dir");
  char root[PATH_MAX];

  *fd_r = -1;
  if (!dir || !path_is_beneath (file, dir)) {
    snprintf (buf, len, "%s", file);
    return 0;
  }
  if (dir_now)
    snprintf (root, sizeof root, "%s", dir_now);
  else
    vm_run_path (name, "dir", root, sizeof root);
  CLEANUP_CLOSE int rootfd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd == -1) {
    snprintf (err, errlen, "%s: %s", root, strerror (errno));
    return -1;
  }
  *fd_r = open_beneath (rootfd, file + strlen (dir) + 1, O_RDONLY, 0, 0);
  if (*fd_r == -1) {
    snprintf (err, errlen, "%s: %s", file, errno == EXDEV || errno == ELOOP
              ? "leads outside the VM's directory" : strerror (errno));
    return -1;
  }
  snprintf (buf, len, "/dev/fd/%d", target_fd);
  return 0;
}

void
vm_nbdkit_env (char *env[3], char *preload, size_t len)
{
  size_t n = 0;

  if (hd.nbdkit_preload) {
    snprintf (preload, len, "LD_PRELOAD=%s", hd.nbdkit_preload);
    env[n++] = preload;
  }
  if (nbd_tls_env ())
    env[n++] = (char *) nbd_tls_env ();
  env[n] = NULL;
}

int
vm_start_disk (const char *name, size_t i, const char *path, char *err,
               size_t errlen)
{
  char sock[PATH_MAX], ctl[PATH_MAX], pid[PATH_MAX], log[PATH_MAX];
  char leaf[32], ctlarg[PATH_MAX + 16], pskarg[PATH_MAX + 16];
  char filterarg[PATH_MAX + 16], timeoutarg[64];
  char preload[PATH_MAX + 16];
  pid_t p;

  snprintf (leaf, sizeof leaf, "disk%zu.sock", i);
  vm_run_path (name, leaf, sock, sizeof sock);
  snprintf (leaf, sizeof leaf, "disk%zu.ctl", i);
  vm_run_path (name, leaf, ctl, sizeof ctl);
  snprintf (leaf, sizeof leaf, "disk%zu.pid", i);
  vm_run_path (name, leaf, pid, sizeof pid);
  snprintf (leaf, sizeof leaf, "disk%zu.log", i);
  vm_run_path (name, leaf, log, sizeof log);
  snprintf (ctlarg, sizeof ctlarg, "mirror-control=%s", ctl);
  snprintf (pskarg, sizeof pskarg, "mirror-tls-psk=%s", hd.psk);
  snprintf (filterarg, sizeof filterarg, "--filter=%s", hd.filter);
  snprintf (timeoutarg, sizeof timeoutarg, "mirror-dest-timeout=%dms",
            hd.io_timeout_ms);
  char *argv[] = {
    (char *) "/usr/sbin/nbdkit", (char *) "-f", (char *) "-U", sock,
    filterarg, (char *) "file", (char *) path, ctlarg, pskarg, timeoutarg,
    NULL,
  };
  char *env[3];
  vm_nbdkit_env (env, preload, sizeof preload);
  if (access (argv[0], X_OK) == -1)
    argv[0] = (char *) "/usr/bin/nbdkit";
  /* A dead run's nbdkit and its sockets (nbdkit leaves them behind):
   * the paths waited for below must be this one's. */
  proc_stop (pid, "nbdkit", 5000);
  unlink (sock);
  unlink (ctl);
  /* One nbdkit per migration: the last one's log is kept beside, and
   * a failure to start quotes this one's words only. */
  char prev[PATH_MAX + 8];
  snprintf (prev, sizeof prev, "%s.prev", log);
  rename (log, prev);
  p = proc_spawn (argv, env, log, pid, err, errlen);
  if (p < 0)
    return -1;
  if (proc_wait_socket (ctl, p, 20000) == -1 ||
      proc_wait_socket (sock, p, 5000) == -1) {
    char tail[512];
    proc_log_tail (log, 3, tail, sizeof tail);
    snprintf (err, errlen, "nbdkit for disk %zu did not start: %s", i, tail);
    return -1;
  }
  return 0;
}

static void unmount_share (const char *name);

int
vm_mount_share (const char *name, json_t *def, char *err, size_t errlen)
{
  char mnt[PATH_MAX], ctl[PATH_MAX], pid[PATH_MAX], log[PATH_MAX];
  const char *dir = def_str (def, "dir");
  pid_t p;

  if (!dir)
    return 0;
  vm_run_path (name, "dir", mnt, sizeof mnt);
  vm_run_path (name, "share.ctl", ctl, sizeof ctl);
  vm_run_path (name, "share.pid", pid, sizeof pid);
  vm_run_path (name, "share.log", log, sizeof log);
  /* A share of a dead run: its process, its dead mount, its socket. */
  vm_stop_helpers (name, "share");
  unmount_share (name);
  unlink (ctl);
  if (mkdir (mnt, 0700) == -1 && errno != EEXIST) {
    snprintf (err, errlen, "%s: %s", mnt, strerror (errno));
    return -1;
  }
  /* A receiver silent for an I/O timeout is lost, as a mirror's
   * destination is. */
  char timeout[32];
  snprintf (timeout, sizeof timeout, "%dms", hd.io_timeout_ms);
  char *argv[] = {
    (char *) hd.share_bin, (char *) "mount", (char *) dir, mnt,
    (char *) "--control", ctl, (char *) "--timeout", timeout, NULL,
  };
  p = proc_spawn (argv, NULL, log, pid, err, errlen);
  if (p < 0)
    return -1;
  if (proc_wait_socket (ctl, p, 20000) == -1) {
    char tail[512];
    proc_log_tail (log, 3, tail, sizeof tail);
    snprintf (err, errlen, "the share over %s did not start: %s", dir, tail);
    return -1;
  }
  return 0;
}

/* A command line being built: every argument owned (freed by
 * args_free). */
struct args {
  char *v[64 + 4 * MAX_DISKS];
  size_t n;
  bool oom;
};

static void __attribute__ ((format (printf, 2, 3)))
add (struct args *a, const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;

  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) == -1)
    s = NULL;
  va_end (ap);
  if (!s || a->n + 1 >= sizeof a->v / sizeof a->v[0]) {
    free (s);
    a->oom = true;
    return;
  }
  a->v[a->n++] = s;
  a->v[a->n] = NULL;
}

static void
args_free (struct args *a)
{
  for (size_t i = 0; i < a->n; ++i)
    free (a->v[i]);
  a->n = 0;
}

/* -kernel, -initrd, -append: the boot files' descriptors into KEEP
 * (*NKEEP of them), handed to QEMU as 4, 5. */
static int
boot_args (struct args *a, const char *name, json_t *def, const char *dir_now,
           int keep[2], size_t *nkeep, char *err, size_t errlen)
{
  for (const char *const *k = (const char *const[]) { "kernel", "initrd",
                                                      NULL }; *k; ++k) {
    char path[PATH_MAX];
    const char *file = def_str (def, *k);
    if (!file || !def_str (def, "kernel"))
      continue;
    if (boot_file (name, def, file, dir_now, 4 + (int) *nkeep, &keep[*nkeep],
                   path, sizeof path, err, errlen) == -1)
      return -1;
    if (keep[*nkeep] >= 0)
      (*nkeep)++;
    add (a, "-%s", *k);
    add (a, "%s", path);
  }
  if (def_str (def, "kernel") && def_str (def, "append")) {
    add (a, "-append");
    add (a, "%s", def_str (def, "append"));
  }
  return 0;
}

json_t *
vm_disk_nbd_node (const char *name, size_t i, const char *node)
{
  char leaf[32], sock[PATH_MAX];

  snprintf (leaf, sizeof leaf, "disk%zu.sock", i);
  vm_run_path (name, leaf, sock, sizeof sock);
  return json_pack ("{s:s, s:s, s:{s:s, s:s}}", "driver", "nbd", "node-name",
                    node, "server", "type", "unix", "path", sock);
}

/* -blockdev for disk I (QEMU's node "diskI", what its device uses): a
 * raw node over the image through QEMU's own file driver (node
 * "fileI"; vm-disks.c puts the mirror under it for a migration), or,
 * with --disk-path nbd, over the mirror's nbdkit always.  In JSON: an
 * image's path may hold the commas of QEMU's key=value syntax. */
static int
disk_args (struct args *a, const char *name, size_t i, const char *path,
           char *err, size_t errlen)
{
  char fnode[32], dnode[32];
  json_t *proto;
  struct stat st;

  snprintf (fnode, sizeof fnode, "file%zu", i);
  snprintf (dnode, sizeof dnode, "disk%zu", i);
  if (hd.disk_path_nbd)
    proto = vm_disk_nbd_node (name, i, fnode);
  else
    /* A SAN volume is a block device: QEMU's host_device driver. */
    proto = json_pack ("{s:s, s:s, s:s}", "driver",
                       stat (path, &st) == 0 && S_ISBLK (st.st_mode)
                       ? "host_device" : "file", "filename", path,
                       "node-name", fnode);
  json_t *fmt = json_pack ("{s:s, s:s, s:s}", "driver", "raw", "file", fnode,
                           "node-name", dnode);
  char *p = proto ? json_dumps (proto, JSON_COMPACT) : NULL;
  char *f = fmt ? json_dumps (fmt, JSON_COMPACT) : NULL;
  json_decref (proto);
  json_decref (fmt);
  if (p && f) {
    add (a, "-blockdev");
    add (a, "%s", p);
    add (a, "-blockdev");
    add (a, "%s", f);
  }
  free (p);
  free (f);
  if (!p || !f)
    return set_error (err, errlen, "QEMU's command line: out of memory");
  return 0;
}

/* QEMU's command line for VM NAME. */
static int
qemu_args (struct args *a, const char *name, json_t *def, bool incoming,
           const char *dir_now, int keep[2], size_t *nkeep, char *err,
           size_t errlen)
{
  char path[PATH_MAX], uri[PATH_MAX + 8];
  json_t *d;
  size_t i;

  add (a, "%s", hd.qemu);
  add (a, "-name");
  add (a, "%s", name);
  add (a, "-nodefaults");
  add (a, "-no-user-config");
  add (a, "-display");
  add (a, "none");
  add (a, "-accel");
  add (a, "%s", hd_accel (NULL));
  add (a, "-m");
  add (a, "%" JSON_INTEGER_FORMAT "M",
       json_integer_value (json_object_get (def, "memory")));
  add (a, "-smp");
  add (a, "%" JSON_INTEGER_FORMAT,
       json_integer_value (json_object_get (def, "vcpus")));
  vm_run_path (name, "qmp.sock", path, sizeof path);
  add (a, "-qmp");
  add (a, "unix:%s,server=on,wait=off", path);
  vm_run_path (name, "serial.log", path, sizeof path);
  add (a, "-chardev");
  add (a, "file,id=serial0,path=%s,append=on", path);
  add (a, "-serial");
  add (a, "chardev:serial0");
  if (boot_args (a, name, def, dir_now, keep, nkeep, err, errlen) == -1)
    return -1;
  json_array_foreach (json_object_get (def, "disks"), i, d) {
    if (disk_args (a, name, i, def_str (d, "path"), err, errlen) == -1)
      return -1;
    add (a, "-device");
    add (a, "virtio-blk-pci,drive=disk%zu,id=vd%zu", i, i);
  }
  /* The host component ID, for migration-safe scans in the guest. */
  if (hd.host_id[0]) {
    add (a, "-fw_cfg");
    add (a, "name=%s,string=%s", HOSTID_FWCFG_ID, hd.host_id);
    add (a, "-fw_cfg");
    add (a, "name=%s,string=%s", HOSTID_FWCFG_INFO, hd.host_info);
  }
  if (incoming) {
    vm_run_path (name, "incoming.sock", path, sizeof path);
    add (a, "-S");
    add (a, "-incoming");
    add (a, "%s", uri_unix (path, uri, sizeof uri));
  }
  if (a->oom)
    return set_error (err, errlen, "QEMU's command line: out of memory");
  return 0;
}

/* Wait for PATH, which QEMU (P) makes; -1 with err naming WHAT and
 * QEMU's last words. */
static int
qemu_wait_socket (const char *name, const char *path, pid_t p,
                const char *what, char *err, size_t errlen)
{
  char log[PATH_MAX], tail[512];

  if (proc_wait_socket (path, p, 30000) == 0)
    return 0;
  vm_run_path (name, "qemu.log", log, sizeof log);
  proc_log_tail (log, 3, tail, sizeof tail);
  return set_error (err, errlen, "%s: %s", what, tail[0] ? tail
                    : "no message");
}

static int
start_qemu (const char *name, json_t *def, bool incoming,
            const char *dir_now, char *err, size_t errlen)
{
  char qmp[PATH_MAX], sock[PATH_MAX], pid[PATH_MAX], log[PATH_MAX];
  struct args a = { .n = 0 };
  size_t nkeep = 0;
  int keep[2] = { -1, -1 }, rv = -1;
  pid_t p;

  vm_run_path (name, "qmp.sock", qmp, sizeof qmp);
  vm_run_path (name, "incoming.sock", sock, sizeof sock);
  vm_run_path (name, "qemu.pid", pid, sizeof pid);
  vm_run_path (name, "qemu.log", log, sizeof log);
  if (qemu_args (&a, name, def, incoming, dir_now, keep, &nkeep, err,
                 errlen) == -1)
    goto out;
  /* "Started" means QEMU made these itself and answers on them: a
   * dead run's sockets must not count. */
  unlink (qmp);
  if (incoming)
    unlink (sock);
  p = proc_spawn_fds (a.v, NULL, log, pid, keep, nkeep, err, errlen);
  if (p < 0 ||
      qemu_wait_socket (name, qmp, p, "QEMU did not start", err,
                        errlen) == -1 ||
      /* QEMU opens its monitor before it listens for the stream. */
      (incoming && qemu_wait_socket (name, sock, p, "QEMU does not listen for "
                                   "the stream", err, errlen) == -1))
    goto out;
  /* QMP answers once the machine is built, its disks connected: a
   * QEMU that cannot reach a disk has exited by then. */
  {
    char e2[512], tail[512];
    json_t *r = vm_qmp (name, "query-status", NULL, 30000, e2, sizeof e2);
    if (!r) {
      proc_log_tail (log, 3, tail, sizeof tail);
      set_error (err, errlen, "QEMU did not come up: %s", tail[0] ? tail : e2);
      goto out;
    }
    json_decref (r);
  }
  rv = 0;
 out:
  for (size_t k = 0; k < nkeep; ++k)
    close (keep[k]);
  args_free (&a);
  return rv;
}

/* The VM's disk servers (if DISKS_TOO: --disk-path nbd, or a stopped
 * VM's offline copy) and the share over its directory (unless DIR_NOW:
 * a directory still being received). */
static int
start_storage (const char *name, json_t *def, bool incoming, bool disks_too,
               const char *dir_now, char *err, size_t errlen)
{
  char run[PATH_MAX];
  json_t *disks = json_object_get (def, "disks"), *d;
  size_t i;

  vm_run_path (name, NULL, run, sizeof run);
  if (mkdir_p (run, 0700) == -1) {
    snprintf (err, errlen, "%s: %s", run, strerror (errno));
    return -1;
  }
  /* What a dead run left (handoffd, QEMU or the host died) is nobody's
   * now; a migration's own exports and relay are left alone. */
  if (!incoming) {
    vm_stop_helpers (name, "relay");
    vm_stop_helpers (name, "export");
  }
  /* Disks on QEMU's file driver: a dead run's disk servers go. */
  if (!disks_too)
    vm_stop_helpers (name, "disk");
  json_array_foreach (disks, i, d) {
    if (disks_too &&
        vm_start_disk (name, i, def_str (d, "path"), err, errlen) == -1)
      return -1;
  }
  if (!dir_now && vm_mount_share (name, def, err, errlen) == -1)
    return -1;
  return 0;
}

int
vm_start_storage (const char *name, json_t *def, char *err, size_t errlen)
{
  if (start_storage (name, def, false, true, NULL, err, errlen) == 0)
    return 0;
  log_error ("VM %s: %s", name, err);
  vm_stop (name);
  return -1;
}

int
vm_start (const char *name, json_t *def, bool incoming, const char *dir_now,
          char *err, size_t errlen)
{
  /* Fleet mode: a VM runs only where the cluster says it belongs.  An
   * incoming QEMU runs nothing until the source, which moves the
   * ownership first, says so. */
  if (!incoming && cluster_claim_vm (name, err, errlen) == -1) {
    log_error ("VM %s: %s", name, err);
    return -1;
  }
  if (start_storage (name, def, incoming, hd.disk_path_nbd, dir_now, err,
                     errlen) == -1)
    goto fail;
  if (start_qemu (name, def, incoming, dir_now, err, errlen) == -1)
    goto fail;
  return 0;

 fail:
  log_error ("VM %s: %s", name, err);
  /* The logs stay in run/NAME for whoever reports the failure. */
  vm_stop_processes (name);
  return -1;
}

/* ------------------------------------------------------------------ */
/* QMP connections, one per VM, made on first use. */

struct qmp_slot {
  char name[NAME_MAX_LEN + 1];
  struct qmp *q;
};

static pthread_mutex_t qmp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct qmp_slot slots[64];

static struct qmp *
get_qmp (const char *name, char *err, size_t errlen)
{
  struct qmp *q = NULL;
  char path[PATH_MAX];

  pthread_mutex_lock (&qmp_lock);
  for (size_t i = 0; i < 64; ++i)
    if (slots[i].q && strcmp (slots[i].name, name) == 0) {
      q = slots[i].q;
      break;
    }
  if (!q) {
    vm_run_path (name, "qmp.sock", path, sizeof path);
    q = qmp_connect (path, 5000, err, errlen);
    for (size_t i = 0; q && i < 64; ++i)
      if (!slots[i].q) {
        snprintf (slots[i].name, sizeof slots[i].name, "%s", name);
        slots[i].q = q;
        break;
      }
  }
  pthread_mutex_unlock (&qmp_lock);
  return q;
}

void
vm_qmp_drop (const char *name)
{
  pthread_mutex_lock (&qmp_lock);
  for (size_t i = 0; i < 64; ++i)
    if (slots[i].q && strcmp (slots[i].name, name) == 0) {
      qmp_close (slots[i].q);
      slots[i].q = NULL;
    }
  pthread_mutex_unlock (&qmp_lock);
}

json_t *
vm_qmp (const char *name, const char *cmd, json_t *args, int timeout_ms,
        char *err, size_t errlen)
{
  struct qmp *q = get_qmp (name, err, errlen);
  json_t *r;

  if (!q) {
    json_decref (args);
    return NULL;
  }
  r = qmp_exec (q, cmd, args, timeout_ms, err, errlen);
  /* A transport failure (not QEMU's error): reconnect next time. */
  if (!r && (strstr (err, "no reply") || strstr (err, "reset") ||
             strstr (err, "Broken pipe")))
    vm_qmp_drop (name);
  return r;
}

double
vm_qmp_event_time (const char *name, const char *event)
{
  char err[256];
  struct qmp *q = get_qmp (name, err, sizeof err);
  return q ? qmp_event_time (q, event) : 0;
}

double
vm_qmp_wait_event (const char *name, const char *event, int timeout_ms)
{
  char err[256];
  struct qmp *q = get_qmp (name, err, sizeof err);
  return q ? qmp_wait_event (q, event, timeout_ms) : 0;
}

void
vm_qmp_forget_events (const char *name)
{
  char err[256];
  struct qmp *q = get_qmp (name, err, sizeof err);
  if (q)
    qmp_forget_events (q);
}

bool
vm_qemu_alive (const char *name)
{
  char pid[PATH_MAX];
  vm_run_path (name, "qemu.pid", pid, sizeof pid);
  return proc_alive (pid, "qemu") > 0;
}

void
vm_run_state (const char *name, char *buf, size_t len)
{
  char err[256];
  json_t *r;

  if (!vm_qemu_alive (name)) {
    snprintf (buf, len, "stopped");
    return;
  }
  r = vm_qmp (name, "query-status", NULL, 5000, err, sizeof err);
  snprintf (buf, len, "%s", r ? json_string_value (json_object_get (r,
                                                                    "status"))
            : "unresponsive");
  json_decref (r);
}

/* ------------------------------------------------------------------ */
/* Stopping */

static const char *
match_for (const char *pidfile_leaf)
{
  if (strncmp (pidfile_leaf, "qemu", 4) == 0)
    return "qemu";
  if (strncmp (pidfile_leaf, "disk", 4) == 0 ||
      strncmp (pidfile_leaf, "export", 6) == 0)
    return "nbdkit";
  if (strncmp (pidfile_leaf, "share", 5) == 0)
    return "handoff-share";
  if (strncmp (pidfile_leaf, "relay", 5) == 0)
    return "handoff-xfer";
  return NULL;
}

void
vm_stop_helpers (const char *name, const char *prefix)
{
  char run[PATH_MAX];
  DIR *d;
  struct dirent *de;

  vm_run_path (name, NULL, run, sizeof run);
  d = opendir (run);
  if (!d)
    return;
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL) {
    size_t n = strlen (de->d_name);
    char pid[PATH_MAX + 256];
    if (n < 5 || strcmp (de->d_name + n - 4, ".pid") != 0 ||
        strncmp (de->d_name, prefix, strlen (prefix)) != 0)
      continue;
    snprintf (pid, sizeof pid, "%s/%s", run, de->d_name);
    proc_stop (pid, match_for (de->d_name), 5000);
  }
  closedir (d);
}

void
vm_save_logs (const char *name, const char *tag)
{
  char run[PATH_MAX], dest[PATH_MAX + 128];
  DIR *d;
  struct dirent *de;

  vm_run_path (name, NULL, run, sizeof run);
  snprintf (dest, sizeof dest, "%s/logs/%s", hd.state_dir, tag);
  d = opendir (run);
  if (!d || mkdir_p (dest, 0700) == -1) {
    if (d)
      closedir (d);
    return;
  }
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL) {
    size_t n = strlen (de->d_name);
    if (n < 5 || strcmp (de->d_name + n - 4, ".log") != 0)
      continue;
    char from[PATH_MAX + 256], to[PATH_MAX * 2];
    snprintf (from, sizeof from, "%s/%s", run, de->d_name);
    snprintf (to, sizeof to, "%s/%s", dest, de->d_name);
    char *argv[] = { (char *) "cp", from, to, NULL };
    proc_run (argv, NULL, 0, 10000);
  }
  closedir (d);
}

/* The share's mount goes with its process; a killed one leaves the
 * mount behind (reads fail with ENOTCONN): detach it. */
static void
unmount_share (const char *name)
{
  char mnt[PATH_MAX];

  vm_run_path (name, "dir", mnt, sizeof mnt);
  if (umount2 (mnt, MNT_DETACH) == -1 && errno != EINVAL && errno != ENOENT)
    log_warn ("unmount %s: %m", mnt);
}

void
vm_stop_processes (const char *name)
{
  char pid[PATH_MAX], err[256];
  pid_t p;

  vm_run_path (name, "qemu.pid", pid, sizeof pid);
  p = proc_alive (pid, "qemu");
  if (p > 0) {
    json_t *r = vm_qmp (name, "quit", NULL, 3000, err, sizeof err);
    json_decref (r);
    if (proc_wait_gone (p, 5000) == -1)
      proc_stop (pid, "qemu", 3000);
  }
  unlink (pid);
  vm_qmp_drop (name);
  /* Helpers after QEMU: it flushes its disks as it quits. */
  vm_stop_helpers (name, "relay");
  vm_stop_helpers (name, "export");
  vm_stop_helpers (name, "disk");
  vm_stop_helpers (name, "share");
  unmount_share (name);
}

void
vm_stop (const char *name)
{
  char run[PATH_MAX], err[1024];

  vm_stop_processes (name);
  vm_run_path (name, NULL, run, sizeof run);
  if (remove_beneath (hd.run_dir, run, err, sizeof err) == -1)
    log_warn ("VM %s: %s", name, err);
}

/* ------------------------------------------------------------------ */

json_t *
vm_helper_call (const char *name, const char *sock, int service, json_t *req,
                int timeout_ms, char *err, size_t errlen)
{
  char path[PATH_MAX];

  vm_run_path (name, sock, path, sizeof path);
  return helper_call (path, service, req, timeout_ms, err, errlen);
}

json_t *
helper_call (const char *path, int service, json_t *req, int timeout_ms,
             char *err, size_t errlen)
{
  char uri[PATH_MAX + 8];
  struct chan_config cfg = {
    .service = (enum chan_service) service, .version_min = 1,
    .version_max = 1, .timeout_ms = 10000,
  };
  struct channel *c;
  json_t *r;

  uri_unix (path, uri, sizeof uri);
  c = chan_connect (uri, &cfg);
  if (!c) {
    snprintf (err, errlen, "%s: cannot connect", path);
    json_decref (req);
    return NULL;
  }
  r = chan_call (c, req, timeout_ms, err, errlen);
  chan_close (c);
  return r;
}

unsigned long long
vm_disks_allocated_bytes (json_t *def)
{
  json_t *disks = json_object_get (def, "disks"), *d;
  unsigned long long total = 0;
  size_t i;

  json_array_foreach (disks, i, d) {
    struct stat st;
    if (stat (def_str (d, "path"), &st) == 0)
      total += (unsigned long long) st.st_blocks * 512;
  }
  return total;
}

unsigned long long
vm_allocated_bytes (json_t *def)
{
  unsigned long long total = vm_disks_allocated_bytes (def);
  const char *dir = def_str (def, "dir");

  if (dir) {
    char out[256];
    char *argv[] = { (char *) "du", (char *) "-sB1", (char *) dir, NULL };
    if (proc_run (argv, out, sizeof out, 30000) == 0)
      total += strtoull (out, NULL, 10);
  }
  return total;
}

/* ------------------------------------------------------------------ */
/* Claims: one operation changes a VM at a time. */

struct busy {
  char vm[65];
  char what[32];
};

static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static struct busy busy[64];    /* busy_lock */

int
vm_claim (const char *vm, const char *what, char *err, size_t errlen)
{
  struct busy *slot = NULL;

  pthread_mutex_lock (&busy_lock);
  for (size_t i = 0; i < 64; ++i) {
    if (busy[i].vm[0] && strcmp (busy[i].vm, vm) == 0) {
      snprintf (err, errlen, "VM %s is busy (%s)", vm, busy[i].what);
      pthread_mutex_unlock (&busy_lock);
      return -1;
    }
    if (!busy[i].vm[0] && !slot)
      slot = &busy[i];
  }
  if (!slot) {
    snprintf (err, errlen, "too many operations at once");
    pthread_mutex_unlock (&busy_lock);
    return -1;
  }
  snprintf (slot->vm, sizeof slot->vm, "%s", vm);
  snprintf (slot->what, sizeof slot->what, "%s", what);
  pthread_mutex_unlock (&busy_lock);
  return 0;
}

void
vm_release (const char *vm)
{
  pthread_mutex_lock (&busy_lock);
  for (size_t i = 0; i < 64; ++i)
    if (busy[i].vm[0] && strcmp (busy[i].vm, vm) == 0)
      memset (&busy[i], 0, sizeof busy[i]);
  pthread_mutex_unlock (&busy_lock);
}
