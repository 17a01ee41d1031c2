/* nbd-mirror: destinations, their NBD connections and copy workers.
 *
 * NOTES ON THE THREAD MODEL
 *
 * Each copy connection of a destination has one worker thread, which
 * alone uses its libnbd handle: it connects it, drives its state
 * machine (poll + nbd_aio_notify_*), runs completion callbacks, takes
 * chunks to copy, reads them from the source, submits the writes, and
 * finally closes the handle.  Other threads only wake it (eventfd).
 *
 * Guest writes, flushes and verification use a separate pool of
 * handles (see "The guest pool" below): a thread takes one for itself
 * and drives it while it holds it.
 *
 * Worker 0 also connects the other copy connections and the pool
 * (after learning whether the destination allows several connections)
 * and starts the other workers.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
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

/* A guest pool handle (see "The guest pool" below). */
struct pool_handle {
  struct nbd_handle *nbd;
  bool busy;                    /* Taken by a thread (mirror.lock). */
};

struct dest_private {
  char *psk_file;               /* For nbds:// without ?tls-psk-file. */
  char *identity;               /* TLS user name when the URI has none. */
  bool tls;
  struct pool_handle *pool;     /* Guest handles (array of pool_size). */
  unsigned npool;               /* Connected (mirror.lock). */
  unsigned pool_waiters;        /* Threads waiting for one (mirror.lock). */
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
  /* Before any failure: dest_free closes every wake_fd that is not -1. */
  for (unsigned i = 0; i < MIRROR_MAX_CONNS; ++i)
    d->conn[i].wake_fd = -1;
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
  a->p.pool = calloc (mirror.cfg.pool_size, sizeof *a->p.pool);
  if (!a->p.pool) {
    snprintf (err, errlen, "out of memory");
    dest_free (d);
    return NULL;
  }
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
  for (unsigned i = 0; p->pool && i < p->npool; ++i)
    if (p->pool[i].nbd)
      nbd_close (p->pool[i].nbd);
  free (p->pool);
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
/* Copy buffers.
 *
 * Copy writes of request-size are above malloc's mmap threshold, so a
 * fresh malloc per write would map, fault in and unmap new pages every
 * time.  Buffers are kept on a free list instead and reused.
 */

#define POOL_MAX 1024

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *pool[POOL_MAX];                   /* pool_lock */
static size_t pool_n;                          /* pool_lock */
static size_t pool_size;                       /* Buffer size (pool_lock). */

static void *
buf_get (size_t len)
{
  void *b = NULL;

  if (len == mirror.cfg.request_size) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool_lock);
    if (pool_size != len) {
      /* request-size is fixed per process, but be safe. */
      while (pool_n > 0)
        free (pool[--pool_n]);
      pool_size = len;
    }
    if (pool_n > 0)
      b = pool[--pool_n];
  }
  return b ? b : malloc (mirror.cfg.request_size > len
                         ? mirror.cfg.request_size : len);
}

static void
buf_put (void *b)
{
  if (!b)
    return;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool_lock);
    if (pool_n < POOL_MAX && pool_size == mirror.cfg.request_size) {
      pool[pool_n++] = b;
      return;
    }
  }
  free (b);
}

void
dest_pool_trim (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool_lock);
  while (pool_n > 0)
    free (pool[--pool_n]);
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
    if (!mirror.ready_ms && track_all_copied (&d->track, &mirror.map)) {
      bool all = true;
      for (size_t i = 0; i < mirror.ndests; ++i)
        if (dest_active_locked (mirror.dests[i]) &&
            !track_all_copied (&mirror.dests[i]->track, &mirror.map))
          all = false;
      if (all)
        mirror.ready_ms = clock_ms ();
    }
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
  buf_put (cmd->buf);
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
    buf_put (buf);
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
      buf = buf_get (len);
      if (!buf) {
        ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
        run->failed = true;
        goto out;
      }
      if (mirror_ctx_pread (buf, (uint32_t) len, pos, &err) == -1) {
        buf_put (buf);
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

/* Take and submit up to BATCH runs.  Called with mirror.lock held;
 * returns with it held.  Returns true if the pipeline could take more
 * (the caller then only peeks at the socket instead of sleeping, so
 * bytes keep flowing while the pipeline fills). */
#define FILL_BATCH 2

static bool
fill_pipeline_locked (struct conn *c)
{
  struct dest *d = c->d;
  unsigned batch = 0;

  while (!mirror.stopping && !mirror.paused && d->state == DEST_COPYING &&
         c->copies < mirror.cfg.max_inflight) {
    if (batch++ == FILL_BATCH)
      return true;
    int64_t cand = track_next_candidate (&d->track, &mirror.map);
    uint64_t max, first, n;
    struct copy_run *run;

    if (cand < 0) {
      c->idle = true;
      return false;
    }
    pthread_mutex_unlock (&mirror.lock);
    max = run_length (cand);
    run = malloc (sizeof *run + max * sizeof run->gens[0]);
    pthread_mutex_lock (&mirror.lock);
    if (!run)
      return false;
    if (mirror.stopping || mirror.paused || d->state != DEST_COPYING) {
      free (run);
      return false;
    }
    n = track_take (&d->track, &mirror.map, max, &first, run->gens);
    if (n == 0) {
      free (run);
      c->idle = true;
      return false;
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
  return false;
}

/* ------------------------------------------------------------------ */
/* The worker. */

static void conn_loop (struct conn *c);
static void *conn_main (void *arg);
static int connect_pool (struct dest *d);

static void
conn_close (struct conn *c)
{
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
    d->multi_conn = nbd_can_multi_conn (c->nbd) == 1;
    if (!d->multi_conn)
      d->nconn = 1;             /* Flushes would not cover other conns. */
    if (connect_pool (d) == -1)
      goto out;
    connect_others (d);
    pthread_mutex_lock (&mirror.lock);
    d->reached = true;
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
    bool more = fill_pipeline_locked (c);
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
    r = poll (pfd, 2, more ? 0 : 1000);
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
/* The guest pool: connections for guest writes, flushes and checks.
 *
 * A guest thread that mirrors a write takes a pool handle for itself,
 * submits the write, does its local write, then waits for the reply by
 * polling that handle in its own thread.  No other thread is involved,
 * so a mirrored write costs the destination's round trip and nothing
 * more.  The destination must allow multi-conn (or the pool has one
 * handle) so that a flush on any handle covers writes on all of them.
 */

static int
connect_pool (struct dest *d)
{
  struct dest_private *p = priv (d);
  char err[512];
  unsigned want = mirror.cfg.pool_size;

  if (!d->multi_conn)
    want = 1;
  for (unsigned i = 0; i < want; ++i) {
    struct conn tmp = { .d = d };
    if (conn_connect (&tmp, err, sizeof err) == -1) {
      if (i == 0) {
        ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
        dest_fail_locked (d, "guest connection: %s", err);
        return -1;
      }
      log_warn ("mirror: %s: %u guest connection(s) only: %s", d->uri, i,
                err);
      break;
    }
    p->pool[i].nbd = tmp.nbd;
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
    p->npool = i + 1;
  }
  return 0;
}

struct pool_handle *
dest_pool_get_locked (struct dest *d)
{
  struct dest_private *p = priv (d);

  /* Terminates: handles come back when their holders finish, which
   * never needs a handle of ours. */
  for (;;) {
    if (!dest_active_locked (d) || p->npool == 0)
      return NULL;
    for (unsigned i = 0; i < p->npool; ++i)
      if (!p->pool[i].busy && p->pool[i].nbd) {
        p->pool[i].busy = true;
        return &p->pool[i];
      }
    p->pool_waiters++;
    pthread_cond_wait (&mirror.cond, &mirror.lock);
    p->pool_waiters--;
  }
}

void
dest_pool_put_locked (struct dest *d, struct pool_handle *h, bool broken)
{
  struct dest_private *p = priv (d);

  if (broken && h->nbd) {
    /* Its state is unknown (a command may still be pending): retire
     * it.  Closing a socket does not block. */
    nbd_close (h->nbd);
    h->nbd = NULL;
  }
  h->busy = false;
  if (p->pool_waiters)
    pthread_cond_broadcast (&mirror.cond);
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
  int64_t spin_until = 0;

  if (mirror.cfg.reply_poll_us > 0)
    spin_until = clock_us () + mirror.cfg.reply_poll_us;

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
      snprintf (err, errlen, "no reply for %d ms", mirror.cfg.dest_timeout_ms);
      errno = ETIMEDOUT;
      return -1;
    }
    if (spin_until && clock_us () < spin_until) {
      sched_yield ();
      timeout = 0;
    }
    else
      timeout = left > 1000000 ? 1000000 : (int) left;
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

  pthread_mutex_lock (&mirror.lock);
  h = dest_pool_get_locked (d);
  pthread_mutex_unlock (&mirror.lock);
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
                        clock_ms () + mirror.cfg.dest_timeout_ms,
                        err, sizeof err);
    e = errno;
  }
  pthread_mutex_lock (&mirror.lock);
  dest_pool_put_locked (d, h, r == -1);
  if (r == -1)
    dest_fail_locked (d, "%s", err);
  pthread_mutex_unlock (&mirror.lock);
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
