/* libFuzzer target: the volume descriptor parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct volid v;
  char err[256];

  if (volid_parse ((const char *) data, size, &v, err, sizeof err) == 0) {
    /* What parses must survive a round trip unchanged. */
    json_t *j = volid_to_json (&v);
    char *s = json_dumps (j, JSON_COMPACT);
    struct volid w;
    json_decref (j);
    if (!s || volid_parse (s, strlen (s), &w, err, sizeof err) != 0 ||
        memcmp (&v, &w, sizeof v) != 0)
      abort ();
    free (s);
  }
  return 0;
}
