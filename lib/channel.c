/* handoff: the framed channel.  See channel.h and channel-proto.h.
 *
 * NOTES ON THE THREAD MODEL
 *
 * A channel's descriptor is non-blocking; every read and write waits
 * with poll() against a deadline, so no operation can hang.  One
 * sender (send_lock) and one receiver (recv_lock) may run at once.
 * The frame reader belongs to the receiver.  'broken' is set by either
 * side on a fatal error and read without a lock: a stale read only
 * delays the failure by one operation.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "channel.h"
#include "cleanup.h"
#include "frame.h"
#include "log.h"
#include "psk.h"
#include "sockets.h"
#include "tls.h"
#include "uri.h"

struct channel {
  int fd;
  struct tls_session *tls;      /* NULL if plain. */
  bool server;
  int timeout_ms;
  uint32_t max_recv;            /* Largest frame we accept. */
  uint32_t max_send;            /* Largest frame the peer accepts. */
  uint16_t version;             /* Negotiated service version. */
  char peer[160];               /* For messages. */
  volatile bool broken;
  pthread_mutex_t send_lock;
  pthread_mutex_t recv_lock;
  struct frame_reader rd;       /* protected by recv_lock */
  char bad_json[160];           /* Why the last whole frame was refused. */
};

struct chan_listener {
  int fd;
  bool is_unix;
  char *path;                   /* Unix socket to remove on close... */
  dev_t dev;                    /* ...if it is still the one we made. */
  ino_t ino;
  char *uri;
  struct chan_config cfg;
  char *psk_file;               /* cfg.psk_file points here. */
};

static int
effective_timeout (int t)
{
  return t == 0 ? CHAN_DEFAULT_TIMEOUT_MS : t;
}

static void
mark_broken (struct channel *c)
{
  c->broken = true;
  shutdown (c->fd, SHUT_RDWR);
}

/* Read up to N bytes.  Returns >0, 0 on end of stream, -1 on error. */
static ssize_t
io_read (struct channel *c, void *buf, size_t n, int64_t deadline)
{
  if (c->broken) {
    errno = EPIPE;
    return -1;
  }
  return c->tls ? tls_read (c->tls, buf, n, deadline)
    : sock_read (c->fd, buf, n, deadline);
}

static int
io_write_all (struct channel *c, const void *buf, size_t n, int64_t deadline)
{
  if (c->broken) {
    errno = EPIPE;
    return -1;
  }
  return c->tls ? tls_write_all (c->tls, buf, n, deadline)
    : sock_write_all (c->fd, buf, n, deadline);
}

static int
send_frame_locked (struct channel *c, const void *buf, size_t len,
                   int64_t deadline)
{
  uint8_t hdr[CHAN_FRAME_HEADER_LEN];

  frame_header_encode ((uint32_t) len, hdr);
  /* Small frames go out as one write (one TLS record). */
  if (len <= 16384) {
    uint8_t one[CHAN_FRAME_HEADER_LEN + 16384];
    memcpy (one, hdr, sizeof hdr);
    memcpy (one + sizeof hdr, buf, len);
    return io_write_all (c, one, sizeof hdr + len, deadline);
  }
  if (io_write_all (c, hdr, sizeof hdr, deadline) == -1)
    return -1;
  return io_write_all (c, buf, len, deadline);
}

int
chan_send (struct channel *c, const void *buf, size_t len)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&c->send_lock);

  if (len == 0 || len > c->max_send) {
    log_error ("%s: send: frame of %zu bytes is outside 1..%u",
               c->peer, len, c->max_send);
    errno = EMSGSIZE;
    return -1;
  }
  if (send_frame_locked (c, buf, len,
                         deadline_after (c->timeout_ms)) == -1) {
    int e = errno;
    if (e == ETIMEDOUT)
      log_error ("%s: send: timed out after %d ms", c->peer, c->timeout_ms);
    else
      log_error ("%s: send: %m", c->peer);
    mark_broken (c);
    errno = e;
    return -1;
  }
  return 0;
}

ssize_t
chan_recv_timeout (struct channel *c, void **buf_r, int timeout_ms)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&c->recv_lock);
  int64_t deadline = deadline_after (timeout_ms);
  char err[256];

  *buf_r = NULL;
  /* Terminates: each pass reads at least one byte, or fails, or the
   * deadline passes. */
  for (;;) {
    void *dst;
    size_t want;
    ssize_t r;

    frame_reader_want (&c->rd, &dst, &want);
    r = io_read (c, dst, want, deadline);
    if (r == 0) {
      if (!frame_reader_mid_frame (&c->rd))
        return 0;
      log_error ("%s: receive: peer closed the connection mid-frame",
                 c->peer);
      errno = ECONNRESET;
      goto broken;
    }
    if (r < 0) {
      int e = errno;
      if (e == ETIMEDOUT)
        log_error ("%s: receive: timed out%s", c->peer,
                   frame_reader_mid_frame (&c->rd) ? " mid-frame" : "");
      else if (!c->broken)
        log_error ("%s: receive: %m", c->peer);
      errno = e;
      goto broken;
    }
    bool first = !frame_reader_mid_frame (&c->rd);
    switch (frame_reader_got (&c->rd, (size_t) r, err, sizeof err)) {
    case FRAME_ERROR:
      log_error ("%s: receive: %s", c->peer, err);
      errno = EPROTO;
      goto broken;
    case FRAME_COMPLETE: {
      uint32_t len;
      *buf_r = frame_reader_take (&c->rd, &len);
      return (ssize_t) len;
    }
    case FRAME_MORE:
      /* Once a frame has begun, the rest must follow promptly even if
       * the caller was willing to wait forever for it to start. */
      if (first)
        deadline = deadline_after (c->timeout_ms);
      break;
    }
  }

 broken:
  {
    int e = errno;
    frame_reader_reset (&c->rd);
    mark_broken (c);
    errno = e;
  }
  return -1;
}

ssize_t
chan_recv (struct channel *c, void **buf_r)
{
  return chan_recv_timeout (c, buf_r, c->timeout_ms);
}

int
chan_send_json (struct channel *c, json_t *msg)
{
  CLEANUP_FREE char *s = json_dumps (msg, JSON_COMPACT);

  if (!s) {
    log_error ("%s: send: cannot encode JSON", c->peer);
    errno = ENOMEM;
    return -1;
  }
  return chan_send (c, s, strlen (s));
}

json_t *
chan_recv_json (struct channel *c, int timeout_ms, bool *eof_r)
{
  CLEANUP_FREE void *buf = NULL;
  json_error_t jerr;
  ssize_t n;
  json_t *j;

  *eof_r = false;
  n = chan_recv_timeout (c, &buf, timeout_ms);
  if (n == 0)
    *eof_r = true;
  if (n <= 0)
    return NULL;
  j = json_loadb (buf, (size_t) n, JSON_REJECT_DUPLICATES, &jerr);
  if (!j) {
    log_error ("%s: receive: bad JSON: %s (at byte %d)", c->peer, jerr.text,
               jerr.position);
    snprintf (c->bad_json, sizeof c->bad_json, "bad JSON: %.100s (at byte "
              "%d)", jerr.text, jerr.position);
    errno = EPROTO;
    return NULL;
  }
  if (!json_is_object (j)) {
    log_error ("%s: receive: message is not a JSON object", c->peer);
    snprintf (c->bad_json, sizeof c->bad_json, "not a JSON object");
    json_decref (j);
    errno = EPROTO;
    return NULL;
  }
  return j;
}

static int
hello_exchange (struct channel *c, const struct chan_config *cfg,
                int64_t deadline)
{
  struct chan_hello_info mine = {
    .service = (uint16_t) cfg->service,
    .version_min = cfg->version_min ? cfg->version_min : 1,
    .max_frame = c->max_recv,
  };
  struct chan_hello_info theirs;
  uint8_t hello[CHAN_HELLO_LEN];
  uint8_t *buf = NULL;
  char err[256];
  int r = -1;

  mine.version_max = cfg->version_max ? cfg->version_max : mine.version_min;
  chan_hello_encode (&mine, hello);
  if (send_frame_locked (c, hello, sizeof hello, deadline) == -1) {
    log_error ("%s: hello: %s", c->peer,
               errno == ETIMEDOUT ? "timed out" : strerror (errno));
    return -1;
  }

  /* The first frame must be a hello: read it with a tight limit so a
   * stranger's stream is refused before any large allocation. */
  struct frame_reader rd;
  frame_reader_init (&rd, CHAN_HELLO_LEN);
  for (;;) {
    void *dst;
    size_t want;
    ssize_t n;

    frame_reader_want (&rd, &dst, &want);
    n = io_read (c, dst, want, deadline);
    if (n <= 0) {
      log_error ("%s: hello: %s", c->peer,
                 n == 0 ? "peer closed the connection"
                 : errno == ETIMEDOUT ? "timed out" : strerror (errno));
      if (n == 0)
        errno = ECONNRESET;
      goto out;
    }
    enum frame_status st = frame_reader_got (&rd, (size_t) n, err, sizeof err);
    if (st == FRAME_ERROR) {
      log_error ("%s: hello: %s (not a handoff peer?)", c->peer, err);
      errno = EPROTO;
      goto out;
    }
    if (st == FRAME_COMPLETE)
      break;
  }
  uint32_t len;
  buf = frame_reader_take (&rd, &len);
  if (chan_hello_decode (buf, len, &theirs, err, sizeof err) == -1 ||
      chan_hello_negotiate (&mine, &theirs, &c->version,
                            err, sizeof err) == -1) {
    log_error ("%s: hello: %s", c->peer, err);
    errno = EPROTO;
    goto out;
  }
  c->max_send = theirs.max_frame;
  r = 0;
 out:
  free (buf);
  frame_reader_reset (&rd);
  return r;
}

static void
chan_free (struct channel *c)
{
  if (!c)
    return;
  tls_free (c->tls);
  frame_reader_reset (&c->rd);
  if (c->fd >= 0)
    close (c->fd);
  pthread_mutex_destroy (&c->send_lock);
  pthread_mutex_destroy (&c->recv_lock);
  free (c);
}

static struct channel *
handshake (int fd, bool server, const struct chan_config *cfg,
           const char *peer)
{
  struct channel *c;
  int64_t deadline;

  c = calloc (1, sizeof *c);
  if (!c) {
    close (fd);
    return NULL;
  }
  c->fd = fd;
  c->server = server;
  c->timeout_ms = effective_timeout (cfg->timeout_ms);
  c->max_recv = cfg->max_frame ? cfg->max_frame : CHAN_MAX_FRAME_DEFAULT;
  if (c->max_recv < CHAN_HELLO_LEN || c->max_recv > CHAN_MAX_FRAME_LIMIT)
    c->max_recv = CHAN_MAX_FRAME_LIMIT;
  pthread_mutex_init (&c->send_lock, NULL);
  pthread_mutex_init (&c->recv_lock, NULL);
  frame_reader_init (&c->rd, c->max_recv);
  snprintf (c->peer, sizeof c->peer, "%s", peer);
  deadline = deadline_after (c->timeout_ms);

  if (sock_set_nonblock (fd, 1) == -1)
    goto error;
  if (cfg->psk_file) {
    c->tls = tls_new (fd, server, cfg->psk_file, cfg->psk_identity, c->peer);
    if (!c->tls || tls_handshake (c->tls, deadline) == -1)
      goto error;
  }
  if (hello_exchange (c, cfg, deadline) == -1)
    goto error;
  log_debug ("%s: channel up (service %d v%u, %s%s%s)", c->peer,
             cfg->service, c->version, c->tls ? "TLS-PSK" : "plain",
             chan_peer_identity (c) ? ", identity " : "",
             chan_peer_identity (c) ? chan_peer_identity (c) : "");
  return c;

 error:
  {
    int e = errno;
    chan_free (c);
    errno = e ? e : EPROTO;
  }
  return NULL;
}

struct channel *
chan_from_fd (int fd, bool server, const struct chan_config *cfg)
{
  char peer[128];

  if (sock_peer_name (fd, peer, sizeof peer) == -1)
    snprintf (peer, sizeof peer, "fd %d", fd);
  return handshake (fd, server, cfg, peer);
}

struct channel *
chan_connect (const char *uristr, const struct chan_config *cfg)
{
  struct uri u;
  char err[256];
  char peer[160];
  int fd;
  int timeout = effective_timeout (cfg->timeout_ms);

  if (uri_parse (uristr, &u, err, sizeof err) == -1) {
    log_error ("%s: %s", uristr ? uristr : "(null)", err);
    return NULL;
  }
  if (u.scheme == URI_SCHEME_TCP) {
    if (!cfg->psk_file) {
      log_error ("%s: TCP channels need a pre-shared key file", uristr);
      uri_free (&u);
      errno = EINVAL;
      return NULL;
    }
    fd = sock_connect_tcp (u.host, u.port, timeout);
  }
  else if (u.scheme == URI_SCHEME_UNIX)
    fd = sock_connect_unix (u.socket, timeout);
  else {
    log_error ("%s: a channel needs a tcp:// or unix: URI", uristr);
    uri_free (&u);
    errno = EINVAL;
    return NULL;
  }
  uri_free (&u);
  if (fd == -1)
    return NULL;
  snprintf (peer, sizeof peer, "%s", uristr);
  return handshake (fd, false, cfg, peer);
}

struct chan_listener *
chan_listen (const char *uristr, const struct chan_config *cfg)
{
  struct chan_listener *l;
  struct uri u;
  char err[256];

  if (uri_parse_listen (uristr, &u, err, sizeof err) == -1) {
    log_error ("%s: %s", uristr ? uristr : "(null)", err);
    return NULL;
  }
  l = calloc (1, sizeof *l);
  if (!l)
    goto error;
  l->fd = -1;
  l->cfg = *cfg;
  l->uri = strdup (uristr);
  if (!l->uri)
    goto error;
  if (cfg->psk_file) {
    l->psk_file = strdup (cfg->psk_file);
    if (!l->psk_file)
      goto error;
    l->cfg.psk_file = l->psk_file;
  }
  l->cfg.psk_identity = NULL;

  if (u.scheme == URI_SCHEME_TCP) {
    struct psk_table t;
    if (!cfg->psk_file) {
      log_error ("%s: TCP channels need a pre-shared key file", uristr);
      errno = EINVAL;
      goto error;
    }
    /* Check the key file now rather than at the first connection. */
    if (psk_load (cfg->psk_file, &t, err, sizeof err) == -1) {
      log_error ("%s", err);
      goto error;
    }
    psk_table_free (&t);
    l->fd = sock_listen_tcp (u.host, u.port, 64);
  }
  else if (u.scheme == URI_SCHEME_UNIX) {
    l->is_unix = true;
    l->path = strdup (u.socket);
    if (!l->path)
      goto error;
    l->fd = sock_listen_unix (u.socket, cfg->unix_mode ? cfg->unix_mode : 0600,
                              64);
    struct stat st;
    if (l->fd >= 0 && stat (u.socket, &st) == 0) {
      l->dev = st.st_dev;
      l->ino = st.st_ino;
    }
  }
  else {
    log_error ("%s: a channel listens on a tcp:// or unix: URI", uristr);
    errno = EINVAL;
    goto error;
  }
  if (l->fd == -1)
    goto error;
  uri_free (&u);
  return l;

 error:
  {
    int e = errno;
    uri_free (&u);
    if (l) {
      free (l->path);
      l->path = NULL;
      chan_listener_close (l);
    }
    errno = e;
  }
  return NULL;
}

int
chan_listener_fd (const struct chan_listener *l)
{
  return l->fd;
}

int
chan_listener_port (const struct chan_listener *l, uint16_t *port_r)
{
  return sock_local_port (l->fd, port_r);
}

struct channel *
chan_accept (struct chan_listener *l, int timeout_ms)
{
  int fd;
  char peer[128];
  struct channel *c;

  /* Terminates: each pass waits against the deadline. */
  int64_t deadline = deadline_after (timeout_ms);
  for (;;) {
    if (sock_wait (l->fd, POLLIN, deadline) == -1)
      return NULL;
    fd = accept4 (l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
      break;
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      log_error ("%s: accept: %m", l->uri);
      return NULL;
    }
  }
  if (sock_peer_name (fd, peer, sizeof peer) == -1 || l->is_unix)
    snprintf (peer, sizeof peer, "%s (client)", l->uri);
  c = handshake (fd, true, &l->cfg, peer);
  if (!c) {
    log_warn ("%s: refused a peer that failed the handshake", l->uri);
    errno = ECONNABORTED;
  }
  return c;
}

void
chan_listener_close (struct chan_listener *l)
{
  if (!l)
    return;
  if (l->fd >= 0)
    close (l->fd);
  if (l->path) {
    /* A newer server may have replaced our socket: leave it alone. */
    struct stat st;
    if (stat (l->path, &st) == 0 && st.st_dev == l->dev &&
        st.st_ino == l->ino)
      unlink (l->path);
  }
  free (l->path);
  free (l->uri);
  free (l->psk_file);
  free (l);
}

void
chan_set_timeout (struct channel *c, int timeout_ms)
{
  c->timeout_ms = effective_timeout (timeout_ms);
}

int
chan_fd (const struct channel *c)
{
  return c->fd;
}

uint16_t
chan_version (const struct channel *c)
{
  return c->version;
}

const char *
chan_peer_identity (const struct channel *c)
{
  return c->tls ? tls_peer_identity (c->tls) : NULL;
}

const char *
chan_bad_json (const struct channel *c)
{
  return c->bad_json[0] ? c->bad_json : "malformed frame";
}

const char *
chan_peer_name (const struct channel *c)
{
  return c->peer;
}

bool
chan_is_tls (const struct channel *c)
{
  return c->tls != NULL;
}

int
chan_peer_uid (const struct channel *c, uid_t *uid_r)
{
  struct ucred cred;
  socklen_t len = sizeof cred;

  if (getsockopt (c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
    return -1;
  *uid_r = cred.uid;
  return 0;
}

void
chan_shutdown (struct channel *c)
{
  mark_broken (c);
}

void
chan_close (struct channel *c)
{
  if (!c)
    return;
  if (c->tls && !c->broken)
    tls_bye (c->tls);       /* Best effort close_notify; never waits. */
  chan_free (c);
}
