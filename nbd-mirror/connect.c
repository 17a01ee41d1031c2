/* nbd-mirror: connecting a libnbd handle to a destination and checking
 * what it offers (connect.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "clock.h"
#include "connect.h"
#include "state.h"

void
connect_fail_from_nbd (struct dest *d, const char *what)
{
  struct mirror *m = d->m;
  /* nbd_get_error is per thread: read it here, in the failing thread. */
  const char *e = nbd_get_error ();
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
  dest_fail_locked (d, "%s: %s", what, e ? e : "unknown error");
}

/* Connect C's handle.  On failure returns -1 with the reason in err;
 * the caller decides whether that fails the destination. */
int
connect_conn (struct conn *c, char *err, size_t errlen)
{
  struct dest *d = c->d;
  struct mirror *m = d->m;
  struct nbd_handle *h;
  int64_t deadline = clock_ms () + m->cfg.dest_timeout_ms;

  h = nbd_create ();
  if (!h) {
    snprintf (err, errlen, "%s", nbd_get_error ());
    return -1;
  }
  nbd_set_uri_allow_local_file (h, true);
  if (d->psk_file && nbd_set_tls_psk_file (h, d->psk_file) == -1)
    goto nbd_error;
  if (d->identity && nbd_set_tls_username (h, d->identity) == -1)
    goto nbd_error;
  if (nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1)
    goto nbd_error;
  if (nbd_aio_connect_uri (h, d->uri) == -1)
    goto nbd_error;

  /* Terminates: each pass waits against the deadline. */
  while (!nbd_aio_is_ready (h)) {
    struct pollfd pfd;
    int dir, r;
    int64_t left = deadline - clock_ms ();

    if (nbd_aio_is_dead (h) || nbd_aio_is_closed (h))
      goto nbd_error;
    if (left <= 0) {
      snprintf (err, errlen, "connect: no answer in %d ms",
                m->cfg.dest_timeout_ms);
      nbd_close (h);
      return -1;
    }
    dir = nbd_aio_get_direction (h);
    pfd.fd = nbd_aio_get_fd (h);
    pfd.events = (short) (((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                          ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
    pfd.revents = 0;
    if (pfd.fd < 0)
      goto nbd_error;
    r = poll (&pfd, 1, left > 1000 ? 1000 : (int) left);
    if (r < 0 && errno != EINTR)
      goto nbd_error;
    if (r > 0) {
      if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
        r = nbd_aio_notify_read (h);
      else if (pfd.revents & POLLOUT)
        r = nbd_aio_notify_write (h);
      if (r == -1)
        goto nbd_error;
    }
  }
  /* Room for several copy writes in the socket: fewer wake-ups. */
  {
    int fd = nbd_aio_get_fd (h), sz = 4 << 20;
    if (fd >= 0)
      setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  }
  c->nbd = h;
  return 0;

 nbd_error:
  /* nbd_get_error is per thread: read it here, in the failing thread. */
  snprintf (err, errlen, "connect: %s",
            nbd_get_error () ? nbd_get_error () : "connection closed");
  nbd_close (h);
  return -1;
}

void
connect_close (struct nbd_handle *h)
{
  if (!h)
    return;
  if (nbd_aio_is_ready (h) == 1 && nbd_aio_in_flight (h) == 0)
    (void) nbd_aio_disconnect (h, 0);
  nbd_close (h);
}

/* Check the first connection's view of the destination. */
int
connect_check (struct dest *d, struct nbd_handle *h)
{
  struct mirror *m = d->m;
  int64_t size = nbd_get_size (h);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);

  if (size < 0) {
    dest_fail_locked (d, "cannot read its size");
    return -1;
  }
  if ((uint64_t) size != m->size) {
    dest_fail_locked (d, "size is %" PRIi64 " bytes, the source is %" PRIu64,
                      size, m->size);
    return -1;
  }
  if (nbd_is_read_only (h) == 1) {
    dest_fail_locked (d, "the export is read-only");
    return -1;
  }
  if (nbd_can_zero (h) != 1) {
    dest_fail_locked (d, "the export cannot write zeroes");
    return -1;
  }
  d->can_flush = nbd_can_flush (h) == 1;
  d->can_fua = nbd_can_fua (h) == 1;
  d->can_zero = true;
  d->can_block_status =
    nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  return 0;
}
