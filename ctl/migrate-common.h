/* handoffd: pieces the source's migration, its volume mode and
 * start-up recovery share (source-side.c). */
#ifndef HANDOFF_CTL_MIGRATE_COMMON_H
#define HANDOFF_CTL_MIGRATE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The RAM relays buffer little: QEMU measures its bandwidth by what the
 * relay takes, so a deep buffer makes it stop the guest with megabytes
 * still in flight, which the pause must then wait for. */
#define MIGRATION_RELAY_BUFFER "2M"

struct channel;

/* Ask TO about migration ID on a new connection, retrying until
 * TIMEOUT_MS: the STATUS answer, or NULL (err). */
extern json_t *migration_query_peer (const char *to, const char *id,
                                     int timeout_ms, char *err,
                                     size_t errlen);

/* Tell the destination to drop migration ID: on PEER if open, else on
 * a new connection.  Best effort. */
extern void migration_abort_peer (struct channel *peer, const char *to,
                                  const char *id, const char *reason);

/* Undo a live migration on the source: cancel QEMU's migration and
 * resume the guest, cancel the mirrors, abort the share, stop the
 * relay; the VM runs here again and its held events are delivered. */
extern void migration_rollback_source (const char *vm, size_t ndisks,
                                       bool has_dir);

/* The VM runs on TO: stop it here, forget it, remove its files if
 * asked. */
extern void migration_release_source (const char *id, const char *vm,
                                      const char *to, json_t *def,
                                      bool delete_source);

/* After MIGRATION_COMPLETE went out and its answer did not come back:
 * ask the destination and finish one way or the other.  If it cannot
 * be reached the VM stays paused here and the journal entry open (a
 * later start-up retries). */
extern void migration_settle_source (const char *id, const char *vm,
                                     const char *to, json_t *def,
                                     bool delete_source);

/* Send ABORT_MIGRATION for ID to TO on a new connection: its STATUS
 * answer (a new reference), or NULL with err. */
extern json_t *migration_abort_peer_state (const char *to, const char *id,
                                           char *err, size_t errlen);

#endif /* HANDOFF_CTL_MIGRATE_COMMON_H */
