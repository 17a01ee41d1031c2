/* nbd-mirror: connecting to a destination (connect.c). */
#ifndef HANDOFF_MIRROR_CONNECT_H
#define HANDOFF_MIRROR_CONNECT_H

#include <stddef.h>

#include <libnbd.h>

#include "mirror.h"

/* Connect C's handle.  On failure returns -1 with the reason in err;
 * the caller decides whether that fails the destination. */
extern int connect_conn (struct conn *c, char *err, size_t errlen);
/* Check the first connection's view of D (size, writable, zeroes);
 * a mismatch fails D.  0 or -1. */
extern int connect_check (struct dest *d, struct nbd_handle *h);
/* Close H.  A connection that is idle and healthy is first told to
 * disconnect (NBD_CMD_DISC, sent now if the socket takes it, never
 * waited for), so that the server sees a clean end rather than a TLS
 * session cut short, which nbdkit logs as an error. */
extern void connect_close (struct nbd_handle *h);
/* D fails with libnbd's error for WHAT (read in the failing thread). */
extern void connect_fail_from_nbd (struct dest *d, const char *what);

#endif /* HANDOFF_MIRROR_CONNECT_H */
