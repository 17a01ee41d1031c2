/* bench/plain-passthrough: the anchor for bench/share.sh.
 *
 * A plain libfuse high-level passthrough of a directory, with the same
 * mount options and worker pool as handoff-share's mount and nothing
 * else (no session hooks, no locks), so the benchmark measures what the
 * share's bookkeeping costs on top of FUSE itself.
 *
 * Usage: plain-passthrough SRC_DIR MOUNTPOINT
 */
#define FUSE_USE_VERSION 312
#include <fuse.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int srcfd = -1;

static const char *
rel (const char *path)
{
  return path[1] ? path + 1 : ".";
}

static void *
pt_init (struct fuse_conn_info *conn, struct fuse_config *cfg)
{
  (void) conn;
  cfg->use_ino = 1;
  cfg->hard_remove = 1;
  return NULL;
}

static int
pt_getattr (const char *path, struct stat *st, struct fuse_file_info *fi)
{
  int r = fi ? fstat ((int) fi->fh, st)
    : fstatat (srcfd, rel (path), st, AT_SYMLINK_NOFOLLOW);
  return r == -1 ? -errno : 0;
}

static int
pt_readdir (const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
            struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
  int fd = openat (srcfd, rel (path), O_RDONLY | O_DIRECTORY);
  DIR *d;
  struct dirent *de;

  (void) off;
  (void) fi;
  (void) flags;
  if (fd == -1 || !(d = fdopendir (fd))) {
    int e = errno;
    if (fd >= 0)
      close (fd);
    return -e;
  }
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL)
    if (fill (buf, de->d_name, NULL, 0, 0))
      break;
  closedir (d);
  return 0;
}

static int
pt_open (const char *path, struct fuse_file_info *fi)
{
  int fd = openat (srcfd, rel (path), fi->flags & ~O_NOFOLLOW);
  if (fd == -1)
    return -errno;
  fi->fh = (uint64_t) fd;
  return 0;
}

static int
pt_create (const char *path, mode_t mode, struct fuse_file_info *fi)
{
  int fd = openat (srcfd, rel (path), fi->flags | O_CREAT, mode);
  if (fd == -1)
    return -errno;
  fi->fh = (uint64_t) fd;
  return 0;
}

static int
pt_read (const char *path, char *buf, size_t n, off_t off,
         struct fuse_file_info *fi)
{
  (void) path;
  ssize_t r = pread ((int) fi->fh, buf, n, off);
  return r == -1 ? -errno : (int) r;
}

static int
pt_write (const char *path, const char *buf, size_t n, off_t off,
          struct fuse_file_info *fi)
{
  (void) path;
  ssize_t r = pwrite ((int) fi->fh, buf, n, off);
  return r == -1 ? -errno : (int) r;
}

static int
pt_truncate (const char *path, off_t size, struct fuse_file_info *fi)
{
  int r;
  if (fi)
    r = ftruncate ((int) fi->fh, size);
  else {
    int fd = openat (srcfd, rel (path), O_WRONLY);
    if (fd == -1)
      return -errno;
    r = ftruncate (fd, size);
    close (fd);
  }
  return r == -1 ? -errno : 0;
}

static int
pt_fsync (const char *path, int datasync, struct fuse_file_info *fi)
{
  (void) path;
  int r = datasync ? fdatasync ((int) fi->fh) : fsync ((int) fi->fh);
  return r == -1 ? -errno : 0;
}

static int
pt_release (const char *path, struct fuse_file_info *fi)
{
  (void) path;
  close ((int) fi->fh);
  return 0;
}

static int
pt_unlink (const char *path)
{
  return unlinkat (srcfd, rel (path), 0) == -1 ? -errno : 0;
}

static int
pt_mkdir (const char *path, mode_t mode)
{
  return mkdirat (srcfd, rel (path), mode) == -1 ? -errno : 0;
}

static int
pt_rmdir (const char *path)
{
  return unlinkat (srcfd, rel (path), AT_REMOVEDIR) == -1 ? -errno : 0;
}

static int
pt_utimens (const char *path, const struct timespec tv[2],
            struct fuse_file_info *fi)
{
  int r = fi ? futimens ((int) fi->fh, tv)
    : utimensat (srcfd, rel (path), tv, AT_SYMLINK_NOFOLLOW);
  return r == -1 ? -errno : 0;
}

static int
pt_fallocate (const char *path, int mode, off_t off, off_t len,
              struct fuse_file_info *fi)
{
  (void) path;
  return fallocate ((int) fi->fh, mode, off, len) == -1 ? -errno : 0;
}

static const struct fuse_operations pt_ops = {
  .init = pt_init, .getattr = pt_getattr, .readdir = pt_readdir,
  .open = pt_open, .create = pt_create, .read = pt_read,
  .write = pt_write, .truncate = pt_truncate, .fsync = pt_fsync,
  .release = pt_release, .unlink = pt_unlink, .mkdir = pt_mkdir,
  .rmdir = pt_rmdir, .utimens = pt_utimens, .fallocate = pt_fallocate,
};

int
main (int argc, char **argv)
{
  char *fargv[] = {
    argv[0], (char *) "-o",
    (char *) "fsname=plain,allow_other,default_permissions", NULL,
  };
  struct fuse_args args = FUSE_ARGS_INIT (3, fargv);
  struct fuse_loop_config *loop;
  struct fuse *f;
  int rc = 1;

  if (argc != 3) {
    fprintf (stderr, "usage: plain-passthrough SRC_DIR MOUNTPOINT\n");
    return 1;
  }
  srcfd = open (argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (srcfd == -1) {
    perror (argv[1]);
    return 1;
  }
  f = fuse_new (&args, &pt_ops, sizeof pt_ops, NULL);
  if (!f || fuse_mount (f, argv[2]) == -1)
    return 1;
  fuse_set_signal_handlers (fuse_get_session (f));
  loop = fuse_loop_cfg_create ();
  if (loop) {
    fuse_loop_cfg_set_clone_fd (loop, 0);
    fuse_loop_cfg_set_idle_threads (loop, 8);
    fuse_loop_cfg_set_max_threads (loop, 32);
    rc = fuse_loop_mt (f, loop) == 0 ? 0 : 1;
    fuse_loop_cfg_destroy (loop);
  }
  fuse_remove_signal_handlers (fuse_get_session (f));
  fuse_unmount (f);
  fuse_destroy (f);
  return rc;
}
