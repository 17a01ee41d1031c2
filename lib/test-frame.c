/* Frame reader and hello codec, without I/O. */
#include <endian.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

static void
test_whole_and_split (void **state)
{
  struct frame_reader fr;
  uint8_t stream[4 + 5 + 4 + 3];
  char err[128];
  size_t used;
  uint32_t len;
  uint8_t *p;

  (void) state;
  frame_header_encode (5, stream);
  memcpy (stream + 4, "hello", 5);
  frame_header_encode (3, stream + 9);
  memcpy (stream + 13, "abc", 3);

  /* All at once: only the first frame is consumed. */
  frame_reader_init (&fr, 100);
  assert_int_equal (frame_reader_feed (&fr, stream, sizeof stream, &used,
                                       err, sizeof err), FRAME_COMPLETE);
  assert_int_equal (used, 9);
  p = frame_reader_take (&fr, &len);
  assert_int_equal (len, 5);
  assert_memory_equal (p, "hello", 5);
  free (p);

  /* Byte by byte. */
  size_t off = 9;
  enum frame_status st = FRAME_MORE;
  while (off < sizeof stream) {
    assert_false (st == FRAME_COMPLETE);
    st = frame_reader_feed (&fr, stream + off, 1, &used, err, sizeof err);
    assert_int_equal (used, 1);
    off++;
  }
  assert_int_equal (st, FRAME_COMPLETE);
  p = frame_reader_take (&fr, &len);
  assert_int_equal (len, 3);
  assert_memory_equal (p, "abc", 3);
  free (p);
  assert_false (frame_reader_mid_frame (&fr));
  frame_reader_reset (&fr);
}

static void
test_refusals (void **state)
{
  struct frame_reader fr;
  uint8_t hdr[4];
  char err[128];
  size_t used;

  (void) state;
  frame_reader_init (&fr, 1024);
  frame_header_encode (1025, hdr);
  assert_int_equal (frame_reader_feed (&fr, hdr, 4, &used, err, sizeof err),
                    FRAME_ERROR);
  assert_non_null (strstr (err, "exceeds the limit"));
  frame_reader_reset (&fr);

  frame_header_encode (0, hdr);
  assert_int_equal (frame_reader_feed (&fr, hdr, 4, &used, err, sizeof err),
                    FRAME_ERROR);
  assert_non_null (strstr (err, "empty frame"));
  frame_reader_reset (&fr);

  /* 0xffffffff never allocates. */
  memset (hdr, 0xff, 4);
  assert_int_equal (frame_reader_feed (&fr, hdr, 4, &used, err, sizeof err),
                    FRAME_ERROR);
  frame_reader_reset (&fr);
}

static void
test_hello (void **state)
{
  struct chan_hello_info a = { .service = 3, .version_min = 1,
                               .version_max = 3, .max_frame = 4096 };
  struct chan_hello_info b = { .service = 3, .version_min = 2,
                               .version_max = 5, .max_frame = 65536 };
  struct chan_hello_info d;
  uint8_t buf[CHAN_HELLO_LEN];
  uint16_t v;
  char err[128];

  (void) state;
  chan_hello_encode (&a, buf);
  assert_int_equal (chan_hello_decode (buf, sizeof buf, &d, err, sizeof err),
                    0);
  assert_int_equal (d.service, 3);
  assert_int_equal (d.version_max, 3);
  assert_int_equal (d.max_frame, 4096);
  assert_int_equal (chan_hello_negotiate (&a, &b, &v, err, sizeof err), 0);
  assert_int_equal (v, 3);

  b.version_min = 4;
  assert_int_equal (chan_hello_negotiate (&a, &b, &v, err, sizeof err), -1);
  assert_non_null (strstr (err, "no common version"));
  b.version_min = 1;
  b.service = 4;
  assert_int_equal (chan_hello_negotiate (&a, &b, &v, err, sizeof err), -1);
  assert_non_null (strstr (err, "service"));

  assert_int_equal (chan_hello_decode (buf, 15, &d, err, sizeof err), -1);
  buf[0] ^= 1;
  assert_int_equal (chan_hello_decode (buf, 16, &d, err, sizeof err), -1);
  assert_non_null (strstr (err, "bad magic"));
  buf[0] ^= 1;
  buf[10] = 1;                  /* flags */
  assert_int_equal (chan_hello_decode (buf, 16, &d, err, sizeof err), -1);
  buf[10] = 0;
  a.version_min = 4;            /* min > max */
  chan_hello_encode (&a, buf);
  assert_int_equal (chan_hello_decode (buf, 16, &d, err, sizeof err), -1);
  a.version_min = 1;
  a.max_frame = 0;
  chan_hello_encode (&a, buf);
  assert_int_equal (chan_hello_decode (buf, 16, &d, err, sizeof err), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_whole_and_split),
    cmocka_unit_test (test_refusals),
    cmocka_unit_test (test_hello),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
