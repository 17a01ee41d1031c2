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

/* Every stream has been copied once: phase "warm", each destination
 * "warm", the migration's deadline suspended. */
extern void warm_enter (struct migration *m);

/* A cutover was asked for and the warm-up's exit condition
 * (--warm-exit) holds now. */
extern bool warm_cutover_due (struct migration *m);

/* Cut over: the destinations not chosen are discarded, the deadline
 * runs again, and the relay lets QEMU switch over.  0, or -1 with err
 * and *RC. */
extern int warm_release (struct migration *m, int *rc, char *err,
                         size_t errlen);

#endif /* HANDOFF_CTL_SOURCE_WARM_H */
