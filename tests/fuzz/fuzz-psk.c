/* libFuzzer target: the pre-shared key file parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "psk.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct psk_table t;
  char err[256];

  if (psk_parse ((const char *) data, size, &t, err, sizeof err) == 0) {
    if (t.n == 0 || !psk_lookup (&t, NULL))
      abort ();
    for (size_t i = 0; i < t.n; ++i)
      if (t.entries[i].key_len < PSK_MIN_KEY_BYTES)
        abort ();
    psk_table_free (&t);
  }
  return 0;
}
