/* handoff: pre-shared key files.  See psk.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "errors.h"
#include "cleanup.h"
#include "psk.h"

void
psk_table_free (struct psk_table *t)
{
  for (size_t i = 0; i < t->n; ++i) {
    free (t->entries[i].identity);
    if (t->entries[i].key) {
      /* Do not leave key material in freed memory. */
      explicit_bzero (t->entries[i].key, t->entries[i].key_len);
      free (t->entries[i].key);
    }
  }
  free (t->entries);
  t->entries = NULL;
  t->n = 0;
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static bool
valid_identity_char (unsigned char c)
{
  return isalnum (c) || c == '_' || c == '-' || c == '.' || c == '@';
}

/* Parse one line [s, s+len) into E. */
static int
parse_line (const char *s, size_t len, unsigned lineno, struct psk_entry *e,
            char *err, size_t errlen)
{
  const char *colon = memchr (s, ':', len);
  size_t idlen, hexlen;

  errno = 0;
  if (!colon)
    return set_error (err, errlen, "line %u: expected USERNAME:HEXKEY", lineno);
  idlen = (size_t) (colon - s);
  if (idlen == 0)
    return set_error (err, errlen, "line %u: username is empty", lineno);
  if (idlen > PSK_MAX_IDENTITY)
    return set_error (err, errlen, "line %u: username longer than %d bytes",
                      lineno, PSK_MAX_IDENTITY);
  for (size_t i = 0; i < idlen; ++i)
    if (!valid_identity_char ((unsigned char) s[i]))
      return set_error (err, errlen, "line %u: username has a bad character",
                        lineno);
  hexlen = len - idlen - 1;
  if (hexlen % 2 != 0)
    return set_error (err, errlen,
                      "line %u: key has an odd number of hex digits", lineno);
  if (hexlen / 2 < PSK_MIN_KEY_BYTES)
    return set_error (err, errlen,
                      "line %u: key is %zu bytes, at least %d are needed",
                      lineno, hexlen / 2, PSK_MIN_KEY_BYTES);
  if (hexlen / 2 > PSK_MAX_KEY_BYTES)
    return set_error (err, errlen, "line %u: key is longer than %d bytes",
                      lineno, PSK_MAX_KEY_BYTES);

  e->identity = strndup (s, idlen);
  e->key = malloc (hexlen / 2);
  if (!e->identity || !e->key)
    return set_error (err, errlen, "out of memory");
  e->key_len = hexlen / 2;
  for (size_t i = 0; i < e->key_len; ++i) {
    int hi = hexval (colon[1 + 2*i]), lo = hexval (colon[2 + 2*i]);
    if (hi < 0 || lo < 0)
      return set_error (err, errlen, "line %u: key is not hexadecimal", lineno);
    e->key[i] = (uint8_t) (hi << 4 | lo);
  }
  return 0;
}

int
psk_parse (const char *text, size_t len, struct psk_table *t,
           char *err, size_t errlen)
{
  unsigned lineno = 0;
  size_t pos = 0;

  memset (t, 0, sizeof *t);
  /* Terminates: pos strictly increases each pass. */
  while (pos < len) {
    const char *line = text + pos;
    const char *nl = memchr (line, '\n', len - pos);
    size_t linelen = nl ? (size_t) (nl - line) : len - pos;

    pos += linelen + (nl ? 1 : 0);
    lineno++;
    if (linelen > 0 && line[linelen - 1] == '\r')
      linelen--;
    if (linelen == 0 || line[0] == '#')
      continue;
    if (memchr (line, '\0', linelen)) {
      errno = 0;
      set_error (err, errlen, "line %u: contains a NUL byte", lineno);
      goto error;
    }
    if (t->n >= PSK_MAX_ENTRIES) {
      errno = 0;
      set_error (err, errlen, "more than %d keys", PSK_MAX_ENTRIES);
      goto error;
    }
    struct psk_entry *ne = realloc (t->entries, (t->n + 1) * sizeof *ne);
    if (!ne) {
      set_error (err, errlen, "out of memory");
      goto error;
    }
    t->entries = ne;
    memset (&t->entries[t->n], 0, sizeof t->entries[t->n]);
    t->n++;
    if (parse_line (line, linelen, lineno, &t->entries[t->n - 1],
                    err, errlen) == -1)
      goto error;
    for (size_t i = 0; i + 1 < t->n; ++i)
      if (strcmp (t->entries[i].identity, t->entries[t->n-1].identity) == 0) {
        errno = 0;
        set_error (err, errlen, "line %u: username '%s' appears twice", lineno,
                   t->entries[i].identity);
        goto error;
      }
  }
  if (t->n == 0) {
    errno = 0;
    set_error (err, errlen, "no keys in file");
    goto error;
  }
  return 0;

 error:
  psk_table_free (t);
  errno = EINVAL;
  return -1;
}

int
psk_load (const char *path, struct psk_table *t, char *err, size_t errlen)
{
  CLEANUP_CLOSE int fd = -1;
  struct stat st;
  char buf[65536];
  ssize_t n;
  size_t total = 0;
  char inner[256];

  memset (t, 0, sizeof *t);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));
  if (fstat (fd, &st) == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));
  if (!S_ISREG (st.st_mode)) {
    errno = EINVAL;
    return set_error (err, errlen, "%s: not a regular file", path);
  }
  /* Terminates: the buffer fills or read reports end of file. */
  while ((n = read (fd, buf + total, sizeof buf - total)) > 0) {
    total += (size_t) n;
    if (total == sizeof buf) {
      errno = EFBIG;
      return set_error (err, errlen, "%s: key file is too large", path);
    }
  }
  if (n == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));
  int r = psk_parse (buf, total, t, inner, sizeof inner);
  explicit_bzero (buf, sizeof buf);
  if (r == -1)
    return set_error (err, errlen, "%s: %s", path, inner);
  return 0;
}

const struct psk_entry *
psk_lookup (const struct psk_table *t, const char *identity)
{
  if (!identity)
    return t->n > 0 ? &t->entries[0] : NULL;
  for (size_t i = 0; i < t->n; ++i)
    if (strcmp (t->entries[i].identity, identity) == 0)
      return &t->entries[i];
  return NULL;
}

/* LINE (N bytes, a newline at its end) to PATH, mode 0600, through a
 * temporary name: a reader never sees half a key and a failure leaves
 * no file behind.  Replaces PATH only if FORCE. */
static int
write_key_file (const char *path, const char *line, size_t n, int force,
                char *err, size_t errlen)
{
  char tmp[4096];
  if (snprintf (tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= (int) sizeof tmp) {
    errno = ENAMETOOLONG;
    return set_error (err, errlen, "%s: path is too long", path);
  }
  if (!force && access (path, F_OK) == 0) {
    errno = EEXIST;
    return set_error (err, errlen,
                      "%s: already exists (use --force to replace)", path);
  }
  int fd = mkostemp (tmp, O_CLOEXEC);
  if (fd == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));
  if (fchmod (fd, 0600) == -1 || write (fd, line, n) != (ssize_t) n ||
      fsync (fd) == -1) {
    int e = errno;
    close (fd);
    unlink (tmp);
    errno = e;
    return set_error_errno (e, err, errlen, "%s: %s", path, strerror (e));
  }
  close (fd);
  if (force ? rename (tmp, path) : link (tmp, path)) {
    int e = errno;
    unlink (tmp);
    errno = e;
    return set_error_errno (e, err, errlen, "%s: %s", path, strerror (e));
  }
  if (!force)
    unlink (tmp);
  return 0;
}

int
psk_keygen (const char *path, const char *identity, int force,
            char *err, size_t errlen)
{
  return psk_keygen_text (path, identity, force, NULL, 0, err, errlen);
}

int
psk_keygen_text (const char *path, const char *identity, int force,
                 char *text, size_t textlen, char *err, size_t errlen)
{
  uint8_t key[PSK_KEY_BYTES];
  char line[PSK_MAX_IDENTITY + 2 * PSK_KEY_BYTES + 3];
  size_t n;
  int r;

  errno = 0;
  if (!identity)
    identity = PSK_DEFAULT_IDENTITY;
  n = strlen (identity);
  if (n == 0 || n > PSK_MAX_IDENTITY)
    return set_error (err, errlen, "username must be 1 to %d characters",
                      PSK_MAX_IDENTITY);
  for (size_t i = 0; i < n; ++i)
    if (!valid_identity_char ((unsigned char) identity[i]))
      return set_error (err, errlen,
                        "username '%s': use letters, digits, "
                        "'_', '-', '.', '@'",
                        identity);

  r = gnutls_rnd (GNUTLS_RND_KEY, key, sizeof key);
  if (r < 0)
    return set_error (err, errlen, "random key: %s", gnutls_strerror (r));
  n = (size_t) snprintf (line, sizeof line, "%s:", identity);
  for (size_t i = 0; i < sizeof key; ++i)
    n += (size_t) snprintf (line + n, sizeof line - n, "%02x", key[i]);
  explicit_bzero (key, sizeof key);
  if (text && n >= textlen) {
    explicit_bzero (line, sizeof line);
    errno = ENAMETOOLONG;
    return set_error (err, errlen, "%s: no room for the key's text", path);
  }
  if (text)
    snprintf (text, textlen, "%.*s", (int) n, line);
  line[n++] = '\n';

  if (strcmp (path, "-") == 0) {
    r = fwrite (line, 1, n, stdout) == n && fflush (stdout) == 0 ? 0 : -1;
    explicit_bzero (line, sizeof line);
    if (r == -1)
      return set_error_errno (errno, err, errlen, "stdout: %s",
                              strerror (errno));
    return 0;
  }
  r = write_key_file (path, line, n, force, err, errlen);
  explicit_bzero (line, sizeof line);
  return r;
}

int
psk_write_line (const char *path, const char *text, char *err,
                size_t errlen)
{
  char line[PSK_MAX_IDENTITY + 2 * PSK_MAX_KEY_BYTES + 3];
  size_t n = strlen (text);
  int r;

  if (n + 1 >= sizeof line || strpbrk (text, "\r\n")) {
    errno = EINVAL;
    return set_error (err, errlen, "%s: not one line of a key file", path);
  }
  n = (size_t) snprintf (line, sizeof line, "%s\n", text);
  r = write_key_file (path, line, n, 1, err, errlen);
  explicit_bzero (line, sizeof line);
  return r;
}
