/* handoffd: this host serving another host's disks to its destinations
 * (proxy-disks.h; handoff migrate --via).
 *
 * Without a proxy the source's mirror sends every disk once per
 * destination.  With one, the source's mirror has a single destination,
 * an export on this host, and this host's mirror has the real ones: the
 * source's uplink carries each disk once.
 *
 * The export is a scratch image (sparse, in the relay's directory)
 * behind the mirror filter, whose session starts before the source
 * sends anything: its first copy pass finds nothing but holes and is
 * over at once, so from then on every write that reaches the export -
 * the source's copy and the guest's mirrored writes alike - goes on to
 * every destination before the source's mirror is told it is done.
 * Should a write arrive while that pass still runs, the filter's own
 * rule holds: a region not yet copied is copied later, with what the
 * write left there.  So a destination holds what the source's mirror
 * counted as copied once both legs say ready, and a flush that reaches
 * this host's export reaches every destination (the filter flushes
 * them before answering).
 *
 * The price is the scratch image: this host holds a copy of the disks
 * while the migration runs, on its state directory's filesystem, and
 * removes it with the relay's directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "channel-proto.h"
#include "config.h"
#include "def-check.h"
#include "errors.h"
#include "jsonutil.h"
#include "log.h"
#include "proc.h"
#include "proxy-disks.h"
#include "proxy-helper.h"
#include "vm.h"

static void
disk_path (const char *dir, size_t k, const char *ext, char *buf, size_t len)
{
  snprintf (buf, len, "%s/d%zu.%s", dir, k, ext);
}

/* Destination J's export of disk K as this host's mirror reaches it:
 * the address it was sent, with the key file of J written by proxy.c. */
static void
dest_disk_uri (const char *dir, json_t *to, size_t j, size_t k, char *buf,
               size_t len)
{
  snprintf (buf, len, "%.400s?tls-psk-file=%s/dest%zu.psk",
            json_string_value (json_array_get (json_object_get (
              json_array_get (to, j), "disks"), k)), dir, j);
}

/* nbdkit serving DIR's scratch image of disk K (SIZE bytes) on ADDR:
 * its port, or -1 (err). */
static int
serve_disk (const char *dir, size_t k, json_int_t size, const char *addr,
            const char *in_psk, char *err, size_t errlen)
{
  char img[PATH_MAX], ctl[PATH_MAX], pid[PATH_MAX], log[PATH_MAX];
  char ctlarg[PATH_MAX + 16], pskarg[PATH_MAX + 16], hdpsk[PATH_MAX + 16];
  char filterarg[PATH_MAX + 16], timeoutarg[64], portarg[16], what[48];
  int fd;

  disk_path (dir, k, "img", img, sizeof img);
  disk_path (dir, k, "ctl", ctl, sizeof ctl);
  disk_path (dir, k, "pid", pid, sizeof pid);
  disk_path (dir, k, "log", log, sizeof log);
  fd = open (img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1 || ftruncate (fd, (off_t) size) == -1) {
    set_error (err, errlen, "%s: %s", img, strerror (errno));
    if (fd >= 0)
      close (fd);
    return -1;
  }
  close (fd);
  snprintf (ctlarg, sizeof ctlarg, "mirror-control=%s", ctl);
  snprintf (pskarg, sizeof pskarg, "--tls-psk=%s", in_psk);
  snprintf (hdpsk, sizeof hdpsk, "mirror-tls-psk=%s", hd.psk);
  snprintf (filterarg, sizeof filterarg, "--filter=%s", hd.filter);
  snprintf (timeoutarg, sizeof timeoutarg, "mirror-dest-timeout=%dms",
            hd.io_timeout_ms);
  snprintf (what, sizeof what, "the export of disk %zu", k);
  char *argv[] = {
    (char *) "/usr/sbin/nbdkit", (char *) "-f", (char *) "-i",
    (char *) addr, (char *) "-p", portarg, (char *) "--tls=require",
    pskarg, filterarg, (char *) "file", img, ctlarg, hdpsk, timeoutarg,
    NULL,
  };
  char *env[3], preload[PATH_MAX + 16];
  if (access (argv[0], X_OK) == -1)
    argv[0] = (char *) "/usr/bin/nbdkit";
  vm_nbdkit_env (env, preload, sizeof preload);
  struct proxy_helper h = {
    .argv = argv, .portarg = portarg, .portlen = sizeof portarg,
    .env = env, .addr = addr, .ctl = ctl, .pid = pid, .log = log,
    .match = "nbdkit", .what = what,
  };
  return proxy_spawn (&h, err, errlen);
}

/* Start disk K's mirror in DIR to every destination of TO. */
static int
mirror_start (const char *dir, json_t *to, size_t k, char *err, size_t errlen)
{
  char ctl[PATH_MAX], uri[PATH_MAX + 512];
  json_t *uris = json_array (), *r;

  for (size_t j = 0; j < json_array_size (to); ++j) {
    dest_disk_uri (dir, to, j, k, uri, sizeof uri);
    json_array_append_new (uris, json_string (uri));
  }
  disk_path (dir, k, "ctl", ctl, sizeof ctl);
  r = helper_call (ctl, CHAN_SERVICE_MIRROR,
                   json_pack ("{s:s, s:o, s:s}", "op", "start",
                              "destinations", uris, "mode", "active"),
                   hd.io_timeout_ms * 2, err, errlen);
  json_decref (r);
  return r ? 0 : -1;
}

json_t *
proxy_disks_start (const char *dir, json_t *req, const char *addr,
                   const char *in_psk, char *err, size_t errlen)
{
  json_t *sizes = json_object_get (req, "disks"), *size;
  json_t *to = json_object_get (req, "to");
  json_t *exports = json_array ();
  size_t k;

  json_array_foreach (sizes, k, size) {
    char e2[1024], u[160];
    int port = serve_disk (dir, k, json_integer_value (size), addr, in_psk,
                           e2, sizeof e2);
    if (port < 0 || mirror_start (dir, to, k, e2, sizeof e2) == -1) {
      set_error (err, errlen, "disk %zu: %s", k, e2);
      json_decref (exports);
      return NULL;
    }
    snprintf (u, sizeof u, "nbds://%s:%d/", addr, port);
    json_array_append_new (exports, json_string (u));
  }
  return exports;
}

static json_t *
failed (const char *why)
{
  return json_pack ("{s:s, s:s}", "type", "FAILED", "reason", why);
}

json_t *
proxy_disks_call (const char *dir, json_t *to, size_t ndisks, json_t *msg)
{
  const char *op = json_string_value (json_object_get (msg, "op"));
  json_int_t k = json_integer_value (json_object_get (msg, "disk"));
  char ctl[PATH_MAX], err[1024], uri[PATH_MAX + 512];
  json_t *req, *reply;
  json_int_t wait_ms = hd.io_timeout_ms;

  if (k < 0 || (size_t) k >= ndisks)
    return failed ("no such disk here");
  if (strcmp (op, "status") == 0)
    req = json_pack ("{s:s}", "op", "status");
  else if (strcmp (op, "complete") == 0) {
    if (json_is_integer (json_object_get (msg, "timeout_ms")))
      wait_ms = json_integer_value (json_object_get (msg, "timeout_ms"));
    req = json_pack ("{s:s, s:b, s:I}", "op", "complete", "verify",
                     json_is_true (json_object_get (msg, "verify")),
                     "timeout_ms", wait_ms);
  }
  else {
    /* cancel: one destination, named by its host. */
    const char *host = json_string_value (json_object_get (msg, "host"));
    int j = proxy_dest_index (to, host);

    if (j < 0) {
      snprintf (err, sizeof err, "%s is not a destination here", host);
      return failed (err);
    }
    dest_disk_uri (dir, to, (size_t) j, (size_t) k, uri, sizeof uri);
    req = json_pack ("{s:s, s:s}", "op", "cancel", "destination", uri);
  }
  disk_path (dir, (size_t) k, "ctl", ctl, sizeof ctl);
  reply = helper_call (ctl, CHAN_SERVICE_MIRROR, req, (int) wait_ms + 5000,
                       err, sizeof err);
  if (!reply) {
    char why[1200];
    snprintf (why, sizeof why, "this host's mirror: %s", err);
    return failed (why);
  }
  return json_pack ("{s:s, s:o}", "type", "MIRRORED", "reply", reply);
}

void
proxy_disks_stop (const char *dir)
{
  for (size_t k = 0; k < DEF_MAX_DISKS; ++k) {
    char pid[PATH_MAX];
    disk_path (dir, k, "pid", pid, sizeof pid);
    if (access (pid, F_OK) == 0)
      proc_stop (pid, "nbdkit", 5000);
  }
}
