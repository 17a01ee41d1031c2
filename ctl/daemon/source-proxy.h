/* handoffd: the source's calls to the stream proxy that serves its
 * disks and passes its share on (source-proxy.c; --via). */
#ifndef HANDOFF_CTL_SOURCE_PROXY_H
#define HANDOFF_CTL_SOURCE_PROXY_H

#include <jansson.h>

#include "record.h"

/* MSG (stolen; its "type" TYPE is set here) to the proxy, over the
 * relay's connection, one call at a time: its answer of type WANT
 * (checked by CHECK), or NULL (err). */
extern json_t *source_proxy_call (struct migration *m, const char *type,
                                  json_t *msg, const char *want,
                                  int (*check) (json_t *, char *, size_t),
                                  int timeout_ms, char *err, size_t errlen);

#endif /* HANDOFF_CTL_SOURCE_PROXY_H */
