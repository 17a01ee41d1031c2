/* handoff: file digests.  See digest.h. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "digest.h"

int
digest_sha256_fd (int fd, uint8_t out[DIGEST_SHA256_LEN])
{
  gnutls_hash_hd_t h;
  uint8_t buf[65536];
  ssize_t n;
  int e;

  memset (out, 0, DIGEST_SHA256_LEN);
  if (gnutls_hash_init (&h, GNUTLS_DIG_SHA256) < 0) {
    errno = ENOMEM;
    return -1;
  }
  /* Terminates: read reaches end of file or fails. */
  while ((n = read (fd, buf, sizeof buf)) > 0)
    gnutls_hash (h, buf, (size_t) n);
  e = errno;
  gnutls_hash_deinit (h, out);
  if (n < 0) {
    memset (out, 0, DIGEST_SHA256_LEN);
    errno = e;
    return -1;
  }
  return 0;
}
