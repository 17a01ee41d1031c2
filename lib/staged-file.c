/* handoff: files put in place only once complete (staged-file.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "staged-file.h"

int
staged_file_open (struct staged_file *sf, const char *path)
{
  sf->fd = -1;
  sf->tmp = NULL;
  sf->path = strdup (path);
  /* Beside the path: rename(2) is atomic only within one file system. */
  if (!sf->path || asprintf (&sf->tmp, "%s.partXXXXXX", path) == -1) {
    sf->tmp = NULL;
    staged_file_abort (sf);
    errno = ENOMEM;
    return -1;
  }
  sf->fd = mkostemp (sf->tmp, O_CLOEXEC);
  if (sf->fd == -1) {
    int e = errno;
    free (sf->tmp);
    sf->tmp = NULL;
    staged_file_abort (sf);
    errno = e;
    return -1;
  }
  return 0;
}

/* The rename is durable only once the directory holding it is synced. */
static int
sync_parent (const char *path)
{
  CLEANUP_FREE char *copy = strdup (path);
  CLEANUP_CLOSE int dfd = -1;

  if (!copy) {
    errno = ENOMEM;
    return -1;
  }
  dfd = open (dirname (copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd == -1 || fsync (dfd) == -1)
    return -1;
  return 0;
}

int
staged_file_commit (struct staged_file *sf)
{
  int e;

  if (fsync (sf->fd) == -1 || close (sf->fd) == -1) {
    e = errno;
    sf->fd = -1;
    goto fail;
  }
  sf->fd = -1;
  if (rename (sf->tmp, sf->path) == -1) {
    e = errno;
    goto fail;
  }
  free (sf->tmp);
  sf->tmp = NULL;
  e = sync_parent (sf->path) == -1 ? errno : 0;
  staged_file_abort (sf);
  errno = e;
  return e ? -1 : 0;

 fail:
  staged_file_abort (sf);
  errno = e;
  return -1;
}

void
staged_file_abort (struct staged_file *sf)
{
  if (sf->fd >= 0)
    close (sf->fd);
  sf->fd = -1;
  if (sf->tmp)
    unlink (sf->tmp);
  free (sf->tmp);
  sf->tmp = NULL;
  free (sf->path);
  sf->path = NULL;
}
