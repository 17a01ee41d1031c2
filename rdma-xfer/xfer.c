/* librxfer: transport selection, the stream handshake and statistics.
 * See xfer.h and xfer-proto.h. */
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "cleanup.h"
#include "log.h"
#include "sockets.h"
#include "xfer-internal.h"
#include "xfer-proto.h"

#define DEFAULT_TIMEOUT_MS 10000

static const char client_label[] = "handoff-xfer client";
static const char server_label[] = "handoff-xfer server";

static int
copy_opts (const struct xfer_opts *in, struct xfer_opts *out,
           uint8_t **token_r, char **psk_r)
{
  *out = *in;
  *token_r = NULL;
  *psk_r = NULL;
  if (in->token_len) {
    *token_r = malloc (in->token_len);
    if (!*token_r)
      return -1;
    memcpy (*token_r, in->token, in->token_len);
    out->token = *token_r;
  }
  if (in->psk_file) {
    *psk_r = strdup (in->psk_file);
    if (!*psk_r)
      return -1;
    out->psk_file = *psk_r;
  }
  if (out->timeout_ms == 0)
    out->timeout_ms = DEFAULT_TIMEOUT_MS;
  return 0;
}

/* Pick the back end and check that its security needs are met. */
static const struct xfer_transport *
pick (const char *uristr, const struct uri *u, const struct xfer_opts *o)
{
  switch (u->scheme) {
  case URI_SCHEME_TCP:
    if (!o->psk_file && !u->tls_psk_file) {
      log_error ("%s: tcp:// streams are TLS-only: give a pre-shared key "
                 "(--psk FILE)", uristr);
      errno = EINVAL;
      return NULL;
    }
    return &xfer_transport_tcp;
  case URI_SCHEME_UNIX:
    return &xfer_transport_unix;
  case URI_SCHEME_RDMA:
    if (o->token_len == 0 && !u->token_file) {
      log_error ("%s: rdma:// streams need a token (--token-file FILE)",
                 uristr);
      errno = EINVAL;
      return NULL;
    }
    return &xfer_transport_rdma;
  default:
    log_error ("%s: expected rdma://HOST:PORT, tcp://HOST:PORT or "
               "unix:PATH", uristr);
    errno = EINVAL;
    return NULL;
  }
}

/* ------------------------------------------------------------------ */
/* Handshake. */

static int
recv_exact (struct xfer_conn *c, void *buf, size_t n, int64_t deadline)
{
  char *p = buf;

  while (n > 0) {
    ssize_t r = c->t->recv (c, p, n, deadline);
    if (r == 0) {
      errno = ECONNRESET;
      return -1;
    }
    if (r < 0)
      return -1;
    p += r;
    n -= (size_t) r;
  }
  return 0;
}

static void
compute_mac (const struct xfer_conn *c, const char *label,
             const uint8_t *n1, const uint8_t *n2, uint8_t mac[XFER_MAC_LEN])
{
  uint8_t msg[sizeof client_label + 2 * XFER_NONCE_LEN];
  size_t ll = strlen (label);
  static const uint8_t empty_key[1] = { 0 };

  memcpy (msg, label, ll);
  memcpy (msg + ll, n1, XFER_NONCE_LEN);
  memcpy (msg + ll + XFER_NONCE_LEN, n2, XFER_NONCE_LEN);
  gnutls_hmac_fast (GNUTLS_MAC_SHA256,
                    c->opts.token_len ? c->opts.token : empty_key,
                    c->opts.token_len, msg, ll + 2 * XFER_NONCE_LEN, mac);
}

/* Constant time, so timing does not tell how much of a MAC was right. */
static bool
mac_equal (const uint8_t *a, const uint8_t *b)
{
  uint8_t d = 0;

  for (size_t i = 0; i < XFER_MAC_LEN; ++i)
    d |= a[i] ^ b[i];
  return d == 0;
}

static int
handshake_server (struct xfer_conn *c, int64_t deadline)
{
  struct xfer_challenge ch = { .magic = htobe32 (XFER_MAGIC),
                               .version = htobe16 (XFER_VERSION) };
  struct xfer_response rs;
  struct xfer_verdict vd = { .magic = htobe32 (XFER_MAGIC) };
  struct xfer_stream st;
  uint8_t want[XFER_MAC_LEN];

  if (gnutls_rnd (GNUTLS_RND_NONCE, ch.nonce, sizeof ch.nonce) < 0)
    return -1;
  if (c->t->send (c, &ch, sizeof ch, deadline) == -1 ||
      recv_exact (c, &rs, sizeof rs, deadline) == -1) {
    log_error ("%s: handshake: %s", c->peer,
               errno == ETIMEDOUT ? "timed out" : strerror (errno));
    return -1;
  }
  if (be32toh (rs.magic) != XFER_MAGIC) {
    log_error ("%s: handshake: not a handoff-xfer peer", c->peer);
    errno = EPROTO;
    return -1;
  }
  if (be16toh (rs.version) != XFER_VERSION || rs.flags != 0) {
    vd.status = htobe16 (XFER_STATUS_BAD_VERSION);
    c->t->send (c, &vd, sizeof vd, deadline);
    log_error ("%s: handshake: version %u, expected %u", c->peer,
               be16toh (rs.version), XFER_VERSION);
    errno = EPROTO;
    return -1;
  }
  compute_mac (c, client_label, ch.nonce, rs.nonce, want);
  if (!mac_equal (want, rs.mac)) {
    vd.status = htobe16 (XFER_STATUS_BAD_MAC);
    c->t->send (c, &vd, sizeof vd, deadline);
    log_error ("%s: handshake: wrong token, connection refused", c->peer);
    errno = EACCES;
    return -1;
  }
  vd.status = htobe16 (XFER_STATUS_OK);
  compute_mac (c, server_label, rs.nonce, ch.nonce, vd.mac);
  if (c->t->send (c, &vd, sizeof vd, deadline) == -1 ||
      recv_exact (c, &st, sizeof st, deadline) == -1) {
    log_error ("%s: handshake: %s", c->peer,
               errno == ETIMEDOUT ? "timed out" : strerror (errno));
    return -1;
  }
  if (be32toh (st.magic) != XFER_MAGIC || st.reserved != 0 ||
      (be32toh (st.flags) & ~XFER_STREAM_RETURN_PATH) != 0) {
    log_error ("%s: handshake: bad stream header", c->peer);
    errno = EPROTO;
    return -1;
  }
  c->stream_id = be32toh (st.stream_id);
  c->flags = be32toh (st.flags);
  return 0;
}

static int
handshake_client (struct xfer_conn *c, int64_t deadline)
{
  struct xfer_challenge ch;
  struct xfer_response rs = { .magic = htobe32 (XFER_MAGIC),
                              .version = htobe16 (XFER_VERSION) };
  struct xfer_verdict vd;
  struct xfer_stream st = { .magic = htobe32 (XFER_MAGIC),
                            .stream_id = htobe32 (c->stream_id),
                            .flags = htobe32 (c->flags) };
  uint8_t want[XFER_MAC_LEN];

  if (recv_exact (c, &ch, sizeof ch, deadline) == -1)
    goto io_error;
  if (be32toh (ch.magic) != XFER_MAGIC) {
    log_error ("%s: handshake: not a handoff-xfer server", c->peer);
    errno = EPROTO;
    return -1;
  }
  if (be16toh (ch.version) != XFER_VERSION) {
    log_error ("%s: handshake: server speaks version %u, we speak %u",
               c->peer, be16toh (ch.version), XFER_VERSION);
    errno = EPROTO;
    return -1;
  }
  if (gnutls_rnd (GNUTLS_RND_NONCE, rs.nonce, sizeof rs.nonce) < 0)
    return -1;
  compute_mac (c, client_label, ch.nonce, rs.nonce, rs.mac);
  if (c->t->send (c, &rs, sizeof rs, deadline) == -1 ||
      recv_exact (c, &vd, sizeof vd, deadline) == -1)
    goto io_error;
  if (be32toh (vd.magic) != XFER_MAGIC) {
    log_error ("%s: handshake: bad verdict", c->peer);
    errno = EPROTO;
    return -1;
  }
  if (be16toh (vd.status) != XFER_STATUS_OK) {
    log_error ("%s: handshake: refused: %s", c->peer,
               be16toh (vd.status) == XFER_STATUS_BAD_MAC
               ? "wrong token" : "version mismatch");
    errno = EACCES;
    return -1;
  }
  compute_mac (c, server_label, rs.nonce, ch.nonce, want);
  if (!mac_equal (want, vd.mac)) {
    log_error ("%s: handshake: the server does not hold the token",
               c->peer);
    errno = EACCES;
    return -1;
  }
  if (c->t->send (c, &st, sizeof st, deadline) == -1)
    goto io_error;
  return 0;

 io_error:
  log_error ("%s: handshake: %s", c->peer,
             errno == ETIMEDOUT ? "timed out"
             : errno == ECONNRESET ? "connection closed by the peer"
             : strerror (errno));
  return -1;
}

/* ------------------------------------------------------------------ */

static struct xfer_conn *
conn_new (const struct xfer_transport *t, const struct xfer_opts *o)
{
  struct xfer_conn *c = calloc (1, sizeof *c);

  if (!c)
    return NULL;
  c->t = t;
  if (copy_opts (o, &c->opts, &c->token, &c->psk_file) == -1) {
    free (c->token);
    free (c->psk_file);
    free (c);
    return NULL;
  }
  return c;
}

static void
conn_free (struct xfer_conn *c)
{
  if (!c)
    return;
  if (c->t && c->priv)
    c->t->close (c);
  if (c->token)
    explicit_bzero (c->token, c->opts.token_len);
  free (c->token);
  free (c->psk_file);
  free (c);
}

struct xfer_listener *
xfer_listen (const char *uristr, const struct xfer_opts *opts)
{
  struct xfer_listener *l;
  struct uri u;
  char err[256];

  if (uri_parse_listen (uristr, &u, err, sizeof err) == -1) {
    log_error ("%s: %s", uristr, err);
    return NULL;
  }
  l = calloc (1, sizeof *l);
  if (!l) {
    uri_free (&u);
    return NULL;
  }
  snprintf (l->uri, sizeof l->uri, "%s", uristr);
  l->t = pick (uristr, &u, opts);
  if (!l->t || copy_opts (opts, &l->opts, &l->token, &l->psk_file) == -1 ||
      l->t->listen (l, &u) == -1) {
    uri_free (&u);
    free (l->token);
    free (l->psk_file);
    free (l);
    return NULL;
  }
  uri_free (&u);
  return l;
}

int
xfer_listener_port (const struct xfer_listener *l, uint16_t *port_r)
{
  return l->t->listener_port (l, port_r);
}

struct xfer_conn *
xfer_accept (struct xfer_listener *l, int timeout_ms)
{
  struct xfer_conn *c = conn_new (l->t, &l->opts);
  int64_t deadline = deadline_after (timeout_ms);

  if (!c)
    return NULL;
  if (l->t->accept (l, c, deadline) == -1) {
    int e = errno;
    conn_free (c);
    errno = e == ETIMEDOUT ? ETIMEDOUT : ECONNABORTED;
    return NULL;
  }
  /* unix: endpoints carry QEMU's raw stream: no handshake.  The
   * handshake gets its own deadline: a slow peer must not be cut short
   * by how long we waited for it to come. */
  if (l->t != &xfer_transport_unix &&
      handshake_server (c, xfer_setup_deadline (c)) == -1) {
    conn_free (c);
    errno = ECONNABORTED;
    return NULL;
  }
  log_debug ("%s: stream %u accepted over %s", c->peer, c->stream_id,
             c->t->name);
  return c;
}

void
xfer_listener_close (struct xfer_listener *l)
{
  if (!l)
    return;
  l->t->listener_close (l);
  if (l->token)
    explicit_bzero (l->token, l->opts.token_len);
  free (l->token);
  free (l->psk_file);
  free (l);
}

struct xfer_conn *
xfer_connect (const char *uristr, const struct xfer_opts *opts,
              uint32_t stream_id, uint32_t flags)
{
  const struct xfer_transport *t;
  struct xfer_conn *c;
  struct uri u;
  char err[256];
  int64_t deadline;

  if (uri_parse (uristr, &u, err, sizeof err) == -1) {
    log_error ("%s: %s", uristr, err);
    return NULL;
  }
  t = pick (uristr, &u, opts);
  if (!t) {
    uri_free (&u);
    return NULL;
  }
  c = conn_new (t, opts);
  if (c && u.tls_psk_file) {
    /* This destination's own key (a relay fanning out to several). */
    free (c->psk_file);
    c->psk_file = strdup (u.tls_psk_file);
    c->opts.psk_file = c->psk_file;
    if (!c->psk_file) {
      conn_free (c);
      c = NULL;
    }
  }
  if (c && u.token_file) {
    /* This destination's own token, likewise. */
    uint8_t *token;
    size_t len;
    if (xfer_load_token (u.token_file, &token, &len, err, sizeof err) == -1) {
      log_error ("%s: %s", uristr, err);
      conn_free (c);
      c = NULL;
    }
    else {
      if (c->token)
        explicit_bzero (c->token, c->opts.token_len);
      free (c->token);
      c->token = token;
      c->opts.token = token;
      c->opts.token_len = len;
    }
  }
  if (!c) {
    uri_free (&u);
    return NULL;
  }
  snprintf (c->peer, sizeof c->peer, "%s", uristr);
  c->stream_id = stream_id;
  c->flags = flags;
  deadline = deadline_after (c->opts.timeout_ms);
  if (t->connect (c, &u, deadline) == -1 ||
      (t != &xfer_transport_unix && handshake_client (c, deadline) == -1)) {
    int e = errno;
    uri_free (&u);
    conn_free (c);
    errno = e;
    return NULL;
  }
  uri_free (&u);
  return c;
}

int
xfer_send (struct xfer_conn *c, const void *buf, size_t n, int timeout_ms)
{
  if (atomic_load (&c->aborted)) {
    errno = ECANCELED;
    return -1;
  }
  if (c->t->send (c, buf, n, deadline_after (timeout_ms)) == -1)
    return -1;
  atomic_fetch_add (&c->sent, n);
  return 0;
}

ssize_t
xfer_recv (struct xfer_conn *c, void *buf, size_t n, int timeout_ms)
{
  ssize_t r;

  if (atomic_load (&c->aborted)) {
    errno = ECANCELED;
    return -1;
  }
  r = c->t->recv (c, buf, n, deadline_after (timeout_ms));
  if (r > 0)
    atomic_fetch_add (&c->received, (uint64_t) r);
  return r;
}

int
xfer_shutdown_write (struct xfer_conn *c)
{
  return c->t->shutdown_write (c);
}

void
xfer_abort (struct xfer_conn *c)
{
  atomic_store (&c->aborted, true);
  c->t->abort (c);
}

void
xfer_close (struct xfer_conn *c)
{
  conn_free (c);
}

uint32_t
xfer_stream_id (const struct xfer_conn *c)
{
  return c->stream_id;
}

uint32_t
xfer_stream_flags (const struct xfer_conn *c)
{
  return c->flags;
}

const char *
xfer_peer (const struct xfer_conn *c)
{
  return c->peer;
}

const char *
xfer_transport_name (const struct xfer_conn *c)
{
  return c->t->name;
}

void
xfer_get_stats (const struct xfer_conn *c, struct xfer_stats *s)
{
  s->sent = atomic_load (&c->sent);
  s->received = atomic_load (&c->received);
}

int
xfer_load_token (const char *path, uint8_t **token_r, size_t *len_r,
                 char *err, size_t errlen)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  uint8_t buf[XFER_TOKEN_MAX + 64];
  ssize_t n;
  size_t start = 0, end;

  if (fd == -1) {
    snprintf (err, errlen, "%s: %s", path, strerror (errno));
    return -1;
  }
  n = read (fd, buf, sizeof buf);
  if (n < 0) {
    snprintf (err, errlen, "%s: %s", path, strerror (errno));
    return -1;
  }
  end = (size_t) n;
  while (start < end && isspace (buf[start]))
    start++;
  while (end > start && isspace (buf[end - 1]))
    end--;
  if (end - start < XFER_TOKEN_MIN) {
    snprintf (err, errlen, "%s: token is %zu bytes, at least %d are needed",
              path, end - start, XFER_TOKEN_MIN);
    explicit_bzero (buf, sizeof buf);
    return -1;
  }
  if (end - start > XFER_TOKEN_MAX) {
    snprintf (err, errlen, "%s: token is longer than %d bytes", path,
              XFER_TOKEN_MAX);
    explicit_bzero (buf, sizeof buf);
    return -1;
  }
  *token_r = malloc (end - start);
  if (!*token_r) {
    snprintf (err, errlen, "out of memory");
    return -1;
  }
  memcpy (*token_r, buf + start, end - start);
  *len_r = end - start;
  explicit_bzero (buf, sizeof buf);
  return 0;
}
