/* handoffd: the source's calls to its VM's disk mirrors, direct or
 * through the stream proxy that serves the disks (source-mirror.c). */
#ifndef HANDOFF_CTL_SOURCE_MIRROR_H
#define HANDOFF_CTL_SOURCE_MIRROR_H

#include <stddef.h>

#include <jansson.h>

#include "record.h"

/* A request (REQ, stolen) to disk I's mirror: the answer, or NULL
 * (err).  The answer's "destinations" are in slot order whether the
 * disks go direct or through a proxy. */
extern json_t *source_mirror_call (struct migration *m, size_t i, json_t *req,
                                   int timeout_ms, char *err, size_t errlen);

/* Where disk K of destination D is mirrored to, with its key. */
extern const char *source_disk_uri (const struct dest *d, size_t k,
                                    char *buf, size_t len);

#endif /* HANDOFF_CTL_SOURCE_MIRROR_H */
