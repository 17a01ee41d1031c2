/* fuse-share: the receiver, applying the share protocol under a root
 * directory it never leaves.
 *
 * Everything is received into ROOT.handoff-partial, which becomes ROOT
 * only at COMMIT (one rename: a reader never sees a half-copied share
 * under the final name) and is deleted at ABORT.
 *
 * Confinement: paths were checked by the decoder (relative, no "." or
 * ".."); then every lookup goes through openat2 with RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS from the root, and every final component is used
 * without following it (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, or an *at call
 * that does not follow).  A symlink the source made is created as data
 * and never followed.  Only directories, regular files and symlinks are
 * ever created; OPEN refuses anything but a regular file.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <libgen.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "beneath.h"
#include "cleanup.h"
#include "digest.h"
#include "log.h"
#include "receiver.h"

_Static_assert (SHARE_FALLOC_KEEP_SIZE == FALLOC_FL_KEEP_SIZE &&
                SHARE_FALLOC_PUNCH_HOLE == FALLOC_FL_PUNCH_HOLE &&
                SHARE_FALLOC_ZERO_RANGE == FALLOC_FL_ZERO_RANGE,
                "the share's fallocate modes are Linux's");

#define PARTIAL_SUFFIX ".handoff-partial"

/* Every lookup stays beneath the root and follows no symlink at all
 * (a link the source made could point anywhere). */
static int
open_in_tree (struct receiver *rv, const char *path, int flags)
{
  return open_beneath (rv->rootfd, path, flags, 0, RESOLVE_NO_SYMLINKS);
}

/* The directory holding PATH's last component, and that component. */
static int
open_parent (struct receiver *rv, const char *path, const char **name_r)
{
  const char *slash = strrchr (path, '/');
  char dir[SHARE_MAX_PATH + 1];

  if (!slash) {
    *name_r = path;
    return fcntl (rv->rootfd, F_DUPFD_CLOEXEC, 0);
  }
  memcpy (dir, path, (size_t) (slash - path));
  dir[slash - path] = '\0';
  *name_r = slash + 1;
  return open_in_tree (rv, dir, O_PATH | O_DIRECTORY);
}

static int
set_fd (struct receiver *rv, uint64_t handle, int fd)
{
  if (rv->fds[handle] >= 0) {
    errno = EBADF;              /* The caller closes FD. */
    return -1;
  }
  rv->fds[handle] = fd;
  rv->nopen++;
  return 0;
}

static int
get_fd (struct receiver *rv, uint64_t handle)
{
  if (rv->fds[handle] < 0) {
    errno = EBADF;
    return -1;
  }
  return rv->fds[handle];
}

static void
close_all (struct receiver *rv)
{
  for (size_t i = 0; i <= SHARE_MAX_HANDLES; ++i)
    if (rv->fds[i] >= 0) {
      close (rv->fds[i]);
      rv->fds[i] = -1;
    }
  rv->nopen = 0;
}

/* Too many to track one by one: fall back to syncing the filesystem. */
#define MAX_DIRTY 65536

/* Remember that the object at DIRFD/NAME (NAME "": DIRFD itself) needs
 * flushing. */
static void
mark_dirty (struct receiver *rv, int dirfd, const char *name)
{
  struct stat st;
  struct receiver_dirty **p, *d;
  struct file_handle *fh;
  int mnt, flags = name[0] ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH;

  if (!rv->dirty || rv->ndirty > MAX_DIRTY ||
      fstatat (dirfd, name, &st, flags) == -1 || S_ISLNK (st.st_mode))
    return;
  p = &rv->dirty[st.st_ino % RECEIVER_DIGEST_BUCKETS];
  while (*p && (*p)->ino != st.st_ino)
    p = &(*p)->next;
  if (*p)
    return;
  fh = malloc (sizeof *fh + MAX_HANDLE_SZ);
  d = calloc (1, sizeof *d);
  if (!fh || !d) {
    free (fh);
    free (d);
    return;
  }
  fh->handle_bytes = MAX_HANDLE_SZ;
  if (name_to_handle_at (dirfd, name, fh, &mnt,
                         name[0] ? 0 : AT_EMPTY_PATH) == -1) {
    free (fh);
    free (d);
    rv->ndirty = MAX_DIRTY + 1;         /* Cannot track: sync it all. */
    return;
  }
  d->ino = st.st_ino;
  d->fh = fh;
  *p = d;
  rv->ndirty++;
}

static int
sync_all (struct receiver *rv)
{
  bool whole = rv->ndirty > MAX_DIRTY || !rv->dirty;
  int rv_sync = 0;

  for (size_t i = 0; i <= SHARE_MAX_HANDLES; ++i)
    if (rv->fds[i] >= 0 && fsync (rv->fds[i]) == -1)
      return -1;
  for (size_t b = 0; rv->dirty && b < RECEIVER_DIGEST_BUCKETS; ++b)
    while (rv->dirty[b]) {
      struct receiver_dirty *d = rv->dirty[b];
      rv->dirty[b] = d->next;
      if (!whole) {
        int fd = open_by_handle_at (rv->rootfd, d->fh, O_RDONLY | O_CLOEXEC);
        /* Gone since (unlinked): its directory's sync covers it. */
        if (fd >= 0) {
          if (fsync (fd) == -1)
            rv_sync = -1;
          close (fd);
        }
      }
      free (d->fh);
      free (d);
    }
  rv->ndirty = 0;
  if (whole)
    return syncfs (rv->rootfd);
  return rv_sync;
}

/* Entries below DIRFD (not counting it): the receiver only creates
 * directories, files and links, so every entry counts. */
static int64_t
count_entries (int dirfd)
{
  int fd = openat (dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d;
  struct dirent *de;
  int64_t n = 0;

  if (fd == -1 || !(d = fdopendir (fd))) {
    if (fd >= 0)
      close (fd);
    return -1;
  }
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL) {
    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    n++;
    if (de->d_type == DT_DIR) {
      CLEANUP_CLOSE int sub = openat (dirfd, de->d_name, O_RDONLY |
                                      O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      int64_t k = sub == -1 ? -1 : count_entries (sub);
      if (k < 0) {
        n = -1;
        break;
      }
      n += k;
    }
  }
  closedir (d);
  return n;
}

/* Delete the partial tree PATH (ROOT + PARTIAL_SUFFIX), confined to
 * the directory that holds it: depth first, never following a
 * symlink, never entering another mount. */
static int
remove_tree (const char *path, char *err, size_t errlen)
{
  char parent[PATH_MAX];

  snprintf (parent, sizeof parent, "%s", path);
  return remove_beneath (dirname (parent), path, err, errlen);
}

int
receiver_open (struct receiver *rv, const char *root, char *err,
               size_t errlen)
{
  struct stat st;

  memset (rv, 0, sizeof *rv);
  rv->rootfd = -1;
  rv->digests = calloc (RECEIVER_DIGEST_BUCKETS, sizeof (struct receiver_digest *));
  rv->dirty = calloc (RECEIVER_DIGEST_BUCKETS, sizeof (struct receiver_dirty *));
  rv->fds = malloc ((SHARE_MAX_HANDLES + 1) * sizeof *rv->fds);
  if (!rv->fds) {
    snprintf (err, errlen, "out of memory");
    return -1;
  }
  for (size_t i = 0; i <= SHARE_MAX_HANDLES; ++i)
    rv->fds[i] = -1;
  rv->root = strdup (root);
  if (asprintf (&rv->partial, "%s%s", root, PARTIAL_SUFFIX) == -1 ||
      !rv->root) {
    snprintf (err, errlen, "out of memory");
    return -1;
  }
  if (lstat (root, &st) == 0) {
    snprintf (err, errlen, "%s already exists: the share would replace it",
              root);
    errno = EEXIST;
    return -1;
  }
  if (lstat (rv->partial, &st) == 0) {
    snprintf (err, errlen, "%s exists: a partial share from an earlier "
              "session; remove it with 'handoff share abort --root %s'",
              rv->partial, root);
    errno = EEXIST;
    return -1;
  }
  if (mkdir (rv->partial, 0755) == -1) {
    snprintf (err, errlen, "%s: %s", rv->partial, strerror (errno));
    return -1;
  }
  /* Not O_PATH: syncfs needs a real descriptor. */
  rv->rootfd = open (rv->partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rv->rootfd == -1) {
    snprintf (err, errlen, "%s: %s", rv->partial, strerror (errno));
    rmdir (rv->partial);
    return -1;
  }
  rv->state = RECEIVER_WAITING;
  rv->next_seq = 1;
  return 0;
}

void
receiver_close (struct receiver *rv)
{
  if (rv->fds)
    close_all (rv);
  free (rv->fds);
  for (size_t i = 0; rv->digests && i < RECEIVER_DIGEST_BUCKETS; ++i)
    while (rv->digests[i]) {
      struct receiver_digest *d = rv->digests[i];
      rv->digests[i] = d->next;
      free (d);
    }
  free (rv->digests);
  for (size_t i = 0; rv->dirty && i < RECEIVER_DIGEST_BUCKETS; ++i)
    while (rv->dirty[i]) {
      struct receiver_dirty *d = rv->dirty[i];
      rv->dirty[i] = d->next;
      free (d->fh);
      free (d);
    }
  free (rv->dirty);
  if (rv->rootfd >= 0)
    close (rv->rootfd);
  free (rv->root);
  free (rv->partial);
  memset (rv, 0, sizeof *rv);
  rv->rootfd = -1;
}

int
receiver_abort (struct receiver *rv)
{
  close_all (rv);
  if (rv->state != RECEIVER_COMMITTED) {
    char err[512];
    if (remove_tree (rv->partial, err, sizeof err) == -1)
      log_warn ("%s", err);
    rv->state = RECEIVER_ABORTED;
  }
  return 0;
}

int
receiver_remove_partial (const char *root, char *err, size_t errlen)
{
  char *partial;
  struct stat st;

  if (asprintf (&partial, "%s%s", root, PARTIAL_SUFFIX) == -1)
    return -1;
  if (lstat (partial, &st) == -1) {
    snprintf (err, errlen, "%s: %s", partial, strerror (errno));
    free (partial);
    return -1;
  }
  int r = remove_tree (partial, err, errlen);
  free (partial);
  return r;
}

static struct receiver_digest **
digest_slot (struct receiver *rv, ino_t ino)
{
  struct receiver_digest **p;

  if (!rv->digests)
    return NULL;
  p = &rv->digests[ino % RECEIVER_DIGEST_BUCKETS];
  while (*p && (*p)->ino != ino)
    p = &(*p)->next;
  return p;
}

static void
digest_drop (struct receiver *rv, ino_t ino)
{
  struct receiver_digest **p = digest_slot (rv, ino), *d;

  if (p && (d = *p)) {
    *p = d->next;
    free (d);
  }
}

/* The content of FD (inode INO) changes: forget its digest. */
static void
digest_drop_fd (struct receiver *rv, int fd)
{
  struct stat st;
  if (fstat (fd, &st) == 0)
    digest_drop (rv, st.st_ino);
}

static void
digest_put (struct receiver *rv, ino_t ino, const uint8_t sum[32])
{
  struct receiver_digest **p = digest_slot (rv, ino), *d;

  if (!p)
    return;
  if (!*p) {
    d = calloc (1, sizeof *d);
    if (!d)
      return;
    d->ino = ino;
    *p = d;
  }
  memcpy ((*p)->sum, sum, 32);
}

static bool
digest_get (struct receiver *rv, ino_t ino, uint8_t sum[32])
{
  struct receiver_digest **p = digest_slot (rv, ino);

  if (!p || !*p)
    return false;
  memcpy (sum, (*p)->sum, 32);
  return true;
}

static int
verify (struct receiver *rv, const struct share_req *r, char *text,
        size_t textlen)
{
  struct share_verify want;
  CLEANUP_CLOSE int dirfd = -1;
  const char *name;
  struct stat st;
  uint8_t sum[32];

  memcpy (&want, r->data, sizeof want);
  want.kind = be32toh (want.kind);
  want.mode = be32toh (want.mode);
  want.size = be64toh (want.size);
  want.mtime_ns = (int64_t) be64toh ((uint64_t) want.mtime_ns);

  dirfd = open_parent (rv, r->path, &name);
  if (dirfd == -1 || fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
    snprintf (text, textlen, "%s: missing on the destination", r->path);
    return EILSEQ;
  }
  unsigned kind = S_ISREG (st.st_mode) ? SHARE_KIND_FILE
    : S_ISDIR (st.st_mode) ? SHARE_KIND_DIR
    : S_ISLNK (st.st_mode) ? SHARE_KIND_LINK : 0;
  int64_t mtime = (int64_t) st.st_mtim.tv_sec * 1000000000 +
    st.st_mtim.tv_nsec;
  /* Warm-up (c = 1): learn the digest now, while the VM still runs,
   * so the check at commit need not read the file again. */
  if (r->c == SHARE_VERIFY_WARM) {
    if (kind == SHARE_KIND_FILE && !digest_get (rv, st.st_ino, sum)) {
      CLEANUP_CLOSE int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW |
                                     O_CLOEXEC);
      if (fd >= 0 && digest_sha256_fd (fd, sum) == 0)
        digest_put (rv, st.st_ino, sum);
    }
    return 0;
  }
  if (kind != want.kind) {
    snprintf (text, textlen, "%s: a different kind of file", r->path);
    return EILSEQ;
  }
  if (kind != SHARE_KIND_LINK && (st.st_mode & 07777) != want.mode) {
    snprintf (text, textlen, "%s: mode %o, expected %o", r->path,
              st.st_mode & 07777, want.mode);
    return EILSEQ;
  }
  if (kind != SHARE_KIND_DIR && mtime != want.mtime_ns) {
    snprintf (text, textlen, "%s: modification time differs", r->path);
    return EILSEQ;
  }
  if (kind == SHARE_KIND_FILE) {
    CLEANUP_CLOSE int fd = -1;
    if ((uint64_t) st.st_size != want.size) {
      snprintf (text, textlen, "%s: %jd bytes, expected %" PRIu64, r->path,
                (intmax_t) st.st_size, want.size);
      return EILSEQ;
    }
    if (!digest_get (rv, st.st_ino, sum)) {
      fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd == -1) {
        snprintf (text, textlen, "%s: %s", r->path, strerror (errno));
        return EILSEQ;
      }
      if (digest_sha256_fd (fd, sum) == -1) {
        snprintf (text, textlen, "%s: %s", r->path, strerror (errno));
        return EILSEQ;
      }
      digest_put (rv, st.st_ino, sum);
    }
  }
  else if (kind == SHARE_KIND_LINK) {
    char target[SHARE_MAX_PATH + 1];
    ssize_t n = readlinkat (dirfd, name, target, sizeof target);
    if (n < 0 || n > SHARE_MAX_PATH) {
      snprintf (text, textlen, "%s: cannot read the link", r->path);
      return EILSEQ;
    }
    gnutls_hash_fast (GNUTLS_DIG_SHA256, target, (size_t) n, sum);
  }
  if (kind != SHARE_KIND_DIR && memcmp (sum, want.sha256, sizeof sum) != 0) {
    snprintf (text, textlen, "%s: %s differs", r->path,
              kind == SHARE_KIND_LINK ? "the link's target" : "the content");
    return EILSEQ;
  }
  return 0;
}

/* One request, as a handler of the table below sees it: the parent
 * directories of its paths (opened for the types that name entries)
 * and where a reason goes. */
struct op_ctx {
  struct receiver *rv;
  const struct share_req *r;
  int dirfd, dirfd2;
  const char *name, *name2;
  char *text;
  size_t textlen;
};

/* A handler returns 0; -1 with errno (reported as "TYPE PATH: why"); or
 * an error number with its reason already in o->text. */
typedef int (*op_fn) (struct op_ctx *o);

/* Close FD keeping errno: -1. */
static int
close_fail (int fd)
{
  int e = errno;
  close (fd);
  errno = e;
  return -1;
}

static int
op_mkdir (struct op_ctx *o)
{
  return mkdirat (o->dirfd, o->name, (mode_t) (o->r->a & 07777));
}

static int
op_create (struct op_ctx *o)
{
  const struct share_req *r = o->r;
  int fd;

  if (r->handle && o->rv->fds[r->handle] >= 0) {
    errno = EBADF;              /* Handle in use: create nothing. */
    return -1;
  }
  fd = openat (o->dirfd, o->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
               O_CLOEXEC, (mode_t) (r->a & 07777));
  if (fd == -1)
    return -1;
  if (r->b && r->b > INT64_MAX) {
    close (fd);
    errno = EFBIG;
    return -1;
  }
  if ((r->b && ftruncate (fd, (off_t) r->b) == -1) ||
      (r->handle && set_fd (o->rv, r->handle, fd) == -1))
    return close_fail (fd);
  digest_drop_fd (o->rv, fd);   /* A new file may reuse an inode. */
  if (!r->handle)
    close (fd);
  return 0;
}

static int
op_open (struct op_ctx *o)
{
  struct stat st;
  int fd = open_in_tree (o->rv, o->r->path, O_WRONLY | O_NOFOLLOW);

  if (fd == -1)
    return -1;
  if (fstat (fd, &st) == -1 || !S_ISREG (st.st_mode)) {
    close (fd);
    snprintf (o->text, o->textlen, "%s is not a regular file", o->r->path);
    return EINVAL;
  }
  if (set_fd (o->rv, o->r->handle, fd) == -1) {
    close (fd);
    errno = EBADF;
    return -1;
  }
  return 0;
}

static int
op_close (struct op_ctx *o)
{
  int fd = get_fd (o->rv, o->r->handle);

  if (fd == -1)
    return -1;
  close (fd);
  o->rv->fds[o->r->handle] = -1;
  o->rv->nopen--;
  return 0;
}

static int
op_write (struct op_ctx *o)
{
  const uint8_t *p = o->r->data;
  size_t left = o->r->data_len;
  uint64_t off = o->r->a;
  int fd = get_fd (o->rv, o->r->handle);

  if (fd == -1)
    return -1;
  if (off > INT64_MAX - left) {
    errno = EFBIG;
    return -1;
  }
  digest_drop_fd (o->rv, fd);
  /* Terminates: each pass writes at least one byte or fails. */
  while (left > 0) {
    ssize_t n = pwrite (fd, p, left, (off_t) off);
    if (n < 0)
      return -1;
    p += n;
    off += (uint64_t) n;
    left -= (size_t) n;
  }
  o->rv->bytes += o->r->data_len;
  return 0;
}

static int
op_truncate (struct op_ctx *o)
{
  int fd = get_fd (o->rv, o->r->handle);

  if (fd == -1)
    return -1;
  if (o->r->a > INT64_MAX) {
    errno = EFBIG;
    return -1;
  }
  if (ftruncate (fd, (off_t) o->r->a) == -1)
    return -1;
  digest_drop_fd (o->rv, fd);
  return 0;
}

static int
op_fallocate (struct op_ctx *o)
{
  const struct share_req *r = o->r;
  int fd = get_fd (o->rv, r->handle);

  if (fd == -1)
    return -1;
  if (!share_fallocate_mode_ok (r->c) || r->b == 0 || r->a > INT64_MAX ||
      r->b > INT64_MAX - r->a) {
    errno = EINVAL;
    return -1;
  }
  digest_drop_fd (o->rv, fd);
  return fallocate (fd, (int) r->c, (off_t) r->a, (off_t) r->b);
}

static int
op_unlink (struct op_ctx *o)
{
  return unlinkat (o->dirfd, o->name, 0);
}

static int
op_rmdir (struct op_ctx *o)
{
  return unlinkat (o->dirfd, o->name, AT_REMOVEDIR);
}

static int
op_rename (struct op_ctx *o)
{
  return (int) syscall (SYS_renameat2, o->dirfd, o->name, o->dirfd2,
                        o->name2, o->r->c & (RENAME_NOREPLACE |
                                             RENAME_EXCHANGE));
}

static int
op_symlink (struct op_ctx *o)
{
  return symlinkat (o->r->path2, o->dirfd, o->name);
}

static int
op_link (struct op_ctx *o)
{
  return linkat (o->dirfd, o->name, o->dirfd2, o->name2, 0);
}

static int
op_chmod (struct op_ctx *o)
{
  struct stat st;
  /* fchmodat cannot refuse to follow a symlink: open the object itself
   * (a symlink's own mode means nothing on Linux). */
  int fd = open_in_tree (o->rv, o->r->path, O_PATH | O_NOFOLLOW);

  if (fd == -1)
    return -1;
  if (fstat (fd, &st) == 0 && !S_ISLNK (st.st_mode)) {
    char proc[64];
    snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (chmod (proc, (mode_t) (o->r->a & 07777)) == -1)
      return close_fail (fd);
    mark_dirty (o->rv, fd, "");
  }
  close (fd);
  return 0;
}

static int
op_chown (struct op_ctx *o)
{
  return fchownat (o->dirfd, o->name, (uid_t) o->r->a, (gid_t) o->r->b,
                   AT_SYMLINK_NOFOLLOW);
}

static int
op_utimens (struct op_ctx *o)
{
  struct timespec ts[2] = {
    { .tv_sec = (time_t) (o->r->a / 1000000000),
      .tv_nsec = (long) (o->r->a % 1000000000) },
    { .tv_sec = (time_t) (o->r->b / 1000000000),
      .tv_nsec = (long) (o->r->b % 1000000000) },
  };
  return utimensat (o->dirfd, o->name, ts, AT_SYMLINK_NOFOLLOW);
}

static int
op_fsync (struct op_ctx *o)
{
  int fd;

  if (!o->r->handle)
    return sync_all (o->rv);
  fd = get_fd (o->rv, o->r->handle);
  return fd == -1 ? -1 : fsync (fd);
}

static int
op_verify (struct op_ctx *o)
{
  int e = verify (o->rv, o->r, o->text, o->textlen);

  if (e == 0 && o->r->c != SHARE_VERIFY_WARM)
    o->rv->verified++;
  return e;
}

/* Every entry the sender has must have been verified, and the
 * destination must hold nothing else; then the partial tree takes the
 * root's name, durably. */
static int
op_commit (struct op_ctx *o)
{
  struct receiver *rv = o->rv;
  const struct share_req *r = o->r;
  int64_t have = count_entries (rv->rootfd);

  if (rv->verified != r->a || have != (int64_t) r->a) {
    snprintf (o->text, o->textlen, "commit refused: %" PRIu64 " entries at "
              "the source, %" PRIu64 " verified, %" PRId64 " on the "
              "destination", r->a, rv->verified, have);
    return EILSEQ;
  }
  if (r->c) {                   /* The source root's mode and times. */
    struct timespec ts[2] = {
      { .tv_nsec = UTIME_OMIT },
      { .tv_sec = (time_t) (r->b / 1000000000),
        .tv_nsec = (long) (r->b % 1000000000) },
    };
    if (fchmod (rv->rootfd, (mode_t) (r->c & 07777)) == -1 ||
        futimens (rv->rootfd, ts) == -1)
      return -1;
  }
  if (sync_all (rv) == -1)
    return -1;
  close_all (rv);
  if (syscall (SYS_renameat2, AT_FDCWD, rv->partial, AT_FDCWD, rv->root,
               RENAME_NOREPLACE) == -1)
    return -1;
  /* The rename itself must last too. */
  char *parent = strdup (rv->root);
  if (parent) {
    CLEANUP_CLOSE int pfd = open (dirname (parent), O_RDONLY | O_DIRECTORY |
                                  O_CLOEXEC);
    if (pfd >= 0)
      fsync (pfd);
    free (parent);
  }
  rv->state = RECEIVER_COMMITTED;
  log_info ("share committed: %s", rv->root);
  return 0;
}

static int
op_abort (struct op_ctx *o)
{
  receiver_abort (o->rv);
  log_info ("share aborted: %s removed", o->rv->partial);
  return 0;
}

/* What the next sync must flush after a request of the type. */
enum {
  DIRTY_PARENT = 1,             /* The directory holding path. */
  DIRTY_ENTRY = 2,              /* The entry itself. */
  DIRTY_PARENT2 = 4,            /* The directory holding path2. */
  DIRTY_FILE = 8,               /* The open file of the handle. */
};

/* The share protocol's requests, as nbdkit dispatches to a plugin:
 * the handler, how many of its paths name an entry whose parent is
 * opened for it (0, 1: path, 2: path and path2), and what it dirties. */
static const struct op {
  op_fn fn;
  unsigned parents;
  unsigned dirty;
} ops[] = {
  [SHARE_MKDIR] = { op_mkdir, 1, DIRTY_PARENT | DIRTY_ENTRY },
  [SHARE_CREATE] = { op_create, 1, DIRTY_PARENT | DIRTY_ENTRY },
  [SHARE_OPEN] = { op_open, 0, 0 },
  [SHARE_CLOSE] = { op_close, 0, 0 },
  [SHARE_WRITE] = { op_write, 0, DIRTY_FILE },
  [SHARE_TRUNCATE] = { op_truncate, 0, DIRTY_FILE },
  [SHARE_FALLOCATE] = { op_fallocate, 0, DIRTY_FILE },
  [SHARE_UNLINK] = { op_unlink, 1, DIRTY_PARENT },
  [SHARE_RMDIR] = { op_rmdir, 1, DIRTY_PARENT },
  [SHARE_RENAME] = { op_rename, 2, DIRTY_PARENT | DIRTY_PARENT2 },
  [SHARE_SYMLINK] = { op_symlink, 1, DIRTY_PARENT },
  [SHARE_LINK] = { op_link, 2, DIRTY_PARENT | DIRTY_PARENT2 },
  [SHARE_CHMOD] = { op_chmod, 0, 0 },
  [SHARE_CHOWN] = { op_chown, 1, DIRTY_PARENT | DIRTY_ENTRY },
  [SHARE_UTIMENS] = { op_utimens, 1, DIRTY_PARENT | DIRTY_ENTRY },
  [SHARE_FSYNC] = { op_fsync, 0, 0 },
  [SHARE_VERIFY] = { op_verify, 0, 0 },
  [SHARE_COMMIT] = { op_commit, 0, 0 },
  [SHARE_ABORT] = { op_abort, 0, 0 },
};

int
receiver_apply (struct receiver *rv, const struct share_req *r, char *text,
                size_t textlen)
{
  CLEANUP_CLOSE int dirfd = -1, dirfd2 = -1;
  struct op_ctx o = { .rv = rv, .r = r, .text = text, .textlen = textlen };
  const struct op *op;
  int e;

  text[0] = '\0';
  if (r->seq != rv->next_seq) {
    snprintf (text, textlen, "request %" PRIu64 " out of sequence (expected "
              "%" PRIu64 ")", r->seq, rv->next_seq);
    return -EPROTO;             /* Fatal: ends the session. */
  }
  rv->next_seq++;
  rv->ops++;
  if (rv->state == RECEIVER_COMMITTED || rv->state == RECEIVER_ABORTED) {
    snprintf (text, textlen, "the share is %s",
              rv->state == RECEIVER_COMMITTED ? "committed" : "aborted");
    return EINVAL;
  }
  rv->state = RECEIVER_RECEIVING;
  /* The parser admits only known types. */
  if (r->type >= sizeof ops / sizeof ops[0] || !ops[r->type].fn) {
    snprintf (text, textlen, "request type %d is not handled", (int) r->type);
    return EINVAL;
  }
  op = &ops[r->type];
  if (op->parents >= 1 &&
      (dirfd = open_parent (rv, r->path, &o.name)) == -1)
    goto errno_out;
  if (op->parents >= 2 &&
      (dirfd2 = open_parent (rv, r->path2, &o.name2)) == -1)
    goto errno_out;
  o.dirfd = dirfd;
  o.dirfd2 = dirfd2;
  errno = 0;
  e = op->fn (&o);
  if (e == -1)
    goto errno_out;
  if (e > 0)
    return e;
  if (op->dirty & DIRTY_PARENT)
    mark_dirty (rv, dirfd, "");
  if (op->dirty & DIRTY_ENTRY)
    mark_dirty (rv, dirfd, o.name);
  if (op->dirty & DIRTY_PARENT2)
    mark_dirty (rv, dirfd2, "");
  if (op->dirty & DIRTY_FILE)
    mark_dirty (rv, rv->fds[r->handle], "");
  return 0;

 errno_out:
  e = errno ? errno : EIO;
  snprintf (text, textlen, "%s %s: %s", share_type_name (r->type),
            r->path ? r->path : "", strerror (e));
  return e;
}
