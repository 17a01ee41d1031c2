/* handoffd: migrations, both sides.
 *
 * Source (migrate.c): "handoff migrate" starts a migration thread that
 * drives the phases of DESIGN.md §1 against the destination's handoffd
 * (peer.h messages) and records each in the journal.  Progress is a
 * list of JSON events (phase changes, progress samples, the result)
 * that any number of CLI connections follow.
 *
 * Destination (incoming.c): the peer server's conversation handler.
 *
 * Recovery (recover.c): at start-up every unfinished journal entry is
 * resolved so that the VM runs on exactly one host.
 */
#ifndef HANDOFF_CTL_MIGRATE_H
#define HANDOFF_CTL_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct channel;
struct migration;

/* Validate REQ ({"vm", "to", "mode", "max_downtime_ms", "bandwidth",
 * "timeout_s", "delete_source"}) and start.  NULL with err and the
 * exit code the CLI should use. */
extern struct migration *migrate_start (json_t *req, char *err,
                                        size_t errlen, int *rc);
/* Follow a migration: the event after *CURSOR (waiting up to
 * TIMEOUT_MS), or NULL.  *DONE once the result has been returned. */
extern json_t *migrate_next_event (struct migration *m, size_t *cursor,
                                   int timeout_ms, bool *done);
extern void migrate_put (struct migration *m);
/* The migration of VM, if one runs here (a new reference). */
extern struct migration *migrate_find (const char *vm);
extern int migrate_abort (const char *vm, char *err, size_t errlen);
/* Does migration ID run in a thread of this daemon? */
extern bool migrate_running (const char *id);
/* A one-object summary for "status". */
extern json_t *migrate_summary (struct migration *m);

/* The destination side: handles one peer connection. */
extern json_t *incoming_handle (json_t *req, struct channel *c,
                                void *opaque);
/* Is a VM being received here? */
extern bool incoming_active (const char *vm);
/* Post the "migrated" event for VM, which came from FROM. */
extern void post_migrated (const char *vm, const char *from, const char *id);
/* Start-up: settle a destination journal entry. */
extern void incoming_recover (json_t *row);
/* A destination entry in phase "dropping" (the VM does not run here):
 * ask its source, up to TIMEOUT_MS, whether it holds the VM; remove the
 * received files if it does.  0 settled, -1 to ask again later. */
extern int incoming_settle_drop (json_t *row, int timeout_ms);

/* Start-up: resolve unfinished migrations from the journal. */
extern void recover_all (void);
/* Something now waits for a peer (a migration in doubt, files waiting
 * for a source's word): make sure the retry thread runs. */
extern void recover_kick (void);

#endif /* HANDOFF_CTL_MIGRATE_H */
