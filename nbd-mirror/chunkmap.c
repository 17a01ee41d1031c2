/* nbd-mirror: per-chunk copy state.  See chunkmap.h for the rules. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chunkmap.h"

int
chunkmap_init (struct chunkmap *m, uint64_t size, uint32_t chunk_size)
{
  memset (m, 0, sizeof *m);
  if (chunk_size < 512 || (chunk_size & (chunk_size - 1)) != 0) {
    errno = EINVAL;
    return -1;
  }
  m->size = size;
  m->chunk_size = chunk_size;
  m->chunk_shift = (unsigned) __builtin_ctz (chunk_size);
  m->nchunks = (size + chunk_size - 1) >> m->chunk_shift;
  if (m->nchunks > 0) {
    m->gen = calloc (m->nchunks, sizeof *m->gen);
    m->busy = calloc (m->nchunks, sizeof *m->busy);
    if (!m->gen || !m->busy) {
      chunkmap_free (m);
      errno = ENOMEM;
      return -1;
    }
  }
  return 0;
}

void
chunkmap_free (struct chunkmap *m)
{
  free (m->gen);
  free (m->busy);
  m->gen = NULL;
  m->busy = NULL;
}

void
chunkmap_range (const struct chunkmap *m, uint64_t offset, uint64_t count,
                uint64_t *first_r, uint64_t *last_r)
{
  *first_r = offset >> m->chunk_shift;
  *last_r = (offset + count - 1) >> m->chunk_shift;
}

uint64_t
chunkmap_chunk_offset (const struct chunkmap *m, uint64_t c)
{
  return c << m->chunk_shift;
}

uint64_t
chunkmap_chunk_bytes (const struct chunkmap *m, uint64_t c)
{
  uint64_t off = c << m->chunk_shift;
  uint64_t left = m->size - off;

  return left < m->chunk_size ? left : m->chunk_size;
}

bool
chunkmap_range_busy (const struct chunkmap *m, uint64_t first, uint64_t last)
{
  for (uint64_t c = first; c <= last; ++c)
    if (m->busy[c])
      return true;
  return false;
}

void
chunkmap_write_begin (struct chunkmap *m, uint64_t first, uint64_t last)
{
  for (uint64_t c = first; c <= last; ++c) {
    m->busy[c]++;
    m->gen[c]++;
  }
}

void
chunkmap_hold (struct chunkmap *m, uint64_t first, uint64_t last)
{
  for (uint64_t c = first; c <= last; ++c)
    m->busy[c]++;
}

void
chunkmap_write_end (struct chunkmap *m, uint64_t first, uint64_t last)
{
  for (uint64_t c = first; c <= last; ++c)
    m->busy[c]--;
}

int
track_init (struct chunk_track *t, const struct chunkmap *m)
{
  memset (t, 0, sizeof *t);
  t->state = calloc (m->nchunks ? m->nchunks : 1, 1);
  if (!t->state) {
    errno = ENOMEM;
    return -1;
  }
  return 0;
}

void
track_free (struct chunk_track *t)
{
  free (t->state);
  t->state = NULL;
}

bool
track_any_copied (const struct chunk_track *t, uint64_t first, uint64_t last)
{
  for (uint64_t c = first; c <= last; ++c)
    if (t->state[c] == CHUNK_COPIED)
      return true;
  return false;
}

bool
track_all_copied (const struct chunk_track *t, const struct chunkmap *m)
{
  return t->copied == m->nchunks;
}

uint64_t
track_dirty (struct chunk_track *t, uint64_t first, uint64_t last)
{
  uint64_t n = 0;

  for (uint64_t c = first; c <= last; ++c)
    if (t->state[c] == CHUNK_COPIED) {
      t->state[c] = CHUNK_UNCOPIED;
      n++;
    }
  t->copied -= n;
  t->dirtied += n;
  return n;
}

static bool
takeable (const struct chunk_track *t, const struct chunkmap *m, uint64_t c)
{
  return t->state[c] == CHUNK_UNCOPIED && m->busy[c] == 0;
}

int64_t
track_next_candidate (const struct chunk_track *t, const struct chunkmap *m)
{
  uint64_t n = m->nchunks;

  if (t->copied + t->inflight == n)
    return -1;
  /* Terminates: at most one pass over the map. */
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t c = t->cursor + i;
    if (c >= n)
      c -= n;
    if (takeable (t, m, c))
      return (int64_t) c;
  }
  return -1;
}

uint64_t
track_take (struct chunk_track *t, const struct chunkmap *m, uint64_t max,
            uint64_t *first_r, uint32_t *gens)
{
  int64_t start = track_next_candidate (t, m);
  uint64_t n = 0;

  if (start < 0 || max == 0)
    return 0;
  for (uint64_t c = (uint64_t) start;
       c < m->nchunks && n < max && takeable (t, m, c); ++c) {
    t->state[c] = CHUNK_INFLIGHT;
    gens[n++] = m->gen[c];
  }
  t->inflight += n;
  *first_r = (uint64_t) start;
  t->cursor = (uint64_t) start + n;
  if (t->cursor >= m->nchunks)
    t->cursor = 0;
  return n;
}

uint64_t
track_done (struct chunk_track *t, const struct chunkmap *m, uint64_t first,
            uint64_t n, const uint32_t *gens, bool ok)
{
  uint64_t copied = 0;

  for (uint64_t i = 0; i < n; ++i) {
    uint64_t c = first + i;
    if (ok && m->gen[c] == gens[i]) {
      t->state[c] = CHUNK_COPIED;
      copied++;
    }
    else {
      t->state[c] = CHUNK_UNCOPIED;
      /* Come back to it on the next pass rather than spinning on it. */
    }
  }
  t->inflight -= n;
  t->copied += copied;
  return copied;
}
