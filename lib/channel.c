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

#include <gnutls/gnutls.h>

#include "channel.h"
#include "cleanup.h"
#include "frame.h"
#include "log.h"
#include "psk.h"
#include "sockets.h"
#include "uri.h"

/* Key exchange by PSK only, with (EC)DHE for forward secrecy. */
#define CHAN_TLS_PRIORITY \
  "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:-KX-ALL:+ECDHE-PSK:+DHE-PSK"

struct channel {
  int fd;
  gnutls_session_t tls;                     /* NULL if plain. */
  gnutls_psk_client_credentials_t ccred;    /* Client side, owned. */
  gnutls_psk_server_credentials_t scred;    /* Server side, owned. */
  struct psk_table psk;                     /* Server side keys, owned. */
  bool server;
  int timeout_ms;
  uint32_t max_recv;            /* Largest frame we accept. */
  uint32_t max_send;            /* Largest frame the peer accepts. */
  uint16_t version;             /* Negotiated service version. */
  char *identity;               /* Peer's PSK identity, or NULL. */
  char peer[160];               /* For messages. */
  volatile bool broken;
  pthread_mutex_t send_lock;
  pthread_mutex_t recv_lock;
  struct frame_reader rd;       /* protected by recv_lock */
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

/* GnuTLS transport: MSG_NOSIGNAL so a dead peer is EPIPE, not SIGPIPE. */
static ssize_t
tls_push (gnutls_transport_ptr_t p, const void *buf, size_t len)
{
  struct channel *c = p;
  ssize_t r = send (c->fd, buf, len, MSG_NOSIGNAL);

  if (r == -1)
    gnutls_transport_set_errno (c->tls, errno);
  return r;
}

static ssize_t
tls_pull (gnutls_transport_ptr_t p, void *buf, size_t len)
{
  struct channel *c = p;
  ssize_t r = recv (c->fd, buf, len, 0);

  if (r == -1)
    gnutls_transport_set_errno (c->tls, errno);
  return r;
}

/* Read up to N bytes.  Returns >0, 0 on end of stream, -1 on error. */
static ssize_t
io_read (struct channel *c, void *buf, size_t n, int64_t deadline)
{
  for (;;) {
    if (c->broken) {
      errno = EPIPE;
      return -1;
    }
    if (c->tls) {
      ssize_t r = gnutls_record_recv (c->tls, buf, n);
      if (r >= 0)
        return r;
      if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
        if (sock_wait (c->fd, POLLIN, deadline) == -1)
          return -1;
        continue;
      }
      if (r == GNUTLS_E_PREMATURE_TERMINATION)
        return 0;
      log_debug ("%s: TLS receive: %s", c->peer, gnutls_strerror ((int) r));
      errno = ECONNRESET;
      return -1;
    }
    ssize_t r = recv (c->fd, buf, n, 0);
    if (r >= 0)
      return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (sock_wait (c->fd, POLLIN, deadline) == -1)
        return -1;
      continue;
    }
    if (errno != EINTR)
      return -1;
  }
}

static int
io_write_all (struct channel *c, const void *buf, size_t n, int64_t deadline)
{
  const char *p = buf;

  while (n > 0) {
    ssize_t r;

    if (c->broken) {
      errno = EPIPE;
      return -1;
    }
    if (c->tls) {
      r = gnutls_record_send (c->tls, p, n);
      if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
        if (sock_wait (c->fd, POLLOUT, deadline) == -1)
          return -1;
        continue;
      }
      if (r < 0) {
        log_debug ("%s: TLS send: %s", c->peer, gnutls_strerror ((int) r));
        errno = EPIPE;
        return -1;
      }
    }
    else {
      r = send (c->fd, p, n, MSG_NOSIGNAL);
      if (r == -1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if (sock_wait (c->fd, POLLOUT, deadline) == -1)
            return -1;
          continue;
        }
        if (errno == EINTR)
          continue;
        return -1;
      }
    }
    p += r;
    n -= (size_t) r;
  }
  return 0;
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
    errno = EPROTO;
    return NULL;
  }
  if (!json_is_object (j)) {
    log_error ("%s: receive: message is not a JSON object", c->peer);
    json_decref (j);
    errno = EPROTO;
    return NULL;
  }
  return j;
}

/* PSK lookup for the server side: keys come from the channel's table. */
static int
server_psk_cb (gnutls_session_t session, const char *username,
               gnutls_datum_t *key)
{
  struct channel *c = gnutls_session_get_ptr (session);
  const struct psk_entry *e = psk_lookup (&c->psk, username);

  if (!e) {
    log_error ("%s: TLS: unknown PSK identity '%s'", c->peer, username);
    return -1;
  }
  key->data = gnutls_malloc (e->key_len);
  if (!key->data)
    return -1;
  memcpy (key->data, e->key, e->key_len);
  key->size = (unsigned) e->key_len;
  return 0;
}

static int
tls_setup (struct channel *c, const struct chan_config *cfg)
{
  char err[512];
  int r;

  if (psk_load (cfg->psk_file, &c->psk, err, sizeof err) == -1) {
    log_error ("%s", err);
    return -1;
  }
  r = gnutls_init (&c->tls, (c->server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                   GNUTLS_NONBLOCK);
  if (r < 0)
    goto tls_error;
  gnutls_session_set_ptr (c->tls, c);
  r = gnutls_priority_set_direct (c->tls, CHAN_TLS_PRIORITY, NULL);
  if (r < 0)
    goto tls_error;

  if (c->server) {
    r = gnutls_psk_allocate_server_credentials (&c->scred);
    if (r < 0)
      goto tls_error;
    gnutls_psk_set_server_credentials_function (c->scred, server_psk_cb);
    r = gnutls_credentials_set (c->tls, GNUTLS_CRD_PSK, c->scred);
  }
  else {
    const struct psk_entry *e = psk_lookup (&c->psk, cfg->psk_identity);
    gnutls_datum_t key;

    if (!e) {
      log_error ("%s: no key for identity '%s'", cfg->psk_file,
                 cfg->psk_identity);
      errno = ENOENT;
      return -1;
    }
    key.data = e->key;
    key.size = (unsigned) e->key_len;
    r = gnutls_psk_allocate_client_credentials (&c->ccred);
    if (r < 0)
      goto tls_error;
    r = gnutls_psk_set_client_credentials (c->ccred, e->identity, &key,
                                           GNUTLS_PSK_KEY_RAW);
    if (r < 0)
      goto tls_error;
    r = gnutls_credentials_set (c->tls, GNUTLS_CRD_PSK, c->ccred);
  }
  if (r < 0)
    goto tls_error;
  gnutls_transport_set_ptr (c->tls, c);
  gnutls_transport_set_push_function (c->tls, tls_push);
  gnutls_transport_set_pull_function (c->tls, tls_pull);
  return 0;

 tls_error:
  log_error ("%s: TLS setup: %s", c->peer, gnutls_strerror (r));
  errno = EPROTO;
  return -1;
}

static int
tls_handshake (struct channel *c, int64_t deadline)
{
  int r;

  /* Terminates: each pass makes progress or waits against the deadline. */
  while ((r = gnutls_handshake (c->tls)) < 0) {
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      short ev = gnutls_record_get_direction (c->tls) ? POLLOUT : POLLIN;
      if (sock_wait (c->fd, ev, deadline) == -1) {
        log_error ("%s: TLS handshake: %s", c->peer,
                   errno == ETIMEDOUT ? "timed out" : strerror (errno));
        return -1;
      }
      continue;
    }
    if (gnutls_error_is_fatal (r)) {
      log_error ("%s: TLS handshake failed: %s%s", c->peer,
                 gnutls_strerror (r),
                 r == GNUTLS_E_DECRYPTION_FAILED ||
                 r == GNUTLS_E_KEYFILE_ERROR ||
                 r == GNUTLS_E_FATAL_ALERT_RECEIVED ||
                 r == GNUTLS_E_ERROR_IN_FINISHED_PACKET
                 ? " (wrong pre-shared key?)" : "");
      errno = EACCES;
      return -1;
    }
  }
  if (c->server) {
    const char *u = gnutls_psk_server_get_username (c->tls);
    if (u) {
      c->identity = strdup (u);
      if (!c->identity)
        return -1;
    }
  }
  return 0;
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
  if (c->tls)
    gnutls_deinit (c->tls);
  if (c->ccred)
    gnutls_psk_free_client_credentials (c->ccred);
  if (c->scred)
    gnutls_psk_free_server_credentials (c->scred);
  psk_table_free (&c->psk);
  frame_reader_reset (&c->rd);
  if (c->fd >= 0)
    close (c->fd);
  free (c->identity);
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
    if (tls_setup (c, cfg) == -1 || tls_handshake (c, deadline) == -1)
      goto error;
  }
  if (hello_exchange (c, cfg, deadline) == -1)
    goto error;
  log_debug ("%s: channel up (service %d v%u, %s%s%s)", c->peer,
             cfg->service, c->version, c->tls ? "TLS-PSK" : "plain",
             c->identity ? ", identity " : "",
             c->identity ? c->identity : "");
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
  return c->identity;
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
  if (c->tls && !c->broken) {
    /* Best effort close_notify; never wait for the peer. */
    gnutls_bye (c->tls, GNUTLS_SHUT_WR);
  }
  chan_free (c);
}
