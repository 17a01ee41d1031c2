/* handoffd: the edge of the peer protocol (peer.h has the messages).
 *
 * Every message a peer sends is checked here, by its type, before the
 * conversation looks at it: each field's type, size and content (VM
 * names, migration ids, host names, event types and uids, object keys,
 * paths), with the checks of names.h and def-check.h.  A pure function
 * (no daemon state): the fuzzer calls it too.
 */
#ifndef HANDOFF_CTL_PEER_CHECK_H
#define HANDOFF_CTL_PEER_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* 0 if MSG is a well-formed message of a known type; -1 with err
 * otherwise (the answer's reason). */
extern int peer_check_message (json_t *msg, char *err, size_t errlen);

/* The endpoints a destination answers MANAGEMENT_STATE with, before
 * the source hands any of them to its mirrors, share or relay:
 * {"disks": [NDISKS "nbds://HOST:PORT/"], "share": "tcp://HOST:PORT"
 * (if HAS_DIR), "xfer": "tcp://HOST:PORT" or "rdma://...", "psk":
 * "IDENTITY:HEX"}, every HOST the destination's own PEER_HOST.  A
 * destination must not be able to point the source at a socket of its
 * own host (another VM's disk) or at a third host. */
extern int peer_check_endpoints (json_t *ep, const char *peer_host,
                                 size_t ndisks, bool has_dir, char *err,
                                 size_t errlen);

/* RELAYING, a stream proxy's answer (handoff migrate --via): {"xfer":
 * "tcp://HOST:PORT", "key": "IDENTITY:HEX"}, HOST the proxy's own
 * PROXY_HOST; with NDISKS > 0, "disks": one nbds:// export on HOST per
 * disk, no parameters; with SHARE, "share": tcp:// on HOST, the same. */
extern int peer_check_relaying (json_t *answer, const char *proxy_host,
                                size_t ndisks, bool share, char *err,
                                size_t errlen);

/* SHARED, the proxy's answer to SHARE: {"reply": the pass-on's status,
 * with a "state" and, if any, "receivers" with theirs}. */
extern int peer_check_shared (json_t *answer, char *err, size_t errlen);

/* MIRRORED, the proxy's answer to MIRROR: {"reply": the mirror's own
 * answer, with a "state" and, if any, "destinations" with theirs}. */
extern int peer_check_mirrored (json_t *answer, char *err, size_t errlen);

/* The events of QUEUED_EVENTS: [{uid, type, posted, payload}]. */
extern int peer_check_events (json_t *events, char *err, size_t errlen);

#endif /* HANDOFF_CTL_PEER_CHECK_H */
