/* handoffd: this host passing another host's directory share on to its
 * destinations (proxy-share.h; handoff migrate --via).
 *
 * The source's share then has one receiver, handoff-share forward on
 * this host, which sends the session on to every destination's
 * receiver and answers each request once they all did (fuse-share's
 * forward.c): the source's uplink carries the directory once.  It
 * connects to the receivers when the relay starts, before the source
 * sends anything, so one that cannot be reached is known at once.
 * Nothing of the directory is kept here: the requests pass through.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "channel-proto.h"
#include "config.h"
#include "errors.h"
#include "proc.h"
#include "proxy-share.h"
#include "proxy-helper.h"
#include "vm.h"

static void
share_path (const char *dir, const char *ext, char *buf, size_t len)
{
  snprintf (buf, len, "%s/share.%s", dir, ext);
}

/* handoff-share forward on ADDR under IN_PSK: its port, or -1 (err). */
static int
spawn_forward (const char *dir, const char *addr, const char *in_psk,
               char *err, size_t errlen)
{
  char ctl[PATH_MAX], pid[PATH_MAX], log[PATH_MAX], listen[160];
  char *argv[] = {
    (char *) hd.share_bin, (char *) "forward", (char *) "-v",
    (char *) "--listen", listen, (char *) "--psk", (char *) in_psk,
    (char *) "--control", ctl, NULL,
  };
  struct proxy_helper h = {
    .argv = argv, .portarg = listen, .portlen = sizeof listen, .uri = true,
    .addr = addr, .ctl = ctl, .pid = pid, .log = log,
    .match = "handoff-share", .what = "the share's pass-on",
  };

  share_path (dir, "ctl", ctl, sizeof ctl);
  share_path (dir, "pid", pid, sizeof pid);
  share_path (dir, "log", log, sizeof log);
  return proxy_spawn (&h, err, errlen);
}

json_t *
proxy_share_start (const char *dir, json_t *req, const char *addr,
                   const char *in_psk, char *err, size_t errlen)
{
  json_t *to = json_object_get (req, "to"), *d, *r;
  json_t *rcv = json_array (), *keys = json_array ();
  char ctl[PATH_MAX], key[PATH_MAX], e2[1024], u[160];
  size_t j;
  int port = spawn_forward (dir, addr, in_psk, e2, sizeof e2);

  if (port < 0) {
    json_decref (rcv);
    json_decref (keys);
    set_error (err, errlen, "the directory: %s", e2);
    return NULL;
  }
  json_array_foreach (to, j, d) {
    snprintf (key, sizeof key, "%s/dest%zu.psk", dir, j);
    json_array_append (rcv, json_object_get (d, "share"));
    json_array_append_new (keys, json_string (key));
  }
  share_path (dir, "ctl", ctl, sizeof ctl);
  /* Connecting to each receiver: an I/O timeout at most. */
  r = helper_call (ctl, CHAN_SERVICE_SHARE_CTL,
                   json_pack ("{s:s, s:o, s:o}", "op", "start", "to", rcv,
                              "psk", keys),
                   hd.io_timeout_ms * 2 + 5000, e2, sizeof e2);
  if (!r) {
    set_error (err, errlen, "the directory: %s", e2);
    return NULL;
  }
  json_decref (r);
  snprintf (u, sizeof u, "tcp://%s:%d", addr, port);
  return json_string (u);
}

json_t *
proxy_share_call (const char *dir, json_t *to, json_t *msg)
{
  const char *op = json_string_value (json_object_get (msg, "op"));
  char ctl[PATH_MAX], err[1024], why[1200];
  json_t *req, *reply;

  if (strcmp (op, "status") == 0)
    req = json_pack ("{s:s}", "op", "status");
  else {
    /* drop: one receiver, named by its host. */
    const char *host = json_string_value (json_object_get (msg, "host"));
    int j = proxy_dest_index (to, host);

    if (j < 0) {
      snprintf (why, sizeof why, "%s is not a destination here", host);
      return json_pack ("{s:s, s:s}", "type", "FAILED", "reason", why);
    }
    req = json_pack ("{s:s, s:O}", "op", "drop", "to",
                     json_object_get (json_array_get (to, (size_t) j),
                                      "share"));
  }
  share_path (dir, "ctl", ctl, sizeof ctl);
  reply = helper_call (ctl, CHAN_SERVICE_SHARE_CTL, req, 10000, err,
                       sizeof err);
  if (!reply) {
    snprintf (why, sizeof why, "this host's share: %s", err);
    return json_pack ("{s:s, s:s}", "type", "FAILED", "reason", why);
  }
  return json_pack ("{s:s, s:o}", "type", "SHARED", "reply", reply);
}

void
proxy_share_stop (const char *dir)
{
  char pid[PATH_MAX];

  share_path (dir, "pid", pid, sizeof pid);
  if (access (pid, F_OK) == 0)
    proc_stop (pid, "handoff-share", 5000);
}
