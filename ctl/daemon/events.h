/* handoffd: management events.
 *
 * "handoff event VM TYPE [JSON]" posts an event for a VM.  Delivering
 * it runs the hook the VM's policy object names for TYPE
 * ({"hooks": {"TYPE": "/path/to/program", "*": ...}}) with HANDOFF_VM,
 * HANDOFF_EVENT, HANDOFF_EVENT_ID, HANDOFF_EVENT_TIME (ms since the
 * epoch), HANDOFF_EVENT_PAYLOAD (JSON) and HANDOFF_HOST in its
 * environment; an event without a hook is delivered as a no-op.
 *
 * While the VM migrates its events are held (queued in the database);
 * at cutover they travel to the destination with the VM, which
 * delivers them in posting order, exactly once, after the VM resumes
 * there.  If the migration rolls back the source delivers them.
 */
#ifndef HANDOFF_CTL_EVENTS_H
#define HANDOFF_CTL_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Post an event; *queued_r tells whether it was held.  0 or -1 (err;
 * *moved_to_r names the host the VM moved to, if that is why). */
extern int events_post (const char *vm, const char *type, json_t *payload,
                        bool *queued_r, json_t **reply_r, char *err,
                        size_t errlen);

/* Hold the VM's events (a migration begins). */
extern void events_hold (const char *vm);
/* Cutover: new posts wait until events_release; returns the queued
 * events (array, new reference). */
extern json_t *events_freeze (const char *vm);
/* The migration ended.  MOVED_TO: the VM now lives there (queued
 * events moved with it: deleted here; later posts are refused naming
 * the host).  NULL: it stayed; queued events are delivered here. */
extern void events_release (const char *vm, const char *moved_to);

/* Store events that came with a VM (queued) and deliver every queued
 * event of VM in order. */
extern int events_store_incoming (const char *vm, json_t *events);
extern void events_deliver_queued (const char *vm);

/* The "migrated" event for VM, which came from FROM in migration ID,
 * after the held ones: the VM's hooks learn it runs on another host
 * (its host component ID changed). */
extern void events_post_migrated (const char *vm, const char *from,
                                  const char *id);

#endif /* HANDOFF_CTL_EVENTS_H */
