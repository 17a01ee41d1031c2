/* handoffd: one step asked of every destination at once
 * (source-each.c). */
#ifndef HANDOFF_CTL_SOURCE_EACH_H
#define HANDOFF_CTL_SOURCE_EACH_H

#include <stddef.h>

#include "record.h"

/* Once enough destinations answered to go on, how long the others
 * still have before they are left behind. */
#define EACH_GRACE_MS 10000

/* The step for destination I of M, run in a thread of its own: 0, or
 * -1 with err and *CODE (the exit code if it was the last).  It may
 * touch its own struct dest only.  ARG is the caller's. */
typedef int each_step (struct migration *m, size_t i, void *arg, int *code,
                       char *err, size_t errlen);

/* Run STEP (WHAT, for messages) for every alive destination of M at
 * once: one silent destination costs the others its own time limit at
 * most, never the sum of several.  With GRACE_MS > 0, once enough of
 * them succeeded to go on (the --quorum of them, else one), those
 * still out get GRACE_MS more, then their channel is shut down (STEP
 * must leave the channel itself alone) and they count as failed.
 * Every destination that failed is dropped as STATE
 * (source_drop_dest).  0 while any is left; -1 (err, *RC) when none
 * is. */
extern int source_each_dest (struct migration *m, const char *what,
                             each_step *step, void *arg, int grace_ms,
                             const char *state, int *rc, char *err,
                             size_t errlen);

/* A PING to every destination every few seconds, all at once; one
 * that does not answer is lost.  -1 (err, *RC) when none is left. */
extern int source_keepalive (struct migration *m, int *rc, char *err,
                             size_t errlen);

#endif /* HANDOFF_CTL_SOURCE_EACH_H */
