/* fuse-share: the depth-first walk of the source tree (tree.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tree.h"

int
tree_walk (struct tree_walk *w, const char *rel)
{
  /* A fresh open even for the root, never dup: a dup shares the
   * directory offset, and a second walk would start where the first
   * one ended. */
  int fd = openat (w->rootfd, rel[0] ? rel : ".",
                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = fd == -1 ? NULL : fdopendir (fd);
  struct dirent *de;
  int r = 0;

  if (!d) {
    w->failed_errno = errno;
    if (fd >= 0)
      close (fd);
    snprintf (w->failed, sizeof w->failed, "%s", rel[0] ? rel : ".");
    return -1;
  }
  /* Terminates: readdir reaches the end of the directory. */
  while (r == 0 && (de = readdir (d)) != NULL) {
    char path[SHARE_MAX_PATH + 1];
    struct stat st;

    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    if (snprintf (path, sizeof path, "%s%s%s", rel, rel[0] ? "/" : "",
                  de->d_name) >= (int) sizeof path)
      continue;
    if (fstatat (w->rootfd, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
      continue;
    if ((w->enter && w->enter (path, &st, w->opaque) == -1) ||
        (S_ISDIR (st.st_mode) && tree_walk (w, path) == -1) ||
        (w->leave && w->leave (path, &st, w->opaque) == -1))
      r = -1;
  }
  closedir (d);
  return r;
}
