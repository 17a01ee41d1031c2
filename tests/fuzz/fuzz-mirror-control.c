/* libFuzzer target: the mirror filter's control requests
 * (nbd-mirror/control-req.c), as they arrive: one JSON document per
 * frame, parsed as the channel parses it.
 *
 * Invariants: a request is either refused with a reason or gives the
 * session only what mirror-proto.h allows - a known op; 1 to
 * MIRROR_MAX_DESTS non-empty URIs of at most MIRROR_MAX_URI bytes, each
 * the whole string of the request; a time limit a clock can be added
 * to. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "control-req.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static bool
is_one_of (json_t *arr, const char *s)
{
  size_t i;
  json_t *v;

  json_array_foreach (arr, i, v)
    if (json_string_value (v) == s)
      return true;
  return false;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  json_t *req = json_loadb ((const char *) data, size,
                            JSON_REJECT_DUPLICATES, NULL);
  struct control_req r;
  char err[1024];

  if (!req)
    return 0;
  err[0] = '\0';
  if (control_req_parse (req, &r, err, sizeof err) == -1) {
    /* Refused: with a reason, whole. */
    if (err[0] == '\0' || strnlen (err, sizeof err) == sizeof err)
      abort ();
    json_decref (req);
    return 0;
  }
  switch (r.op) {
  case CONTROL_START: {
    json_t *arr = json_object_get (req, "destinations");
    if (r.ndests < 1 || r.ndests > MIRROR_MAX_DESTS ||
        r.ndests != json_array_size (arr))
      abort ();
    for (size_t i = 0; i < r.ndests; ++i) {
      size_t n = strlen (r.uris[i]);
      if (n == 0 || n > MIRROR_MAX_URI || !is_one_of (arr, r.uris[i]) ||
          n != json_string_length (json_array_get (arr, i)))
        abort ();
    }
    break;
  }
  case CONTROL_COMPLETE:
    if (r.timeout_ms < 0 || r.timeout_ms > INT64_MAX / 2)
      abort ();
    break;
  case CONTROL_CANCEL:
    if (r.destination &&
        r.destination != json_string_value (json_object_get (req,
                                                             "destination")))
      abort ();
    break;
  case CONTROL_STATUS:
  case CONTROL_PAUSE:
  case CONTROL_RESUME:
    break;
  default:
    abort ();
  }
  json_decref (req);
  return 0;
}
