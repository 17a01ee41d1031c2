/* handoffd: how a migration ends on its source (source-end.c): rolled
 * back, released, or settled with the destination when the answer to
 * MIGRATION_COMPLETE was lost.  The live source, volume mode and
 * start-up recovery share them. */
#ifndef HANDOFF_CTL_SOURCE_END_H
#define HANDOFF_CTL_SOURCE_END_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Undo a live migration on the source: cancel QEMU's migration and
 * resume the guest, cancel the mirrors, abort the share, stop the
 * relay; the VM runs here again (or, its QEMU gone, is "crashed") and
 * its held events are delivered.  OFFLINE: the VM was stopped, and is
 * again (its disk servers and share, started for the copy, stop).  TO:
 * the destination(s), from whom fleet mode takes the VM's ownership
 * back if the cutover had moved it. */
extern void source_rollback (const char *vm, const char *to, size_t ndisks,
                             bool has_dir, bool offline);

/* The VM runs on TO: stop it here, forget it, remove its files if
 * asked. */
extern void source_release (const char *id, const char *vm, const char *to,
                            json_t *def, bool delete_source);

/* After MIGRATION_COMPLETE went out and its answer did not come back:
 * ask the destination and finish one way or the other.  If it cannot
 * be reached the VM stays paused here and the journal entry open, in
 * phase "in_doubt" (the retry thread asks again). */
extern void source_settle (const char *id, const char *vm, const char *to,
                           json_t *def, bool delete_source, bool offline);

#endif /* HANDOFF_CTL_SOURCE_END_H */
