/* handoffd: the source's calls to a VM's stream helpers - each disk's
 * mirror and the directory's share - and the RAM stream's totals
 * (source-helpers.c; the calls to the mirrors and the share are
 * source-mirror.h's and source-share.h's).
 */
#ifndef HANDOFF_CTL_SOURCE_HELPERS_H
#define HANDOFF_CTL_SOURCE_HELPERS_H

#include <stddef.h>

#include <jansson.h>

#include "record.h"

/* Stop mirroring D's disks (the others go on). */
extern void source_stop_mirroring (struct migration *m, const struct dest *d);
/* D left the migration: its share receiver and its disks' mirrors let
 * go of it at once, so that no guest write waits for its reply. */
extern void source_leave_streams (struct migration *m, const struct dest *d);
/* The result's "ram": what QEMU's RAM stream moved (bytes, from the
 * start of the migration to its end in ms, and what carried it), once
 * QEMU completed; nothing before. */
extern void source_ram_result (const struct migration *m, json_t *res);

#endif /* HANDOFF_CTL_SOURCE_HELPERS_H */
