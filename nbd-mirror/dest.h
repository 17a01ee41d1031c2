/* nbd-mirror: destinations and their copy workers (dest.c). */
#ifndef HANDOFF_MIRROR_DEST_H
#define HANDOFF_MIRROR_DEST_H

#include <stddef.h>

#include "mirror.h"

/* A destination of M at URI (not started).  NULL with err. */
extern struct dest *dest_new (struct mirror *m, const char *uri, char *err,
                              size_t errlen);
/* Start its first worker (which connects and starts the others). */
extern int dest_start (struct dest *d);
/* Wait for its workers (after the session asked them to stop). */
extern void dest_join (struct dest *d);
extern void dest_free (struct dest *d);

#endif /* HANDOFF_MIRROR_DEST_H */
