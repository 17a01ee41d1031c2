/* nbd-mirror: destinations, their NBD connections and copy workers.
 *
 * NOTES ON THE THREAD MODEL
 *
 * Each connection of a destination has one worker thread.  The worker
 * owns the libnbd handle: it connects it, drives its state machine
 * (poll + nbd_aio_notify_*), runs completion callbacks, takes chunks
 * to copy, reads them from the source and submits the writes, and
 * finally closes the handle.  Guest threads may also submit commands
 * on the handle (mirrored writes, flushes, verification reads); they
 * bracket each call with conn.submitting, and the worker waits for that
 * to drop to zero before it closes the handle, so no thread ever uses
 * a closed handle.  Guest threads wake the worker through its eventfd
 * so it polls for the new command.
 *
 * Worker 0 also connects the other connections (after learning that
 * the destination allows several) and starts their workers.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "checked-overflow.h"
#include "cleanup.h"
#include "log.h"
#include "mirror.h"
#include "psk.h"
#include "sockets.h"
#include "uri.h"

/* Zero runs may be much larger than data runs: they cost no buffer. */
#define ZERO_RUN_MAX (UINT64_C (1) << 30)

/* Extra per-connection state kept out of mirror.h. */
struct conn_extra {
  unsigned submitting;          /* Threads inside an nbd_aio_* call
                                   (mirror.lock). */
  bool closing;                 /* Handle about to close (mirror.lock). */
};

struct dest_private {
  char *psk_file;               /* For nbds:// without ?tls-psk-file. */
  char *identity;               /* TLS user name when the URI has none. */
  bool tls;
  struct conn_extra extra[MIRROR_MAX_CONNS];
};

/* The dest struct is allocated with its private part right after it. */
struct dest_alloc {
  struct dest d;
  struct dest_private p;
};

static struct dest_private *
priv (struct dest *d)
{
  return &((struct dest_alloc *) d)->p;
}

bool
dest_active_locked (const struct dest *d)
{
  return d->state == DEST_CONNECTING || d->state == DEST_COPYING ||
    d->state == DEST_READY;
}

void
dest_wake (struct dest *d)
{
  uint64_t one = 1;

  for (unsigned i = 0; i < d->nconn; ++i)
    if (d->conn[i].wake_fd >= 0 &&
        write (d->conn[i].wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
      log_debug ("wake %s: %m", d->uri);
}

void
dest_fail_locked (struct dest *d, const char *fmt, ...)
{
  va_list ap;

  if (!dest_active_locked (d))
    return;
  va_start (ap, fmt);
  vsnprintf (d->error, sizeof d->error, fmt, ap);
  va_end (ap);
  d->state = DEST_FAILED;
  log_error ("mirror: destination %s failed: %s", d->uri, d->error);
  dest_wake (d);
  pthread_cond_broadcast (&mirror.cond);
  mirror_check_session_locked ();
}

struct dest *
dest_new (const char *uristr, char *err, size_t errlen)
{
  struct dest_alloc *a;
  struct dest *d;
  struct uri u;
  char perr[256];

  if (uri_parse (uristr, &u, perr, sizeof perr) == -1) {
    snprintf (err, errlen, "%s: %s", uristr, perr);
    return NULL;
  }
  if (!uri_is_nbd (&u)) {
    snprintf (err, errlen, "%s: not an NBD URI (nbd://, nbds://, "
              "nbd+unix://, nbds+unix://)", uristr);
    uri_free (&u);
    return NULL;
  }
  a = calloc (1, sizeof *a);
  if (!a) {
    snprintf (err, errlen, "out of memory");
    uri_free (&u);
    return NULL;
  }
  d = &a->d;
  d->uri = strdup (uristr);
  a->p.tls = uri_uses_tls (&u);
  if (a->p.tls && !u.tls_psk_file) {
    struct psk_table t;
    if (!mirror.cfg.tls_psk) {
      snprintf (err, errlen, "%s: TLS needs a key: tls-psk=FILE on the "
                "filter or ?tls-psk-file= in the URI", uristr);
      goto error;
    }
    if (psk_load (mirror.cfg.tls_psk, &t, perr, sizeof perr) == -1) {
      snprintf (err, errlen, "%s", perr);
      goto error;
    }
    a->p.psk_file = strdup (mirror.cfg.tls_psk);
    if (!u.tls_username)
      a->p.identity = strdup (psk_lookup (&t, NULL)->identity);
    psk_table_free (&t);
  }
  else if (a->p.tls && !u.tls_username) {
    struct psk_table t;
    if (psk_load (u.tls_psk_file, &t, perr, sizeof perr) == -1) {
      snprintf (err, errlen, "%s", perr);
      goto error;
    }
    a->p.identity = strdup (psk_lookup (&t, NULL)->identity);
    psk_table_free (&t);
  }
  uri_free (&u);

  d->state = DEST_CONNECTING;
  d->nconn = mirror.cfg.connections;
  for (unsigned i = 0; i < MIRROR_MAX_CONNS; ++i)
    d->conn[i].wake_fd = -1;
  for (unsigned i = 0; i < d->nconn; ++i) {
    d->conn[i].d = d;
    d->conn[i].index = i;
    d->conn[i].wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->conn[i].wake_fd == -1) {
      snprintf (err, errlen, "eventfd: %s", strerror (errno));
      dest_free (d);
      return NULL;
    }
  }
  if (!d->uri || track_init (&d->track, &mirror.map) == -1) {
    snprintf (err, errlen, "out of memory");
    dest_free (d);
    return NULL;
  }
  return d;

 error:
  uri_free (&u);
  dest_free (d);
  return NULL;
}

void
dest_free (struct dest *d)
{
  struct dest_private *p;

  if (!d)
    return;
  p = priv (d);
  for (unsigned i = 0; i < MIRROR_MAX_CONNS; ++i)
    if (d->conn[i].wake_fd >= 0)
      close (d->conn[i].wake_fd);
  track_free (&d->track);
  free (p->psk_file);
  free (p->identity);
  free (d->uri);
  free (d);
}

/* ------------------------------------------------------------------ */
/* Connecting. */

static void
fail_from_nbd (struct dest *d, const char *what)
{
  /* nbd_get_error is per thread: read it here, in the failing thread. */
  const char *e = nbd_get_error ();
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
  dest_fail_locked (d, "%s: %s", what, e ? e : "unknown error");
}

/* Connect C's handle.  On failure returns -1 with the reason in err;
 * the caller decides whether that fails the destination. */
static int
conn_connect (struct conn *c, char *err, size_t errlen)
{
  struct dest *d = c->d;
  struct dest_private *p = priv (d);
  struct nbd_handle *h;
  int64_t deadline = clock_ms () + mirror.cfg.dest_timeout_ms;

  h = nbd_create ();
  if (!h) {
    snprintf (err, errlen, "%s", nbd_get_error ());
    return -1;
  }
  nbd_set_uri_allow_local_file (h, true);
  if (p->psk_file && nbd_set_tls_psk_file (h, p->psk_file) == -1)
    goto nbd_error;
  if (p->identity && nbd_set_tls_username (h, p->identity) == -1)
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
                mirror.cfg.dest_timeout_ms);
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
  c->nbd = h;
  return 0;

 nbd_error:
  /* nbd_get_error is per thread: read it here, in the failing thread. */
  snprintf (err, errlen, "connect: %s",
            nbd_get_error () ? nbd_get_error () : "connection closed");
  nbd_close (h);
  return -1;
}

/* Check the first connection's view of the destination. */
static int
check_destination (struct dest *d, struct nbd_handle *h)
{
  int64_t size = nbd_get_size (h);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);

  if (size < 0) {
    dest_fail_locked (d, "cannot read its size");
    return -1;
  }
  if ((uint64_t) size != mirror.size) {
    dest_fail_locked (d, "size is %" PRIi64 " bytes, the source is %" PRIu64,
                      size, mirror.size);
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

/* ------------------------------------------------------------------ */
/* Copying. */

struct copy_run {
  struct dest *d;
  struct conn *c;
  uint64_t first, n;            /* Chunks. */
  uint64_t bytes;
  unsigned refs;                /* Submitter + commands (mirror.lock). */
  bool failed;                  /* (mirror.lock) */
  int error;                    /* First errno seen (mirror.lock). */
  uint32_t gens[];
};

struct copy_cmd {
  struct copy_run *run;
  void *buf;
  bool done;
  int error;
};

static void
run_unref_locked (struct copy_run *run)
{
  struct dest *d = run->d;

  if (--run->refs > 0)
    return;
  bool ok = !run->failed && dest_active_locked (d);
  track_done (&d->track, &mirror.map, run->first, run->n, run->gens, ok);
  if (ok) {
    d->sent += run->bytes;
    mirror.total_sent += run->bytes;
  }
  else if (run->error && dest_active_locked (d))
    dest_fail_locked (d, "copy write at offset %" PRIu64 " failed: %s",
                      chunkmap_chunk_offset (&mirror.map, run->first),
                      strerror (run->error));
  run->c->copies--;
  pthread_cond_broadcast (&mirror.cond);
  free (run);
}

static int
copy_cb (void *p, int *error)
{
  struct copy_cmd *cmd = p;

  cmd->done = true;
  cmd->error = *error;
  return 1;
}

static void
copy_free (void *p)
{
  struct copy_cmd *cmd = p;
  struct copy_run *run = cmd->run;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);

  run->c->cmds--;
  run->c->progress_ms = clock_ms ();
  if (!cmd->done || cmd->error) {
    run->failed = true;
    if (!run->error)
      run->error = cmd->done ? cmd->error : ECONNRESET;
  }
  free (cmd->buf);
  free (cmd);
  run_unref_locked (run);
}

/* Submit one piece of a run.  BUF (owned, may be NULL for zeroes). */
static int
submit_piece (struct copy_run *run, bool zero, void *buf, uint64_t len,
              uint64_t offset)
{
  struct conn *c = run->c;
  struct copy_cmd *cmd = calloc (1, sizeof *cmd);
  int64_t r;

  if (!cmd) {
    free (buf);
    return -1;
  }
  cmd->run = run;
  cmd->buf = buf;
  pthread_mutex_lock (&mirror.lock);
  run->refs++;
  if (c->cmds++ == 0)
    c->progress_ms = clock_ms ();
  pthread_mutex_unlock (&mirror.lock);

  nbd_completion_callback cb = {
    .callback = copy_cb, .user_data = cmd, .free = copy_free,
  };
  if (zero)
    r = nbd_aio_zero (c->nbd, len, offset, cb, 0);
  else
    r = nbd_aio_pwrite (c->nbd, buf, len, offset, cb, 0);
  /* On failure libnbd has already called copy_free. */
  if (r == -1) {
    fail_from_nbd (run->d, zero ? "submit zero" : "submit write");
    return -1;
  }
  return 0;
}

/* Find the extent of EXTS covering OFFSET: its end and whether it
 * reads as zeroes.  Without extents everything is data. */
static void
piece_at (struct nbdkit_extents *exts, uint64_t offset, uint64_t end,
          uint64_t *piece_end_r, bool *zero_r)
{
  *piece_end_r = end;
  *zero_r = false;
  if (!exts)
    return;
  size_t n = nbdkit_extents_count (exts);
  for (size_t i = 0; i < n; ++i) {
    struct nbdkit_extent e = nbdkit_get_extent (exts, i);
    uint64_t eend;
    if (ADD_OVERFLOW (e.offset, e.length, &eend))
      eend = UINT64_MAX;
    if (offset >= e.offset && offset < eend) {
      *zero_r = (e.type & NBDKIT_EXTENT_ZERO) != 0;
      *piece_end_r = eend < end ? eend : end;
      return;
    }
  }
}

/* Read the run from the source and send it: data as writes of at most
 * request-size, zero extents as zero commands. */
static void
run_submit (struct copy_run *run)
{
  uint64_t offset = chunkmap_chunk_offset (&mirror.map, run->first);
  uint64_t end = offset + run->bytes;
  struct nbdkit_extents *exts = NULL;
  int err = 0;

  /* Extents are read after the chunks were taken: a guest write that
   * fills a hole after this point bumps the chunk's gen, so the run is
   * copied again. */
  if (mirror_ctx_extents ((uint32_t) run->bytes, offset, &exts, &err) == -1)
    exts = NULL;

  /* Terminates: pos advances by at least one byte per pass. */
  for (uint64_t pos = offset; pos < end; ) {
    uint64_t pend;
    bool zero;

    piece_at (exts, pos, end, &pend, &zero);
    if (zero) {
      if (submit_piece (run, true, NULL, pend - pos, pos) == -1)
        break;
      pos = pend;
      continue;
    }
    while (pos < pend) {
      uint64_t len = pend - pos;
      void *buf;
      if (len > mirror.cfg.request_size)
        len = mirror.cfg.request_size;
      buf = malloc (len);
      if (!buf) {
        ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
        run->failed = true;
        goto out;
      }
      if (mirror_ctx_pread (buf, (uint32_t) len, pos, &err) == -1) {
        free (buf);
        ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
        run->failed = true;
        dest_fail_locked (run->d, "source read at offset %" PRIu64
                          " failed: %s", pos, strerror (err));
        goto out;
      }
      if (submit_piece (run, false, buf, len, pos) == -1)
        goto out;
      pos += len;
    }
  }
 out:
  if (exts)
    nbdkit_extents_free (exts);
  pthread_mutex_lock (&mirror.lock);
  run_unref_locked (run);
  pthread_mutex_unlock (&mirror.lock);
}

/* How many chunks to take next: a data run of request-size, or a long
 * zero run if the next candidate sits in a hole. */
static uint64_t
run_length (int64_t cand)
{
  uint64_t chunk = mirror.map.chunk_size;
  uint64_t max = mirror.cfg.request_size / chunk;
  uint64_t offset = chunkmap_chunk_offset (&mirror.map, (uint64_t) cand);
  uint64_t left = mirror.size - offset;
  struct nbdkit_extents *exts = NULL;
  int err;

  if (max == 0)
    max = 1;
  if (left > ZERO_RUN_MAX)
    left = ZERO_RUN_MAX;
  if (mirror_ctx_extents ((uint32_t) left, offset, &exts, &err) == 0 && exts) {
    if (nbdkit_extents_count (exts) > 0) {
      struct nbdkit_extent e = nbdkit_get_extent (exts, 0);
      if ((e.type & NBDKIT_EXTENT_ZERO) && e.offset <= offset &&
          e.offset + e.length > offset) {
        uint64_t z = (e.offset + e.length - offset) / chunk;
        if (z > max)
          max = z < ZERO_RUN_MAX / chunk ? z : ZERO_RUN_MAX / chunk;
      }
    }
    nbdkit_extents_free (exts);
  }
  return max;
}

/* Take and submit runs until the pipeline is full.  Called with
 * mirror.lock held; returns with it held. */
static void
fill_pipeline_locked (struct conn *c)
{
  struct dest *d = c->d;

  while (!mirror.stopping && !mirror.paused && d->state == DEST_COPYING &&
         c->copies < mirror.cfg.max_inflight) {
    int64_t cand = track_next_candidate (&d->track, &mirror.map);
    uint64_t max, first, n;
    struct copy_run *run;

    if (cand < 0) {
      c->idle = true;
      return;
    }
    pthread_mutex_unlock (&mirror.lock);
    max = run_length (cand);
    run = malloc (sizeof *run + max * sizeof run->gens[0]);
    pthread_mutex_lock (&mirror.lock);
    if (!run)
      return;
    if (mirror.stopping || mirror.paused || d->state != DEST_COPYING) {
      free (run);
      return;
    }
    n = track_take (&d->track, &mirror.map, max, &first, run->gens);
    if (n == 0) {
      free (run);
      c->idle = true;
      return;
    }
    c->idle = false;
    run->d = d;
    run->c = c;
    run->first = first;
    run->n = n;
    run->bytes = 0;
    for (uint64_t i = 0; i < n; ++i)
      run->bytes += chunkmap_chunk_bytes (&mirror.map, first + i);
    run->refs = 1;
    run->failed = false;
    run->error = 0;
    c->copies++;
    pthread_mutex_unlock (&mirror.lock);
    run_submit (run);
    pthread_mutex_lock (&mirror.lock);
  }
}

/* ------------------------------------------------------------------ */
/* The worker. */

static void conn_loop (struct conn *c);
static void *conn_main (void *arg);

static void
conn_close (struct conn *c)
{
  struct conn_extra *x = &priv (c->d)->extra[c->index];

  pthread_mutex_lock (&mirror.lock);
  while (x->submitting > 0)
    pthread_cond_wait (&mirror.cond, &mirror.lock);
  x->closing = true;
  pthread_mutex_unlock (&mirror.lock);
  if (c->nbd) {
    /* Runs the free callback of every command still in flight. */
    nbd_close (c->nbd);
    c->nbd = NULL;
  }
}

/* Open connections 1..nconn-1; fewer is fine (logged), as long as the
 * first works. */
static void
connect_others (struct dest *d)
{
  unsigned ok = 1;
  char err[512];

  for (unsigned i = 1; i < d->nconn; ++i) {
    if (conn_connect (&d->conn[i], err, sizeof err) == -1) {
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
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
    d->conn[i].thread_started = true;
  }
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
  d->connected = ok;
}

static void *
conn_main (void *arg)
{
  struct conn *c = arg;
  struct dest *d = c->d;

  if (c->index == 0) {
    char err[512];
    if (conn_connect (c, err, sizeof err) == -1) {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
      dest_fail_locked (d, "%s", err);
      goto out;
    }
    if (check_destination (d, c->nbd) == -1)
      goto out;
    if (d->nconn > 1 && nbd_can_multi_conn (c->nbd) != 1)
      d->nconn = 1;             /* Flushes would not cover other conns. */
    connect_others (d);
    pthread_mutex_lock (&mirror.lock);
    if (d->state == DEST_CONNECTING) {
      d->state = DEST_COPYING;
      log_info ("mirror: %s connected (%u connection%s)", d->uri,
                d->connected, d->connected == 1 ? "" : "s");
    }
    pthread_cond_broadcast (&mirror.cond);
    pthread_mutex_unlock (&mirror.lock);
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
  int timeout = mirror.cfg.dest_timeout_ms;

  for (;;) {
    struct pollfd pfd[2];
    int dir, r;
    bool stop;

    pthread_mutex_lock (&mirror.lock);
    fill_pipeline_locked (c);
    stop = mirror.stopping || !dest_active_locked (d);
    if (!stop && c->cmds > 0 && clock_ms () - c->progress_ms > timeout) {
      dest_fail_locked (d, "no reply for %d ms", timeout);
      stop = true;
    }
    pthread_mutex_unlock (&mirror.lock);
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
      fail_from_nbd (d, "connection lost");
      return;
    }
    r = poll (pfd, 2, 1000);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
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
      fail_from_nbd (d, "connection lost");
      return;
    }
  }
}

int
dest_start (struct dest *d)
{
  int e = pthread_create (&d->conn[0].thread, NULL, conn_main, &d->conn[0]);

  if (e != 0) {
    errno = e;
    return -1;
  }
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
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

/* ------------------------------------------------------------------ */
/* Commands from other threads. */

/* Pick a connection and mark a submission in progress.  NULL if the
 * destination cannot take commands. */
static struct conn *
begin_submit (struct dest *d, bool count_cmd)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
  struct conn *c;
  struct conn_extra *x;

  if (!dest_active_locked (d) || d->connected == 0)
    return NULL;
  c = &d->conn[d->rr++ % d->connected];
  x = &priv (d)->extra[c->index];
  if (x->closing || !c->nbd)
    return NULL;
  x->submitting++;
  if (count_cmd && c->cmds++ == 0)
    c->progress_ms = clock_ms ();
  return c;
}

static void
end_submit (struct conn *c)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
  priv (c->d)->extra[c->index].submitting--;
  pthread_cond_broadcast (&mirror.cond);
}

static void
wake_conn (struct conn *c)
{
  uint64_t one = 1;

  if (write (c->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
    log_debug ("wake: %m");
}

int
dest_submit_guest (struct dest *d, enum mirror_op op, const void *buf,
                   uint32_t count, uint64_t offset, bool fua,
                   nbd_completion_callback cb, struct conn **conn_r)
{
  struct conn *c = begin_submit (d, true);
  uint32_t flags = fua && d->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
  int64_t r;

  if (!c) {
    cb.free (cb.user_data);
    return -1;
  }
  *conn_r = c;
  if (op == MIRROR_OP_ZERO)
    r = nbd_aio_zero (c->nbd, count, offset, cb, flags);
  else
    r = nbd_aio_pwrite (c->nbd, buf, count, offset, cb, flags);
  end_submit (c);
  wake_conn (c);
  return r == -1 ? -1 : 0;
}

int
dest_submit_flush (struct dest *d, nbd_completion_callback cb,
                   struct conn **conn_r)
{
  struct conn *c = begin_submit (d, true);
  int64_t r;

  if (!c) {
    cb.free (cb.user_data);
    return -1;
  }
  *conn_r = c;
  r = nbd_aio_flush (c->nbd, cb, 0);
  end_submit (c);
  wake_conn (c);
  return r == -1 ? -1 : 0;
}

/* A synchronous command on a worker's handle, waited for on
 * mirror.cond so that the worker's timeout covers it. */
struct sync_cmd {
  bool done;                    /* Completion ran... */
  int error;                    /* ...with this errno. */
  bool freed;                   /* (mirror.lock) */
  struct conn *c;
};

static int
sync_cb (void *p, int *error)
{
  struct sync_cmd *s = p;

  s->done = true;
  s->error = *error;
  return 1;
}

static void
sync_free (void *p)
{
  struct sync_cmd *s = p;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);

  s->c->cmds--;
  s->c->progress_ms = clock_ms ();
  s->freed = true;
  pthread_cond_broadcast (&mirror.cond);
}

static int
sync_wait (struct sync_cmd *s)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);

  while (!s->freed)
    pthread_cond_wait (&mirror.cond, &mirror.lock);
  if (!s->done) {
    errno = ECONNRESET;
    return -1;
  }
  if (s->error) {
    errno = s->error;
    return -1;
  }
  return 0;
}

int
dest_pread (struct dest *d, void *buf, uint32_t count, uint64_t offset)
{
  struct sync_cmd s = { .c = begin_submit (d, true) };
  int64_t r;

  if (!s.c) {
    errno = ENOTCONN;
    return -1;
  }
  r = nbd_aio_pread (s.c->nbd, buf, count, offset,
                     (nbd_completion_callback) { .callback = sync_cb,
                                                 .user_data = &s,
                                                 .free = sync_free }, 0);
  end_submit (s.c);
  wake_conn (s.c);
  (void) r;                     /* sync_free ran if it failed. */
  return sync_wait (&s);
}

struct zero_check {
  uint64_t end, covered;
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

int
dest_is_zero (struct dest *d, uint64_t count, uint64_t offset, bool *zero_r)
{
  struct zero_check z = { .end = offset + count, .covered = offset,
                          .zero = true };

  *zero_r = false;
  if (!d->can_block_status)
    return 0;
  /* Terminates: each reply covers at least one byte or we stop. */
  while (z.zero && z.covered < z.end) {
    uint64_t before = z.covered;
    uint64_t len = z.end - z.covered;
    struct sync_cmd s = { .c = begin_submit (d, true) };

    if (!s.c) {
      errno = ENOTCONN;
      return -1;
    }
    if (len > (UINT32_MAX & ~UINT64_C (4095)))
      len = UINT32_MAX & ~UINT64_C (4095);
    nbd_aio_block_status (s.c->nbd, len, z.covered,
                          (nbd_extent_callback) { .callback = zero_extent_cb,
                                                  .user_data = &z },
                          (nbd_completion_callback) { .callback = sync_cb,
                                                      .user_data = &s,
                                                      .free = sync_free },
                          0);
    end_submit (s.c);
    wake_conn (s.c);
    if (sync_wait (&s) == -1)
      return -1;
    if (z.covered <= before)
      return 0;
  }
  *zero_r = z.zero;
  return 0;
}
