/* handoffd: a pre-warmed migration (handoff migrate --prewarm): every
 * destination holds a warm copy - disks mirrored, RAM re-sent as the
 * guest dirties it - for as long as it takes, until "handoff cutover"
 * (source-warm.c).  The relay holds QEMU's switch-over (its
 * --hold-switchover); source.c's memory phase calls these. */
#ifndef HANDOFF_CTL_SOURCE_WARM_H
#define HANDOFF_CTL_SOURCE_WARM_H

#include <stdbool.h>
#include <stddef.h>

#include "record.h"

/* How many of N destinations a condition must hold for: --quorum's
 * share of them, rounded up; any one without it. */
extern size_t warm_quorum_need (const struct migration *m, size_t n);

/* Disks and files are copied to a quorum of the alive destinations
 * (--quorum; any one without it): RAM may start. */
extern bool warm_storage_ready (const struct migration *m);

/* Every stream is copied once to a quorum of them: warm_enter. */
extern bool warm_ready (const struct migration *m);

/* Phase "warm", each destination copied once "warm", the migration's
 * deadline suspended. */
extern void warm_enter (struct migration *m);

/* Each destination copied once since is "warm" too. */
extern void warm_update (struct migration *m);

/* A cutover was asked for (always, without --prewarm) and the
 * warm-up's exit condition (--warm-exit) holds now for a quorum of the
 * hosts it names, and held across a dirty sync of QEMU's. */
extern bool warm_cutover_due (struct migration *m);

/* Cut over: the destinations not chosen, and those not yet copied
 * once, are discarded, the deadline runs again, and the relay lets
 * QEMU switch over.  0, or -1 with err and *RC. */
extern int warm_release (struct migration *m, int *rc, char *err,
                         size_t errlen);

#endif /* HANDOFF_CTL_SOURCE_WARM_H */
