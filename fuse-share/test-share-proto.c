/* The share protocol codec: round trips, path rules, refusals. */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "share-proto.h"

static uint8_t buf[SHARE_MAX_FRAME];
static char paths[2 * (SHARE_MAX_PATH + 1)];

static void
test_round_trip (void **state)
{
  const uint8_t data[] = "hello";
  struct share_req in = { .type = SHARE_WRITE, .seq = 7, .handle = 3,
                          .a = 4096, .data = data, .data_len = 5 }, out;
  char err[128];
  size_t n;

  (void) state;
  n = share_encode (&in, buf, sizeof buf);
  assert_int_equal (n, sizeof (struct share_msg) + 5);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), 0);
  assert_int_equal (out.type, SHARE_WRITE);
  assert_int_equal (out.seq, 7);
  assert_int_equal (out.handle, 3);
  assert_int_equal (out.a, 4096);
  assert_int_equal (out.data_len, 5);
  assert_memory_equal (out.data, "hello", 5);

  struct share_req ren = { .type = SHARE_RENAME, .seq = 1, .path = "a/b",
                           .path2 = "c/d e" };
  n = share_encode (&ren, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), 0);
  assert_string_equal (out.path, "a/b");
  assert_string_equal (out.path2, "c/d e");

  /* A symlink's target may be anything but NUL: it is never followed. */
  struct share_req sl = { .type = SHARE_SYMLINK, .seq = 1, .path = "l",
                          .path2 = "../../etc/passwd" };
  n = share_encode (&sl, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), 0);

  struct share_req fa = { .type = SHARE_FALLOCATE, .seq = 2, .handle = 4,
                          .c = SHARE_FALLOC_PUNCH_HOLE | SHARE_FALLOC_KEEP_SIZE,
                          .a = 1 << 20, .b = 4096 };
  n = share_encode (&fa, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), 0);
  assert_int_equal (out.type, SHARE_FALLOCATE);
  assert_int_equal (out.c, SHARE_FALLOC_PUNCH_HOLE | SHARE_FALLOC_KEEP_SIZE);
  assert_int_equal (out.a, 1 << 20);
  assert_int_equal (out.b, 4096);
  assert_true (share_fallocate_mode_ok (out.c));
  assert_false (share_fallocate_mode_ok (SHARE_FALLOC_PUNCH_HOLE));
  assert_false (share_fallocate_mode_ok (0x08));   /* COLLAPSE_RANGE */

  uint8_t reply[64];
  uint64_t seq;
  int e;
  char text[32];
  n = share_encode_reply (9, 5, "oops", reply, sizeof reply);
  assert_int_equal (share_decode_reply (reply, n, &seq, &e, text,
                                        sizeof text), 0);
  assert_int_equal (seq, 9);
  assert_int_equal (e, 5);
  assert_string_equal (text, "oops");
}

static void
test_paths (void **state)
{
  static const char *const bad[] = {
    "/etc/passwd", "..", "../x", "a/../../x", "a/./b", ".", "a//b", "a/",
    "/", "", NULL,
  };
  char err[128];

  (void) state;
  for (size_t i = 0; bad[i]; ++i)
    if (share_check_path (bad[i], strlen (bad[i]), err, sizeof err) == 0)
      fail_msg ("accepted '%s'", bad[i]);
  assert_int_equal (share_check_path ("a/b..c/.d", 9, err, sizeof err), 0);
  assert_int_equal (share_check_path ("a\0b", 3, err, sizeof err), -1);
  char longname[300];
  memset (longname, 'x', sizeof longname);
  assert_int_equal (share_check_path (longname, 256, err, sizeof err), -1);
  assert_int_equal (share_check_path (longname, 255, err, sizeof err), 0);
}

static void
test_refusals (void **state)
{
  struct share_req r = { .type = SHARE_UNLINK, .seq = 1, .path = "x" }, out;
  struct share_msg m;
  char err[128];
  size_t n;

  (void) state;
  n = share_encode (&r, buf, sizeof buf);
  /* Truncated, padded, unknown type, bad flags, sequence 0. */
  assert_int_equal (share_decode (buf, n - 1, &out, paths, err, sizeof err),
                    -1);
  assert_int_equal (share_decode (buf, n + 1, &out, paths, err, sizeof err),
                    -1);
  assert_int_equal (share_decode (buf, 10, &out, paths, err, sizeof err), -1);
  memcpy (&m, buf, sizeof m);
  m.type = htobe16 (99);
  memcpy (buf, &m, sizeof m);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), -1);
  assert_non_null (strstr (err, "unknown message type 99"));
  n = share_encode (&r, buf, sizeof buf);
  memcpy (&m, buf, sizeof m);
  m.flags = htobe16 (1);
  memcpy (buf, &m, sizeof m);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), -1);

  /* Fields the type does not take, or lacks. */
  struct share_req w = { .type = SHARE_WRITE, .seq = 1, .handle = 1,
                         .path = "x", .data = (const uint8_t *) "d",
                         .data_len = 1 };
  n = share_encode (&w, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), -1);
  assert_non_null (strstr (err, "wrong fields"));
  struct share_req nh = { .type = SHARE_CLOSE, .seq = 1, .handle = 0 };
  n = share_encode (&nh, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), -1);
  struct share_req big = { .type = SHARE_CLOSE, .seq = 1,
                           .handle = SHARE_MAX_HANDLES + 1 };
  n = share_encode (&big, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), -1);
  /* An absolute path at the very end of the frame: the error quotes it
   * without reading past it. */
  struct share_req abs = { .type = SHARE_MKDIR, .seq = 1, .path = "/etc/x" };
  n = share_encode (&abs, buf, sizeof buf);
  uint8_t *exact = malloc (n);
  assert_non_null (exact);
  memcpy (exact, buf, n);
  assert_int_equal (share_decode (exact, n, &out, paths, err, sizeof err), -1);
  assert_non_null (strstr (err, "absolute path '/etc/x'"));
  free (exact);
  struct share_req esc = { .type = SHARE_MKDIR, .seq = 1, .path = "../up" };
  n = share_encode (&esc, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), -1);
  assert_non_null (strstr (err, "'.' or '..'"));
  struct share_req v = { .type = SHARE_VERIFY, .seq = 1, .path = "x",
                         .data = (const uint8_t *) "short", .data_len = 5 };
  n = share_encode (&v, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), -1);
  struct share_req z = { .type = SHARE_UNLINK, .seq = 0, .path = "x" };
  n = share_encode (&z, buf, sizeof buf);
  assert_int_equal (share_decode (buf, n, &out, paths, err, sizeof err), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_paths),
    cmocka_unit_test (test_refusals),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
