/* handoffd: the peer protocol (handoffd <-> handoffd).
 *
 * JSON frames on a CHAN_SERVICE_CTL channel over TLS with the
 * pre-shared key.  Every message has a "type".  The source opens one
 * connection per migration and sends, in order (each waits for its
 * answer):
 *
 *   START_MIGRATION {id, vm, source, mode, needs}
 *                              -> PERMITTED | DENIED {reason}
 *   MANAGEMENT_STATE {def, objects}
 *                              -> SUCCESS {endpoints} | FAILED {reason}
 *                                 | INSTANTIATION_ERROR {reason}
 *   START_VM                   -> SUCCESS | INSTANTIATION_ERROR {reason}
 *   QUEUED_EVENTS {events}     -> SUCCESS | FAILED {reason}
 *   MANAGEMENT_UPDATE {objects}-> SUCCESS | FAILED {reason}
 *   MIGRATION_COMPLETE         -> ACK {resumed_at} | FAILED {reason}
 *   MIGRATION_COMPLETE {hold: true}
 *                              -> LOADED {loaded_at} | FAILED {reason}
 *                                 (one of several destinations: the VM
 *                                 is loaded and stays paused, not yet
 *                                 this host's), then
 *   RESUME                     -> ACK {resumed_at} | FAILED {reason}
 *                                 (the source chose this destination)
 *                                 or ABORT (it chose another)
 *   ABORT {reason}             -> ABORTED  (at any point before the end)
 *   PING                       -> PONG     (every few seconds while data
 *                                 moves; a source silent for two I/O
 *                                 timeouts is gone)
 *
 * Volume mode replaces MANAGEMENT_STATE .. MIGRATION_COMPLETE with two
 * steps, so that a volume is never mounted on two hosts (volume.h):
 *   VOLUME_HANDOFF {def, objects, volumes: [{descriptor, mountpoint}]}
 *                              -> READY (mounted and registered, not
 *                                 started) | FAILED {reason} (nothing
 *                                 left mounted)
 *   VOLUME_COMMIT {events}     -> ACK {resumed_at} | FAILED {reason}
 *                                 (unmounted again before the answer)
 *
 * On a fresh connection, about an earlier migration, to its
 * destination:
 *   QUERY_MIGRATION {id}       -> STATUS {state: active | resumed |
 *                                 aborted | unknown}
 *   ABORT_MIGRATION {id}       -> STATUS {state}  (aborts unless resumed)
 * and to its source (a destination deciding what to do with what it
 * received):
 *   QUERY_MIGRATION {id}       -> STATUS {state: held | released |
 *                                 discarded} (live: does the source
 *                                 still hold the VM?  discarded: it
 *                                 went to another of several
 *                                 destinations) or {state: active |
 *                                 committed | aborted} (volume: did the
 *                                 source record the handover?)
 *
 * On a fresh connection, to the proxy a migration names (--via):
 *   RELAY_STREAM {id, vm, source, hold, to: [{host, xfer, xfer_tcp?,
 *                 key}]}       -> RELAYING {xfer, key} (its relay takes
 *                                 the source's one RAM stream at xfer,
 *                                 TLS under key, and carries it to every
 *                                 destination's xfer under that one's
 *                                 key) | DENIED {reason}
 *   PING                       -> PONG   (while the migration runs)
 *   END                        -> ENDED  (the relay stops; so it does
 *                                 when the connection closes, the
 *                                 source is silent for two I/O
 *                                 timeouts, or the stream ends)
 *
 * A destination that loses its source before MIGRATION_COMPLETE, or
 * after LOADED before RESUME, removes everything it made for the
 * migration: it was never told to run the VM.
 */
#ifndef HANDOFF_CTL_PEER_H
#define HANDOFF_CTL_PEER_H

#include <stddef.h>

#include <jansson.h>

#define PEER_PROTO_VERSION 1
#define PEER_MAX_FRAME (4u << 20)

struct channel;

/* Connect to the handoffd at URI (a peer name or tcp:// URI). */
extern struct channel *peer_connect (const char *to, char *err,
                                     size_t errlen);

/* Send MSG (stolen) and wait up to TIMEOUT_MS for the answer.  Returns
 * it (a new reference; its "type" may be a refusal) or NULL with the
 * transport failure in err. */
extern json_t *peer_call (struct channel *c, json_t *msg, int timeout_ms,
                          char *err, size_t errlen);

/* The answer's type is WANT; otherwise err holds the type and reason. */
extern int peer_expect (json_t *answer, const char *want, char *err,
                        size_t errlen);

extern json_t *peer_msg (const char *type);

/* peer_call, then peer_expect WANT, when only that the answer is WANT
 * matters: 0, or -1 with err. */
extern int peer_ask (struct channel *c, json_t *msg, const char *want,
                     int timeout_ms, char *err, size_t errlen);

/* Ask TO about migration ID on a new connection, retrying until
 * TIMEOUT_MS: the STATUS answer, or NULL (err). */
extern json_t *peer_query_migration (const char *to, const char *id,
                                     int timeout_ms, char *err,
                                     size_t errlen);
/* Send ABORT_MIGRATION for ID to TO on a new connection: its STATUS
 * answer (a new reference), or NULL with err. */
extern json_t *peer_abort_migration_state (const char *to, const char *id,
                                           char *err, size_t errlen);
/* Tell the destination to drop migration ID: ABORT on PEER if open,
 * else ABORT_MIGRATION on a new connection.  Best effort. */
extern void peer_abort_migration (struct channel *peer, const char *to,
                                  const char *id, const char *reason);

/* The address C's peer connects from (no port, no brackets). */
extern void peer_address (struct channel *c, char *buf, size_t len);

#endif /* HANDOFF_CTL_PEER_H */
