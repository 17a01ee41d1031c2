/* fuse-share: the end of a share session on the source (session.h):
 * warm-up (the receiver learns the digests while the VM runs), commit
 * (every entry verified, then the receiver renames its partial tree
 * into place) and abort.  Digests of unchanged source files are
 * cached between the two.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "cleanup.h"
#include "digest.h"
#include "log.h"
#include "session-internal.h"
#include "session.h"
#include "share-proto.h"
#include "tree.h"

/* Digests of source files by (device, inode), valid while size,
 * mtime and ctime stay: ctime moves on every change of content, and
 * nothing can set it back. */
#define DIGEST_BUCKETS 1024
struct digest {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
  uint8_t sum[32];
  struct digest *next;
};
static pthread_mutex_t digest_lock = PTHREAD_MUTEX_INITIALIZER;
static struct digest *digests[DIGEST_BUCKETS];  /* digest_lock */

static bool
same_time (struct timespec a, struct timespec b)
{
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool
digest_lookup (const struct stat *st, uint8_t out[32])
{
  bool found = false;

  pthread_mutex_lock (&digest_lock);
  for (struct digest *d = digests[st->st_ino % DIGEST_BUCKETS]; d;
       d = d->next)
    if (d->dev == st->st_dev && d->ino == st->st_ino) {
      if (d->size == st->st_size && same_time (d->mtime, st->st_mtim) &&
          same_time (d->ctime, st->st_ctim)) {
        memcpy (out, d->sum, 32);
        found = true;
      }
      break;
    }
  pthread_mutex_unlock (&digest_lock);
  return found;
}

static void
digest_store (const struct stat *st, const uint8_t sum[32])
{
  struct digest **p;

  pthread_mutex_lock (&digest_lock);
  p = &digests[st->st_ino % DIGEST_BUCKETS];
  while (*p && !((*p)->dev == st->st_dev && (*p)->ino == st->st_ino))
    p = &(*p)->next;
  if (!*p)
    *p = calloc (1, sizeof **p);
  if (*p) {
    (*p)->dev = st->st_dev;
    (*p)->ino = st->st_ino;
    (*p)->size = st->st_size;
    (*p)->mtime = st->st_mtim;
    (*p)->ctime = st->st_ctim;
    memcpy ((*p)->sum, sum, 32);
  }
  pthread_mutex_unlock (&digest_lock);
}

/* The digest of the open source file FD (stat ST), from the cache if
 * it has not changed since. */
static void
file_digest (int fd, const struct stat *st, uint8_t out[32])
{
  struct stat now;

  if (fstat (fd, &now) == 0 && digest_lookup (&now, out))
    return;
  /* A read error leaves zeroes, which the receiver never matches: the
   * commit then fails on this file, as it must. */
  digest_sha256_fd (fd, out);
  /* Cache it only if the file did not change while we read it. */
  struct stat after;
  if (fstat (fd, &after) == 0 && after.st_size == now.st_size &&
      same_time (after.st_mtim, now.st_mtim) &&
      same_time (after.st_ctim, now.st_ctim))
    digest_store (&after, out);
  (void) st;
}

enum walk { WALK_ATTRS, WALK_VERIFY, WALK_WARM };

struct walk_pass {
  enum walk how;
  uint64_t entries;           /* counted by WALK_VERIFY */
};

static uint64_t
time_ns (struct timespec t)
{
  return (uint64_t) t.tv_sec * 1000000000 + (uint64_t) t.tv_nsec;
}

/* WALK_ATTRS: the entry's owner, mode and times.  After a directory's
 * contents, as creating them moved its times. */
static int
send_attrs (const char *path, const struct stat *st)
{
  struct share_req r = { .type = SHARE_CHOWN, .path = path,
                         .a = st->st_uid, .b = st->st_gid };
  session_send_req (&r);
  if (!S_ISLNK (st->st_mode)) {
    struct share_req m = { .type = SHARE_CHMOD, .path = path,
                           .a = st->st_mode & 07777 };
    session_send_req (&m);
  }
  struct share_req t = { .type = SHARE_UTIMENS, .path = path,
                         .a = time_ns (st->st_atim),
                         .b = time_ns (st->st_mtim) };
  return session_send_req (&t) ? 0 : -1;
}

/* WALK_VERIFY and WALK_WARM: what the destination must hold. */
static int
send_verify (const char *path, const struct stat *st, enum walk how)
{
  struct share_verify v = {
    .kind = htobe32 (S_ISREG (st->st_mode) ? SHARE_KIND_FILE
                     : S_ISDIR (st->st_mode) ? SHARE_KIND_DIR
                     : SHARE_KIND_LINK),
    .mode = htobe32 (st->st_mode & 07777),
    .size = htobe64 ((uint64_t) st->st_size),
    .mtime_ns = (int64_t) htobe64 (time_ns (st->st_mtim)),
  };

  if (S_ISREG (st->st_mode)) {
    CLEANUP_CLOSE int f = openat (share_srcfd, path, O_RDONLY | O_NOFOLLOW |
                                  O_CLOEXEC);
    if (f >= 0)
      file_digest (f, st, v.sha256);
  }
  else if (S_ISLNK (st->st_mode)) {
    char target[SHARE_MAX_PATH + 1];
    ssize_t n = readlinkat (share_srcfd, path, target, sizeof target);
    if (n >= 0)
      gnutls_hash_fast (GNUTLS_DIG_SHA256, target, (size_t) n, v.sha256);
  }
  struct share_req r = { .type = SHARE_VERIFY, .path = path,
                         .c = how == WALK_WARM ? SHARE_VERIFY_WARM : 0,
                         .data = (const uint8_t *) &v,
                         .data_len = sizeof v };
  return session_send_req (&r) ? 0 : -1;
}

/* One entry of a pass, after its contents if it is a directory.  Only
 * what a share carries: directories, regular files and symlinks. */
static int
walk_visit (const char *path, const struct stat *st, void *opaque)
{
  struct walk_pass *pass = opaque;

  if (!S_ISDIR (st->st_mode) && !S_ISREG (st->st_mode) &&
      !S_ISLNK (st->st_mode))
    return 0;
  switch (pass->how) {
  case WALK_ATTRS:
    return send_attrs (path, st);
  case WALK_WARM:
    return S_ISREG (st->st_mode) ? send_verify (path, st, WALK_WARM) : 0;
  case WALK_VERIFY:
    if (send_verify (path, st, WALK_VERIFY) == -1)
      return -1;
    pass->entries++;
    return 0;
  }
  return 0;
}

/* Walk the source tree: WALK_ATTRS sends every entry's owner, mode and
 * times; WALK_VERIFY what the destination must hold, counting the
 * entries; WALK_WARM has both sides learn the files' digests early. */
static int
walk_source (enum walk how, uint64_t *entries)
{
  struct walk_pass pass = { .how = how };
  struct tree_walk w = { .rootfd = share_srcfd, .leave = walk_visit,
                         .opaque = &pass };
  int r = tree_walk (&w, "");

  if (entries)
    *entries = pass.entries;
  return r;
}

/* Wait until every request sent so far has its reply. */
static void
drain (void)
{
  pthread_mutex_lock (&sess.lock);
  uint64_t last = sess.next_seq - 1;
  pthread_mutex_unlock (&sess.lock);
  session_wait (last);
}

int
session_warm (char *err, size_t errlen)
{
  pthread_mutex_lock (&sess.lock);
  if (!session_running_locked ()) {
    snprintf (err, errlen, "no share session is running");
    pthread_mutex_unlock (&sess.lock);
    return -1;
  }
  pthread_mutex_unlock (&sess.lock);
  /* No namespace lock: a warm-up only primes digests, and whatever
   * changes meanwhile is checked again at commit. */
  struct share_req sync = { .type = SHARE_FSYNC };
  if (walk_source (WALK_WARM, NULL) == -1) {
    snprintf (err, errlen, "cannot walk the source tree");
    return -1;
  }
  /* Flush what was copied so far, so the commit's sync is small. */
  session_send_req (&sync);
  drain ();
  pthread_mutex_lock (&sess.lock);
  bool ok = session_running_locked ();
  if (!ok)
    snprintf (err, errlen, "the share failed: %s", sess.why);
  pthread_mutex_unlock (&sess.lock);
  return ok ? 0 : -1;
}

int
session_commit (char *err, size_t errlen)
{
  pthread_mutex_lock (&sess.lock);
  if (!session_running_locked ()) {
    snprintf (err, errlen, sess.state == SESSION_FAILED
              ? "the share failed: %s" : "no share session is running%s",
              sess.state == SESSION_FAILED ? sess.why : "");
    pthread_mutex_unlock (&sess.lock);
    return -1;
  }
  /* Terminates: the copier finishes or the session fails. */
  while (sess.state == SESSION_COPYING || sess.state == SESSION_SCANNING)
    pthread_cond_wait (&sess.cond, &sess.lock);
  if (sess.state != SESSION_READY) {
    snprintf (err, errlen, "the share failed: %s", sess.why);
    pthread_mutex_unlock (&sess.lock);
    return -1;
  }
  sess.state = SESSION_COMMITTING;
  pthread_mutex_unlock (&sess.lock);

  /* No change at all from here to the outcome: one sent after the
   * COMMIT would reach a receiver that has hung up, and be lost. */
  pthread_rwlock_wrlock (&share_gate);
  pthread_mutex_lock (&session_ns_lock);
  struct share_req sync = { .type = SHARE_FSYNC };
  uint64_t entries = 0;
  if (walk_source (WALK_ATTRS, NULL) == -1 || !session_send_req (&sync) ||
      walk_source (WALK_VERIFY, &entries) == -1) {
    pthread_mutex_lock (&sess.lock);
    session_fail_locked ("commit: cannot walk the source tree");
    pthread_mutex_unlock (&sess.lock);
  }
  drain ();
  pthread_mutex_lock (&sess.lock);
  /* A receiver whose copy differs is out; the others commit. */
  for (size_t i = 0; i < sess.nlinks; ++i) {
    struct share_link *l = &sess.links[i];
    if (!l->lost && l->verify_fail)
      link_lose_locked (l, "verification failed for %" PRIu64 " entr%s on "
                        "%s: %s", l->verify_fail,
                        l->verify_fail == 1 ? "y" : "ies", l->to,
                        l->verify_why);
  }
  bool ok = sess.state == SESSION_COMMITTING;
  pthread_mutex_unlock (&sess.lock);
  if (ok) {
    /* The root's own mode and times go with the commit. */
    struct stat root;
    struct share_req c = { .type = SHARE_COMMIT, .a = entries };
    if (fstat (share_srcfd, &root) == 0) {
      c.c = root.st_mode & 07777;
      c.b = (uint64_t) root.st_mtim.tv_sec * 1000000000 +
            (uint64_t) root.st_mtim.tv_nsec;
    }
    session_wait (session_send_req (&c));
  }
  pthread_mutex_lock (&sess.lock);
  /* The receiver checks the entry count again: a refusal arrives as a
   * failed VERIFY would (the earlier ones lost their link above). */
  for (size_t i = 0; i < sess.nlinks; ++i) {
    struct share_link *l = &sess.links[i];
    if (!l->lost && l->verify_fail)
      link_lose_locked (l, "%s refused the commit: %s", l->to,
                        l->verify_why);
  }
  if (sess.state == SESSION_COMMITTING) {
    char names[MAX_RECEIVERS * 257];
    sess.state = SESSION_COMMITTED;
    /* The directory belongs to the destinations now: writes here would
     * be lost to them. */
    __atomic_store_n (&share_frozen, true, __ATOMIC_RELEASE);
    __atomic_store_n (&sess.active, false, __ATOMIC_RELEASE);
    log_info ("share: committed to %s",
              links_names_locked (names, sizeof names));
  }
  ok = sess.state == SESSION_COMMITTED;
  if (!ok)
    snprintf (err, errlen, "%s", sess.why);
  pthread_mutex_unlock (&sess.lock);
  pthread_mutex_unlock (&session_ns_lock);
  pthread_rwlock_unlock (&share_gate);
  session_teardown ();
  return ok ? 0 : -1;
}

int
session_abort (char *err, size_t errlen)
{
  pthread_mutex_lock (&sess.lock);
  bool running = session_running_locked ();
  pthread_mutex_unlock (&sess.lock);
  if (!running && __atomic_load_n (&share_frozen, __ATOMIC_ACQUIRE)) {
    /* Committed, but the VM stays: the directory is ours again (the
     * destination drops its copy). */
    __atomic_store_n (&share_frozen, false, __ATOMIC_RELEASE);
    log_info ("share: writable again after an abandoned commit");
    return 0;
  }
  if (!running) {
    snprintf (err, errlen, "no share session is running");
    return -1;
  }
  struct share_req a = { .type = SHARE_ABORT };
  session_wait (session_send_req (&a));
  pthread_mutex_lock (&sess.lock);
  sess.state = SESSION_ABORTED;
  __atomic_store_n (&sess.active, false, __ATOMIC_RELEASE);
  pthread_cond_broadcast (&sess.cond);
  pthread_mutex_unlock (&sess.lock);
  session_teardown ();
  log_info ("share: aborted");
  return 0;
}

