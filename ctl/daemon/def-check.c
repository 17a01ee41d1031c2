/* handoffd: checks of VM definitions and management objects.  See
 * def-check.h. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "def-check.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"

/* Sizes a definition may give: 64 TiB of disk, 1 TiB of RAM. */

static const char *const path_keys[] = { "dir", "kernel", "initrd", NULL };

int
vm_def_check (json_t *def, char *err, size_t errlen)
{
  const char *name, *s;
  uint64_t mem, vcpus, size;
  json_t *disks, *d;
  size_t i;

  if (!json_is_object (def))
    return set_error (err, errlen, "the definition is not an object");
  if (msg_get_string (def, "name", true, &name, err, errlen) != 0 ||
      msg_get_u64 (def, "memory", true, &mem, err, errlen) != 0 ||
      msg_get_u64 (def, "vcpus", true, &vcpus, err, errlen) != 0 ||
      msg_get_array (def, "disks", true, &disks, err, errlen) != 0)
    return -1;
  if (name_check_vm (name, err, errlen) == -1)
    return -1;
  if (mem < 16 || mem > (1u << 20) || vcpus < 1 || vcpus > 256)
    return set_error (err, errlen,
                      "memory must be 16 MiB to 1 TiB and vcpus 1 to 256");
  if (json_array_size (disks) > DEF_MAX_DISKS)
    return set_error (err, errlen, "at most %d disks", DEF_MAX_DISKS);
  json_array_foreach (disks, i, d) {
    char what[32];
    snprintf (what, sizeof what, "disk %zu", i);
    if (!json_is_object (d))
      return set_error (err, errlen, "%s is not an object", what);
    if (msg_get_string (d, "path", true, &s, err, errlen) != 0 ||
        msg_get_u64 (d, "size", true, &size, err, errlen) != 0 ||
        path_check_abs (what, s, err, errlen) == -1)
      return -1;
    if (size > DEF_MAX_DISK_BYTES)
      return set_error (err, errlen, "%s: larger than 64 TiB", what);
  }
  for (const char *const *k = path_keys; *k; ++k) {
    json_t *v = json_object_get (def, *k);
    if (!v || json_is_null (v))
      continue;
    if (!json_is_string (v))
      return set_error (err, errlen, "'%s' must be an absolute path", *k);
    if (path_check_abs (*k, json_string_value (v), err, errlen) == -1)
      return -1;
  }
  json_t *a = json_object_get (def, "append");
  if (a && !json_is_null (a) &&
      (!json_is_string (a) ||
       name_check_text ("'append'", json_string_value (a), 2048, err,
                        errlen) == -1)) {
    if (!json_is_string (a))
      snprintf (err, errlen, "'append' must be a string of at most 2048 "
                "bytes");
    return -1;
  }
  return 0;
}

static const char *
def_str (json_t *def, const char *key)
{
  return json_string_value (json_object_get (def, key));
}

/* Is PATH beneath one of the strings of DIRS? */
static bool
beneath_one (const char *path, json_t *dirs)
{
  json_t *d;
  size_t i;

  json_array_foreach (dirs, i, d)
    if (json_is_string (d) && path_is_beneath (path, json_string_value (d)))
      return true;
  return false;
}

int
def_check_received (json_t *def, json_t *boot_dirs, char *err,
                    size_t errlen)
{
  const char *dir;

  if (vm_def_check (def, err, errlen) == -1)
    return -1;
  dir = def_str (def, "dir");
  for (const char *const *k = path_keys + 1; *k; ++k) {
    const char *f = def_str (def, *k);
    char q[96];
    if (f && !(dir && path_is_beneath (f, dir)) &&
        !beneath_one (f, boot_dirs)) {
      return set_error (err, errlen,
                        "%s '%s' lies outside the VM's directory and "
                        "this host's boot_dirs: a peer may not name it", *k,
                        name_quote (f, q, sizeof q));
    }
  }
  return 0;
}

int
def_check_on_volumes (json_t *def, json_t *volumes, char *err,
                      size_t errlen)
{
  json_t *v, *d;
  size_t i;

  if (vm_def_check (def, err, errlen) == -1)
    return -1;
  if (!json_is_array (volumes) || json_array_size (volumes) == 0 ||
      json_array_size (volumes) > DEF_MAX_VOLUMES) {
    return set_error (err, errlen, "'volumes' must list 1 to %d volumes",
                      DEF_MAX_VOLUMES);
  }
  json_array_foreach (volumes, i, v) {
    const char *mnt = def_str (v, "mountpoint");
    char what[48];
    snprintf (what, sizeof what, "volume %zu's mount point", i);
    if (!json_is_object (json_object_get (v, "descriptor")))
      return set_error (err, errlen, "volume %zu has no descriptor", i);
    if (!mnt)
      return set_error (err, errlen, "%s is missing", what);
    if (path_check_abs (what, mnt, err, errlen) == -1)
      return -1;
    if (strcmp (mnt, "/") == 0)
      return set_error (err, errlen, "%s is '/'", what);
  }
  /* Every file of the VM on one of those volumes. */
  json_t *files = json_array ();
  json_array_foreach (json_object_get (def, "disks"), i, d)
    json_array_append (files, json_object_get (d, "path"));
  for (const char *const *k = path_keys; *k; ++k)
    if (def_str (def, *k))
      json_array_append (files, json_object_get (def, *k));
  json_array_foreach (files, i, d) {
    const char *f = json_string_value (d);
    bool on = false;
    size_t k;
    json_array_foreach (volumes, k, v)
      if (path_is_beneath (f, def_str (v, "mountpoint")))
        on = true;
    if (!on) {
      char q[96];
      snprintf (err, errlen, "'%s' is not on any of the volumes handed over",
                name_quote (f, q, sizeof q));
      json_decref (files);
      return -1;
    }
  }
  json_decref (files);
  return 0;
}

int
policy_object_check (const char *text, char *err, size_t errlen)
{
  json_error_t je;
  json_t *pol, *hooks, *v;
  const char *key;
  int rv = 0;

  if (strlen (text) > DEF_MAX_POLICY)
    return set_error (err, errlen, "the policy is larger than %u bytes",
                      DEF_MAX_POLICY);
  pol = json_loads (text, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object (pol)) {
    snprintf (err, errlen, "the policy is not a JSON object");
    json_decref (pol);
    return -1;
  }
  hooks = json_object_get (pol, "hooks");
  if (hooks && !json_is_object (hooks)) {
    snprintf (err, errlen, "the policy's 'hooks' is not an object");
    rv = -1;
  }
  json_object_foreach (hooks, key, v) {
    char e2[256];
    if (rv == -1)
      break;
    if (strcmp (key, "*") != 0 &&
        name_check_event_type (key, err, errlen) == -1) {
      rv = -1;
      break;
    }
    if (!json_is_string (v) ||
        name_check_id ("hook", json_string_value (v), NAME_HOOK_MAX, e2,
                       sizeof e2) == -1) {
      snprintf (err, errlen, "hook for '%.64s' must name a program in the "
                "host's hook directory (1-%d letters, digits, '-', '_' or "
                "'.')", key, NAME_HOOK_MAX);
      rv = -1;
    }
  }
  json_decref (pol);
  return rv;
}

int
objects_check (json_t *objects, char *err, size_t errlen)
{
  const char *key;
  json_t *v;

  if (!json_is_object (objects))
    return set_error (err, errlen, "'objects' is not an object");
  if (json_object_size (objects) > 1024)
    return set_error (err, errlen, "more than 1024 management objects");
  json_object_foreach (objects, key, v) {
    char q[96];
    if (name_check_object_key (key, err, errlen) == -1)
      return -1;
    if (!json_is_string (v))
      return set_error (err, errlen, "object '%s' must be a string",
                        name_quote (key, q, sizeof q));
    if (strcmp (key, "policy") == 0) {
      if (policy_object_check (json_string_value (v), err, errlen) == -1)
        return -1;
    }
    else if (name_check_text (key, json_string_value (v),
                              NAME_LABEL_VALUE_MAX, err, errlen) == -1)
      return -1;
  }
  return 0;
}
