/* handoffd: cold volume handoff (DESIGN.md §1, "Cold volume handoff").
 *
 * For a VM whose files sit on volumes both hosts see: identify each
 * volume, power the VM off, flush and unmount, hand the identities
 * over; the destination finds the disks by signature, checks every
 * extent, mounts them at the same places and starts the VM.  Nothing
 * is copied.
 *
 * NOTES ON SAFETY: a volume must never be mounted on two hosts (two
 * kernels writing one non-cluster file system corrupt it), whatever
 * message is lost and whichever daemon dies when.  Two steps, each
 * journaled on both sides, give that without trusting any clock:
 *
 *  1. VOLUME_HANDOFF: the destination mounts and registers the VM but
 *     does not start it, and answers READY.  A destination that cannot
 *     mount unmounts what it mounted before it answers FAILED.
 *  2. The source records "committed" - from then on it never mounts
 *     the volumes again unless the destination says it has let go -
 *     and sends VOLUME_COMMIT.  Only then does the destination start
 *     the VM.
 *
 * A source that gets no READY records "aborting" instead: it will not
 * commit, and waits for the destination to say it dropped the volumes
 * (or never had them) before it mounts them again.  A destination
 * that gets no COMMIT asks the source: "committed" - it starts the VM;
 * "aborted", or no answer before its own wait ends - it unmounts, and
 * only then answers "aborted" to anyone who asks.  While either side
 * cannot learn what the other did, the VM stays stopped and the
 * volumes unmounted on the source ("in doubt", in status), and the
 * source keeps asking.  Safety never depends on a timeout: every
 * mount follows the other side's recorded word that it is not and will
 * not be mounted there.
 *
 * What this cannot do without a lease on the volume itself (sanlock,
 * or SCSI-3 persistent reservations; handoffd(8), "SHARED STORAGE"):
 * bring the VM back automatically when the other host is dead for good
 * rather than cut off.
 */
#ifndef HANDOFF_CTL_VOLUME_H
#define HANDOFF_CTL_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The source's side.  The guest gets SHUTDOWN_MS to power off before
 * QEMU is stopped.  EMIT gets phase events and finally a "result"
 * event. */
typedef void (*volume_emit_fn) (void *opaque, json_t *ev);
extern void migrate_volume (const char *id, const char *vm, const char *to,
                            json_t *def, json_t *objects, uint64_t timeout_s,
                            uint64_t shutdown_ms, volume_emit_fn emit,
                            void *opaque);

/* The destination's side, in the conversation's thread: VOLUME_HANDOFF
 * (mount, register; READY) and VOLUME_COMMIT (start; ACK).  Both
 * answer FAILED {reason} with nothing left mounted. */
extern json_t *volume_receive (const char *id, const char *vm,
                               const char *from, json_t *msg);
extern json_t *volume_commit (const char *id, const char *vm,
                              const char *from, json_t *msg);
/* The conversation ended between READY and COMMIT: ask the source and
 * start the VM or drop the volumes. */
extern void volume_settle_in (const char *id);

/* Let go of migration ID's volumes here (unmount, forget the VM); the
 * journal says "aborted" only once none is mounted.  0 or -1. */
extern int volume_drop (const char *id, const char *why);

/* A destination's answer about its volume migration (journal ROW) to
 * QUERY_MIGRATION, or to ABORT_MIGRATION (ABORT_IT: drops the volumes
 * if the VM was not committed). */
extern const char *volume_destination_state (json_t *row, bool abort_it);

/* Start-up and the retry thread: an unfinished volume migration,
 * settled with the peer, or left for the next pass while it does not
 * answer. */
extern void volume_recover_source (json_t *row);
extern void volume_recover_destination (json_t *row);

/* What this host's source journal says of volume migration ID, for a
 * destination's QUERY_MIGRATION: "active", "committed" or "aborted". */
extern const char *volume_source_state (json_t *row);

#endif /* HANDOFF_CTL_VOLUME_H */
