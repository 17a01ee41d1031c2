/* Formatting of sizes, rates, ETAs and bars; size/duration parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "progress.h"
#include "util.h"

static void
test_format (void **state)
{
  char b[64];

  (void) state;
  format_bytes (512, b, sizeof b);
  assert_string_equal (b, "512 B");
  format_bytes (1536, b, sizeof b);
  assert_string_equal (b, "1.5 KiB");
  format_bytes (UINT64_C (2) << 30, b, sizeof b);
  assert_string_equal (b, "2.0 GiB");
  format_rate (100.0 * 1048576, b, sizeof b);
  assert_string_equal (b, "100.0 MiB/s");
  format_eta (65, b, sizeof b);
  assert_string_equal (b, "1:05");
  format_eta (3723, b, sizeof b);
  assert_string_equal (b, "1:02:03");
  format_eta (-1, b, sizeof b);
  assert_string_equal (b, "--:--");
  format_bar (0.5, 10, b, sizeof b);
  assert_string_equal (b, "[#####.....]");
  format_bar (2.0, 4, b, sizeof b);
  assert_string_equal (b, "[####]");
}

static void
test_parse (void **state)
{
  uint64_t v;
  char err[128];

  (void) state;
  assert_int_equal (parse_size ("64K", &v, err, sizeof err), 0);
  assert_int_equal (v, 65536);
  assert_int_equal (parse_size ("1MiB", &v, err, sizeof err), 0);
  assert_int_equal (v, 1048576);
  assert_int_equal (parse_size ("4096", &v, err, sizeof err), 0);
  assert_int_equal (v, 4096);
  assert_int_equal (parse_size ("1X", &v, err, sizeof err), -1);
  assert_int_equal (parse_size ("-1", &v, err, sizeof err), -1);
  assert_int_equal (parse_size ("99999999999999999999", &v, err, sizeof err),
                    -1);
  assert_int_equal (parse_size ("16777216T", &v, err, sizeof err), -1);
  assert_non_null (strstr (err, "too large"));
  assert_int_equal (parse_duration_ms ("250ms", &v, err, sizeof err), 0);
  assert_int_equal (v, 250);
  assert_int_equal (parse_duration_ms ("3", &v, err, sizeof err), 0);
  assert_int_equal (v, 3000);
  assert_int_equal (parse_duration_ms ("2m", &v, err, sizeof err), 0);
  assert_int_equal (v, 120000);
  assert_int_equal (parse_duration_ms ("2d", &v, err, sizeof err), -1);
  assert_int_equal (parse_duration_ms ("1.5s", &v, err, sizeof err), 0);
  assert_int_equal (v, 1500);
  assert_int_equal (parse_duration_ms ("1.5", &v, err, sizeof err), 0);
  assert_int_equal (v, 1500);
  assert_int_equal (parse_duration_ms ("0.25m", &v, err, sizeof err), 0);
  assert_int_equal (v, 15000);
  assert_int_equal (parse_duration_ms ("1.0005s", &v, err, sizeof err), -1);
  assert_non_null (strstr (err, "whole number of milliseconds"));
  assert_int_equal (parse_duration_ms ("1.s", &v, err, sizeof err), -1);
  assert_int_equal (parse_duration_ms (".5s", &v, err, sizeof err), -1);
  assert_int_equal (parse_duration_ms ("90s", &v, err, sizeof err), 0);
  assert_int_equal (v, 90000);
  /* A bare number in the caller's unit; a suffix means what it says. */
  assert_int_equal (parse_size_in ("512", 1 << 20, &v, err, sizeof err), 0);
  assert_int_equal (v, 512ULL << 20);
  assert_int_equal (parse_size_in ("512K", 1 << 20, &v, err, sizeof err), 0);
  assert_int_equal (v, 512ULL << 10);
  assert_int_equal (parse_size_in ("1048576", 1 << 20, &v, err, sizeof err),
                    0);
  assert_int_equal (v, 1ULL << 40);
  assert_int_equal (parse_size_in ("2G", 1 << 20, &v, err, sizeof err), 0);
  assert_int_equal (v, 2ULL << 30);
  assert_int_equal (parse_size_in ("4096B", 1 << 20, &v, err, sizeof err), 0);
  assert_int_equal (v, 4096);
  assert_int_equal (parse_size ("1KB", &v, err, sizeof err), 0);
  assert_int_equal (v, 1024);
  assert_int_equal (parse_size ("1Kx", &v, err, sizeof err), -1);
  assert_int_equal (parse_size ("1KBB", &v, err, sizeof err), -1);
  assert_int_equal (parse_uint ("10", 1, 9, &v, err, sizeof err), -1);
  assert_int_equal (parse_uint ("+1", 0, 9, &v, err, sizeof err), -1);
  assert_int_equal (parse_uint ("7", 1, 9, &v, err, sizeof err), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_format),
    cmocka_unit_test (test_parse),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
