/* nbd-mirror: compare every destination with the source.
 *
 * Block by block: the block's chunks are held (guest writes to them
 * wait), the source is read, and each destination is read back and
 * compared.  Where the source reads as zeroes, a destination that
 * reports zeroes through block status is not read at all, so a sparse
 * disk verifies in time proportional to its data.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "mirror.h"
#include "pool.h"
#include "source.h"
#include "state.h"
#include "verify.h"

#define VERIFY_BLOCK (UINT64_C (1) << 20)

#define VERIFY_ZERO_MAX (UINT64_C (1) << 30)

/* How many bytes from OFFSET read as zeroes on the source (a multiple
 * of BLOCK, at most VERIFY_ZERO_MAX), or 0. */
static uint64_t
source_zero_run (struct mirror *m, uint64_t offset, uint64_t block)
{
  struct nbdkit_extents *exts = NULL;
  uint64_t len = m->size - offset, run = 0;
  int err;

  if (len > VERIFY_ZERO_MAX)
    len = VERIFY_ZERO_MAX;
  if (source_extents (m, (uint32_t) len, offset, &exts, &err) == -1 || !exts)
    return 0;
  if (nbdkit_extents_count (exts) > 0) {
    struct nbdkit_extent e = nbdkit_get_extent (exts, 0);
    if ((e.type & NBDKIT_EXTENT_ZERO) && e.offset <= offset) {
      run = e.offset + e.length - offset;
      if (run > len)
        run = len;
      /* Whole blocks only, except at the end of the disk. */
      if (offset + run < m->size)
        run -= run % block;
    }
  }
  nbdkit_extents_free (exts);
  return run;
}

static uint64_t
first_difference (const uint8_t *a, const uint8_t *b, uint64_t len)
{
  for (uint64_t i = 0; i < len; ++i)
    if (a[i] != b[i])
      return i;
  return len;
}

int
mirror_verify (struct mirror *m, uint64_t *verified_r, char *err,
               size_t errlen)
{
  CLEANUP_FREE uint8_t *src = NULL, *dst = NULL;
  struct dest *dests[MIRROR_MAX_DESTS];
  size_t n = 0;
  uint64_t block = m->cfg.chunk_size > VERIFY_BLOCK
    ? m->cfg.chunk_size : VERIFY_BLOCK;
  int r = -1;

  src = malloc (block);
  dst = malloc (block);
  if (!src || !dst) {
    snprintf (err, errlen, "verify: out of memory");
    return -1;
  }
  pthread_mutex_lock (&m->lock);
  for (size_t i = 0; i < m->ndests; ++i)
    if (dest_active_locked (m->dests[i]))
      dests[n++] = m->dests[i];
  pthread_mutex_unlock (&m->lock);

  *verified_r = 0;
  for (uint64_t off = 0, len = 0; off < m->size; off += len) {
    uint64_t first, last, zrun;
    bool zero;
    int e;

    /* A long run of source zeroes is checked in one block-status call
     * per destination; data is compared block by block. */
    zrun = source_zero_run (m, off, block);
    zero = zrun > 0;
    len = zero ? zrun : m->size - off < block ? m->size - off : block;

    pthread_mutex_lock (&m->lock);
    chunkmap_range (&m->map, off, len, &first, &last);
    while (chunkmap_range_busy (&m->map, first, last))
      pthread_cond_wait (&m->cond, &m->lock);
    chunkmap_hold (&m->map, first, last);
    pthread_mutex_unlock (&m->lock);

    if (!zero && source_pread (m, src, (uint32_t) len, off, &e) == -1) {
      snprintf (err, errlen, "verify: source read at offset %" PRIu64
                ": %s", off, strerror (e));
      goto release;
    }
    for (size_t i = 0; i < n; ++i) {
      bool dzero = false;
      if (zero && dest_is_zero (dests[i], len, off, &dzero) == 0 && dzero)
        continue;
      /* Compare block by block (the destination did not say "zero"). */
      for (uint64_t o = off; o < off + len; o += block) {
        uint64_t l = off + len - o < block ? off + len - o : block;
        if (zero)
          memset (src, 0, l);
        else if (o != off) {
          snprintf (err, errlen, "verify: internal error");
          goto release;
        }
        if (dest_pread (dests[i], dst, (uint32_t) l, o) == -1) {
          snprintf (err, errlen, "verify: %s: read at offset %" PRIu64
                    ": %s", dests[i]->uri, o, strerror (errno));
          goto release;
        }
        if (memcmp (src, dst, l) != 0) {
          snprintf (err, errlen, "verify: %s differs from the source at "
                    "offset %" PRIu64, dests[i]->uri,
                    o + first_difference (src, dst, l));
          goto release;
        }
      }
    }
    pthread_mutex_lock (&m->lock);
    chunkmap_write_end (&m->map, first, last);
    pthread_cond_broadcast (&m->cond);
    pthread_mutex_unlock (&m->lock);
    *verified_r += len;
    continue;

  release:
    pthread_mutex_lock (&m->lock);
    chunkmap_write_end (&m->map, first, last);
    pthread_cond_broadcast (&m->cond);
    pthread_mutex_unlock (&m->lock);
    goto out;
  }
  r = 0;
  log_info ("mirror: verified %" PRIu64 " bytes on %zu destination(s)",
            *verified_r, n);
 out:
  return r;
}
