/* handoffd: the TLS cipher of the disks' NBD connections (nbd-tls.h).
 *
 * The disks' copy and mirrored writes go from the mirror filter
 * (libnbd, the client) to an nbdkit on the destination (the server),
 * both keyed with the migration's pre-shared key.  Neither program
 * lets us set its GnuTLS priority string, and both ask for
 * "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK".  With an external PSK, TLS 1.3
 * binds the key to SHA-256, which rules out AES-256-GCM (a SHA-384
 * suite); the next suite of NORMAL is CHACHA20-POLY1305, ahead of
 * AES-128-GCM.  On a CPU with AES instructions ChaCha20 is the slow
 * one: gnutls-cli --benchmark-ciphers here gives AES-128-GCM 3.17 GB/s
 * against ChaCha20-Poly1305 0.39 GB/s, and a 512 MiB disk copy over
 * TLS took 3.1 s with it against 1.4 s without (two thirds of the
 * receiving nbdkit's time was ChaCha20 and Poly1305).
 *
 * GnuTLS reads a system-wide configuration whose [overrides] can
 * disable a cipher for every priority string; GNUTLS_SYSTEM_PRIORITY_FILE
 * names another file than /etc/gnutls/config.  We give the nbdkits we
 * spawn one that disables ChaCha20-Poly1305, so both ends settle on
 * AES-128-GCM - only when the CPU has AES and carry-less multiply
 * instructions (otherwise ChaCha20 is the right choice), and never
 * over a configuration the administrator wrote: a set
 * GNUTLS_SYSTEM_PRIORITY_FILE or an existing /etc/gnutls/config wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "nbd-tls.h"

#define SYSTEM_CONFIG "/etc/gnutls/config"
#define CONFIG_TEXT \
  "# Written by handoffd for the nbdkit it spawns (see nbd-tls.c):\n" \
  "# with a pre-shared key, TLS 1.3 would otherwise pick\n" \
  "# ChaCha20-Poly1305, several times slower than AES-GCM here.\n" \
  "[overrides]\n" \
  "tls-disabled-cipher = CHACHA20-POLY1305\n"

static char env_entry[PATH_MAX + 64];
static bool env_set;

static bool
cpu_has_aes (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("aes") && __builtin_cpu_supports ("pclmul");
#else
  return false;
#endif
}

static int
write_config (const char *path)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                 0644);
  size_t len = strlen (CONFIG_TEXT);

  if (fd == -1)
    return -1;
  if (write (fd, CONFIG_TEXT, len) != (ssize_t) len) {
    int e = errno;
    close (fd);
    errno = e ? e : EIO;
    return -1;
  }
  return close (fd);
}

void
nbd_tls_init (const char *state_dir)
{
  char path[PATH_MAX];

  env_set = false;
  if (getenv ("GNUTLS_SYSTEM_PRIORITY_FILE")) {
    log_info ("disks' TLS: GnuTLS's ciphers as GNUTLS_SYSTEM_PRIORITY_FILE "
              "says");
    return;
  }
  if (access (SYSTEM_CONFIG, F_OK) == 0) {
    log_info ("disks' TLS: GnuTLS's ciphers as %s says", SYSTEM_CONFIG);
    return;
  }
  if (!cpu_has_aes ()) {
    log_info ("disks' TLS: GnuTLS's default ciphers (no AES instructions "
              "here)");
    return;
  }
  if ((size_t) snprintf (path, sizeof path, "%s/gnutls-nbd.conf", state_dir)
      >= sizeof path || write_config (path) == -1) {
    log_warn ("disks' TLS: cannot write %s/gnutls-nbd.conf (%s): GnuTLS "
              "may pick ChaCha20, slower than AES-GCM here", state_dir,
              strerror (errno));
    return;
  }
  snprintf (env_entry, sizeof env_entry, "GNUTLS_SYSTEM_PRIORITY_FILE=%s",
            path);
  env_set = true;
  log_debug ("disks' TLS: AES-GCM (ChaCha20 disabled in %s)", path);
}

const char *
nbd_tls_env (void)
{
  return env_set ? env_entry : NULL;
}
