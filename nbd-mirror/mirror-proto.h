/* nbd-mirror: the control protocol.
 *
 * Transport: the framed channel of lib/ (channel-proto.h) on the unix
 * socket given by the filter's control= parameter (mode 0600), service
 * CHAN_SERVICE_MIRROR, version 1.  Each frame is one JSON object.  A
 * client sends a request {"op": NAME, ...} and reads exactly one reply:
 * {"ok": true, ...} or {"ok": false, "error": "one-line reason"}.  Any
 * number of clients may be connected at once; a "complete" in one does
 * not hold up "status" in another.
 *
 * Requests (fields beyond "op"):
 *
 *   start     "destinations": [NBD URI, ...]   1..MIRROR_MAX_DESTS
 *             "mode": "active" | "background"  (default "active")
 *             "copy_rate_limit": bytes/s       (default 0: no cap) of
 *             the background copy, over every destination; guest
 *             writes are never held back by it
 *             Connects to every destination, checks its size and that
 *             it is writable, and starts copying.  Refused if a mirror
 *             is already running.  Destinations that cannot be reached
 *             are reported in "failed"; if none can, the reply is an
 *             error and nothing runs.
 *   status    Reply fields: "state", "mode", "size", "chunk_size",
 *             "copied", "remaining", "dirtied", "inflight" (bytes),
 *             "copy_rate", "write_rate" (bytes/s), "elapsed" (s),
 *             "ready_after" (s from start until every destination first
 *             held every chunk; 0 before that),
 *             "guest_writes", "mirrored_writes" (counts), and
 *             "destinations": [{ "uri", "state", "copied",
 *             "remaining", "sent", "mirrored", "error" }].
 *   complete  "verify": bool, "timeout_ms": integer (0: no limit).
 *             Waits until every active destination holds every chunk,
 *             flushes them, optionally compares every chunk with the
 *             source, and detaches them.  Reply: "verified" (bytes).
 *   cancel    "destination": URI (optional: all when absent).
 *   pause     Stops the background copy; mirrored guest writes go on.
 *   resume
 *
 * States are the strings in mirror_state_names[] (mirror.h).
 */
#ifndef HANDOFF_MIRROR_PROTO_H
#define HANDOFF_MIRROR_PROTO_H

#define MIRROR_PROTO_VERSION 1
#define MIRROR_MAX_DESTS 8
#define MIRROR_MAX_URI 4096

#endif /* HANDOFF_MIRROR_PROTO_H */
