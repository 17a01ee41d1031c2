/* handoffd: the source side of a live migration (source.c). */
#ifndef HANDOFF_CTL_SOURCE_H
#define HANDOFF_CTL_SOURCE_H

struct migration;

#include <jansson.h>

/* The phases of a live (or offline: a stopped VM's disks and
 * directory, nothing started) migration to M's destinations, in the
 * migration's thread: its result ({ok, code, error, downtime_ms, ...}),
 * for the record's result event or another attempt (migration.c). */
extern json_t *source_run_live (struct migration *m);

#endif /* HANDOFF_CTL_SOURCE_H */
