/* handoffd: volumes through handoff-volid.  See volume-ops.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "proc.h"
#include "util.h"
#include "vm.h"
#include "volume-ops.h"

static const char *
volid_bin (void)
{
  static char path[PATH_MAX + 64];
  if (!path[0]) {
    char exe[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
      exe[n] = '\0';
      char *slash = strrchr (exe, '/');
      if (slash)
        *slash = '\0';
      snprintf (path, sizeof path, "%s/../libexec/handoff-volid", exe);
      if (access (path, X_OK) == 0)
        return path;
    }
    snprintf (path, sizeof path, "%s/handoff-volid", HANDOFF_LIBEXECDIR);
  }
  return path;
}

int
volume_mount_point_of (const char *path, char *buf, size_t len)
{
  char cur[PATH_MAX];
  struct stat st, up;

  if (!realpath (path, cur) || stat (cur, &st) == -1)
    return -1;
  /* Terminates: each pass removes a component; "/" stops it. */
  for (;;) {
    char *slash = strrchr (cur, '/');
    char parent[PATH_MAX];
    if (!slash || slash == cur)
      snprintf (parent, sizeof parent, "/");
    else
      snprintf (parent, sizeof parent, "%.*s", (int) (slash - cur), cur);
    if (strcmp (cur, "/") == 0 || stat (parent, &up) == -1 ||
        up.st_dev != st.st_dev)
      break;
    snprintf (cur, sizeof cur, "%s", parent);
  }
  snprintf (buf, len, "%s", cur);
  return 0;
}

/* Run handoff-volid ARGV: 0, or -1 with its first line of output. */
static int
run_volid (char *const argv[], char *out, size_t outlen, char *err,
           size_t errlen)
{
  int rc = proc_run (argv, out, outlen, 120000);
  if (rc != 0) {
    snprintf (err, errlen, "handoff-volid %s: %s", argv[1],
              out && out[0] ? out : "failed");
    char *nl = strchr (err, '\n');
    if (nl)
      *nl = '\0';
    return -1;
  }
  return 0;
}

json_t *
volume_identify (const char *mountpoint, char *err, size_t errlen)
{
  char out[65536];
  char *argv[] = { (char *) volid_bin (), (char *) "identify",
                   (char *) mountpoint, (char *) "--json", NULL };
  json_t *desc;

  if (run_volid (argv, out, sizeof out, err, errlen) == -1)
    return NULL;
  desc = json_loads (out, 0, NULL);
  if (!json_is_object (desc)) {
    snprintf (err, errlen, "handoff-volid identify %.1500s: bad output",
              mountpoint);
    json_decref (desc);
    return NULL;
  }
  return desc;
}

int
volume_mount (const char *vm, json_t *vol, char *err, size_t errlen)
{
  const char *mnt = json_string_value (json_object_get (vol, "mountpoint"));
  char desc[PATH_MAX], run[PATH_MAX], out[4096];
  FILE *f;

  vm_run_path (vm, NULL, run, sizeof run);
  vm_run_path (vm, "volume.json", desc, sizeof desc);
  if (mkdir_p (run, 0700) == -1) {
    snprintf (err, errlen, "%s: %s", run, strerror (errno));
    return -1;
  }
  f = fopen (desc, "we");
  if (!f || json_dumpf (json_object_get (vol, "descriptor"), f,
                        JSON_COMPACT) == -1) {
    if (f)
      fclose (f);
    snprintf (err, errlen, "%s: %s", desc, strerror (errno));
    return -1;
  }
  fclose (f);
  if (mkdir_p (mnt, 0755) == -1) {
    snprintf (err, errlen, "%s: %s", mnt, strerror (errno));
    return -1;
  }
  char *argv[] = { (char *) volid_bin (), (char *) "mount", desc,
                   (char *) mnt, NULL };
  return run_volid (argv, out, sizeof out, err, errlen);
}

int
volume_unmount (json_t *vol, char *err, size_t errlen)
{
  char out[4096];
  char *argv[] = { (char *) volid_bin (), (char *) "unmount",
                   (char *) json_string_value (json_object_get (vol,
                                                                "mountpoint")),
                   NULL };
  return run_volid (argv, out, sizeof out, err, errlen);
}

bool
volume_is_mounted (const char *path)
{
  FILE *f = fopen ("/proc/self/mountinfo", "re");
  char line[8192];
  bool found = false;

  if (!f)
    return false;
  /* Terminates: end of file.  Field 5 is the mount point; paths with
   * blanks are escaped (\040), ours have none (path_check_abs). */
  while (!found && fgets (line, sizeof line, f)) {
    char *p = line;
    for (int field = 0; field < 4 && p; ++field) {
      p = strchr (p, ' ');
      if (p)
        p++;
    }
    if (!p)
      continue;
    size_t n = strcspn (p, " ");
    if (n == strlen (path) && strncmp (p, path, n) == 0)
      found = true;
  }
  fclose (f);
  return found;
}

int
volume_unmount_all (json_t *volumes, char *err, size_t errlen)
{
  json_t *vol;
  size_t i;
  int rv = 0;

  json_array_foreach (volumes, i, vol) {
    const char *mnt = json_string_value (json_object_get (vol, "mountpoint"));
    char e2[1024];
    if (!mnt || !volume_is_mounted (mnt))
      continue;
    if (volume_unmount (vol, e2, sizeof e2) == -1 || volume_is_mounted (mnt)) {
      snprintf (err, errlen, "%s stays mounted: %s", mnt, e2);
      rv = -1;
    }
  }
  return rv;
}
