/* handoff: TLS-PSK sessions on non-blocking sockets.  See tls.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <gnutls/gnutls.h>

#include "log.h"
#include "psk.h"
#include "sockets.h"
#include "tls.h"

/* Key exchange by PSK only, with (EC)DHE for forward secrecy.  AES-GCM
 * first: with AES-NI it runs several times faster than ChaCha20, which
 * GnuTLS would otherwise often pick (measured in bench/xfer.sh). */
#define TLS_PRIORITY \
  "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:-KX-ALL:+ECDHE-PSK:+DHE-PSK:" \
  "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"

/* Encrypted bytes are read from the socket in large gulps and handed
 * to GnuTLS from this buffer: it asks for one record header, then one
 * record, at a time, and a system call each would dominate a fast
 * stream. */
#define TLS_RBUF (256 * 1024)

/* Records sealed while tls_write_all runs are gathered here and sent
 * in one system call: GnuTLS hands each record to the transport as it
 * is made, and a send per 16 KiB record cost more than the copy into
 * this buffer (bench/xfer.sh).  It holds one batch (TLS_BATCH) with
 * its records' overhead. */
#define TLS_WBUF (TLS_BATCH + 64 * 1024)
#define TLS_BATCH (256 * 1024)

struct tls_session {
  int fd;                                   /* Not owned. */
  uint8_t *rbuf;                            /* Read-ahead (reader only). */
  size_t rpos, rlen;
  /* A receiving thread may have GnuTLS send a record too (an alert, a
   * key update's answer): it goes through the same gathering, in the
   * order records were handed over, under wlock. */
  pthread_mutex_t wlock;
  uint8_t *wbuf;                            /* wlock: gathered records */
  size_t wlen;                              /* wlock */
  bool gathering;                           /* wlock: in tls_write_all */
  int64_t wdeadline;                        /* wlock: its deadline */
  int werrno;                               /* wlock: why gathering failed */
  bool server;
  gnutls_session_t s;
  gnutls_psk_client_credentials_t ccred;
  gnutls_psk_server_credentials_t scred;
  struct psk_table psk;                     /* Keys, owned. */
  char *identity;                           /* Peer's, after handshake. */
  char peer[160];
};

/* Send the gathered records, waiting for room until the deadline
 * (wlock held).  MSG_NOSIGNAL so a dead peer is EPIPE, not SIGPIPE. */
static int
flush_gathered (struct tls_session *t)
{
  size_t done = 0;

  while (done < t->wlen) {
    ssize_t r = send (t->fd, t->wbuf + done, t->wlen - done, MSG_NOSIGNAL);
    if (r == -1 && (errno == EAGAIN || errno == EINTR)) {
      if (errno == EAGAIN && sock_wait (t->fd, POLLOUT, t->wdeadline) == -1)
        return -1;
      continue;
    }
    if (r == -1)
      return -1;
    done += (size_t) r;
  }
  t->wlen = 0;
  return 0;
}

/* Records go out several at a time (writev), or gathered while
 * tls_write_all runs. */
static ssize_t
vec_push (gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
  struct tls_session *t = p;
  struct msghdr m = { .msg_iov = (struct iovec *) iov,
                      .msg_iovlen = (size_t) iovcnt };
  size_t total = 0;
  ssize_t r;

  for (int i = 0; i < iovcnt; ++i)
    total += iov[i].iov_len;
  pthread_mutex_lock (&t->wlock);
  if (t->gathering && total <= TLS_WBUF) {
    if (t->wlen + total > TLS_WBUF && flush_gathered (t) == -1) {
      t->werrno = errno;
      gnutls_transport_set_errno (t->s, errno);
      pthread_mutex_unlock (&t->wlock);
      return -1;
    }
    for (int i = 0; i < iovcnt; ++i) {
      memcpy (t->wbuf + t->wlen, iov[i].iov_base, iov[i].iov_len);
      t->wlen += iov[i].iov_len;
    }
    pthread_mutex_unlock (&t->wlock);
    return (ssize_t) total;
  }
  /* (Nothing is gathered outside tls_write_all: it flushes first.) */
  r = sendmsg (t->fd, &m, MSG_NOSIGNAL);
  if (r == -1)
    gnutls_transport_set_errno (t->s, errno);
  pthread_mutex_unlock (&t->wlock);
  return r;
}

static ssize_t
pull (gnutls_transport_ptr_t p, void *buf, size_t len)
{
  struct tls_session *t = p;

  if (t->rpos == t->rlen) {
    ssize_t r = recv (t->fd, t->rbuf, TLS_RBUF, 0);
    if (r <= 0) {
      if (r == -1)
        gnutls_transport_set_errno (t->s, errno);
      return r;
    }
    t->rpos = 0;
    t->rlen = (size_t) r;
  }
  if (len > t->rlen - t->rpos)
    len = t->rlen - t->rpos;
  memcpy (buf, t->rbuf + t->rpos, len);
  t->rpos += len;
  return (ssize_t) len;
}

static int
server_psk_cb (gnutls_session_t session, const char *username,
               gnutls_datum_t *key)
{
  struct tls_session *t = gnutls_session_get_ptr (session);
  const struct psk_entry *e = psk_lookup (&t->psk, username);

  if (!e) {
    log_error ("%s: TLS: unknown PSK identity '%s'", t->peer, username);
    return -1;
  }
  key->data = gnutls_malloc (e->key_len);
  if (!key->data)
    return -1;
  memcpy (key->data, e->key, e->key_len);
  key->size = (unsigned) e->key_len;
  return 0;
}

void
tls_free (struct tls_session *t)
{
  if (!t)
    return;
  if (t->s)
    gnutls_deinit (t->s);
  if (t->ccred)
    gnutls_psk_free_client_credentials (t->ccred);
  if (t->scred)
    gnutls_psk_free_server_credentials (t->scred);
  psk_table_free (&t->psk);
  free (t->identity);
  free (t->rbuf);
  free (t->wbuf);
  pthread_mutex_destroy (&t->wlock);
  free (t);
}

struct tls_session *
tls_new (int fd, bool server, const char *psk_file, const char *identity,
         const char *peer)
{
  struct tls_session *t = calloc (1, sizeof *t);
  char err[512];
  int r;

  if (!t)
    return NULL;
  t->fd = fd;
  t->server = server;
  pthread_mutex_init (&t->wlock, NULL);
  snprintf (t->peer, sizeof t->peer, "%s", peer);
  t->rbuf = malloc (TLS_RBUF);
  t->wbuf = malloc (TLS_WBUF);
  if (!t->rbuf || !t->wbuf)
    goto error;
  if (psk_load (psk_file, &t->psk, err, sizeof err) == -1) {
    log_error ("%s", err);
    goto error;
  }
  r = gnutls_init (&t->s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                   GNUTLS_NONBLOCK);
  if (r < 0)
    goto tls_error;
  gnutls_session_set_ptr (t->s, t);
  r = gnutls_priority_set_direct (t->s, TLS_PRIORITY, NULL);
  if (r < 0)
    goto tls_error;
  if (server) {
    r = gnutls_psk_allocate_server_credentials (&t->scred);
    if (r < 0)
      goto tls_error;
    gnutls_psk_set_server_credentials_function (t->scred, server_psk_cb);
    r = gnutls_credentials_set (t->s, GNUTLS_CRD_PSK, t->scred);
  }
  else {
    const struct psk_entry *e = psk_lookup (&t->psk, identity);
    gnutls_datum_t key;

    if (!e) {
      log_error ("%s: no key for identity '%s'", psk_file, identity);
      errno = ENOENT;
      goto error;
    }
    key.data = e->key;
    key.size = (unsigned) e->key_len;
    r = gnutls_psk_allocate_client_credentials (&t->ccred);
    if (r < 0)
      goto tls_error;
    r = gnutls_psk_set_client_credentials (t->ccred, e->identity, &key,
                                           GNUTLS_PSK_KEY_RAW);
    if (r < 0)
      goto tls_error;
    r = gnutls_credentials_set (t->s, GNUTLS_CRD_PSK, t->ccred);
  }
  if (r < 0)
    goto tls_error;
  gnutls_transport_set_ptr (t->s, t);
  gnutls_transport_set_vec_push_function (t->s, vec_push);
  gnutls_transport_set_pull_function (t->s, pull);
  return t;

 tls_error:
  log_error ("%s: TLS setup: %s", t->peer, gnutls_strerror (r));
  errno = EPROTO;
 error:
  {
    int e = errno;
    tls_free (t);
    errno = e;
  }
  return NULL;
}

int
tls_handshake (struct tls_session *t, int64_t deadline)
{
  int r;

  /* Terminates: each pass makes progress or waits against the deadline. */
  while ((r = gnutls_handshake (t->s)) < 0) {
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      short ev = gnutls_record_get_direction (t->s) ? POLLOUT : POLLIN;
      if (sock_wait (t->fd, ev, deadline) == -1) {
        log_error ("%s: TLS handshake: %s", t->peer,
                   errno == ETIMEDOUT ? "timed out" : strerror (errno));
        return -1;
      }
      continue;
    }
    if (gnutls_error_is_fatal (r)) {
      log_error ("%s: TLS handshake failed: %s%s", t->peer,
                 gnutls_strerror (r),
                 r == GNUTLS_E_DECRYPTION_FAILED ||
                 r == GNUTLS_E_KEYFILE_ERROR ||
                 r == GNUTLS_E_FATAL_ALERT_RECEIVED ||
                 r == GNUTLS_E_ERROR_IN_FINISHED_PACKET
                 ? " (wrong pre-shared key?)"
                 : r == GNUTLS_E_PREMATURE_TERMINATION && !t->server
                 ? " (the peer hung up: a wrong pre-shared key or identity,"
                   " or it gave up waiting?)"
                 : r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR
                 ? " (the connection was reset: see the peer's log)"
                 : "");
      errno = r == GNUTLS_E_PUSH_ERROR || r == GNUTLS_E_PULL_ERROR
        ? ECONNRESET : EACCES;
      return -1;
    }
  }
  if (t->server) {
    const char *u = gnutls_psk_server_get_username (t->s);
    if (u && !(t->identity = strdup (u)))
      return -1;
  }
  return 0;
}

ssize_t
tls_read (struct tls_session *t, void *buf, size_t n, int64_t deadline)
{
  char *p = buf;
  size_t got = 0;

  /* One record per gnutls_record_recv: keep going while records are
   * already here, so large reads cost one call, not one per 16 KiB. */
  while (got < n) {
    ssize_t r = gnutls_record_recv (t->s, p + got, n - got);
    if (r > 0) {
      got += (size_t) r;
      continue;
    }
    if (r == 0)
      break;
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      if (got > 0)
        break;
      if (sock_wait (t->fd, POLLIN, deadline) == -1)
        return -1;
      continue;
    }
    if (got > 0)
      break;                    /* Report the error on the next call. */
    /* A peer that vanished without close_notify has not finished its
     * stream: that is an error, never a clean end. */
    log_debug ("%s: TLS receive: %s", t->peer, gnutls_strerror ((int) r));
    errno = ECONNRESET;
    return -1;
  }
  return (ssize_t) got;
}

/* Many records per system call: each is gathered as GnuTLS seals it,
 * straight from BUF, and a batch goes out at once.  (Corking would
 * only add a copy: GnuTLS still hands the records over one by one.) */
int
tls_write_all (struct tls_session *t, const void *buf, size_t n,
               int64_t deadline)
{
  const char *p = buf;
  int rv = 0;

  pthread_mutex_lock (&t->wlock);
  t->gathering = true;
  t->wdeadline = deadline;
  t->werrno = 0;
  pthread_mutex_unlock (&t->wlock);
  while (rv == 0 && n > 0) {
    size_t batch = n > TLS_BATCH ? TLS_BATCH : n;
    ssize_t r;

    /* Gathering, the transport never says "again": it waits for room
     * itself, and fails only when the peer is gone or the deadline
     * passed. */
    for (size_t done = 0; done < batch; done += (size_t) r) {
      r = gnutls_record_send (t->s, p + done, batch - done);
      if (r < 0) {
        log_debug ("%s: TLS send: %s", t->peer, gnutls_strerror ((int) r));
        rv = -1;
        break;
      }
    }
    pthread_mutex_lock (&t->wlock);
    if (rv == 0 && flush_gathered (t) == -1) {
      t->werrno = errno;
      log_debug ("%s: TLS send: %m", t->peer);
      rv = -1;
    }
    pthread_mutex_unlock (&t->wlock);
    p += batch;
    n -= batch;
  }
  pthread_mutex_lock (&t->wlock);
  int e = t->werrno ? t->werrno : EPIPE;
  t->gathering = false;
  t->wlen = 0;                  /* (Left only after a failure.) */
  pthread_mutex_unlock (&t->wlock);
  if (rv == -1)
    errno = e;
  return rv;
}

size_t
tls_pending (struct tls_session *t)
{
  return gnutls_record_check_pending (t->s);
}

const char *
tls_peer_identity (const struct tls_session *t)
{
  return t->identity;
}

void
tls_bye (struct tls_session *t)
{
  gnutls_bye (t->s, GNUTLS_SHUT_WR);
}
