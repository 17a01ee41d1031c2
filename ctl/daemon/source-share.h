/* handoffd: the source's calls to its VM's directory share, direct or
 * through the stream proxy that passes it on (source-share.c). */
#ifndef HANDOFF_CTL_SOURCE_SHARE_H
#define HANDOFF_CTL_SOURCE_SHARE_H

#include <jansson.h>

#include "record.h"

/* A request (REQ, stolen) to the share: the answer, or NULL (err).
 * The answer's "receivers" are in slot order whether the share goes
 * direct or through a proxy. */
extern json_t *source_share_call (struct migration *m, json_t *req,
                                  int timeout_ms, char *err, size_t errlen);

#endif /* HANDOFF_CTL_SOURCE_SHARE_H */
