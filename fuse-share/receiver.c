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
static long
openat2_beneath (int dirfd, const char *path, int flags, mode_t mode,
                 uint64_t resolve)
{
  return open_beneath (dirfd, path, flags, mode,
                       RESOLVE_NO_SYMLINKS | resolve);
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
  return (int) openat2_beneath (rv->rootfd, dir, O_PATH | O_DIRECTORY, 0, 0);
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

int
receiver_apply (struct receiver *rv, const struct share_req *r, char *text,
                size_t textlen)
{
  CLEANUP_CLOSE int dirfd = -1, dirfd2 = -1;
  const char *name = NULL, *name2 = NULL;
  int fd, e = 0;

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

  switch (r->type) {
  case SHARE_MKDIR:
  case SHARE_CREATE:
  case SHARE_UNLINK:
  case SHARE_RMDIR:
  case SHARE_SYMLINK:
  case SHARE_CHOWN:
  case SHARE_UTIMENS:
  case SHARE_RENAME:
  case SHARE_LINK:
    dirfd = open_parent (rv, r->path, &name);
    if (dirfd == -1)
      goto errno_out;
    break;
  default:
    break;
  }
  if (r->type == SHARE_RENAME || r->type == SHARE_LINK) {
    dirfd2 = open_parent (rv, r->path2, &name2);
    if (dirfd2 == -1)
      goto errno_out;
  }

  switch (r->type) {
  case SHARE_MKDIR:
    if (mkdirat (dirfd, name, (mode_t) (r->a & 07777)) == -1)
      goto errno_out;
    break;
  case SHARE_CREATE:
    if (r->handle && rv->fds[r->handle] >= 0) {
      errno = EBADF;            /* Handle in use: create nothing. */
      goto errno_out;
    }
    fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                 O_CLOEXEC, (mode_t) (r->a & 07777));
    if (fd == -1)
      goto errno_out;
    if ((r->b && (r->b > INT64_MAX || ftruncate (fd, (off_t) r->b) == -1)) ||
        (r->handle && set_fd (rv, r->handle, fd) == -1)) {
      e = errno;
      close (fd);
      errno = e;
      goto errno_out;
    }
    digest_drop_fd (rv, fd);    /* A new file may reuse an inode. */
    if (!r->handle)
      close (fd);
    break;
  case SHARE_OPEN: {
    struct stat st;
    fd = (int) openat2_beneath (rv->rootfd, r->path, O_WRONLY | O_NOFOLLOW,
                                0, 0);
    if (fd == -1)
      goto errno_out;
    if (fstat (fd, &st) == -1 || !S_ISREG (st.st_mode)) {
      close (fd);
      snprintf (text, textlen, "%s is not a regular file", r->path);
      return EINVAL;
    }
    if (set_fd (rv, r->handle, fd) == -1) {
      close (fd);
      errno = EBADF;
      goto errno_out;
    }
    break;
  }
  case SHARE_CLOSE:
    fd = get_fd (rv, r->handle);
    if (fd == -1)
      goto errno_out;
    close (fd);
    rv->fds[r->handle] = -1;
    rv->nopen--;
    break;
  case SHARE_WRITE: {
    const uint8_t *p = r->data;
    size_t left = r->data_len;
    uint64_t off = r->a;
    fd = get_fd (rv, r->handle);
    if (fd == -1)
      goto errno_out;
    if (off > INT64_MAX - left) {
      errno = EFBIG;
      goto errno_out;
    }
    digest_drop_fd (rv, fd);
    while (left > 0) {
      ssize_t n = pwrite (fd, p, left, (off_t) off);
      if (n < 0)
        goto errno_out;
      p += n;
      off += (uint64_t) n;
      left -= (size_t) n;
    }
    rv->bytes += r->data_len;
    break;
  }
  case SHARE_TRUNCATE:
    fd = get_fd (rv, r->handle);
    if (fd == -1 || r->a > INT64_MAX || ftruncate (fd, (off_t) r->a) == -1)
      goto errno_out;
    digest_drop_fd (rv, fd);
    break;
  case SHARE_FALLOCATE:
    fd = get_fd (rv, r->handle);
    if (fd == -1)
      goto errno_out;
    if (!share_fallocate_mode_ok (r->c) || r->b == 0 || r->a > INT64_MAX ||
        r->b > INT64_MAX - r->a) {
      errno = EINVAL;
      goto errno_out;
    }
    digest_drop_fd (rv, fd);
    if (fallocate (fd, (int) r->c, (off_t) r->a, (off_t) r->b) == -1)
      goto errno_out;
    break;
  case SHARE_UNLINK:
    if (unlinkat (dirfd, name, 0) == -1)
      goto errno_out;
    break;
  case SHARE_RMDIR:
    if (unlinkat (dirfd, name, AT_REMOVEDIR) == -1)
      goto errno_out;
    break;
  case SHARE_RENAME:
    if (syscall (SYS_renameat2, dirfd, name, dirfd2, name2,
                 r->c & (RENAME_NOREPLACE | RENAME_EXCHANGE)) == -1)
      goto errno_out;
    break;
  case SHARE_SYMLINK:
    if (symlinkat (r->path2, dirfd, name) == -1)
      goto errno_out;
    break;
  case SHARE_LINK:
    if (linkat (dirfd, name, dirfd2, name2, 0) == -1)
      goto errno_out;
    break;
  case SHARE_CHMOD: {
    struct stat st;
    /* fchmodat cannot refuse to follow a symlink: open the object
     * itself (a symlink's own mode means nothing on Linux). */
    fd = (int) openat2_beneath (rv->rootfd, r->path, O_PATH | O_NOFOLLOW, 0,
                                0);
    if (fd == -1)
      goto errno_out;
    if (fstat (fd, &st) == 0 && !S_ISLNK (st.st_mode)) {
      char proc[64];
      snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
      if (chmod (proc, (mode_t) (r->a & 07777)) == -1) {
        e = errno;
        close (fd);
        errno = e;
        goto errno_out;
      }
      mark_dirty (rv, fd, "");
    }
    close (fd);
    break;
  }
  case SHARE_CHOWN:
    if (fchownat (dirfd, name, (uid_t) r->a, (gid_t) r->b,
                  AT_SYMLINK_NOFOLLOW) == -1)
      goto errno_out;
    break;
  case SHARE_UTIMENS: {
    struct timespec ts[2] = {
      { .tv_sec = (time_t) (r->a / 1000000000),
        .tv_nsec = (long) (r->a % 1000000000) },
      { .tv_sec = (time_t) (r->b / 1000000000),
        .tv_nsec = (long) (r->b % 1000000000) },
    };
    if (utimensat (dirfd, name, ts, AT_SYMLINK_NOFOLLOW) == -1)
      goto errno_out;
    break;
  }
  case SHARE_FSYNC:
    if (r->handle) {
      fd = get_fd (rv, r->handle);
      if (fd == -1 || fsync (fd) == -1)
        goto errno_out;
    }
    else if (sync_all (rv) == -1)
      goto errno_out;
    break;
  case SHARE_VERIFY:
    e = verify (rv, r, text, textlen);
    if (e == 0 && r->c != SHARE_VERIFY_WARM)
      rv->verified++;
    return e;
  case SHARE_COMMIT: {
    /* Every entry the sender has must have been verified, and the
     * destination must hold nothing else. */
    int64_t have = count_entries (rv->rootfd);
    if (rv->verified != r->a || have != (int64_t) r->a) {
      snprintf (text, textlen, "commit refused: %" PRIu64 " entries at the "
                "source, %" PRIu64 " verified, %" PRId64 " on the "
                "destination", r->a, rv->verified, have);
      return EILSEQ;
    }
    if (r->c) {                 /* The source root's mode and times. */
      struct timespec ts[2] = {
        { .tv_nsec = UTIME_OMIT },
        { .tv_sec = (time_t) (r->b / 1000000000),
          .tv_nsec = (long) (r->b % 1000000000) },
      };
      if (fchmod (rv->rootfd, (mode_t) (r->c & 07777)) == -1 ||
          futimens (rv->rootfd, ts) == -1)
        goto errno_out;
    }
    if (sync_all (rv) == -1)
      goto errno_out;
    close_all (rv);
    if (syscall (SYS_renameat2, AT_FDCWD, rv->partial, AT_FDCWD, rv->root,
                 RENAME_NOREPLACE) == -1)
      goto errno_out;
    /* The rename itself must last too. */
    {
      char *parent = strdup (rv->root);
      if (parent) {
        CLEANUP_CLOSE int pfd = open (dirname (parent), O_RDONLY |
                                      O_DIRECTORY | O_CLOEXEC);
        if (pfd >= 0)
          fsync (pfd);
        free (parent);
      }
    }
    rv->state = RECEIVER_COMMITTED;
    log_info ("share committed: %s", rv->root);
    break;
  }
  case SHARE_ABORT:
    receiver_abort (rv);
    log_info ("share aborted: %s removed", rv->partial);
    break;
  }

  /* What the next sync must flush. */
  switch (r->type) {
  case SHARE_CREATE: case SHARE_MKDIR: case SHARE_SYMLINK:
  case SHARE_CHOWN: case SHARE_UTIMENS:
    mark_dirty (rv, dirfd, "");
    if (r->type != SHARE_SYMLINK)
      mark_dirty (rv, dirfd, name);
    break;
  case SHARE_UNLINK: case SHARE_RMDIR:
    mark_dirty (rv, dirfd, "");
    break;
  case SHARE_RENAME: case SHARE_LINK:
    mark_dirty (rv, dirfd, "");
    mark_dirty (rv, dirfd2, "");
    break;
  case SHARE_WRITE: case SHARE_TRUNCATE: case SHARE_FALLOCATE:
    mark_dirty (rv, rv->fds[r->handle], "");
    break;
  default:
    break;
  }
  return 0;

 errno_out:
  e = errno ? errno : EIO;
  snprintf (text, textlen, "%s %s: %s", share_type_name (r->type),
            r->path ? r->path : "", strerror (e));
  return e;
}
