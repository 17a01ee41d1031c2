/* nbd-mirror: comparing every destination with the source (verify.c). */
#ifndef HANDOFF_MIRROR_VERIFY_H
#define HANDOFF_MIRROR_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "mirror.h"

/* Compare every active destination of M with the source, block by
 * block; the bytes compared into *verified_r.  0, or -1 with err. */
extern int mirror_verify (struct mirror *m, uint64_t *verified_r, char *err,
                          size_t errlen);

#endif /* HANDOFF_MIRROR_VERIFY_H */
