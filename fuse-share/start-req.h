/* fuse-share: the receivers of a "start" request on the mount's control
 * socket (start-req.c), parsed apart from the session it starts so
 * that it can be fuzzed (tests/fuzz/fuzz-share-start.c). */
#ifndef HANDOFF_SHARE_START_REQ_H
#define HANDOFF_SHARE_START_REQ_H

#include <stddef.h>

#include <jansson.h>

#include "session.h"

/* REQ's "to" - one address, or an array of 1 to SHARE_MAX_RECEIVERS
 * different ones, none empty - and "psk" - absent, one key file for
 * all, or an array with one per receiver.  RCV[i] points into REQ.
 * 0 with *N_R receivers, or -1 (err). */
extern int start_req_receivers (json_t *req, struct share_receiver *rcv,
                                size_t *n_r, char *err, size_t errlen);

#endif /* HANDOFF_SHARE_START_REQ_H */
