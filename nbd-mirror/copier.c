/* nbd-mirror: the copier (copier.h): runs of chunks taken from a
 * destination's track, read from the source and sent - data as writes
 * of at most request-size, holes as zero commands - several in flight
 * per connection.  Runs in the connection's worker thread (dest.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checked-overflow.h"
#include "cleanup.h"
#include "clock.h"
#include "connect.h"
#include "copier.h"
#include "source.h"
#include "state.h"

/* Zero runs may be much larger than data runs: they cost no buffer. */
#define ZERO_RUN_MAX (UINT64_C (1) << 30)


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
buf_get (size_t len, size_t request_size)
{
  void *b = NULL;

  if (len == request_size) {
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
  return b ? b : malloc (request_size > len
                         ? request_size : len);
}

static void
buf_put (void *b, size_t request_size)
{
  if (!b)
    return;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&pool_lock);
    if (pool_n < POOL_MAX && pool_size == request_size) {
      pool[pool_n++] = b;
      return;
    }
  }
  free (b);
}

void
copier_free_buffers (void)
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
  unsigned refs;                /* Submitter + commands (m->lock). */
  bool failed;                  /* (m->lock) */
  int error;                    /* First errno seen (m->lock). */
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
  struct mirror *m = run->d->m;
  struct dest *d = run->d;

  if (--run->refs > 0)
    return;
  bool ok = !run->failed && dest_active_locked (d);
  track_done (&d->track, &m->map, run->first, run->n, run->gens, ok);
  if (ok) {
    d->sent += run->bytes;
    m->total_sent += run->bytes;
    if (!m->ready_ms && track_all_copied (&d->track, &m->map)) {
      bool all = true;
      for (size_t i = 0; i < m->ndests; ++i)
        if (dest_active_locked (m->dests[i]) &&
            !track_all_copied (&m->dests[i]->track, &m->map))
          all = false;
      if (all)
        m->ready_ms = clock_ms ();
    }
  }
  else if (run->error && dest_active_locked (d))
    dest_fail_locked (d, "copy write at offset %" PRIu64 " failed: %s",
                      chunkmap_chunk_offset (&m->map, run->first),
                      strerror (run->error));
  run->c->copies--;
  pthread_cond_broadcast (&m->cond);
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
  struct mirror *m = run->d->m;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);

  run->c->cmds--;
  run->c->progress_ms = clock_ms ();
  if (!cmd->done || cmd->error) {
    run->failed = true;
    if (!run->error)
      run->error = cmd->done ? cmd->error : ECONNRESET;
  }
  buf_put (cmd->buf, m->cfg.request_size);
  free (cmd);
  run_unref_locked (run);
}

/* Submit one piece of a run.  BUF (owned, may be NULL for zeroes). */
static int
submit_piece (struct copy_run *run, bool zero, void *buf, uint64_t len,
              uint64_t offset)
{
  struct mirror *m = run->d->m;
  struct conn *c = run->c;
  struct copy_cmd *cmd = calloc (1, sizeof *cmd);
  int64_t r;

  if (!cmd) {
    buf_put (buf, m->cfg.request_size);
    return -1;
  }
  cmd->run = run;
  cmd->buf = buf;
  pthread_mutex_lock (&m->lock);
  run->refs++;
  if (c->cmds++ == 0)
    c->progress_ms = clock_ms ();
  pthread_mutex_unlock (&m->lock);

  nbd_completion_callback cb = {
    .callback = copy_cb, .user_data = cmd, .free = copy_free,
  };
  if (zero)
    r = nbd_aio_zero (c->nbd, len, offset, cb, 0);
  else
    r = nbd_aio_pwrite (c->nbd, buf, len, offset, cb, 0);
  /* On failure libnbd has already called copy_free. */
  if (r == -1) {
    connect_fail_from_nbd (run->d, zero ? "submit zero" : "submit write");
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
  struct mirror *m = run->d->m;
  uint64_t offset = chunkmap_chunk_offset (&m->map, run->first);
  uint64_t end = offset + run->bytes;
  struct nbdkit_extents *exts = NULL;
  int err = 0;

  /* Extents are read after the chunks were taken: a guest write that
   * fills a hole after this point bumps the chunk's gen, so the run is
   * copied again. */
  if (source_extents (m, (uint32_t) run->bytes, offset, &exts, &err) == -1)
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
      if (len > m->cfg.request_size)
        len = m->cfg.request_size;
      buf = buf_get (len, m->cfg.request_size);
      if (!buf) {
        ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
        run->failed = true;
        goto out;
      }
      if (source_pread (m, buf, (uint32_t) len, pos, &err) == -1) {
        buf_put (buf, m->cfg.request_size);
        ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
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
  pthread_mutex_lock (&m->lock);
  run_unref_locked (run);
  pthread_mutex_unlock (&m->lock);
}

/* How many chunks to take next: a data run of request-size, or a long
 * zero run if the next candidate sits in a hole. */
static uint64_t
run_length (struct dest *d, int64_t cand)
{
  struct mirror *m = d->m;
  uint64_t chunk = m->map.chunk_size;
  uint64_t max = m->cfg.request_size / chunk;
  uint64_t offset = chunkmap_chunk_offset (&m->map, (uint64_t) cand);
  uint64_t left = m->size - offset;
  struct nbdkit_extents *exts = NULL;
  int err;

  if (max == 0)
    max = 1;
  if (left > ZERO_RUN_MAX)
    left = ZERO_RUN_MAX;
  if (source_extents (m, (uint32_t) left, offset, &exts, &err) == 0 && exts) {
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

/* Take and submit up to BATCH runs.  Called with m->lock held;
 * returns with it held.  Returns true if the pipeline could take more
 * (the caller then only peeks at the socket instead of sleeping, so
 * bytes keep flowing while the pipeline fills). */
#define FILL_BATCH 2

bool
copier_fill_locked (struct conn *c)
{
  struct mirror *m = c->d->m;
  struct dest *d = c->d;
  unsigned batch = 0;

  c->throttle_ms = 0;
  while (!m->stopping && !m->paused && d->state == DEST_COPYING &&
         c->copies < m->cfg.max_inflight) {
    if (batch++ == FILL_BATCH)
      return true;
    /* Over the cap: the caller sleeps this long (guest writes, on their
     * own path, go on meanwhile). */
    int64_t wait = ratelimit_wait_ms (&m->copy_limit, clock_ms ());
    if (wait > 0) {
      c->throttle_ms = wait;
      return false;
    }
    int64_t cand = track_next_candidate (&d->track, &m->map);
    uint64_t max, first, n;
    struct copy_run *run;

    if (cand < 0) {
      c->idle = true;
      return false;
    }
    pthread_mutex_unlock (&m->lock);
    max = run_length (d, cand);
    run = malloc (sizeof *run + max * sizeof run->gens[0]);
    pthread_mutex_lock (&m->lock);
    if (!run)
      return false;
    if (m->stopping || m->paused || d->state != DEST_COPYING) {
      free (run);
      return false;
    }
    n = track_take (&d->track, &m->map, max, &first, run->gens);
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
      run->bytes += chunkmap_chunk_bytes (&m->map, first + i);
    /* A run longer than a request is a hole (run_length): it goes as a
     * zero command, a few bytes on the wire, and costs nothing. */
    if (n <= (m->cfg.request_size / m->map.chunk_size ?: 1))
      ratelimit_charge (&m->copy_limit, run->bytes, clock_ms ());
    run->refs = 1;
    run->failed = false;
    run->error = 0;
    c->copies++;
    pthread_mutex_unlock (&m->lock);
    run_submit (run);
    pthread_mutex_lock (&m->lock);
  }
  return false;
}
