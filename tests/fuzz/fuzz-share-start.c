/* libFuzzer target: the receivers of a share "start" request
 * (fuse-share/start-req.c), as the mount's control socket gets it: one
 * JSON document.
 *
 * Invariants: a request is either refused with a reason or gives the
 * session 1 to SHARE_MAX_RECEIVERS receivers, each address a whole,
 * non-empty string of the request and none twice, each key file absent
 * or a whole string of the request. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "start-req.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* Is S one of the strings of V (V itself, or an element of it)? */
static bool
from_request (json_t *v, const char *s)
{
  size_t i;
  json_t *e;

  if (json_is_string (v))
    return json_string_value (v) == s &&
      strlen (s) == json_string_length (v);
  json_array_foreach (v, i, e)
    if (json_string_value (e) == s && strlen (s) == json_string_length (e))
      return true;
  return false;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  json_t *req = json_loadb ((const char *) data, size,
                            JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
  struct share_receiver rcv[SHARE_MAX_RECEIVERS];
  char err[512];
  size_t n = 0;

  if (!req)
    return 0;
  err[0] = '\0';
  if (start_req_receivers (req, rcv, &n, err, sizeof err) == -1) {
    if (err[0] == '\0' || strnlen (err, sizeof err) == sizeof err)
      abort ();
    json_decref (req);
    return 0;
  }
  if (n < 1 || n > SHARE_MAX_RECEIVERS)
    abort ();
  for (size_t i = 0; i < n; ++i) {
    if (!rcv[i].to || !rcv[i].to[0] ||
        !from_request (json_object_get (req, "to"), rcv[i].to))
      abort ();
    if (rcv[i].psk &&
        !from_request (json_object_get (req, "psk"), rcv[i].psk))
      abort ();
    for (size_t j = 0; j < i; ++j)
      if (strcmp (rcv[i].to, rcv[j].to) == 0)
        abort ();
  }
  json_decref (req);
  return 0;
}
