/* nbd-mirror: the guest pool of a destination (pool.c). */
#ifndef HANDOFF_MIRROR_POOL_H
#define HANDOFF_MIRROR_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mirror.h"

/* D's (empty) pool, allocated and freed with D. */
extern int pool_alloc (struct dest *d);
extern void pool_free (struct dest *d);
/* Connect D's pool (one handle unless D allows multi-conn).  -1 if not
 * even one connects (D failed). */
extern int pool_connect (struct dest *d);

/* Locked; may wait for a free handle.  NULL if D cannot take commands. */
extern struct pool_handle *dest_pool_get_locked (struct dest *d);
/* Locked.  BROKEN: the handle's state is unknown; it is closed. */
extern void dest_pool_put_locked (struct dest *d, struct pool_handle *h,
                                  bool broken);
/* Unlocked: submit a write, zero or flush; the cookie, or -1 (err). */
extern int64_t dest_pool_submit (struct dest *d, struct pool_handle *h,
                                 enum mirror_op op, const void *buf,
                                 uint32_t count, uint64_t offset, bool fua,
                                 char *err, size_t errlen);
/* Unlocked: drive H until COOKIE completes or DEADLINE (ms) passes. */
extern int dest_pool_wait (struct pool_handle *h, int64_t cookie,
                           int64_t deadline, char *err, size_t errlen);
/* Read back from D, or ask whether a range reads as zeroes. */
extern int dest_pread (struct dest *d, void *buf, uint32_t count,
                       uint64_t offset);
extern int dest_is_zero (struct dest *d, uint64_t count, uint64_t offset,
                         bool *zero_r);

#endif /* HANDOFF_MIRROR_POOL_H */
