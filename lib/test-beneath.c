/* Confined removal and opening (beneath.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "beneath.h"

static char top[PATH_MAX];      /* A fresh directory for each test. */

static void
mkfile (const char *rel, const char *text)
{
  char p[PATH_MAX + 64];
  FILE *f;

  snprintf (p, sizeof p, "%s/%s", top, rel);
  f = fopen (p, "w");
  assert_non_null (f);
  fputs (text, f);
  fclose (f);
}

static void
mkd (const char *rel)
{
  char p[PATH_MAX + 64];
  snprintf (p, sizeof p, "%s/%s", top, rel);
  assert_int_equal (mkdir (p, 0700), 0);
}

static bool
exists (const char *rel)
{
  char p[PATH_MAX + 64];
  struct stat st;
  snprintf (p, sizeof p, "%s/%s", top, rel);
  return lstat (p, &st) == 0;
}

/* TOP/REL, in one of two buffers used in turn (for symlink (a, b)). */
static char *
at (const char *rel)
{
  static char p[2][PATH_MAX + 64];
  static int k;
  k = !k;
  snprintf (p[k], sizeof p[k], "%s/%s", top, rel);
  return p[k];
}

/* top/root (the confining directory) and top/outside (must survive). */
static int
setup (void **state)
{
  (void) state;
  snprintf (top, sizeof top, "%s/test-beneath-XXXXXX",
            getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp");
  if (!mkdtemp (top))
    return -1;
  mkd ("root");
  mkd ("outside");
  mkfile ("outside/keep", "precious\n");
  mkd ("outside/sub");
  mkfile ("outside/sub/keep2", "precious too\n");
  return 0;
}

static int
teardown (void **state)
{
  char cmd[PATH_MAX + 32];
  (void) state;
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", top);
  return system (cmd) == 0 ? 0 : -1;
}

static void
outside_intact (void)
{
  assert_true (exists ("outside/keep"));
  assert_true (exists ("outside/sub/keep2"));
}

static void
test_removes_tree_beneath (void **state)
{
  char err[512] = "", root[PATH_MAX + 64];

  (void) state;
  mkd ("root/vm");
  mkd ("root/vm/a");
  mkd ("root/vm/a/b");
  mkfile ("root/vm/a/b/f", "x");
  mkfile ("root/vm/g", "y");
  /* Links inside are removed, never followed. */
  assert_int_equal (symlink (at ("outside"), at ("root/vm/to-outside")), 0);
  assert_int_equal (symlink ("../../outside/keep", at ("root/vm/a/rel")), 0);
  snprintf (root, sizeof root, "%s", at ("root"));
  assert_int_equal (remove_beneath (root, at ("root/vm"), err, sizeof err),
                    0);
  assert_false (exists ("root/vm"));
  assert_true (exists ("root"));
  outside_intact ();
  /* Relative to the root, a single file, and a path already gone. */
  mkfile ("root/f", "z");
  assert_int_equal (remove_beneath (root, "f", err, sizeof err), 0);
  assert_false (exists ("root/f"));
  assert_int_equal (remove_beneath (root, "nosuch", err, sizeof err), 0);
  assert_int_equal (remove_beneath (root, "no/such/dir", err, sizeof err), 0);
  /* Trailing slashes on the root. */
  mkd ("root/w");
  strcat (root, "//");
  assert_int_equal (remove_beneath (root, at ("root/w"), err, sizeof err), 0);
  assert_false (exists ("root/w"));
}

static void
test_refuses_escapes (void **state)
{
  static const char *const bad[] = {
    "..", "../outside", "../outside/keep", "x/../../outside", ".", "",
    "/", "./x", "x/./y",
  };
  char err[512], root[PATH_MAX + 64];

  (void) state;
  snprintf (root, sizeof root, "%s", at ("root"));
  mkd ("root/x");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    err[0] = '\0';
    if (remove_beneath (root, bad[i], err, sizeof err) != -1)
      fail_msg ("removed '%s'", bad[i]);
    assert_true (err[0] != '\0');
  }
  /* The root itself, absolute paths elsewhere, and lookalike prefixes. */
  assert_int_equal (remove_beneath (root, root, err, sizeof err), -1);
  assert_int_equal (remove_beneath (root, at ("outside"), err, sizeof err),
                    -1);
  assert_non_null (strstr (err, "not beneath"));
  assert_int_equal (remove_beneath (root, "/etc", err, sizeof err), -1);
  mkd ("rootx");
  mkfile ("rootx/keep", "k");
  assert_int_equal (remove_beneath (root, at ("rootx"), err, sizeof err), -1);
  assert_true (exists ("rootx/keep"));
  /* A symlink on the way that leads out. */
  assert_int_equal (symlink (at ("outside"), at ("root/link")), 0);
  assert_int_equal (remove_beneath (root, "link/keep", err, sizeof err), -1);
  assert_int_equal (errno, EXDEV);
  assert_int_equal (remove_beneath (root, "link/sub", err, sizeof err), -1);
  /* The link itself goes (it is beneath); its target stays. */
  assert_int_equal (remove_beneath (root, "link", err, sizeof err), 0);
  assert_false (exists ("root/link"));
  /* A relative link that climbs out. */
  assert_int_equal (symlink ("../outside", at ("root/up")), 0);
  assert_int_equal (remove_beneath (root, "up/sub", err, sizeof err), -1);
  assert_true (exists ("root/x"));
  outside_intact ();
}

/* A file system mounted below stops the removal; it is not entered.
 * Needs root (a private mount namespace, gone with the process). */
static void
test_stops_at_mounts (void **state)
{
  char err[512] = "", root[PATH_MAX + 64];

  (void) state;
  if (unshare (CLONE_NEWNS) == -1 ||
      mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1) {
    print_message ("skipped: cannot make a mount namespace (%m)\n");
    return;
  }
  snprintf (root, sizeof root, "%s", at ("root"));
  mkd ("root/vm");
  mkd ("root/vm/mnt");
  assert_int_equal (mount ("tmpfs", at ("root/vm/mnt"), "tmpfs", 0, NULL), 0);
  mkfile ("root/vm/mnt/inside", "i");
  assert_int_equal (remove_beneath (root, "vm", err, sizeof err), -1);
  assert_non_null (strstr (err, "mount point"));
  assert_true (exists ("root/vm/mnt/inside"));
  /* The mount itself, named directly. */
  assert_int_equal (remove_beneath (root, "vm/mnt", err, sizeof err), -1);
  assert_true (exists ("root/vm/mnt/inside"));
  /* A bind mount of the same file system, too. */
  mkd ("root/vm/bind");
  assert_int_equal (umount (at ("root/vm/mnt")), 0);
  assert_int_equal (mount (at ("outside"), at ("root/vm/bind"), NULL, MS_BIND,
                           NULL), 0);
  assert_int_equal (remove_beneath (root, "vm", err, sizeof err), -1);
  outside_intact ();
  assert_int_equal (umount (at ("root/vm/bind")), 0);
  assert_int_equal (remove_beneath (root, "vm", err, sizeof err), 0);
  outside_intact ();
}

static void
test_open_beneath (void **state)
{
  char root[PATH_MAX + 64];
  int rfd, fd;

  (void) state;
  snprintf (root, sizeof root, "%s", at ("root"));
  mkd ("root/d");
  mkfile ("root/d/kernel", "k");
  assert_int_equal (symlink (at ("outside/keep"), at ("root/d/abs")), 0);
  assert_int_equal (symlink ("kernel", at ("root/d/inner")), 0);
  rfd = open (root, O_PATH | O_DIRECTORY);
  assert_true (rfd >= 0);
  fd = open_beneath (rfd, "d/kernel", O_RDONLY, 0, 0);
  assert_true (fd >= 0);
  close (fd);
  assert_int_equal (open_beneath (rfd, "d/abs", O_RDONLY, 0, 0), -1);
  fd = open_beneath (rfd, "d/inner", O_RDONLY, 0, 0);
  assert_true (fd >= 0);
  close (fd);
  assert_int_equal (open_beneath (rfd, "d/inner", O_RDONLY, 0,
                                  RESOLVE_NO_SYMLINKS), -1);
  assert_int_equal (open_beneath (rfd, "../outside/keep", O_RDONLY, 0, 0), -1);
  assert_int_equal (open_beneath (rfd, at ("outside/keep"), O_RDONLY, 0, 0),
                    -1);
  close (rfd);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_removes_tree_beneath, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_refuses_escapes, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stops_at_mounts, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_beneath, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
