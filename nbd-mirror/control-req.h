/* nbd-mirror: a control request read and checked (mirror-proto.h),
 * before anything acts on it.  Kept apart from the session so that it
 * can be fuzzed alone. */
#ifndef HANDOFF_MIRROR_CONTROL_REQ_H
#define HANDOFF_MIRROR_CONTROL_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mirror-proto.h"

enum control_op {
  CONTROL_STATUS,
  CONTROL_START,
  CONTROL_COMPLETE,
  CONTROL_CANCEL,
  CONTROL_PAUSE,
  CONTROL_RESUME,
};

/* The strings point into the request: valid while it is. */
struct control_req {
  enum control_op op;
  /* start: 1..MIRROR_MAX_DESTS URIs, each 1..MIRROR_MAX_URI bytes
   * without a NUL inside. */
  const char *uris[MIRROR_MAX_DESTS];
  size_t ndests;
  bool background;
  uint64_t copy_rate_limit;     /* Bytes/s of the background copy; 0 is
                                   no cap. */
  /* complete: 0 is no limit; never above INT64_MAX / 2. */
  bool verify;
  int64_t timeout_ms;
  /* cancel: NULL for every destination. */
  const char *destination;
};

/* Fill R from REQ.  0, or -1 with the reason in ERR (the request is
 * answered "bad_request"). */
extern int control_req_parse (json_t *req, struct control_req *r, char *err,
                              size_t errlen);

#endif /* HANDOFF_MIRROR_CONTROL_REQ_H */
