/* nbd-mirror: the guest pool (pool.h): connections for guest writes,
 * flushes and checks, each taken by one thread at a time.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "clock.h"
#include "connect.h"
#include "log.h"
#include "pool.h"
#include "state.h"

/* How often a guest write waiting for a destination's reply looks
 * whether that destination left the mirror meanwhile. */
#define GONE_CHECK_MS 100

/* A guest pool handle. */
struct pool_handle {
  struct dest *d;
  struct nbd_handle *nbd;
  bool busy;                    /* Taken by a thread (m->lock). */
};

/* ------------------------------------------------------------------ */
/* The guest pool: connections for guest writes, flushes and checks.
 *
 * A guest thread that mirrors a write takes a pool handle for itself,
 * submits the write, does its local write, then waits for the reply by
 * polling that handle in its own thread.  No other thread is involved,
 * so a mirrored write costs the destination's round trip and nothing
 * more.  The destination must allow multi-conn (or the pool has one
 * handle) so that a flush on any handle covers writes on all of them.
 */

int
pool_alloc (struct dest *d)
{
  d->pool = calloc (d->m->cfg.pool_size, sizeof *d->pool);
  if (!d->pool)
    return -1;
  for (unsigned i = 0; i < d->m->cfg.pool_size; ++i)
    d->pool[i].d = d;
  return 0;
}

void
pool_free (struct dest *d)
{
  for (unsigned i = 0; d->pool && i < d->npool; ++i)
    connect_close (d->pool[i].nbd);
  free (d->pool);
  d->pool = NULL;
}

int
pool_connect (struct dest *d)
{
  struct mirror *m = d->m;
  char err[512];
  unsigned want = m->cfg.pool_size;

  if (!d->multi_conn)
    want = 1;
  for (unsigned i = 0; i < want; ++i) {
    struct conn tmp = { .d = d };
    if (connect_conn (&tmp, err, sizeof err) == -1) {
      if (i == 0) {
        ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
        dest_fail_locked (d, "guest connection: %s", err);
        return -1;
      }
      log_warn ("mirror: %s: %u guest connection(s) only: %s", d->uri, i,
                err);
      break;
    }
    d->pool[i].nbd = tmp.nbd;
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
    d->npool = i + 1;
  }
  return 0;
}

struct pool_handle *
dest_pool_get_locked (struct dest *d)
{
  struct mirror *m = d->m;

  /* Terminates: handles come back when their holders finish, which
   * never needs a handle of ours. */
  for (;;) {
    if (!dest_active_locked (d) || d->npool == 0)
      return NULL;
    for (unsigned i = 0; i < d->npool; ++i)
      if (!d->pool[i].busy && d->pool[i].nbd) {
        d->pool[i].busy = true;
        return &d->pool[i];
      }
    d->pool_waiters++;
    pthread_cond_wait (&m->cond, &m->lock);
    d->pool_waiters--;
  }
}

void
dest_pool_put_locked (struct dest *d, struct pool_handle *h, bool broken)
{
  struct mirror *m = d->m;

  if (broken && h->nbd) {
    /* Its state is unknown (a command may still be pending): retire
     * it.  Closing a socket does not block. */
    nbd_close (h->nbd);
    h->nbd = NULL;
  }
  h->busy = false;
  if (d->pool_waiters)
    pthread_cond_broadcast (&m->cond);
}

int64_t
dest_pool_submit (struct dest *d, struct pool_handle *h, enum mirror_op op,
                  const void *buf, uint32_t count, uint64_t offset, bool fua,
                  char *err, size_t errlen)
{
  uint32_t flags = fua && d->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
  int64_t r;

  switch (op) {
  case MIRROR_OP_WRITE:
    r = nbd_aio_pwrite (h->nbd, buf, count, offset, NBD_NULL_COMPLETION,
                        flags);
    break;
  case MIRROR_OP_ZERO:
    r = nbd_aio_zero (h->nbd, count, offset, NBD_NULL_COMPLETION, flags);
    break;
  default:
    r = nbd_aio_flush (h->nbd, NBD_NULL_COMPLETION, 0);
  }
  if (r == -1)
    snprintf (err, errlen, "%s", nbd_get_error ());
  return r;
}

/* Waiting for a reply polls before it sleeps.  A mirrored write's
 * reply usually comes within tens of microseconds of our local write.
 * Sleeping in poll() and being woken for it costs two context switches
 * and a cross-CPU wake-up (an interrupt, and in a VM an exit), dearer
 * than the wait itself: measured here, sleeping at once cut mirrored
 * IOPS by a quarter.  So for up to reply-poll microseconds the thread
 * checks the socket without blocking and yields the CPU in between,
 * which also lets the destination's server, or another guest request,
 * run on this core meanwhile.  The spin is bounded, and yields, so a
 * slow destination costs little CPU. */
int
dest_pool_wait (struct pool_handle *h, int64_t cookie, int64_t deadline,
                char *err, size_t errlen)
{
  struct mirror *m = h->d->m;
  int64_t spin_until = 0;

  if (m->cfg.reply_poll_us > 0)
    spin_until = clock_us () + m->cfg.reply_poll_us;

  /* Terminates: each pass processes an event or the deadline nears. */
  for (;;) {
    int r = nbd_aio_command_completed (h->nbd, cookie);
    int64_t left;
    int timeout;

    if (r == 1)
      return 0;
    if (r == -1) {
      snprintf (err, errlen, "%s", nbd_get_error ());
      errno = nbd_get_errno () ? nbd_get_errno () : EIO;
      return -1;
    }
    left = deadline - clock_ms ();
    if (left <= 0) {
      /* The deadline is shared by every destination of a request, and
       * this handle is read only while we wait on it: after a silent
       * destination used all of it, a reply that arrived here long
       * ago still sits unread.  Read what is there before failing it. */
      for (int n = 0; r == 0 && n < 1000 && nbd_poll (h->nbd, 0) == 1; ++n)
        r = nbd_aio_command_completed (h->nbd, cookie);
      if (r == 1)
        return 0;
      snprintf (err, errlen, "no reply for %d ms", m->cfg.dest_timeout_ms);
      errno = ETIMEDOUT;
      return -1;
    }
    /* A destination cancelled or failed meanwhile (the controller
     * gave up on it, or another request found it silent) has no reply
     * worth waiting for: the guest's write is done on every other
     * copy, and the copier will not redo it there. */
    if (atomic_load (&h->d->gone)) {
      snprintf (err, errlen, "the destination left the mirror");
      errno = ECANCELED;
      return -1;
    }
    if (spin_until && clock_us () < spin_until) {
      sched_yield ();
      timeout = 0;
    }
    else
      timeout = left > GONE_CHECK_MS ? GONE_CHECK_MS : (int) left;
    if (nbd_poll (h->nbd, timeout) == -1) {
      snprintf (err, errlen, "%s", nbd_get_error ());
      errno = nbd_get_errno () ? nbd_get_errno () : EIO;
      return -1;
    }
  }
}

/* Run one command on a pool handle of D and wait for it. */
static int
pool_run (struct dest *d, int64_t (*submit) (struct nbd_handle *, void *),
          void *arg)
{
  struct pool_handle *h;
  char err[512];
  int64_t cookie;
  int r, e;
  struct mirror *m = d->m;

  pthread_mutex_lock (&m->lock);
  h = dest_pool_get_locked (d);
  pthread_mutex_unlock (&m->lock);
  if (!h) {
    errno = ENOTCONN;
    return -1;
  }
  cookie = submit (h->nbd, arg);
  if (cookie == -1) {
    snprintf (err, sizeof err, "%s", nbd_get_error ());
    e = nbd_get_errno () ? nbd_get_errno () : EIO;
    r = -1;
  }
  else {
    r = dest_pool_wait (h, cookie,
                        clock_ms () + m->cfg.dest_timeout_ms,
                        err, sizeof err);
    e = errno;
  }
  pthread_mutex_lock (&m->lock);
  dest_pool_put_locked (d, h, r == -1);
  if (r == -1)
    dest_fail_locked (d, "%s", err);
  pthread_mutex_unlock (&m->lock);
  errno = e;
  return r;
}

struct pread_args {
  void *buf;
  uint32_t count;
  uint64_t offset;
};

static int64_t
submit_pread (struct nbd_handle *h, void *p)
{
  struct pread_args *a = p;
  return nbd_aio_pread (h, a->buf, a->count, a->offset, NBD_NULL_COMPLETION,
                        0);
}

int
dest_pread (struct dest *d, void *buf, uint32_t count, uint64_t offset)
{
  struct pread_args a = { buf, count, offset };
  return pool_run (d, submit_pread, &a);
}

struct zero_check {
  uint64_t start, end, covered;
  bool zero;
};

static int
zero_extent_cb (void *p, const char *metacontext, uint64_t offset,
                uint32_t *entries, size_t nr, int *error)
{
  struct zero_check *z = p;

  (void) error;
  if (strcmp (metacontext, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0)
    return 0;
  /* Terminates: entries come in (length, flags) pairs. */
  for (size_t i = 0; i + 1 < nr && offset < z->end; i += 2) {
    if (!(entries[i + 1] & LIBNBD_STATE_ZERO))
      z->zero = false;
    offset += entries[i];
    z->covered = offset;
  }
  return 0;
}

static int64_t
submit_block_status (struct nbd_handle *h, void *p)
{
  struct zero_check *z = p;
  uint64_t len = z->end - z->covered;

  if (len > (UINT32_MAX & ~UINT64_C (4095)))
    len = UINT32_MAX & ~UINT64_C (4095);
  return nbd_aio_block_status (h, len, z->covered,
                               (nbd_extent_callback) {
                                 .callback = zero_extent_cb, .user_data = z },
                               NBD_NULL_COMPLETION, 0);
}

int
dest_is_zero (struct dest *d, uint64_t count, uint64_t offset, bool *zero_r)
{
  struct zero_check z = { .start = offset, .end = offset + count,
                          .covered = offset, .zero = true };

  *zero_r = false;
  if (!d->can_block_status)
    return 0;
  /* Terminates: each reply covers at least one byte or we stop. */
  while (z.zero && z.covered < z.end) {
    uint64_t before = z.covered;
    if (pool_run (d, submit_block_status, &z) == -1)
      return -1;
    if (z.covered <= before)
      return 0;
  }
  *zero_r = z.zero;
  return 0;
}
