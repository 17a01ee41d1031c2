/* handoff: staying beneath a directory.  See beneath.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errors.h"
#include "beneath.h"
#include "cleanup.h"
#include "names.h"

/* Deeper trees than this are not ours: a received VM directory is a
 * handful of levels. */
#define MAX_DEPTH 128

int
open_beneath (int dirfd, const char *path, int flags, mode_t mode,
              uint64_t extra)
{
  struct open_how how = {
    .flags = (uint64_t) flags | O_CLOEXEC, .mode = mode,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | extra,
  };

  return (int) syscall (SYS_openat2, dirfd, path, &how, sizeof how);
}

/* Is NAME in DIRFD the root of a mount (a bind mount included)? */
static bool
mount_root (int dirfd, const char *name)
{
  struct statx stx;

  if (statx (dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &stx) == -1)
    return false;
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
    (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

/* Remove what directory DIRFD (on device DEV) holds.  WHERE names it
 * for messages. */
static int
remove_entries (int dirfd, dev_t dev, const char *where, int depth,
                char *err, size_t errlen)
{
  int fd = fcntl (dirfd, F_DUPFD_CLOEXEC, 0);
  DIR *d = fd == -1 ? NULL : fdopendir (fd);
  struct dirent *de;
  int rv = 0;

  if (!d) {
    if (fd >= 0)
      close (fd);
    return set_error_errno (errno, err, errlen, "%s: %s", where,
                            strerror (errno));
  }
  if (depth > MAX_DEPTH) {
    closedir (d);
    return set_error_errno (ELOOP, err, errlen, "%s: more than %d levels deep",
                            where, MAX_DEPTH);
  }
  /* Terminates: readdir reaches the end of the directory (entries are
   * removed behind it, never added). */
  while (rv == 0 && (de = readdir (d)) != NULL) {
    char sub[PATH_MAX];
    struct stat st;
    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    snprintf (sub, sizeof sub, "%s/%s", where, de->d_name);
    if (fstatat (dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
      if (errno != ENOENT)
        rv = set_error_errno (errno, err, errlen, "%s: %s", sub,
                              strerror (errno));
      continue;
    }
    if (S_ISDIR (st.st_mode)) {
      if (st.st_dev != dev || mount_root (dirfd, de->d_name)) {
        rv = set_error_errno (EXDEV, err, errlen,
                              "%s is another file system's mount "
                              "point: not removed", sub);
        break;
      }
      CLEANUP_CLOSE int subfd = openat (dirfd, de->d_name, O_RDONLY |
                                        O_DIRECTORY | O_NOFOLLOW |
                                        O_CLOEXEC);
      if (subfd == -1) {
        rv = set_error_errno (errno, err, errlen, "%s: %s", sub,
                              strerror (errno));
        break;
      }
      rv = remove_entries (subfd, dev, sub, depth + 1, err, errlen);
      if (rv == 0 && unlinkat (dirfd, de->d_name, AT_REMOVEDIR) == -1 &&
          errno != ENOENT)
        rv = set_error_errno (errno, err, errlen, "%s: %s", sub,
                              strerror (errno));
    }
    else if (unlinkat (dirfd, de->d_name, 0) == -1 && errno != ENOENT)
      rv = set_error_errno (errno, err, errlen, "%s: %s", sub,
                            strerror (errno));
  }
  closedir (d);
  return rv;
}

int
remove_beneath (const char *root, const char *path, char *err,
                size_t errlen)
{
  char rootbuf[PATH_MAX], rel[PATH_MAX], q[128];
  const char *leaf;
  size_t n;
  struct stat st, pst;

  /* ROOT without trailing slashes ("/" stays "/"). */
  n = strlen (root);
  if (n == 0 || n >= sizeof rootbuf)
    return set_error_errno (EINVAL, err, errlen, "remove: bad root directory");
  memcpy (rootbuf, root, n + 1);
  while (n > 1 && rootbuf[n - 1] == '/')
    rootbuf[--n] = '\0';

  if (strncmp (path, rootbuf, n) == 0 && (path[n] == '/' || n == 1))
    path += n;
  else if (path[0] == '/')
    return set_error_errno (EXDEV, err, errlen, "remove %s: not beneath %s",
                            name_quote (path, q, sizeof q), rootbuf);
  while (*path == '/')
    path++;
  if (strlen (path) >= sizeof rel)
    return set_error_errno (ENAMETOOLONG, err, errlen, "remove: path too long");
  snprintf (rel, sizeof rel, "%s", path);
  n = strlen (rel);
  while (n > 0 && rel[n - 1] == '/')
    rel[--n] = '\0';
  if (n == 0)
    return set_error_errno (EINVAL, err, errlen,
                            "remove: refusing to remove %s itself", rootbuf);
  /* ".." is refused outright, even where it would stay beneath. */
  if (path_parts_check (rel, n, SIZE_MAX, true) == PATH_PART_DOT)
    return set_error_errno (EXDEV, err, errlen,
                            "remove %s: a '.' or '..' component",
                            name_quote (rel, q, sizeof q));

  CLEANUP_CLOSE int rootfd = open (rootbuf, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", rootbuf,
                            strerror (errno));
  CLEANUP_CLOSE int parentfd = -1;
  char *slash = strrchr (rel, '/');
  if (slash) {
    *slash = '\0';
    leaf = slash + 1;
    /* Symlinks on the way are fine while they stay beneath ROOT. */
    parentfd = open_beneath (rootfd, rel, O_PATH | O_DIRECTORY, 0, 0);
    if (parentfd == -1) {
      if (errno == ENOENT)
        return 0;
      return set_error_errno (errno, err, errlen, "remove %s/%s: %s", rootbuf,
                              name_quote (rel, q, sizeof q),
                              errno == EXDEV ? "leads outside it"
                              : strerror (errno));
    }
    *slash = '/';
  }
  else {
    leaf = rel;
    parentfd = fcntl (rootfd, F_DUPFD_CLOEXEC, 0);
    if (parentfd == -1)
      return set_error_errno (errno, err, errlen, "%s: %s", rootbuf,
                              strerror (errno));
  }

  if (fstatat (parentfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == -1) {
    if (errno == ENOENT)
      return 0;
    return set_error_errno (errno, err, errlen, "%s/%s: %s", rootbuf,
                            name_quote (rel, q, sizeof q), strerror (errno));
  }
  if (!S_ISDIR (st.st_mode)) {
    if (unlinkat (parentfd, leaf, 0) == -1 && errno != ENOENT)
      return set_error_errno (errno, err, errlen, "%s/%s: %s", rootbuf,
                              name_quote (rel, q, sizeof q), strerror (errno));
    return 0;
  }
  if ((fstat (parentfd, &pst) == 0 && pst.st_dev != st.st_dev) ||
      mount_root (parentfd, leaf))
    return set_error_errno (EXDEV, err, errlen,
                            "%s/%s is a mount point: not removed", rootbuf,
                            name_quote (rel, q, sizeof q));
  {
    char where[PATH_MAX];
    CLEANUP_CLOSE int dfd = openat (parentfd, leaf, O_RDONLY | O_DIRECTORY |
                                    O_NOFOLLOW | O_CLOEXEC);
    if (dfd == -1)
      return set_error_errno (errno, err, errlen, "%s/%s: %s", rootbuf,
                              name_quote (rel, q, sizeof q), strerror (errno));
    snprintf (where, sizeof where, "%s/%s", rootbuf, rel);
    if (remove_entries (dfd, st.st_dev, where, 0, err, errlen) == -1)
      return -1;
  }
  if (unlinkat (parentfd, leaf, AT_REMOVEDIR) == -1 && errno != ENOENT)
    return set_error_errno (errno, err, errlen, "%s/%s: %s", rootbuf,
                            name_quote (rel, q, sizeof q), strerror (errno));
  return 0;
}
