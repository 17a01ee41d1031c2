/* handoffd: admission policy.  See policy.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "checked-overflow.h"
#include "config.h"
#include "db.h"
#include "jsonutil.h"
#include "names.h"
#include "policy.h"

static json_t *
load (char *err, size_t errlen)
{
  json_error_t je;
  json_t *p;

  if (!hd.policy || access (hd.policy, F_OK) == -1)
    return json_object ();
  p = json_load_file (hd.policy, JSON_REJECT_DUPLICATES, &je);
  if (!p || !json_is_object (p)) {
    snprintf (err, errlen, "policy %s: %s (line %d)", hd.policy,
              p ? "not an object" : je.text, je.line);
    json_decref (p);
    return NULL;
  }
  return p;
}

int
policy_check_file (char *err, size_t errlen)
{
  json_t *p = load (err, errlen);
  static const char *const known[] = {
    "allowed_sources", "max_memory_mb", "reserve_memory_mb", "max_vcpus",
    "check_disk", "reserve_disk_mb", "boot_dirs", "volume_roots", "proxy",
    NULL,
  };
  const char *key;
  json_t *v;

  if (!p)
    return -1;
  json_object_foreach (p, key, v) {
    bool ok = false;
    for (size_t i = 0; known[i]; ++i)
      if (strcmp (key, known[i]) == 0)
        ok = true;
    if (!ok) {
      snprintf (err, errlen, "policy %s: unknown field '%.64s'", hd.policy,
                key);
      json_decref (p);
      return -1;
    }
  }
  if (json_object_get (p, "proxy") && !json_is_boolean (json_object_get (
                                                          p, "proxy"))) {
    snprintf (err, errlen, "policy %s: 'proxy' must be true or false",
              hd.policy);
    json_decref (p);
    return -1;
  }
  json_decref (p);
  for (const char *const *k = (const char *const[]) { "boot_dirs",
                                                      "volume_roots", NULL };
       *k; ++k) {
    json_t *dirs = policy_dirs (*k, err, errlen);
    if (!dirs)
      return -1;
    json_decref (dirs);
  }
  return 0;
}

json_t *
policy_dirs (const char *key, char *err, size_t errlen)
{
  json_t *p = load (err, errlen), *dirs, *d, *out;
  size_t i;

  if (!p)
    return NULL;
  dirs = json_object_get (p, key);
  out = json_array ();
  if (dirs && !json_is_array (dirs)) {
    snprintf (err, errlen, "policy %s: '%s' must be a list of directories",
              hd.policy, key);
    goto bad;
  }
  json_array_foreach (dirs, i, d) {
    char what[64], e2[512];
    snprintf (what, sizeof what, "%s[%zu]", key, i);
    if (!json_is_string (d) ||
        path_check_abs (what, json_string_value (d), e2, sizeof e2) == -1) {
      snprintf (err, errlen, "policy %s: %s", hd.policy,
                json_is_string (d) ? e2 : "a directory must be a string");
      goto bad;
    }
    if (strcmp (json_string_value (d), "/") == 0) {
      snprintf (err, errlen, "policy %s: %s may not be '/'", hd.policy, what);
      goto bad;
    }
    json_array_append (out, d);
  }
  json_decref (p);
  return out;

 bad:
  json_decref (out);
  json_decref (p);
  return NULL;
}

static unsigned long long
mem_available_mb (void)
{
  FILE *f = fopen ("/proc/meminfo", "re");
  char line[256];
  unsigned long long kb = 0;

  if (!f)
    return 0;
  while (fgets (line, sizeof line, f))
    if (strncmp (line, "MemAvailable:", 13) == 0) {
      kb = strtoull (line + 13, NULL, 10);
      break;
    }
  fclose (f);
  return kb / 1024;
}

/* Memory and vCPUs of the VMs this host already runs or receives. */
static void
in_use (unsigned long long *mem, unsigned long long *vcpus)
{
  json_t *vms = db_vm_list (), *v;
  size_t i;

  *mem = *vcpus = 0;
  json_array_foreach (vms, i, v) {
    const char *st = json_string_value (json_object_get (v, "state"));
    json_t *def = json_object_get (v, "def");
    if (st && (strcmp (st, "stopped") == 0 || strcmp (st, "crashed") == 0))
      continue;
    *mem += (unsigned long long) json_integer_value (json_object_get (def,
                                                                      "memory"));
    *vcpus += (unsigned long long) json_integer_value (json_object_get (def,
                                                                        "vcpus"));
  }
  json_decref (vms);
}

/* Does policy P's allowed_sources (absent: any peer) name SOURCE? */
static bool
source_allowed (json_t *p, const char *source)
{
  json_t *allowed = json_object_get (p, "allowed_sources"), *v;
  size_t i;

  if (!allowed)
    return true;
  json_array_foreach (allowed, i, v)
    if (json_is_string (v) && strcmp (json_string_value (v), source) == 0)
      return true;
  return false;
}

/* Does DISK (bytes) fit in DIR, keeping P's reserve_disk_mb free?
 * Unless P's check_disk is false.  0, or -1 with the reason. */
static int
disk_fits (json_t *p, const char *dir, uint64_t disk, char *reason,
           size_t len)
{
  bool check_disk = true;
  struct statvfs sv;
  uint64_t reserve = 0, free_b, want;
  char err[256];

  msg_get_bool (p, "check_disk", false, &check_disk, err, sizeof err);
  if (!check_disk)
    return 0;
  msg_get_u64 (p, "reserve_disk_mb", false, &reserve, err, sizeof err);
  if (statvfs (dir, &sv) == -1) {
    snprintf (reason, len, "%s: %s", dir, strerror (errno));
    return -1;
  }
  free_b = (uint64_t) sv.f_bavail * sv.f_frsize;
  /* A reserve or a need too large to add up never fits. */
  if (reserve > UINT64_MAX >> 20 ||
      ADD_OVERFLOW (disk, reserve << 20, &want) || want > free_b) {
    snprintf (reason, len, "not enough disk: the VM needs %" PRIu64
              " MiB, %" PRIu64 " MiB are free in %s (%" PRIu64
              " reserved)", disk >> 20, free_b >> 20, dir, reserve);
    return -1;
  }
  return 0;
}

int
policy_admit_proxy (const char *source, uint64_t disk_bytes, char *reason,
                    size_t len)
{
  json_t *p = load (reason, len);
  bool proxy = true;
  char err[256];
  int rv = -1;

  if (!p)
    return -1;
  if (msg_get_bool (p, "proxy", false, &proxy, err, sizeof err) == -1)
    snprintf (reason, len, "policy %s: %s", hd.policy, err);
  else if (!proxy)
    snprintf (reason, len, "host %s carries no other host's streams (its "
              "policy's \"proxy\" is false)", hd.name);
  else if (!source_allowed (p, source))
    snprintf (reason, len, "source host '%s' is not allowed here", source);
  /* The disks' scratch images go in the state directory. */
  else if (disk_bytes > 0 &&
           disk_fits (p, hd.state_dir, disk_bytes, reason, len) == -1)
    ;
  else
    rv = 0;
  json_decref (p);
  return rv;
}

int
policy_admit (const char *source, json_t *needs, char *reason, size_t len)
{
  json_t *p = load (reason, len);
  uint64_t mem = 0, vcpus = 0, disk = 0, limit, sum;
  unsigned long long used_mem, used_vcpus;
  char err[256];
  int rv = -1;

  if (!p)
    return -1;
  if (msg_get_u64 (needs, "memory", true, &mem, err, sizeof err) != 0 ||
      msg_get_u64 (needs, "vcpus", true, &vcpus, err, sizeof err) != 0 ||
      msg_get_u64 (needs, "disk_bytes", true, &disk, err, sizeof err) != 0) {
    snprintf (reason, len, "malformed needs: %s", err);
    goto out;
  }
  if (!source_allowed (p, source)) {
    snprintf (reason, len, "source host '%s' is not allowed here", source);
    goto out;
  }
  in_use (&used_mem, &used_vcpus);
  if (msg_get_u64 (p, "max_memory_mb", false, &limit, err, sizeof err) == 0 &&
      (ADD_OVERFLOW (used_mem, mem, &sum) || sum > limit)) {
    snprintf (reason, len, "not enough memory: the VM needs %" PRIu64
              " MiB, %llu of %" PRIu64 " MiB are in use", mem, used_mem,
              limit);
    goto out;
  }
  limit = 0;
  msg_get_u64 (p, "reserve_memory_mb", false, &limit, err, sizeof err);
  if (ADD_OVERFLOW (mem, limit, &sum) || sum > mem_available_mb ()) {
    snprintf (reason, len, "not enough memory: the VM needs %" PRIu64
              " MiB, %llu MiB are available (%" PRIu64 " reserved)", mem,
              mem_available_mb (), limit);
    goto out;
  }
  if (msg_get_u64 (p, "max_vcpus", false, &limit, err, sizeof err) == 0 &&
      (ADD_OVERFLOW (used_vcpus, vcpus, &sum) || sum > limit)) {
    snprintf (reason, len, "not enough CPU: the VM needs %" PRIu64 " vCPUs, "
              "%llu of %" PRIu64 " are in use", vcpus, used_vcpus, limit);
    goto out;
  }
  if (disk_fits (p, hd.images_dir, disk, reason, len) == -1)
    goto out;
  rv = 0;
 out:
  json_decref (p);
  return rv;
}
