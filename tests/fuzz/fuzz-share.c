/* libFuzzer target: the share protocol decoder (requests and replies). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "share-proto.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static char paths[2 * (SHARE_MAX_PATH + 1)];
  struct share_req r;
  char err[256], text[64];
  uint64_t seq;
  int e;

  if (share_decode (data, size, &r, paths, err, sizeof err) == 0) {
    /* Whatever decodes has checked paths and in-bounds data. */
    if (r.path && share_check_path (r.path, strlen (r.path), err,
                                    sizeof err) != 0)
      abort ();
    if (r.data_len && (r.data < data || r.data + r.data_len > data + size))
      abort ();
  }
  share_decode_reply (data, size, &seq, &e, text, sizeof text);
  return 0;
}
