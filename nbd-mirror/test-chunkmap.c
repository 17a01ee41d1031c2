/* The chunk map's rules, including the races between guest writes and
 * the copier, without any I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chunkmap.h"

static void
test_geometry (void **state)
{
  struct chunkmap m;
  uint64_t a, b;

  (void) state;
  assert_int_equal (chunkmap_init (&m, 10000, 4096), 0);
  assert_int_equal (m.nchunks, 3);
  assert_int_equal (chunkmap_chunk_bytes (&m, 2), 10000 - 8192);
  chunkmap_range (&m, 4095, 2, &a, &b);
  assert_int_equal (a, 0);
  assert_int_equal (b, 1);
  chunkmap_range (&m, 9999, 1, &a, &b);
  assert_int_equal (a, 2);
  assert_int_equal (b, 2);
  chunkmap_free (&m);
  assert_int_equal (chunkmap_init (&m, 1 << 20, 3000), -1);
  assert_int_equal (chunkmap_init (&m, 1 << 20, 256), -1);
}

static void
test_copy_all (void **state)
{
  struct chunkmap m;
  struct chunk_track t;
  uint32_t gens[8];
  uint64_t first, n, total = 0;

  (void) state;
  chunkmap_init (&m, 10 * 4096, 4096);
  track_init (&t, &m);
  while ((n = track_take (&t, &m, 4, &first, gens)) > 0) {
    assert_true (n <= 4);
    total += track_done (&t, &m, first, n, gens, true);
  }
  assert_int_equal (total, 10);
  assert_true (track_all_copied (&t, &m));
  assert_int_equal (track_next_candidate (&t, &m), -1);
  track_free (&t);
  chunkmap_free (&m);
}

/* A guest write that lands while its chunk is in flight sends the chunk
 * back to UNCOPIED; the next copy picks it up. */
static void
test_write_races_copy (void **state)
{
  struct chunkmap m;
  struct chunk_track t;
  uint32_t gens[8];
  uint64_t first, n;

  (void) state;
  chunkmap_init (&m, 4 * 4096, 4096);
  track_init (&t, &m);
  n = track_take (&t, &m, 4, &first, gens);
  assert_int_equal (n, 4);
  chunkmap_write_begin (&m, 2, 2);     /* Guest writes chunk 2 now. */
  chunkmap_write_end (&m, 2, 2);
  assert_int_equal (track_done (&t, &m, first, n, gens, true), 3);
  assert_int_equal (t.state[2], CHUNK_UNCOPIED);
  n = track_take (&t, &m, 4, &first, gens);
  assert_int_equal (n, 1);
  assert_int_equal (first, 2);
  assert_int_equal (track_done (&t, &m, first, n, gens, true), 1);
  assert_true (track_all_copied (&t, &m));
  track_free (&t);
  chunkmap_free (&m);
}

/* While a guest write is in progress the copier leaves the chunk alone:
 * it would otherwise read data the write is about to change, record
 * the already-bumped gen, and mark stale data as copied. */
static void
test_busy_not_taken (void **state)
{
  struct chunkmap m;
  struct chunk_track t;
  uint32_t gens[8];
  uint64_t first, n;

  (void) state;
  chunkmap_init (&m, 4 * 4096, 4096);
  track_init (&t, &m);
  chunkmap_write_begin (&m, 1, 2);
  n = track_take (&t, &m, 4, &first, gens);
  assert_int_equal (first, 0);
  assert_int_equal (n, 1);               /* Stops at the busy chunk. */
  track_done (&t, &m, first, n, gens, true);
  n = track_take (&t, &m, 4, &first, gens);
  assert_int_equal (first, 3);           /* Skips 1 and 2. */
  track_done (&t, &m, first, n, gens, true);
  assert_int_equal (track_take (&t, &m, 4, &first, gens), 0);
  assert_true (chunkmap_range_busy (&m, 0, 1));
  chunkmap_write_end (&m, 1, 2);
  assert_false (chunkmap_range_busy (&m, 0, 3));
  n = track_take (&t, &m, 4, &first, gens);
  assert_int_equal (first, 1);
  assert_int_equal (n, 2);
  track_done (&t, &m, first, n, gens, true);
  assert_true (track_all_copied (&t, &m));
  track_free (&t);
  chunkmap_free (&m);
}

static void
test_failure_and_dirty (void **state)
{
  struct chunkmap m;
  struct chunk_track t;
  uint32_t gens[8];
  uint64_t first, n;

  (void) state;
  chunkmap_init (&m, 4 * 4096, 4096);
  track_init (&t, &m);
  n = track_take (&t, &m, 2, &first, gens);
  assert_int_equal (track_done (&t, &m, first, n, gens, false), 0);
  assert_int_equal (t.copied, 0);
  assert_int_equal (t.inflight, 0);
  while ((n = track_take (&t, &m, 8, &first, gens)) > 0)
    track_done (&t, &m, first, n, gens, true);
  assert_true (track_all_copied (&t, &m));
  assert_true (track_any_copied (&t, 0, 0));
  assert_int_equal (track_dirty (&t, 1, 2), 2);
  assert_int_equal (t.copied, 2);
  assert_int_equal (t.dirtied, 2);
  assert_false (track_all_copied (&t, &m));
  assert_int_equal (track_dirty (&t, 1, 2), 0);
  track_free (&t);
  chunkmap_free (&m);
}

/* The cursor wraps so chunks behind it are found again. */
static void
test_wrap (void **state)
{
  struct chunkmap m;
  struct chunk_track t;
  uint32_t gens[8];
  uint64_t first, n;

  (void) state;
  chunkmap_init (&m, 4 * 4096, 4096);
  track_init (&t, &m);
  while ((n = track_take (&t, &m, 8, &first, gens)) > 0)
    track_done (&t, &m, first, n, gens, true);
  track_dirty (&t, 0, 0);
  t.cursor = 3;
  n = track_take (&t, &m, 8, &first, gens);
  assert_int_equal (first, 0);
  assert_int_equal (n, 1);
  track_free (&t);
  chunkmap_free (&m);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_geometry),
    cmocka_unit_test (test_copy_all),
    cmocka_unit_test (test_write_races_copy),
    cmocka_unit_test (test_busy_not_taken),
    cmocka_unit_test (test_failure_and_dirty),
    cmocka_unit_test (test_wrap),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
