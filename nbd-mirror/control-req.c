/* nbd-mirror: a control request read and checked.  See control-req.h. */
#include <stdio.h>
#include <string.h>

#include "control-req.h"
#include "jsonutil.h"

static int
parse_start (json_t *req, struct control_req *r, char *err, size_t errlen)
{
  json_t *arr, *v;
  const char *mode = "active";
  size_t i;

  if (msg_get_array (req, "destinations", true, &arr, err, errlen) != 0 ||
      msg_get_string (req, "mode", false, &mode, err, errlen) == -1 ||
      msg_get_u64 (req, "copy_rate_limit", false, &r->copy_rate_limit, err,
                   errlen) == -1)
    return -1;
  r->ndests = json_array_size (arr);
  if (r->ndests == 0 || r->ndests > MIRROR_MAX_DESTS) {
    snprintf (err, errlen, "'destinations' must list 1 to %d URIs",
              MIRROR_MAX_DESTS);
    return -1;
  }
  json_array_foreach (arr, i, v) {
    /* A NUL inside would let the URI checked differ from the one used. */
    if (!json_is_string (v) || json_string_length (v) == 0 ||
        json_string_length (v) > MIRROR_MAX_URI ||
        strlen (json_string_value (v)) != json_string_length (v)) {
      snprintf (err, errlen, "'destinations' must hold non-empty URI "
                "strings");
      return -1;
    }
    r->uris[i] = json_string_value (v);
  }
  if (strcmp (mode, "active") == 0)
    r->background = false;
  else if (strcmp (mode, "background") == 0)
    r->background = true;
  else {
    snprintf (err, errlen, "'mode' must be \"active\" or \"background\"");
    return -1;
  }
  return 0;
}

static int
parse_complete (json_t *req, struct control_req *r, char *err, size_t errlen)
{
  uint64_t timeout = 0;

  if (msg_get_bool (req, "verify", false, &r->verify, err, errlen) == -1 ||
      msg_get_u64 (req, "timeout_ms", false, &timeout, err, errlen) == -1)
    return -1;
  /* Added to a clock later: room for it. */
  if (timeout > INT64_MAX / 2) {
    snprintf (err, errlen, "'timeout_ms' is too large");
    return -1;
  }
  r->timeout_ms = (int64_t) timeout;
  return 0;
}

int
control_req_parse (json_t *req, struct control_req *r, char *err,
                   size_t errlen)
{
  const char *op = NULL;

  memset (r, 0, sizeof *r);
  if (msg_get_string (req, "op", true, &op, err, errlen) != 0)
    return -1;
  if (strcmp (op, "status") == 0)
    r->op = CONTROL_STATUS;
  else if (strcmp (op, "start") == 0) {
    r->op = CONTROL_START;
    return parse_start (req, r, err, errlen);
  }
  else if (strcmp (op, "complete") == 0) {
    r->op = CONTROL_COMPLETE;
    return parse_complete (req, r, err, errlen);
  }
  else if (strcmp (op, "cancel") == 0) {
    r->op = CONTROL_CANCEL;
    return msg_get_string (req, "destination", false, &r->destination, err,
                           errlen) == -1 ? -1 : 0;
  }
  else if (strcmp (op, "pause") == 0)
    r->op = CONTROL_PAUSE;
  else if (strcmp (op, "resume") == 0)
    r->op = CONTROL_RESUME;
  else {
    snprintf (err, errlen, "unknown op '%.64s'", op);
    return -1;
  }
  return 0;
}
