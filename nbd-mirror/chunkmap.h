/* nbd-mirror: per-chunk copy state.
 *
 * The disk is cut into chunks (a power of two, 4 KiB to 64 MiB).  For
 * every chunk the map keeps, shared by all destinations:
 *
 *   gen   bumped at the start of every guest write, zero or trim that
 *         touches the chunk;
 *   busy  guest writes (or a verification) in progress on the chunk.
 *
 * and each destination has a track holding, per chunk:
 *
 *   UNCOPIED  the destination does not hold the current data;
 *   INFLIGHT  the copier has taken it (recording gen) and is sending;
 *   COPIED    the destination holds the current data.
 *
 * The rules that keep a destination from ending with stale data:
 *
 *  - A guest write marks its chunks busy and bumps their gen before
 *    it touches the local disk, and clears busy when done.
 *  - The copier only takes chunks that are UNCOPIED and not busy, and
 *    records their gen when it takes them (before it reads them).
 *  - When the copy lands, a chunk whose gen changed meanwhile goes back
 *    to UNCOPIED (a guest write raced with it); otherwise COPIED.
 *  - A guest write to a COPIED chunk is sent to that destination before
 *    it is acknowledged (active mode), or turns it UNCOPIED again
 *    (background mode).
 *
 * No locking here: the caller (mirror.c) holds its lock around every
 * call.  Nothing here does I/O, so the logic is unit-tested alone.
 */
#ifndef HANDOFF_CHUNKMAP_H
#define HANDOFF_CHUNKMAP_H

#include <stdbool.h>
#include <stdint.h>

enum chunk_state {
  CHUNK_UNCOPIED = 0,
  CHUNK_INFLIGHT = 1,
  CHUNK_COPIED = 2,
};

struct chunkmap {
  uint64_t size;                /* Disk size in bytes. */
  uint32_t chunk_size;          /* Power of two. */
  unsigned chunk_shift;
  uint64_t nchunks;
  uint32_t *gen;                /* Per chunk write generation. */
  uint16_t *busy;               /* Per chunk writers in progress. */
};

struct chunk_track {
  uint8_t *state;               /* enum chunk_state per chunk. */
  uint64_t copied;              /* Chunks in COPIED. */
  uint64_t inflight;            /* Chunks in INFLIGHT. */
  uint64_t dirtied;             /* COPIED chunks turned back (stats). */
  uint64_t cursor;              /* Where the next search starts. */
};

extern int chunkmap_init (struct chunkmap *m, uint64_t size,
                          uint32_t chunk_size);
extern void chunkmap_free (struct chunkmap *m);

/* Chunks covering [offset, offset+count); count > 0, inside the disk. */
extern void chunkmap_range (const struct chunkmap *m, uint64_t offset,
                            uint64_t count, uint64_t *first_r,
                            uint64_t *last_r);
/* Bytes covered by chunk C (the last chunk may be short). */
extern uint64_t chunkmap_chunk_bytes (const struct chunkmap *m, uint64_t c);
extern uint64_t chunkmap_chunk_offset (const struct chunkmap *m, uint64_t c);

extern bool chunkmap_range_busy (const struct chunkmap *m, uint64_t first,
                                 uint64_t last);
extern void chunkmap_write_begin (struct chunkmap *m, uint64_t first,
                                  uint64_t last);
extern void chunkmap_write_end (struct chunkmap *m, uint64_t first,
                                uint64_t last);
/* Mark busy without bumping gen (verification reads). */
extern void chunkmap_hold (struct chunkmap *m, uint64_t first, uint64_t last);

extern int track_init (struct chunk_track *t, const struct chunkmap *m);
extern void track_free (struct chunk_track *t);
extern bool track_any_copied (const struct chunk_track *t, uint64_t first,
                              uint64_t last);
extern bool track_all_copied (const struct chunk_track *t,
                              const struct chunkmap *m);
/* COPIED -> UNCOPIED over the range; returns how many changed. */
extern uint64_t track_dirty (struct chunk_track *t, uint64_t first,
                             uint64_t last);
/* Next chunk (from the cursor, wrapping) that could be taken, or -1. */
extern int64_t track_next_candidate (const struct chunk_track *t,
                                     const struct chunkmap *m);
/* Take up to MAX chunks starting at the candidate search position:
 * a contiguous run of UNCOPIED, not busy chunks, marked INFLIGHT with
 * their gens stored in gens[].  Returns the count (0: none free). */
extern uint64_t track_take (struct chunk_track *t, const struct chunkmap *m,
                            uint64_t max, uint64_t *first_r,
                            uint32_t *gens);
/* A taken run finished: OK says whether the destination acknowledged
 * it.  Returns the number of chunks that became COPIED. */
extern uint64_t track_done (struct chunk_track *t, const struct chunkmap *m,
                            uint64_t first, uint64_t n,
                            const uint32_t *gens, bool ok);

#endif /* HANDOFF_CHUNKMAP_H */
