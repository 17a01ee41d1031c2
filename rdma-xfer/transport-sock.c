/* librxfer: the tcp:// (TLS-PSK) and unix: back ends.
 *
 * Thread model: a connection may be used by one sender and one
 * receiver at once (TLS allows a send and a receive in parallel).  The
 * socket is non-blocking; every wait is a poll() against a deadline.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sockets.h"
#include "tls.h"
#include "xfer-internal.h"

struct sock_conn {
  int fd;
  struct tls_session *tls;      /* tcp:// only. */
};

struct sock_listener {
  int fd;
  bool is_unix;
  char *path;
  dev_t dev;
  ino_t ino;
};

/* Socket buffers of 1 MiB: big enough for few wake-ups on a fast
 * stream, small enough that a migration stream does not sit in them
 * (QEMU counts what the socket took as sent, and the guest's pause
 * waits for whatever is still queued). */
static void
tune_buffers (int fd)
{
  int sz = 1 << 20;

  setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

static int
sock_listen (struct xfer_listener *l, const struct uri *u)
{
  struct sock_listener *s = calloc (1, sizeof *s);

  if (!s)
    return -1;
  if (u->scheme == URI_SCHEME_UNIX) {
    struct stat st;
    s->is_unix = true;
    s->path = strdup (u->socket);
    s->fd = sock_listen_unix (u->socket, 0600, 64);
    if (s->fd >= 0 && stat (u->socket, &st) == 0) {
      s->dev = st.st_dev;
      s->ino = st.st_ino;
    }
  }
  else
    s->fd = sock_listen_tcp (u->host, u->port, 64);
  if (s->fd == -1) {
    free (s->path);
    free (s);
    return -1;
  }
  l->priv = s;
  return 0;
}

static int
sock_listener_port (const struct xfer_listener *l, uint16_t *port_r)
{
  const struct sock_listener *s = l->priv;
  return sock_local_port (s->fd, port_r);
}

static void
sock_listener_close (struct xfer_listener *l)
{
  struct sock_listener *s = l->priv;
  struct stat st;

  if (!s)
    return;
  close (s->fd);
  /* Remove the socket unless a newer server has replaced it. */
  if (s->path && stat (s->path, &st) == 0 && st.st_dev == s->dev &&
      st.st_ino == s->ino)
    unlink (s->path);
  free (s->path);
  free (s);
  l->priv = NULL;
}

/* Wrap a connected socket; TLS for tcp://. */
static int
setup_conn (struct xfer_conn *c, int fd, bool server, int64_t deadline)
{
  struct sock_conn *s = calloc (1, sizeof *s);

  if (!s) {
    close (fd);
    return -1;
  }
  s->fd = fd;
  c->priv = s;
  if (sock_set_nonblock (fd, 1) == -1)
    return -1;
  if (c->t == &xfer_transport_tcp) {
    tune_buffers (fd);
    s->tls = tls_new (fd, server, c->psk_file, NULL, c->peer);
    if (!s->tls || tls_handshake (s->tls, deadline) == -1)
      return -1;
  }
  return 0;
}

static int
sock_accept (struct xfer_listener *l, struct xfer_conn *c,
             int64_t wait_deadline)
{
  struct sock_listener *s = l->priv;
  int fd;

  /* Terminates: each pass waits against the deadline. */
  for (;;) {
    if (sock_wait (s->fd, POLLIN, wait_deadline) == -1)
      return -1;
    fd = accept4 (s->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
      break;
    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
      log_error ("%s: accept: %m", l->uri);
      return -1;
    }
  }
  if (s->is_unix || sock_peer_name (fd, c->peer, sizeof c->peer) == -1)
    snprintf (c->peer, sizeof c->peer, "%s (client)", l->uri);
  return setup_conn (c, fd, true, xfer_setup_deadline (c));
}

static int
sock_connect (struct xfer_conn *c, const struct uri *u, int64_t deadline)
{
  int64_t left = deadline - clock_ms ();
  int fd;

  if (left < 1)
    left = 1;
  if (u->scheme == URI_SCHEME_UNIX)
    fd = sock_connect_unix (u->socket, (int) left);
  else
    fd = sock_connect_tcp (u->host, u->port, (int) left);
  if (fd == -1)
    return -1;
  return setup_conn (c, fd, false, deadline);
}

static int
sock_send (struct xfer_conn *c, const void *buf, size_t n, int64_t deadline)
{
  struct sock_conn *s = c->priv;

  return s->tls ? tls_write_all (s->tls, buf, n, deadline)
    : sock_write_all (s->fd, buf, n, deadline);
}

static ssize_t
sock_recv (struct xfer_conn *c, void *buf, size_t n, int64_t deadline)
{
  struct sock_conn *s = c->priv;

  return s->tls ? tls_read (s->tls, buf, n, deadline)
    : sock_read (s->fd, buf, n, deadline);
}

static int
sock_shutdown_write (struct xfer_conn *c)
{
  struct sock_conn *s = c->priv;

  if (s->tls)
    tls_bye (s->tls);
  return shutdown (s->fd, SHUT_WR);
}

static void
sock_abort (struct xfer_conn *c)
{
  struct sock_conn *s = c->priv;

  if (s)
    shutdown (s->fd, SHUT_RDWR);
}

static void
sock_close (struct xfer_conn *c)
{
  struct sock_conn *s = c->priv;

  if (!s)
    return;
  tls_free (s->tls);
  close (s->fd);
  free (s);
  c->priv = NULL;
}

const struct xfer_transport xfer_transport_tcp = {
  .name = "tcp",
  .listen = sock_listen,
  .listener_port = sock_listener_port,
  .accept = sock_accept,
  .listener_close = sock_listener_close,
  .connect = sock_connect,
  .send = sock_send,
  .recv = sock_recv,
  .shutdown_write = sock_shutdown_write,
  .abort = sock_abort,
  .close = sock_close,
};

const struct xfer_transport xfer_transport_unix = {
  .name = "unix",
  .listen = sock_listen,
  .listener_port = sock_listener_port,
  .accept = sock_accept,
  .listener_close = sock_listener_close,
  .connect = sock_connect,
  .send = sock_send,
  .recv = sock_recv,
  .shutdown_write = sock_shutdown_write,
  .abort = sock_abort,
  .close = sock_close,
};
