/* nbd-mirror: destinations and their copy workers (dest.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * Each copy connection of a destination has one worker thread, which
 * alone uses its libnbd handle: it connects it, drives its state
 * machine (poll + nbd_aio_notify_*), runs completion callbacks, takes
 * chunks to copy (copier.c), and finally closes the handle.  Other
 * threads only wake it (eventfd).
 *
 * Guest writes, flushes and verification use a separate pool of
 * handles (pool.c): a thread takes one for itself and drives it while
 * it holds it.
 *
 * Worker 0 also connects the other copy connections and the pool
 * (after learning whether the destination allows several connections)
 * and starts the other workers.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "connect.h"
#include "copier.h"
#include "dest.h"
#include "errors.h"
#include "log.h"
#include "pool.h"
#include "psk.h"
#include "state.h"
#include "uri.h"

/* The key and identity for an nbds:// destination U (URI text URISTR):
 * the URI's own, or the filter's tls-psk. */
static int
dest_tls (struct dest *d, const struct uri *u, const char *uristr,
          char *err, size_t errlen)
{
  const char *file = u->tls_psk_file ? u->tls_psk_file : d->m->cfg.tls_psk;
  struct psk_table t;
  char perr[256];

  if (!file)
    return set_error (err, errlen, "%s: TLS needs a key: tls-psk=FILE on the "
                      "filter or ?tls-psk-file= in the URI", uristr);
  if (!u->tls_username || !u->tls_psk_file) {
    if (psk_load (file, &t, perr, sizeof perr) == -1)
      return set_error (err, errlen, "%s", perr);
    if (!u->tls_psk_file)
      d->psk_file = strdup (file);
    if (!u->tls_username)
      d->identity = strdup (psk_lookup (&t, NULL)->identity);
    psk_table_free (&t);
  }
  return 0;
}

struct dest *
dest_new (struct mirror *m, const char *uristr, char *err, size_t errlen)
{
  struct dest *d;
  struct uri u;
  char perr[256];

  if (uri_parse (uristr, &u, perr, sizeof perr) == -1) {
    set_error (err, errlen, "%s: %s", uristr, perr);
    return NULL;
  }
  if (!uri_is_nbd (&u)) {
    set_error (err, errlen, "%s: not an NBD URI (nbd://, nbds://, "
               "nbd+unix://, nbds+unix://)", uristr);
    uri_free (&u);
    return NULL;
  }
  d = calloc (1, sizeof *d);
  if (!d) {
    set_error (err, errlen, "out of memory");
    uri_free (&u);
    return NULL;
  }
  d->m = m;
  /* Before any failure: dest_free closes every wake_fd that is not -1. */
  for (unsigned i = 0; i < MIRROR_MAX_CONNS; ++i)
    d->conn[i].wake_fd = -1;
  d->uri = strdup (uristr);
  d->tls = uri_uses_tls (&u);
  if (d->tls && dest_tls (d, &u, uristr, err, errlen) == -1) {
    uri_free (&u);
    dest_free (d);
    return NULL;
  }
  uri_free (&u);

  d->state = DEST_CONNECTING;
  atomic_init (&d->gone, false);
  d->nconn = m->cfg.connections;
  if (pool_alloc (d) == -1) {
    set_error (err, errlen, "out of memory");
    dest_free (d);
    return NULL;
  }
  for (unsigned i = 0; i < d->nconn; ++i) {
    d->conn[i].d = d;
    d->conn[i].index = i;
    d->conn[i].wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->conn[i].wake_fd == -1) {
      set_error (err, errlen, "eventfd: %s", strerror (errno));
      dest_free (d);
      return NULL;
    }
  }
  if (!d->uri || track_init (&d->track, &m->map) == -1) {
    set_error (err, errlen, "out of memory");
    dest_free (d);
    return NULL;
  }
  return d;
}

void
dest_free (struct dest *d)
{
  if (!d)
    return;
  for (unsigned i = 0; i < MIRROR_MAX_CONNS; ++i)
    if (d->conn[i].wake_fd >= 0)
      close (d->conn[i].wake_fd);
  pool_free (d);
  track_free (&d->track);
  free (d->psk_file);
  free (d->identity);
  free (d->uri);
  free (d);
}

/* ------------------------------------------------------------------ */
/* The worker. */

static void conn_loop (struct conn *c);
static void *conn_main (void *arg);

static void
conn_close (struct conn *c)
{
  if (c->nbd) {
    /* Runs the free callback of every command still in flight. */
    connect_close (c->nbd);
    c->nbd = NULL;
  }
}

/* Open connections 1..nconn-1; fewer is fine (logged), as long as the
 * first works. */
static void
connect_others (struct dest *d)
{
  struct mirror *m = d->m;
  unsigned ok = 1;
  char err[512];

  for (unsigned i = 1; i < d->nconn; ++i) {
    if (connect_conn (&d->conn[i], err, sizeof err) == -1) {
      log_warn ("mirror: %s: extra connection %u: %s", d->uri, i, err);
      break;
    }
    ok++;
  }
  for (unsigned i = 1; i < ok; ++i) {
    int e = pthread_create (&d->conn[i].thread, NULL, conn_main,
                            &d->conn[i]);
    if (e != 0) {
      /* Close this and every later connection; keep the ones before. */
      for (unsigned j = i; j < ok; ++j) {
        nbd_close (d->conn[j].nbd);
        d->conn[j].nbd = NULL;
      }
      ok = i;
      break;
    }
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
    d->conn[i].thread_started = true;
  }
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
  d->connected = ok;
}

static void *
conn_main (void *arg)
{
  struct conn *c = arg;
  struct dest *d = c->d;
  struct mirror *m = d->m;

  if (c->index == 0) {
    char err[512];
    if (connect_conn (c, err, sizeof err) == -1) {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
      dest_fail_locked (d, "%s", err);
      goto out;
    }
    if (connect_check (d, c->nbd) == -1)
      goto out;
    d->multi_conn = nbd_can_multi_conn (c->nbd) == 1;
    if (!d->multi_conn)
      d->nconn = 1;             /* Flushes would not cover other conns. */
    if (pool_connect (d) == -1)
      goto out;
    connect_others (d);
    pthread_mutex_lock (&m->lock);
    d->reached = true;
    if (d->state == DEST_CONNECTING) {
      d->state = DEST_COPYING;
      log_info ("mirror: %s connected (%u connection%s)", d->uri,
                d->connected, d->connected == 1 ? "" : "s");
    }
    pthread_cond_broadcast (&m->cond);
    pthread_mutex_unlock (&m->lock);
    dest_wake (d);
  }
  conn_loop (c);
 out:
  conn_close (c);
  return NULL;
}

static void
conn_loop (struct conn *c)
{
  struct dest *d = c->d;
  struct mirror *m = d->m;
  int timeout = m->cfg.dest_timeout_ms;

  for (;;) {
    struct pollfd pfd[2];
    int dir, r;
    bool stop;

    pthread_mutex_lock (&m->lock);
    bool more = copier_fill_locked (c);
    int64_t throttle = c->throttle_ms;
    stop = m->stopping || !dest_active_locked (d);
    if (!stop && c->cmds > 0 && clock_ms () - c->progress_ms > timeout) {
      dest_fail_locked (d, "no reply for %d ms", timeout);
      stop = true;
    }
    pthread_mutex_unlock (&m->lock);
    if (stop)
      return;

    dir = nbd_aio_get_direction (c->nbd);
    pfd[0].fd = nbd_aio_get_fd (c->nbd);
    pfd[0].events = (short) (((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                             ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0));
    pfd[0].revents = 0;
    pfd[1].fd = c->wake_fd;
    pfd[1].events = POLLIN;
    pfd[1].revents = 0;
    if (pfd[0].fd < 0) {
      connect_fail_from_nbd (d, "connection lost");
      return;
    }
    r = poll (pfd, 2, more ? 0
              : throttle > 0 && throttle < 1000 ? (int) throttle : 1000);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
      dest_fail_locked (d, "poll: %s", strerror (errno));
      return;
    }
    if (pfd[1].revents & POLLIN) {
      uint64_t v;
      if (read (c->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug ("%s: eventfd: %m", d->uri);
    }
    r = 0;
    if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
      r = nbd_aio_notify_read (c->nbd);
    else if (pfd[0].revents & POLLOUT)
      r = nbd_aio_notify_write (c->nbd);
    if (r == -1 || nbd_aio_is_dead (c->nbd) || nbd_aio_is_closed (c->nbd)) {
      connect_fail_from_nbd (d, "connection lost");
      return;
    }
  }
}

int
dest_start (struct dest *d)
{
  struct mirror *m = d->m;
  int e = pthread_create (&d->conn[0].thread, NULL, conn_main, &d->conn[0]);

  if (e != 0) {
    errno = e;
    return -1;
  }
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
  d->conn[0].thread_started = true;
  return 0;
}

void
dest_join (struct dest *d)
{
  /* Worker 0 starts the others: join it first so every thread_started
   * flag is final. */
  if (d->conn[0].thread_started) {
    pthread_join (d->conn[0].thread, NULL);
    d->conn[0].thread_started = false;
  }
  for (unsigned i = 1; i < MIRROR_MAX_CONNS; ++i)
    if (d->conn[i].thread_started) {
      pthread_join (d->conn[i].thread, NULL);
      d->conn[i].thread_started = false;
    }
}
