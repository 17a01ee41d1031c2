/* libFuzzer target: the admission policy (policy.c).  The input is one
 * JSON object, {"policy": ..., "needs": ..., "source": ...}: the policy
 * file's text (as a string) or object, and a peer's request.  The
 * file is read from a memfd, as handoffd reads the real one.
 *
 * Invariants: a policy that passes the start-up check gives lists of
 * absolute directories, never "/"; an admitted VM fits every limit the
 * policy sets, with no arithmetic wrapping around. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "db.h"
#include "policy.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char path[64];
static int fd = -1;

static void
setup (void)
{
  char err[256];

  fd = memfd_create ("policy", 0);
  if (fd == -1 || db_open (":memory:", err, sizeof err) == -1)
    abort ();
  snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
  hd.policy = path;
  snprintf (hd.images_dir, sizeof hd.images_dir, "/");
}

static void
write_policy (const char *text, size_t len)
{
  if (ftruncate (fd, 0) == -1 || pwrite (fd, text, len, 0) != (ssize_t) len)
    abort ();
}

static void
dirs_are_safe (const char *key)
{
  char err[1024];
  json_t *dirs = policy_dirs (key, err, sizeof err), *d;
  size_t i;

  if (!dirs)
    abort ();
  json_array_foreach (dirs, i, d) {
    const char *s = json_string_value (d);
    if (!s || s[0] != '/' || strcmp (s, "/") == 0 || strstr (s, "/../") ||
        (strlen (s) >= 3 && strcmp (s + strlen (s) - 3, "/..") == 0))
      abort ();
  }
  json_decref (dirs);
}

/* The policy's integer KEY, or UINT64_MAX if it sets none. */
static uint64_t
limit_of (json_t *pol, const char *key)
{
  json_t *v = json_object_get (pol, key);

  return json_is_integer (v) && json_integer_value (v) >= 0
    ? (uint64_t) json_integer_value (v) : UINT64_MAX;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char err[1024];
  json_t *in = json_loadb ((const char *) data, size, 0, NULL);
  json_t *pol, *needs;
  const char *source;
  char *text = NULL;

  if (fd == -1)
    setup ();
  if (!json_is_object (in))
    goto out;
  pol = json_object_get (in, "policy");
  needs = json_object_get (in, "needs");
  source = json_string_value (json_object_get (in, "source"));
  if (json_is_string (pol))
    write_policy (json_string_value (pol), json_string_length (pol));
  else if (pol && (text = json_dumps (pol, JSON_ENCODE_ANY)))
    write_policy (text, strlen (text));
  else
    goto out;

  if (policy_check_file (err, sizeof err) == -1)
    goto out;
  dirs_are_safe ("boot_dirs");
  dirs_are_safe ("volume_roots");
  if (source && policy_admit_proxy (source, 0, err, sizeof err) == 0) {
    /* A proxy only where the policy does not say no. */
    json_t *p = json_loadb (text ? text : json_string_value (pol),
                            text ? strlen (text) : json_string_length (pol),
                            0, NULL);
    bool no = json_object_get (p, "proxy") == json_false ();
    json_decref (p);
    if (no)
      abort ();
  }
  if (!source || !json_is_object (needs))
    goto out;
  if (policy_admit (source, needs, err, sizeof err) == 0) {
    /* What was admitted fits: no limit is exceeded by wrapping. */
    json_t *p = json_loadb (text ? text : json_string_value (pol),
                            text ? strlen (text) : json_string_length (pol),
                            0, NULL);
    uint64_t mem = (uint64_t) json_integer_value (json_object_get (needs,
                                                                   "memory"));
    uint64_t cpu = (uint64_t) json_integer_value (json_object_get (needs,
                                                                   "vcpus"));
    struct statvfs sv;
    if (mem > limit_of (p, "max_memory_mb") ||
        cpu > limit_of (p, "max_vcpus"))
      abort ();
    /* The disk reserve fits in what is free (when disks are checked). */
    if (json_object_get (p, "check_disk") != json_false () &&
        limit_of (p, "reserve_disk_mb") != UINT64_MAX &&
        (statvfs (hd.images_dir, &sv) == -1 ||
         limit_of (p, "reserve_disk_mb") >
         ((uint64_t) sv.f_bavail * sv.f_frsize) >> 20))
      abort ();
    json_decref (p);
  }
 out:
  free (text);
  json_decref (in);
  return 0;
}
