/* libFuzzer target: the frame reader, hello decoder and JSON payloads,
 * fed in chunks whose sizes come from the input itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "frame.h"
#include "jsonutil.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct frame_reader fr;
  char err[256];
  size_t pos = 0;
  int frames = 0;

  if (size < 1)
    return 0;
  /* First byte: chunk size for feeding (1..256). */
  size_t chunk = (size_t) data[0] + 1;
  pos = 1;
  frame_reader_init (&fr, 65536);
  while (pos < size) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    size_t used;
    enum frame_status st = frame_reader_feed (&fr, data + pos, n, &used,
                                              err, sizeof err);
    pos += used;
    if (st == FRAME_ERROR)
      break;
    if (st == FRAME_COMPLETE) {
      uint32_t len;
      uint8_t *buf = frame_reader_take (&fr, &len);
      if (frames++ == 0) {
        struct chan_hello_info h, mine = { 1, 1, 1, 4096 };
        uint16_t v;
        if (chan_hello_decode (buf, len, &h, err, sizeof err) == 0)
          chan_hello_negotiate (&mine, &h, &v, err, sizeof err);
      }
      else {
        json_error_t jerr;
        json_t *j = json_loadb ((const char *) buf, len,
                                JSON_REJECT_DUPLICATES, &jerr);
        if (j) {
          const char *s;
          uint64_t u;
          bool b;
          json_t *a;
          msg_get_string (j, "op", true, &s, err, sizeof err);
          msg_get_u64 (j, "offset", false, &u, err, sizeof err);
          msg_get_bool (j, "ok", false, &b, err, sizeof err);
          msg_get_array (j, "to", false, &a, err, sizeof err);
          json_decref (j);
        }
      }
      free (buf);
    }
  }
  frame_reader_reset (&fr);
  return 0;
}
