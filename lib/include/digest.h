/* handoff: file digests (the share's commit compares them). */
#ifndef HANDOFF_DIGEST_H
#define HANDOFF_DIGEST_H

#include <stdint.h>

#define DIGEST_SHA256_LEN 32

/* SHA-256 of what FD holds from its current offset to its end.  0, or
 * -1 with errno (the read's, or ENOMEM); OUT is all zeroes then. */
extern int digest_sha256_fd (int fd, uint8_t out[DIGEST_SHA256_LEN]);

#endif /* HANDOFF_DIGEST_H */
