/* handoffd: this host as another host's stream proxy (handoff migrate
 * --via; the messages in peer.h).
 *
 * A source with several destinations would send its VM's RAM stream
 * once per destination, and its uplink would carry it N times.  With
 * --via it sends the stream once, to a relay on this host, which
 * carries it to every destination (handoff-xfer relay, as the source's
 * own relay would) and merges their return paths into one.  The
 * source's relay still holds QEMU's switch-over while warm; this one
 * passes the destinations' acknowledgement on at once
 * (--pass-switchover).
 *
 * The source asks once its destinations have prepared, before any data
 * moves; the relay waits for the stream as long as the source keeps
 * the connection.
 *
 * The source may also have this host serve its disks to the
 * destinations (RELAY_STREAM's "disks"; proxy-disks.c): its mirror
 * then sends each disk once, here, and asks this host's mirror about
 * the destinations' copies (MIRROR, while relaying) - and pass its
 * directory's share on (proxy-share.c; SHARE asks about it).
 *
 * This host keeps nothing of the VM once the source lets go: no disk,
 * no file, no journal row.  What it runs for a migration - the relay,
 * the disks' exports and their scratch images, the logs and the keys
 * it was handed - lives in STATE/relay/ID and goes when the source
 * lets go: END, its connection closing, or silence for two I/O
 * timeouts.
 * The relay itself exits once the stream is carried (or broken).  A
 * handoffd that restarts stops whatever relays it finds
 * there (proxy_recover): their source's connection broke with the
 * restart, and the migration failed over or rolled back with it.
 *
 * THE KEYS.  Each destination made a key for this migration and gave it
 * to the source; the source hands it to the proxy it chose, a peer of
 * both (the same pre-shared key admits it), over their TLS channel.
 * The key opens that destination's stream listener, and also its
 * disks' exports and its share receiver: a proxy is trusted as the
 * source is, for this migration only.  The proxy checks that each
 * address it is sent is the address it knows for that host, so a
 * source cannot aim it at a third host or at one of its own sockets.
 * The source's leg has a key of its own, made here.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "channel.h"
#include "clock.h"
#include "config.h"
#include "dest-phases.h"
#include "errors.h"
#include "jsonutil.h"
#include "log.h"
#include "peer.h"
#include "peer-check.h"
#include "policy.h"
#include "proc.h"
#include "proxy.h"
#include "proxy-disks.h"
#include "proxy-share.h"
#include "psk.h"
#include "uri.h"

/* How often the conversation looks whether the relay still runs. */
#define PROXY_TICK_MS 500

struct relaying {
  char id[80];
  char vm[65];
  char source[65];
  char dir[PATH_MAX - 256];     /* STATE/relay/ID */
  char pidfile[PATH_MAX];
  pid_t pid;
  json_t *to;                   /* RELAY_STREAM's destinations */
  size_t ndisks;                /* Disks served here (proxy-disks.c). */
  bool share;                   /* The share passed on (proxy-share.c). */
};

static void
relay_root (char *buf, size_t len)
{
  snprintf (buf, len, "%s/relay", hd.state_dir);
}

static void
in_dir (const struct relaying *r, const char *leaf, char *buf, size_t len)
{
  snprintf (buf, len, "%s/%s", r->dir, leaf);
}

/* Stop R's relay and remove its directory. */
static void
relaying_end (struct relaying *r, const char *why)
{
  char root[PATH_MAX], err[1024], log[PATH_MAX + 256], tail[512] = "";

  if (r->pid > 0)
    proc_stop (r->pidfile, "relay", 2000);
  if (r->ndisks > 0)
    proxy_disks_stop (r->dir);
  if (r->share)
    proxy_share_stop (r->dir);
  /* Its last words go before its directory does. */
  if (r->dir[0]) {
    in_dir (r, "relay.log", log, sizeof log);
    proc_log_tail (log, 1, tail, sizeof tail);
  }
  relay_root (root, sizeof root);
  if (r->dir[0] && remove_beneath (root, r->dir, err, sizeof err) == -1)
    log_error ("migration %s: proxy: cannot remove %s: %s", r->id, r->dir,
               err);
  log_info ("migration %s: no longer relaying %s's stream of %s: %s%s%s%s",
            r->id, r->source, r->vm, why, tail[0] ? " (relay: " : "", tail,
            tail[0] ? ")" : "");
}

/* The address this host knows for HOST (its peer URI's host) into
 * BUF.  0, or -1 (err). */
static int
known_address (const char *host, char *buf, size_t len, char *err,
               size_t errlen)
{
  const char *peer = hd_peer_uri (host);
  struct uri pu;
  char e2[256];

  if (!peer)
    return set_error (err, errlen, "host %s knows no peer '%s'", hd.name,
                      host);
  if (uri_parse (peer, &pu, e2, sizeof e2) == -1)
    return set_error (err, errlen, "peer %s: %s", host, e2);
  snprintf (buf, len, "%s", pu.host ? pu.host : "");
  uri_free (&pu);
  return 0;
}

/* Is URI's host (WHAT's) the address this host knows for HOST? */
static int
check_address (const char *host, const char *what, const char *uri_text,
               char *err, size_t errlen)
{
  char known[256] = "", e2[256];
  struct uri u;
  int rv = -1;

  if (known_address (host, known, sizeof known, err, errlen) == -1)
    return -1;
  if (uri_parse (uri_text, &u, e2, sizeof e2) == -1)
    return set_error (err, errlen, "%s's %s address: %s", host, what, e2);
  if (!known[0] || !u.host || strcmp (known, u.host) != 0)
    set_error (err, errlen, "%s's %s address is not on %s (%s)", host, what,
               host, known[0] ? known : "no address");
  else
    rv = 0;
  uri_free (&u);
  return rv;
}

/* Does C come from SOURCE's address? */
static int
from_source (const char *source, struct channel *c, char *err, size_t errlen)
{
  char ip[64], known[256] = "";

  peer_address (c, ip, sizeof ip);
  if (known_address (source, known, sizeof known, err, errlen) == -1)
    return -1;
  if (strcmp (known, ip) != 0)
    return set_error (err, errlen, "host '%s' connects from %s, not its "
                      "address", source, ip);
  return 0;
}

/* KEY ("IDENTITY:HEX", checked) into a file of R's, mode 0600. */
static int
write_key (struct relaying *r, const char *leaf, const char *key, char *path,
           size_t pathlen, char *err, size_t errlen)
{
  in_dir (r, leaf, path, pathlen);
  return psk_write_line (path, key, err, errlen);
}

/* The key of the source's leg, made here: its file into PATH, its
 * text into KEY. */
static int
make_in_key (struct relaying *r, char *path, size_t pathlen, char *key,
             size_t keylen, char *err, size_t errlen)
{
  char e2[512] = "";

  in_dir (r, "in.psk", path, pathlen);
  if (psk_keygen_text (path, "handoff-relay", 0, key, keylen, e2,
                       sizeof e2) == -1)
    return set_error (err, errlen, "the relay's key: %s", e2);
  return 0;
}

/* The relay's arguments from TO (RELAY_STREAM's, checked): ARGV from
 * *N on, the strings in BUF. */
struct relay_args {
  char *argv[24 + 4 * MAX_DESTS];
  size_t n;
  char to[MAX_DESTS][PATH_MAX + 512];
  char or_to[MAX_DESTS][2 * PATH_MAX + 512];
  char keys[MAX_DESTS][PATH_MAX];
};

/* Is every destination's address in TO the one this host knows for it?
 * Checked before anything is made. */
static int
check_destinations (json_t *to, char *err, size_t errlen)
{
  json_t *d;
  size_t i;

  json_array_foreach (to, i, d) {
    const char *host = json_string_value (json_object_get (d, "host"));
    const char *alt = json_string_value (json_object_get (d, "xfer_tcp"));
    json_t *disk;
    size_t k;

    if (check_address (host, "stream", json_string_value (json_object_get (
                         d, "xfer")), err, errlen) == -1 ||
        (alt && check_address (host, "stream", alt, err, errlen) == -1))
      return -1;
    json_array_foreach (json_object_get (d, "disks"), k, disk)
      if (check_address (host, "disk export", json_string_value (disk), err,
                         errlen) == -1)
        return -1;
    if (json_object_get (d, "share") &&
        check_address (host, "share receiver", json_string_value (
                         json_object_get (d, "share")), err, errlen) == -1)
      return -1;
  }
  return 0;
}

static int
destination_args (struct relaying *r, json_t *to, struct relay_args *a,
                  char *err, size_t errlen)
{
  json_t *d;
  size_t i;

  json_array_foreach (to, i, d) {
    const char *xfer = json_string_value (json_object_get (d, "xfer"));
    const char *alt = json_string_value (json_object_get (d, "xfer_tcp"));
    char leaf[32];

    snprintf (leaf, sizeof leaf, "dest%zu.psk", i);
    if (write_key (r, leaf, json_string_value (json_object_get (d, "key")),
                   a->keys[i], sizeof a->keys[i], err, errlen) == -1)
      return -1;
    /* As the source's own relay would: rdma:// proves the peer with the
     * migration key as a token, tcp:// with TLS under it. */
    snprintf (a->to[i], sizeof a->to[i], "%s?%s=%s", xfer,
              strncmp (xfer, "rdma://", 7) == 0 ? "token-file"
              : "tls-psk-file", a->keys[i]);
    a->argv[a->n++] = (char *) "--to";
    a->argv[a->n++] = a->to[i];
    if (alt) {
      snprintf (a->or_to[i], sizeof a->or_to[i],
                "%s?tls-psk-file=%s&token-file=%s", alt, a->keys[i],
                a->keys[i]);
      a->argv[a->n++] = (char *) "--or";
      a->argv[a->n++] = a->or_to[i];
    }
  }
  return 0;
}

/* Start R's relay for REQ (RELAY_STREAM), its disks' exports if it
 * has disks and the share's pass-on if it has a share: the source's
 * address for the relay into XFER, the exports' into *EXPORTS and the
 * share's into *SHARE (or NULL), the key of its legs into KEY.  0, or
 * -1 (err). */
static int
relaying_start (struct relaying *r, json_t *req, char *xfer, size_t xferlen,
                json_t **exports, json_t **share, char *key, size_t keylen,
                char *err, size_t errlen)
{
  struct relay_args *a = calloc (1, sizeof *a);
  char root[PATH_MAX - 512], addr[128], in_psk[PATH_MAX], log[PATH_MAX];
  char listen[160];
  json_t *to = json_object_get (req, "to");
  bool hold = json_is_true (json_object_get (req, "hold"));
  int rv = -1;

  if (!a)
    return set_error (err, errlen, "out of memory");
  if (dest_listen_host (addr, sizeof addr) == -1) {
    set_error (err, errlen, "this host has no peer address");
    goto out;
  }
  relay_root (root, sizeof root);
  snprintf (r->dir, sizeof r->dir, "%s/%s", root, r->id);
  if ((mkdir (root, 0700) == -1 && errno != EEXIST) ||
      mkdir (r->dir, 0700) == -1) {
    set_error (err, errlen, "%s: %s", r->dir, strerror (errno));
    r->dir[0] = '\0';           /* Not ours to remove. */
    goto out;
  }
  if (make_in_key (r, in_psk, sizeof in_psk, key, keylen, err,
                   errlen) == -1)
    goto out;
  a->argv[a->n++] = (char *) hd.xfer_bin;
  a->argv[a->n++] = (char *) "relay";
  a->argv[a->n++] = (char *) "-v";
  a->argv[a->n++] = (char *) "--listen";
  a->argv[a->n++] = listen;
  a->argv[a->n++] = (char *) "--psk";
  a->argv[a->n++] = in_psk;
  a->argv[a->n++] = (char *) "--streams";
  a->argv[a->n++] = (char *) "1";
  a->argv[a->n++] = (char *) "--buffer";
  a->argv[a->n++] = (char *) MIGRATION_RELAY_BUFFER;
  if (json_array_size (to) > 1) {
    a->argv[a->n++] = (char *) "--lagging";
    a->argv[a->n++] = (char *) "drop";
  }
  if (hold)
    a->argv[a->n++] = (char *) "--pass-switchover";
  if (destination_args (r, to, a, err, errlen) == -1)
    goto out;
  a->argv[a->n] = NULL;
  in_dir (r, "relay.pid", r->pidfile, sizeof r->pidfile);
  in_dir (r, "relay.log", log, sizeof log);
  /* A port found free may be taken before the relay binds it: twice. */
  for (int attempt = 1; attempt <= 2; ++attempt) {
    int port = dest_free_port (addr);
    if (port < 0) {
      set_error (err, errlen, "no free port on %s", addr);
      goto out;
    }
    snprintf (listen, sizeof listen, "tcp://%s:%d", addr, port);
    r->pid = proc_spawn (a->argv, NULL, log, r->pidfile, err, errlen);
    if (r->pid < 0)
      goto out;
    if (proc_wait_port (port, r->pid, 10000) == 0) {
      snprintf (xfer, xferlen, "%s", listen);
      rv = 0;
      if (json_object_get (req, "disks")) {
        r->ndisks = json_array_size (json_object_get (req, "disks"));
        *exports = proxy_disks_start (r->dir, req, addr, in_psk, err,
                                      errlen);
        rv = *exports ? 0 : -1;
      }
      if (rv == 0 && json_object_get (json_array_get (to, 0), "share")) {
        r->share = true;
        *share = proxy_share_start (r->dir, req, addr, in_psk, err, errlen);
        rv = *share ? 0 : -1;
      }
      goto out;
    }
    proc_stop (r->pidfile, "relay", 1000);
    r->pid = 0;
  }
  {
    char tail[512];
    proc_log_tail (log, 2, tail, sizeof tail);
    set_error (err, errlen, "the stream relay did not start: %s", tail);
  }
 out:
  free (a);
  return rv;
}

static json_t *
answer (const char *type, const char *reason)
{
  json_t *a = json_pack ("{s:s}", "type", type);

  if (reason)
    json_object_set_new (a, "reason", json_string (reason));
  return a;
}

/* After RELAYING: PING and END from the source, until it lets go.  Why
 * into WHY. */
static void
relaying_converse (struct relaying *r, struct channel *c, char *why,
                   size_t whylen)
{
  int64_t heard = clock_ms ();

  /* Terminates: END, the connection closing, or silence for two I/O
   * timeouts. */
  for (;;) {
    bool eof = false;
    struct pollfd pfd = { .fd = chan_fd (c), .events = POLLIN };
    json_t *msg, *reply;
    const char *type;

    /* A receive that times out breaks the channel: wait for the
     * source's next message here, a tick at a time.  One message is
     * outstanding at most (each waits for its answer), so nothing
     * waits in TLS's buffer when the socket has nothing. */
    int ready = poll (&pfd, 1, PROXY_TICK_MS);
    if (ready == 0 || (ready == -1 && errno == EINTR)) {
      if (clock_ms () - heard > 2 * (int64_t) hd.io_timeout_ms) {
        snprintf (why, whylen, "the source is silent");
        return;
      }
      /* The stream ended (carried, or broken): nothing runs here any
       * more, but the source may still ask whether this host is there
       * until it lets go. */
      if (r->pid > 0 && !proc_alive (r->pidfile, "relay")) {
        r->pid = 0;
        log_info ("migration %s: the relay of %s's stream ended", r->id,
                  r->vm);
      }
      continue;
    }
    msg = chan_recv_json (c, hd.io_timeout_ms, &eof);
    if (!msg) {
      snprintf (why, whylen, "%s", eof ? "the source closed the connection"
                : errno == EPROTO ? "the source sent a malformed message"
                : "the connection to the source broke");
      return;
    }
    heard = clock_ms ();
    type = json_string_value (json_object_get (msg, "type"));
    bool end = type && strcmp (type, "END") == 0;
    bool ping = type && strcmp (type, "PING") == 0;
    bool mirror = type && strcmp (type, "MIRROR") == 0;
    bool share = type && strcmp (type, "SHARE") == 0;
    char e2[512];
    if (peer_check_message (msg, e2, sizeof e2) == -1)
      reply = answer ("FAILED", e2);
    else if (mirror)
      reply = r->ndisks > 0 ? proxy_disks_call (r->dir, r->to, r->ndisks, msg)
        : answer ("FAILED", "this host serves no disk of the migration");
    else if (share)
      reply = r->share ? proxy_share_call (r->dir, r->to, msg)
        : answer ("FAILED", "this host passes on no share of the migration");
    else
      reply = end ? answer ("ENDED", NULL) : ping ? answer ("PONG", NULL)
        : answer ("FAILED", "unexpected message while relaying");
    json_decref (msg);
    chan_send_json (c, reply);
    json_decref (reply);
    if (end) {
      snprintf (why, whylen, "the source is done with it");
      return;
    }
  }
}

json_t *
proxy_relay (json_t *req, struct channel *c)
{
  struct relaying r = { .pid = 0 };
  const char *s;
  char err[2048], xfer[160], key[512], why[256];
  json_t *a, *exports = NULL, *share = NULL;

  /* peer_check_message passed it: these are there and sound. */
  msg_get_string (req, "id", true, &s, err, sizeof err);
  snprintf (r.id, sizeof r.id, "%s", s);
  msg_get_string (req, "vm", true, &s, err, sizeof err);
  snprintf (r.vm, sizeof r.vm, "%s", s);
  msg_get_string (req, "source", true, &s, err, sizeof err);
  snprintf (r.source, sizeof r.source, "%s", s);
  r.to = json_object_get (req, "to");
  if (from_source (r.source, c, err, sizeof err) == -1 ||
      policy_admit_proxy (r.source, (uint64_t) json_integer_value (
                            json_object_get (req, "disk_bytes")), err,
                          sizeof err) == -1 ||
      check_destinations (json_object_get (req, "to"), err,
                          sizeof err) == -1 ||
      relaying_start (&r, req, xfer, sizeof xfer, &exports, &share, key,
                      sizeof key, err, sizeof err) == -1) {
    log_error ("migration %s: refused to relay %s's stream of %s: %s", r.id,
               r.source, r.vm, err);
    if (r.dir[0])
      relaying_end (&r, "refused");
    a = answer ("DENIED", err);
    chan_send_json (c, a);
    json_decref (a);
    return NULL;
  }
  log_info ("migration %s: relaying %s's stream of %s to %zu destination(s) "
            "from %s", r.id, r.source, r.vm,
            json_array_size (json_object_get (req, "to")), xfer);
  if (exports)
    log_info ("migration %s: serving %zu disk(s) of %s to its destinations",
              r.id, r.ndisks, r.vm);
  a = json_pack ("{s:s, s:s, s:s}", "type", "RELAYING", "xfer", xfer, "key",
                 key);
  if (exports)
    json_object_set_new (a, "disks", exports);
  if (share) {
    log_info ("migration %s: passing %s's directory on to its destinations",
              r.id, r.vm);
    json_object_set_new (a, "share", share);
  }
  if (chan_send_json (c, a) == -1)
    snprintf (why, sizeof why, "the source went away");
  else
    relaying_converse (&r, c, why, sizeof why);
  json_decref (a);
  relaying_end (&r, why);
  return NULL;
}

void
proxy_recover (void)
{
  char root[PATH_MAX], err[1024];
  DIR *d;
  struct dirent *e;

  relay_root (root, sizeof root);
  d = opendir (root);
  if (!d)
    return;
  /* Terminates: one pass over the directory. */
  while ((e = readdir (d))) {
    char pidfile[PATH_MAX + 320], dir[PATH_MAX + 300];
    if (e->d_name[0] == '.')
      continue;
    snprintf (dir, sizeof dir, "%s/%s", root, e->d_name);
    snprintf (pidfile, sizeof pidfile, "%s/relay.pid", dir);
    proc_stop (pidfile, "relay", 1000);
    proxy_disks_stop (dir);
    proxy_share_stop (dir);
    if (remove_beneath (root, dir, err, sizeof err) == -1)
      log_error ("proxy: cannot remove %s: %s", dir, err);
    else
      log_info ("proxy: stopped the relay of migration %s (handoffd "
                "restarted)", e->d_name);
  }
  closedir (d);
}
