/* nbd-mirror: the copier (copier.c). */
#ifndef HANDOFF_MIRROR_COPIER_H
#define HANDOFF_MIRROR_COPIER_H

#include <stdbool.h>

#include "mirror.h"

/* Take and submit up to a few runs on C.  Called with the lock held;
 * returns with it held.  True if the pipeline could take more (the
 * caller then only peeks at the socket instead of sleeping). */
extern bool copier_fill_locked (struct conn *c);
/* Free the cached copy buffers (between sessions). */
extern void copier_free_buffers (void);

#endif /* HANDOFF_MIRROR_COPIER_H */
