/* Unit tests: the byte-rate cap of the background copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"

/* Send 1 MiB requests as fast as the cap lets through, on a clock the
 * test moves: the bytes sent in SECONDS stay at the cap. */
static uint64_t
sent_in (uint64_t rate, uint64_t request, int seconds)
{
  struct ratelimit r;
  uint64_t sent = 0;
  int64_t now = 1000;

  ratelimit_set (&r, rate, now);
  while (now < 1000 + seconds * 1000) {
    int64_t w = ratelimit_wait_ms (&r, now);
    if (w > 0) {
      now += w;
      continue;
    }
    ratelimit_charge (&r, request, now);
    sent += request;
  }
  return sent;
}

static void
test_holds_the_cap (void **state)
{
  (void) state;
  /* 10 MiB/s for 10 s, 1 MiB requests: 100 MiB, give or take one. */
  uint64_t s = sent_in (10 << 20, 1 << 20, 10);
  assert_in_range (s, 99u << 20, 101u << 20);
  /* Requests larger than the bucket (4 MiB at 1 MiB/s) still average
   * out: debt is waited for. */
  s = sent_in (1 << 20, 4 << 20, 20);
  assert_in_range (s, 19u << 20, 24u << 20);
  /* Small requests, a slow cap. */
  s = sent_in (64 << 10, 4096, 10);
  assert_in_range (s, 630u << 10, 650u << 10);
}

static void
test_no_cap_never_waits (void **state)
{
  struct ratelimit r;

  (void) state;
  ratelimit_set (&r, 0, 0);
  ratelimit_charge (&r, UINT64_C (1) << 40, 0);
  assert_int_equal (ratelimit_wait_ms (&r, 0), 0);
}

static void
test_no_burst_after_a_pause (void **state)
{
  struct ratelimit r;

  (void) state;
  ratelimit_set (&r, 1 << 20, 0);
  /* An hour idle banks a tenth of a second, not an hour. */
  assert_int_equal (ratelimit_wait_ms (&r, 3600000), 0);
  ratelimit_charge (&r, 1 << 20, 3600000);
  int64_t w = ratelimit_wait_ms (&r, 3600000);
  assert_in_range (w, 890, 910);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_holds_the_cap),
    cmocka_unit_test (test_no_cap_never_waits),
    cmocka_unit_test (test_no_burst_after_a_pause),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
