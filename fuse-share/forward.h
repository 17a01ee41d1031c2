/* fuse-share: a session passed on to several receivers
 * (handoff-share forward; forward.c). */
#ifndef HANDOFF_SHARE_FORWARD_H
#define HANDOFF_SHARE_FORWARD_H

#include <stddef.h>

#include "session.h"

struct channel;

/* Connect to the N receivers RCV (one that cannot be reached is lost
 * from the start).  0, or -1 (err) if none can be. */
extern int forward_start (const struct share_receiver *rcv, size_t n,
                          char *err, size_t errlen);

/* Pass the source's session on UP to the receivers until it commits,
 * aborts or breaks.  0 once a COMMIT or ABORT was passed and answered,
 * -1 (err) otherwise. */
extern int forward_session (struct channel *up, char *err, size_t errlen);

#endif /* HANDOFF_SHARE_FORWARD_H */
