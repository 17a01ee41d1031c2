/* libFuzzer target: the URI parser (both entry points). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uri.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = malloc (size + 1);
  struct uri u;
  char err[256];

  if (!s)
    return 0;
  memcpy (s, data, size);
  s[size] = '\0';
  if (uri_parse (s, &u, err, sizeof err) == 0) {
    /* Invariants of a successful parse. */
    if (!u.text || strcmp (u.text, s) != 0)
      abort ();
    if (uri_is_unix (&u) && !u.socket)
      abort ();
    if (!uri_is_unix (&u) && (!u.host || u.port == 0))
      abort ();
    uri_free (&u);
  }
  if (uri_parse_listen (s, &u, err, sizeof err) == 0)
    uri_free (&u);
  free (s);
  return 0;
}
