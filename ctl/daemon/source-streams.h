/* handoffd: the source's view of its streams (source-streams.c). */
#ifndef HANDOFF_CTL_SOURCE_STREAMS_H
#define HANDOFF_CTL_SOURCE_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "record.h"

/* One progress sample: every stream, and the remaining state R and
 * rates B (transfer) and W (dirtying) of DESIGN.md §4, kept in M and
 * sent as a progress event.  RAM: QEMU's query-migrate, or NULL.
 * *STORAGE_READY if every disk and the files are copied.  -1 (err) if
 * a stream failed, or (*RC) the last destination was lost. */
extern int source_sample (struct migration *m, json_t *ram,
                          bool *storage_ready, int *rc, char *err,
                          size_t errlen);

/* Start the share of the VM's directory to every destination left,
 * at most COPY_CAP bytes/s (0: no cap).  -1 (err, *RC) if it cannot
 * start, or none of them can be reached. */
extern int source_share_start (struct migration *m, uint64_t copy_cap,
                               int *rc, char *err, size_t errlen);
/* A destination whose share receiver was lost (ST: the share's status)
 * is lost too; -1 (err, *RC) if it was the last. */
extern int source_check_share_dests (struct migration *m, json_t *st,
                                     int *rc, char *err, size_t errlen);
/* A destination whose copy of disk DISK failed (ST: the mirror's
 * status) is lost; -1 (err, *RC) if it was the last. */
extern int source_check_mirror_dests (struct migration *m, size_t disk,
                                      json_t *st, int *rc, char *err,
                                      size_t errlen);

#endif /* HANDOFF_CTL_SOURCE_STREAMS_H */
