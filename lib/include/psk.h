/* handoff: pre-shared key files.
 *
 * The format is the one nbdkit's --tls-psk, GnuTLS's psktool and
 * QEMU's tls-creds-psk read: one "username:hexkey" per line.  One file
 * therefore serves NBD exports, QEMU and handoff's own channels.
 */
#ifndef HANDOFF_PSK_H
#define HANDOFF_PSK_H

#include <stddef.h>
#include <stdint.h>

#define PSK_DEFAULT_IDENTITY "handoff"
#define PSK_KEY_BYTES 32          /* Generated key length. */
#define PSK_MIN_KEY_BYTES 16      /* Shorter keys are refused. */
#define PSK_MAX_KEY_BYTES 512
#define PSK_MAX_IDENTITY 64
#define PSK_MAX_ENTRIES 256

struct psk_entry {
  char *identity;
  uint8_t *key;
  size_t key_len;
};

struct psk_table {
  struct psk_entry *entries;
  size_t n;
};

/* Parse the text of a key file.  Never prints; fills err. */
extern int psk_parse (const char *text, size_t len, struct psk_table *t,
                      char *err, size_t errlen);
/* Load PATH (reporting "PATH: line N: ..." in err). */
extern int psk_load (const char *path, struct psk_table *t,
                     char *err, size_t errlen);
extern void psk_table_free (struct psk_table *t);
/* Entry for IDENTITY, or the first entry if IDENTITY is NULL. */
extern const struct psk_entry *psk_lookup (const struct psk_table *t,
                                           const char *identity);
/* Write a new random key as "IDENTITY:hex\n" to PATH (mode 0600).
 * Refuses to overwrite unless FORCE.  PATH "-" writes to stdout. */
extern int psk_keygen (const char *path, const char *identity, int force,
                       char *err, size_t errlen);
/* psk_keygen, and the line written ("IDENTITY:hex", no newline) into
 * TEXT (TEXTLEN bytes: PSK_MAX_IDENTITY + 2 * PSK_KEY_BYTES + 2 fit). */
extern int psk_keygen_text (const char *path, const char *identity,
                            int force, char *text, size_t textlen,
                            char *err, size_t errlen);
/* TEXT, one line of a key file ("IDENTITY:hex", checked by the caller),
 * written to PATH (mode 0600, replaced whole). */
extern int psk_write_line (const char *path, const char *text, char *err,
                           size_t errlen);

#endif /* HANDOFF_PSK_H */
