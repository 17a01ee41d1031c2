/* Checked arithmetic and range helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "checked-overflow.h"

static void
test_add_mul (void **state)
{
  uint64_t r;
  uint32_t r32;

  (void) state;
  assert_false (ADD_OVERFLOW (UINT64_C (1), UINT64_C (2), &r));
  assert_int_equal (r, 3);
  assert_true (ADD_OVERFLOW (UINT64_MAX, UINT64_C (1), &r));
  assert_true (MUL_OVERFLOW (UINT64_MAX / 2, UINT64_C (3), &r));
  assert_false (MUL_OVERFLOW (UINT64_C (1) << 31, UINT64_C (2), &r));
  assert_true (ADD_OVERFLOW (UINT32_MAX, 1u, &r32));
  assert_true (SUB_OVERFLOW (UINT64_C (0), UINT64_C (1), &r));
}

static void
test_range (void **state)
{
  uint64_t r = 0;

  (void) state;
  assert_false (range_outside (0, 512, 512));
  assert_true (range_outside (1, 512, 512));
  assert_true (range_outside (UINT64_MAX, 2, UINT64_MAX));
  assert_false (range_outside (512, 0, 512));
  assert_false (round_up_overflow (4097, 4096, &r));
  assert_int_equal (r, 8192);
  assert_true (round_up_overflow (UINT64_MAX - 10, 4096, &r));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_add_mul),
    cmocka_unit_test (test_range),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
