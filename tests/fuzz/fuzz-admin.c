/* libFuzzer target: the edge of the CLI socket and the admin channel
 * (request-check.c) - every request a local client or an admin key
 * holder may send, with the VM definitions in them (def-check.c).
 *
 * Invariants: a request that passes names a known op; every name in
 * it that reaches a path or a peer (the VM, each destination host) is
 * one path component; a destination list holds 1 to MAX_DESTS hosts,
 * none twice; migrate's numbers are within their documented bounds. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "def-check.h"
#include "jsonutil.h"
#include "request-check.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
is_a_component (const char *s)
{
  if (!s || !s[0] || strchr (s, '/') || strcmp (s, ".") == 0 ||
      strcmp (s, "..") == 0)
    abort ();
}

static void
hosts_are_sound (const char *list)
{
  char buf[MAX_DESTS * 80], *save = NULL;
  const char *seen[MAX_DESTS];
  size_t n = 0;

  if (!list || strlen (list) >= sizeof buf)
    abort ();
  strcpy (buf, list);
  for (char *h = strtok_r (buf, ",", &save); h;
       h = strtok_r (NULL, ",", &save)) {
    is_a_component (h);
    if (n == MAX_DESTS)
      abort ();
    for (size_t i = 0; i < n; ++i)
      if (strcmp (seen[i], h) == 0)
        abort ();
    seen[n++] = h;
  }
  if (n == 0)
    abort ();
}

static uint64_t
u64_or (json_t *req, const char *key, uint64_t dflt)
{
  char err[256];
  uint64_t v = dflt;

  if (msg_get_u64 (req, key, false, &v, err, sizeof err) == -1)
    abort ();
  return v;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  json_t *req = json_loadb ((const char *) data, size,
                            JSON_REJECT_DUPLICATES, NULL);
  char err[1024] = "";
  const char *op, *vm;

  if (!req)
    return 0;
  if (request_check (req, err, sizeof err) == -1) {
    /* Refused: with a reason. */
    if (!err[0])
      abort ();
    json_decref (req);
    return 0;
  }
  op = json_string_value (json_object_get (req, "op"));
  if (!op)
    abort ();
  vm = json_string_value (json_object_get (req, "vm"));
  if (vm)
    is_a_component (vm);
  if (strcmp (op, "define") == 0) {
    json_t *def = json_object_get (req, "def");
    if (vm_def_check (def, err, sizeof err) == -1)
      abort ();
    is_a_component (json_string_value (json_object_get (def, "name")));
  }
  else if (strcmp (op, "migrate") == 0) {
    const char *fb = json_string_value (json_object_get (req, "fallback"));
    uint64_t dt = u64_or (req, "max_downtime_ms", 300);
    uint64_t t = u64_or (req, "timeout_s", 600);
    if (!vm)
      abort ();
    hosts_are_sound (json_string_value (json_object_get (req, "to")));
    if (fb && fb[0])
      hosts_are_sound (fb);
    if (dt < 1 || dt > MIGRATE_MAX_DOWNTIME_MS ||
        t < MIGRATE_MIN_TIMEOUT_S || t > MIGRATE_MAX_TIMEOUT_S ||
        u64_or (req, "retries", 0) > MIGRATE_MAX_RETRIES ||
        u64_or (req, "shutdown_timeout_ms", 0) > MIGRATE_MAX_SHUTDOWN_MS)
      abort ();
  }
  else if (strcmp (op, "cutover") == 0) {
    const char *to = json_string_value (json_object_get (req, "to"));
    if (to)
      hosts_are_sound (to);
  }
  json_decref (req);
  return 0;
}
