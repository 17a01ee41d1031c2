/* nbd-mirror: the local disk through the plugin context (source.c). */
#ifndef HANDOFF_MIRROR_SOURCE_H
#define HANDOFF_MIRROR_SOURCE_H

#include <stdint.h>

#include <nbdkit-filter.h>

#include "mirror.h"

/* Open and close M's context into the plugin (.after_fork). */
extern int source_open (struct mirror *m);
extern void source_close (struct mirror *m);
/* Read from the local disk; -1 with *err. */
extern int source_pread (struct mirror *m, void *buf, uint32_t count,
                         uint64_t offset, int *err);
/* Extents of [offset, offset+count), or *exts_r = NULL when the plugin
 * cannot tell (then everything counts as data). */
extern int source_extents (struct mirror *m, uint32_t count, uint64_t offset,
                           struct nbdkit_extents **exts_r, int *err);

#endif /* HANDOFF_MIRROR_SOURCE_H */
