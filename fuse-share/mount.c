/* fuse-share: the FUSE passthrough mount over a VM directory.
 *
 * Every operation is done on the source directory (share_srcfd) with
 * *at() calls on the path relative to it.  With no share session it is
 * a plain passthrough; during one, the operations call the session
 * hooks (session.h) so that what they change is mirrored in order.
 *
 * NOTES ON THE THREAD MODEL: FUSE's multithreaded loop; see session.h
 * for the locks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "mount.h"
#include "session.h"
#include "share-proto.h"

/* What an open file keeps. */
struct fh {
  int fd;
  ino_t ino;
};

static const char *
rel (const char *path)
{
  return path && path[1] ? path + 1 : ".";
}

/* FUSE keeps one 64-bit word per open file or directory: ours holds a
 * pointer. */
static void *
fh_ptr (const struct fuse_file_info *fi)
{
  return (void *) (uintptr_t) fi->fh; // NOLINT(performance-no-int-to-ptr)
}

/* Every change passes the gate (share_gate's read side) from its check
 * of share_frozen to the end of its mirror.  A commit holds the gate
 * shut from its last walk of the tree until it knows the outcome, and
 * opens it frozen: a change is in the destination's copy, or refused
 * (EROFS), never made here after the copy was taken. */
static void
gate_leave (pthread_rwlock_t **gate)
{
  if (*gate)
    pthread_rwlock_unlock (*gate);
}

#define CHANGE_GATE_IF(cond)                                            \
  __attribute__ ((cleanup (gate_leave))) pthread_rwlock_t *gate_ =      \
    (cond) ? &share_gate : NULL;                                        \
  if (gate_) {                                                          \
    pthread_rwlock_rdlock (gate_);                                      \
    /* After a commit the directory is the destination's. */           \
    if (__atomic_load_n (&share_frozen, __ATOMIC_ACQUIRE))             \
      return -EROFS;                                                    \
  }
#define CHANGE_GATE() CHANGE_GATE_IF (true)

static struct fh *
get_fh (struct fuse_file_info *fi)
{
  return fh_ptr (fi);
}

static void *
share_init (struct fuse_conn_info *conn, struct fuse_config *cfg)
{
  (void) conn;
  cfg->use_ino = 1;
  /* Unlinked-but-open files really go away (no .fuse_hidden renames to
   * mirror); their operations may get a NULL path.  Other operations
   * on open files get the file's current path (after renames too): a
   * write to a file the copier has closed on the receiver reopens it
   * there by that path. */
  cfg->hard_remove = 1;
  cfg->nullpath_ok = 0;
  struct share_mount_hooks *hooks = fuse_get_context ()->private_data;
  if (hooks && hooks->started)
    hooks->started ();
  /* What init returns is the private data destroy gets. */
  return hooks;
}

static void
share_destroy (void *data)
{
  struct share_mount_hooks *hooks = data;
  if (hooks && hooks->stopping)
    hooks->stopping ();
}

static int
share_getattr (const char *path, struct stat *st, struct fuse_file_info *fi)
{
  int r = fi ? fstat (get_fh (fi)->fd, st)
    : fstatat (share_srcfd, rel (path), st, AT_SYMLINK_NOFOLLOW);
  return r == -1 ? -errno : 0;
}

static int
share_access (const char *path, int mask)
{
  return faccessat (share_srcfd, rel (path), mask, 0) == -1 ? -errno : 0;
}

static int
share_readlink (const char *path, char *buf, size_t size)
{
  ssize_t n = readlinkat (share_srcfd, rel (path), buf, size - 1);

  if (n == -1)
    return -errno;
  buf[n] = '\0';
  return 0;
}

static int
share_opendir (const char *path, struct fuse_file_info *fi)
{
  int fd = openat (share_srcfd, rel (path), O_RDONLY | O_DIRECTORY |
                   O_CLOEXEC);
  DIR *d;

  if (fd == -1)
    return -errno;
  d = fdopendir (fd);
  if (!d) {
    int e = errno;
    close (fd);
    return -e;
  }
  fi->fh = (uintptr_t) d;
  return 0;
}

static int
share_readdir (const char *path, void *buf, fuse_fill_dir_t filler,
               off_t offset, struct fuse_file_info *fi,
               enum fuse_readdir_flags flags)
{
  DIR *d = fh_ptr (fi);
  struct dirent *de;

  (void) path;
  (void) flags;
  if (offset != telldir (d))
    seekdir (d, offset);
  /* Terminates: readdir reaches the end, or the buffer is full. */
  while ((de = readdir (d)) != NULL) {
    struct stat st = { .st_ino = de->d_ino,
                       .st_mode = (mode_t) DTTOIF (de->d_type) };
    if (filler (buf, de->d_name, &st, telldir (d), 0))
      break;
  }
  return 0;
}

static int
share_releasedir (const char *path, struct fuse_file_info *fi)
{
  (void) path;
  closedir (fh_ptr (fi));
  return 0;
}

static int
share_statfs (const char *path, struct statvfs *st)
{
  (void) path;
  return fstatvfs (share_srcfd, st) == -1 ? -errno : 0;
}

/* ------------------------------------------------------------------ */
/* Namespace changes: local change and mirror under ns_lock. */

#define NS_OP(expr, ...)                                                \
  do {                                                                  \
    struct share_req _m = { __VA_ARGS__ };                              \
    int _r;                                                             \
    session_ns_begin ();                                                \
    _r = (expr) == -1 ? -errno : 0;                                     \
    session_ns_end (_r, &_m);                                           \
    return _r;                                                          \
  } while (0)

static int
share_mkdir (const char *path, mode_t mode)
{
  CHANGE_GATE ();
  NS_OP (mkdirat (share_srcfd, rel (path), mode), .type = SHARE_MKDIR,
         .path = rel (path), .a = mode & 07777);
}

static int
share_unlink (const char *path)
{
  CHANGE_GATE ();
  NS_OP (unlinkat (share_srcfd, rel (path), 0), .type = SHARE_UNLINK,
         .path = rel (path));
}

static int
share_rmdir (const char *path)
{
  CHANGE_GATE ();
  NS_OP (unlinkat (share_srcfd, rel (path), AT_REMOVEDIR),
         .type = SHARE_RMDIR, .path = rel (path));
}

static int
share_symlink (const char *target, const char *linkpath)
{
  CHANGE_GATE ();
  NS_OP (symlinkat (target, share_srcfd, rel (linkpath)),
         .type = SHARE_SYMLINK, .path = rel (linkpath), .path2 = target);
}

static int
share_rename (const char *from, const char *to, unsigned int flags)
{
  CHANGE_GATE ();
  NS_OP (renameat2 (share_srcfd, rel (from), share_srcfd, rel (to), flags),
         .type = SHARE_RENAME, .path = rel (from), .path2 = rel (to),
         .c = flags);
}

static int
share_link (const char *from, const char *to)
{
  CHANGE_GATE ();
  NS_OP (linkat (share_srcfd, rel (from), share_srcfd, rel (to), 0),
         .type = SHARE_LINK, .path = rel (from), .path2 = rel (to));
}

static int
share_chmod (const char *path, mode_t mode, struct fuse_file_info *fi)
{
  CHANGE_GATE ();
  struct share_req m = { .type = SHARE_CHMOD, .path = rel (path),
                         .a = mode & 07777 };
  int r;

  session_ns_begin ();
  r = (fi ? fchmod (get_fh (fi)->fd, mode)
       : fchmodat (share_srcfd, rel (path), mode, 0)) == -1 ? -errno : 0;
  session_ns_end (r, path ? &m : NULL);
  return r;
}

static int
share_chown (const char *path, uid_t uid, gid_t gid,
             struct fuse_file_info *fi)
{
  CHANGE_GATE ();
  struct share_req m = { .type = SHARE_CHOWN, .path = rel (path) };
  struct stat st;
  int r;

  session_ns_begin ();
  r = (fi ? fchown (get_fh (fi)->fd, uid, gid)
       : fchownat (share_srcfd, rel (path), uid, gid,
                   AT_SYMLINK_NOFOLLOW)) == -1 ? -errno : 0;
  /* uid or gid may be -1 ("unchanged"): send what is there now. */
  if (r == 0 && (fi ? fstat (get_fh (fi)->fd, &st)
                 : fstatat (share_srcfd, rel (path), &st,
                            AT_SYMLINK_NOFOLLOW)) == 0) {
    m.a = st.st_uid;
    m.b = st.st_gid;
  }
  session_ns_end (r, path ? &m : NULL);
  return r;
}

static int
share_utimens (const char *path, const struct timespec tv[2],
               struct fuse_file_info *fi)
{
  CHANGE_GATE ();
  struct share_req m = { .type = SHARE_UTIMENS, .path = rel (path) };
  struct stat st;
  int r;

  session_ns_begin ();
  r = (fi ? futimens (get_fh (fi)->fd, tv)
       : utimensat (share_srcfd, rel (path), tv,
                    AT_SYMLINK_NOFOLLOW)) == -1 ? -errno : 0;
  /* UTIME_NOW and UTIME_OMIT: send the times the file has now. */
  if (r == 0 && (fi ? fstat (get_fh (fi)->fd, &st)
                 : fstatat (share_srcfd, rel (path), &st,
                            AT_SYMLINK_NOFOLLOW)) == 0) {
    m.a = (uint64_t) st.st_atim.tv_sec * 1000000000 +
      (uint64_t) st.st_atim.tv_nsec;
    m.b = (uint64_t) st.st_mtim.tv_sec * 1000000000 +
      (uint64_t) st.st_mtim.tv_nsec;
  }
  session_ns_end (r, path ? &m : NULL);
  return r;
}

/* ------------------------------------------------------------------ */
/* Files. */

static int
new_fh (int fd, struct fuse_file_info *fi)
{
  struct fh *h = malloc (sizeof *h);
  struct stat st;

  if (!h || fstat (fd, &st) == -1) {
    free (h);
    close (fd);
    return -ENOMEM;
  }
  h->fd = fd;
  h->ino = st.st_ino;
  fi->fh = (uintptr_t) h;
  return 0;
}

static int
share_create (const char *path, mode_t mode, struct fuse_file_info *fi)
{
  CHANGE_GATE ();
  struct stat st;
  bool existed;
  uint64_t seq = 0;
  int fd, r;

  session_ns_begin ();
  existed = fstatat (share_srcfd, rel (path), &st, AT_SYMLINK_NOFOLLOW) == 0;
  /* Offsets come from the kernel: append is its business, not ours. */
  fd = openat (share_srcfd, rel (path),
               (fi->flags & ~O_APPEND) | O_CREAT | O_CLOEXEC, mode);
  if (fd == -1) {
    r = -errno;
    session_ns_end (r, NULL);
    return r;
  }
  r = new_fh (fd, fi);
  if (r == 0 && !existed)
    seq = session_node_created (get_fh (fi)->ino, path, mode);
  session_ns_end (r, NULL);
  session_wait (seq);
  if (r == 0 && existed)
    session_node_opened (get_fh (fi)->ino, fi->flags & O_TRUNC, path);
  return r;
}

static int
share_open (const char *path, struct fuse_file_info *fi)
{
  CHANGE_GATE_IF ((fi->flags & O_ACCMODE) != O_RDONLY ||
                  (fi->flags & O_TRUNC));
  int fd = openat (share_srcfd, rel (path),
                   (fi->flags & ~(O_APPEND | O_CREAT)) | O_CLOEXEC);
  int r;

  if (fd == -1)
    return -errno;
  r = new_fh (fd, fi);
  if (r == 0)
    session_node_opened (get_fh (fi)->ino, fi->flags & O_TRUNC, path);
  return r;
}

static int
share_read (const char *path, char *buf, size_t size, off_t off,
            struct fuse_file_info *fi)
{
  ssize_t n = pread (get_fh (fi)->fd, buf, size, off);

  (void) path;
  return n == -1 ? -errno : (int) n;
}

static int
share_write (const char *path, const char *buf, size_t size, off_t off,
             struct fuse_file_info *fi)
{
  CHANGE_GATE ();
  struct fh *h = get_fh (fi);
  struct node *n;
  uint64_t seq = 0;
  ssize_t w;

  if (!session_active () || !(n = session_node (h->ino, false))) {
    w = pwrite (h->fd, buf, size, off);
    return w == -1 ? -errno : (int) w;
  }
  pthread_mutex_lock (&n->lock);
  w = pwrite (h->fd, buf, size, off);
  if (w > 0)
    seq = session_write_locked (n, path, buf, (size_t) w, (uint64_t) off);
  pthread_mutex_unlock (&n->lock);
  /* Acknowledged only once the destination has it. */
  session_wait (seq);
  return w == -1 ? -errno : (int) w;
}

static int
share_truncate (const char *path, off_t size, struct fuse_file_info *fi)
{
  CHANGE_GATE ();
  struct node *n = NULL;
  uint64_t seq = 0;
  int fd = fi ? get_fh (fi)->fd
    : openat (share_srcfd, rel (path), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  int r;

  if (fd == -1)
    return -errno;
  if (session_active () && fstat (fd, &st) == 0)
    n = session_node (st.st_ino, false);
  if (n)
    pthread_mutex_lock (&n->lock);
  r = ftruncate (fd, size) == -1 ? -errno : 0;
  if (r == 0 && n)
    seq = session_truncate_locked (n, path, (uint64_t) size);
  if (n)
    pthread_mutex_unlock (&n->lock);
  if (!fi)
    close (fd);
  session_wait (seq);
  return r;
}

static int
share_fallocate (const char *path, int mode, off_t off, off_t len,
                 struct fuse_file_info *fi)
{
  CHANGE_GATE ();
  struct fh *h = get_fh (fi);
  struct node *n = NULL;
  uint64_t seq = 0;
  int r;

  /* Modes that move data around would need the copier to follow. */
  if (!share_fallocate_mode_ok ((uint32_t) mode))
    return -EOPNOTSUPP;
  if (session_active ())
    n = session_node (h->ino, false);
  if (n)
    pthread_mutex_lock (&n->lock);
  r = fallocate (h->fd, mode, off, len) == -1 ? -errno : 0;
  if (r == 0 && n)
    seq = session_fallocate_locked (n, path, (uint32_t) mode, (uint64_t) off,
                                    (uint64_t) len);
  if (n)
    pthread_mutex_unlock (&n->lock);
  session_wait (seq);
  return r;
}

static int
share_fsync (const char *path, int datasync, struct fuse_file_info *fi)
{
  struct fh *h = get_fh (fi);
  struct node *n;
  uint64_t seq = 0;
  int r;

  (void) path;
  r = (datasync ? fdatasync (h->fd) : fsync (h->fd)) == -1 ? -errno : 0;
  if (r == 0 && session_active () && (n = session_node (h->ino, false))) {
    pthread_mutex_lock (&n->lock);
    if (n->handle) {
      struct share_req m = { .type = SHARE_FSYNC, .handle = n->handle };
      seq = session_send (&m);
    }
    pthread_mutex_unlock (&n->lock);
  }
  session_wait (seq);
  return r;
}

static int
share_release (const char *path, struct fuse_file_info *fi)
{
  struct fh *h = get_fh (fi);

  (void) path;
  close (h->fd);
  session_node_released (h->ino);
  free (h);
  return 0;
}

static off_t
share_lseek (const char *path, off_t off, int whence,
             struct fuse_file_info *fi)
{
  off_t r = lseek (get_fh (fi)->fd, off, whence);

  (void) path;
  return r == -1 ? -errno : r;
}

const struct fuse_operations share_ops = {
  .init = share_init,
  .destroy = share_destroy,
  .getattr = share_getattr,
  .access = share_access,
  .readlink = share_readlink,
  .opendir = share_opendir,
  .readdir = share_readdir,
  .releasedir = share_releasedir,
  .statfs = share_statfs,
  .mkdir = share_mkdir,
  .unlink = share_unlink,
  .rmdir = share_rmdir,
  .symlink = share_symlink,
  .rename = share_rename,
  .link = share_link,
  .chmod = share_chmod,
  .chown = share_chown,
  .utimens = share_utimens,
  .create = share_create,
  .open = share_open,
  .read = share_read,
  .write = share_write,
  .truncate = share_truncate,
  .fallocate = share_fallocate,
  .fsync = share_fsync,
  .release = share_release,
  .lseek = share_lseek,
};
