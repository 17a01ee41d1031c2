/* handoff CLI: where helper programs live. */
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helper.h"

static int
try_dir (const char *dir, const char *program, char *buf, size_t len)
{
  if (snprintf (buf, len, "%s/%s", dir, program) >= (int) len)
    return -1;
  return access (buf, X_OK) == 0 ? 0 : -1;
}

int
cli_find_helper (const char *program, char *buf, size_t len)
{
  const char *env = getenv ("HANDOFF_LIBEXECDIR");
  char exe[PATH_MAX], dir[PATH_MAX + 16];
  ssize_t n;

  if (env && *env && try_dir (env, program, buf, len) == 0)
    return 0;
  /* Beside this executable: BINDIR/../libexec (the build tree) and
   * BINDIR/../libexec/handoff (an installed prefix). */
  n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    snprintf (dir, sizeof dir, "%s/../libexec", dirname (exe));
    if (try_dir (dir, program, buf, len) == 0)
      return 0;
    strcat (dir, "/handoff");
    if (try_dir (dir, program, buf, len) == 0)
      return 0;
  }
  return try_dir (HANDOFF_LIBEXECDIR, program, buf, len);
}
