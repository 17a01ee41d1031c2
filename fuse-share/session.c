/* fuse-share: the source side of a share session.  See session.h for
 * the thread model.
 *
 * Start: connect to the receiver, then, holding session_ns_lock (no namespace
 * change can happen meanwhile), walk the source tree and send it:
 * directories, empty files of their final size (sparse: holes stay
 * holes), symlinks, hard links.  Every regular file gets a node with a
 * watermark of 0.  Then the copier walks the nodes and sends each
 * file's data below its watermark, skipping holes (SEEK_DATA /
 * SEEK_HOLE), a chunk at a time under the node's lock.  A guest write
 * below the watermark (or to a file fully copied or created during the
 * session) is mirrored before it returns; above it, it stays local
 * and the copier takes it later.
 *
 * Commit: wait for the copier, then (under session_ns_lock) send every entry's
 * owner, mode and times, flush the receiver, verify every entry
 * (type, size, mode, mtime, SHA-256 of content or link target), and
 * only then COMMIT.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "channel.h"
#include "cleanup.h"
#include "clock.h"
#include "digest.h"
#include "log.h"
#include "session-internal.h"
#include "session.h"
#include "share-proto.h"
#include "sockets.h"
#include "tree.h"

#define COPY_INFLIGHT_BYTES (8u << 20)  /* Copier's share of the pipe. */
#define COPY_CHUNK (1u << 20)

uint64_t
session_send (struct share_req *r)
{
  return session_send_req (r);
}

/* ------------------------------------------------------------------ */
/* Nodes. */

static struct node **
bucket (ino_t ino)
{
  return &sess.nodes[(ino * 2654435761u) % NODE_BUCKETS];
}

struct node *
session_node (ino_t ino, bool create)
{
  struct node *n;

  pthread_mutex_lock (&sess.lock);
  for (n = *bucket (ino); n; n = n->next)
    if (n->ino == ino)
      break;
  if (!n && create && session_running_locked ()) {
    n = calloc (1, sizeof *n);
    if (n) {
      n->ino = ino;
      pthread_mutex_init (&n->lock, NULL);
      n->next = *bucket (ino);
      *bucket (ino) = n;
    }
  }
  pthread_mutex_unlock (&sess.lock);
  return n;
}

static uint64_t
new_handle (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&sess.lock);
  /* Handles are reused modulo the range; one held that long is closed
   * long before (CLOSE after the copy). */
  if (++sess.next_handle > SHARE_MAX_HANDLES)
    sess.next_handle = 1;
  return sess.next_handle;
}

/* Make sure the receiver has N open (with node->lock held): open it by
 * PATH if the copier closed it.  0 if it cannot be addressed. */
static uint64_t
ensure_handle_locked (struct node *n, const char *path)
{
  if (n->handle)
    return n->handle;
  if (!path)
    return 0;
  uint64_t h = new_handle ();
  struct share_req r = { .type = SHARE_OPEN, .path = path + 1,
                         .handle = h };
  if (path[1] == '\0' || session_send_req (&r) == 0)
    return 0;
  n->handle = h;
  return h;
}

uint64_t
session_write_locked (struct node *n, const char *path, const void *buf,
                      size_t len, uint64_t off)
{
  struct share_req r = { .type = SHARE_WRITE, .a = off };
  const uint8_t *p = buf;
  uint64_t seq = 0;

  if (!n->copy_done && off >= n->watermark)
    return 0;                   /* The copier will take it. */
  if (!(r.handle = ensure_handle_locked (n, path)))
    return 0;
  /* Terminates: len shrinks by up to SHARE_MAX_DATA each pass. */
  while (len > 0) {
    uint32_t chunk = len > SHARE_MAX_DATA ? SHARE_MAX_DATA : (uint32_t) len;
    r.data = p;
    r.data_len = chunk;
    seq = session_send_req (&r);
    if (!seq)
      return 0;
    r.a += chunk;
    p += chunk;
    len -= chunk;
  }
  __atomic_add_fetch (&sess.mirrored, 1, __ATOMIC_RELAXED);
  return seq;
}

/* Always mirrored, wherever the copier is: a hole punched above the
 * watermark must still reach a destination that already holds data
 * there from a write that straddled the watermark. */
uint64_t
session_fallocate_locked (struct node *n, const char *path, uint32_t mode,
                          uint64_t off, uint64_t len)
{
  struct share_req r = { .type = SHARE_FALLOCATE, .c = mode, .a = off,
                         .b = len };

  if (!(r.handle = ensure_handle_locked (n, path)))
    return 0;
  return session_send_req (&r);
}

uint64_t
session_truncate_locked (struct node *n, const char *path, uint64_t size)
{
  struct share_req r = { .type = SHARE_TRUNCATE, .a = size };

  if (size < n->watermark)
    n->watermark = size;
  if (!(r.handle = ensure_handle_locked (n, path)))
    return 0;
  return session_send_req (&r);
}

uint64_t
session_node_created (ino_t ino, const char *path, mode_t mode)
{
  struct node *n;
  struct share_req r = { .type = SHARE_CREATE, .path = path + 1,
                         .a = mode & 07777 };
  uint64_t seq;

  if (!session_active () || !(n = session_node (ino, true)))
    return 0;
  pthread_mutex_lock (&n->lock);
  r.handle = n->handle = new_handle ();
  n->copy_done = true;          /* Empty, and every write is mirrored. */
  n->opens++;
  /* The caller holds session_ns_lock: the CREATE goes out in namespace
   * order. */
  seq = session_send_req (&r);
  pthread_mutex_unlock (&n->lock);
  return seq;
}

void
session_node_opened (ino_t ino, bool truncated, const char *path)
{
  struct node *n = session_node (ino, false);
  uint64_t seq = 0;

  if (!n)
    return;
  pthread_mutex_lock (&n->lock);
  n->opens++;
  if (truncated && session_active ())
    seq = session_truncate_locked (n, path, 0);
  pthread_mutex_unlock (&n->lock);
  session_wait (seq);
}

void
session_node_released (ino_t ino)
{
  struct node *n = session_node (ino, false);
  uint64_t seq = 0;

  if (!n)
    return;
  pthread_mutex_lock (&n->lock);
  if (n->opens)
    n->opens--;
  /* Nothing more will come for it: let the receiver close it. */
  if (n->opens == 0 && n->copy_done && n->handle && session_active ()) {
    struct share_req r = { .type = SHARE_CLOSE, .handle = n->handle };
    n->handle = 0;
    seq = session_send_req (&r);
  }
  pthread_mutex_unlock (&n->lock);
  (void) seq;                   /* A close need not be waited for. */
}

/* ------------------------------------------------------------------ */
/* Namespace changes. */

void
session_ns_begin (void)
{
  pthread_mutex_lock (&session_ns_lock);
}

void
session_ns_end (int local_result, struct share_req *mirror)
{
  uint64_t seq = 0;

  if (local_result >= 0 && mirror && session_active ())
    seq = session_send_req (mirror);
  pthread_mutex_unlock (&session_ns_lock);
  session_wait (seq);
}

/* ------------------------------------------------------------------ */
/* The tree scan. */

struct scan_link {
  ino_t ino;
  char *path;
  struct scan_link *next;
};

/* A second name of a file already sent becomes a link to the first.
 * Returns true if PATH was one. */
static bool
scan_hard_link (const char *path, const struct stat *st,
                struct scan_link **links)
{
  struct scan_link *l;

  if (st->st_nlink <= 1)
    return false;
  for (l = *links; l; l = l->next)
    if (l->ino == st->st_ino) {
      struct share_req r = { .type = SHARE_LINK, .path = l->path,
                             .path2 = path };
      session_send_req (&r);
      return true;
    }
  if ((l = malloc (sizeof *l)) != NULL) {
    l->ino = st->st_ino;
    l->path = strdup (path);
    l->next = *links;
    *links = l;
  }
  return false;
}

/* A regular file: created empty at the destination, and queued for
 * the copier by its node, which keeps a handle to reopen it by. */
static void
scan_file (const char *path, const struct stat *st)
{
  struct node *n = session_node (st->st_ino, true);

  if (!n)
    return;
  pthread_mutex_lock (&n->lock);
  n->watermark = 0;
  n->copy_done = st->st_size == 0;
  n->handle = n->copy_done ? 0 : new_handle ();
  if (!n->fh) {
    int mnt;
    n->fh = malloc (sizeof *n->fh + MAX_HANDLE_SZ);
    if (n->fh) {
      n->fh->handle_bytes = MAX_HANDLE_SZ;
      if (name_to_handle_at (share_srcfd, path, n->fh, &mnt, 0) == -1) {
        free (n->fh);
        n->fh = NULL;
      }
    }
  }
  struct share_req r = { .type = SHARE_CREATE, .path = path,
                         .handle = n->handle, .a = st->st_mode & 07777,
                         .b = (uint64_t) st->st_size };
  session_send_req (&r);
  pthread_mutex_unlock (&n->lock);
  pthread_mutex_lock (&sess.lock);
  sess.files++;
  if (st->st_size == 0)
    sess.files_done++;
  sess.bytes_total += (uint64_t) st->st_size;
  pthread_mutex_unlock (&sess.lock);
}

/* One entry of the first scan, before a directory's contents: the
 * destination creates the directory first. */
static int
scan_entry (const char *path, const struct stat *st, void *opaque)
{
  struct scan_link **links = opaque;

  if (S_ISDIR (st->st_mode)) {
    struct share_req r = { .type = SHARE_MKDIR, .path = path,
                           .a = st->st_mode & 07777 };
    return session_send_req (&r) ? 0 : -1;
  }
  if (S_ISLNK (st->st_mode)) {
    char target[SHARE_MAX_PATH + 1];
    ssize_t n = readlinkat (share_srcfd, path, target, sizeof target - 1);
    if (n < 0)
      return 0;
    target[n] = '\0';
    struct share_req r = { .type = SHARE_SYMLINK, .path = path,
                           .path2 = target };
    session_send_req (&r);
    return 0;
  }
  if (S_ISREG (st->st_mode)) {
    if (!scan_hard_link (path, st, links))
      scan_file (path, st);
    return 0;
  }
  log_warn ("share: %s: not a regular file, directory or symlink: "
            "not shared", path);
  return 0;
}

/* The first scan: every entry of the source tree announced to the
 * destination, every file queued for the copier. */
static int
scan_tree (struct scan_link **links)
{
  struct tree_walk w = { .rootfd = share_srcfd, .enter = scan_entry,
                         .opaque = links };

  if (tree_walk (&w, "") == 0)
    return 0;
  if (w.failed[0]) {
    pthread_mutex_lock (&sess.lock);
    session_fail_locked ("scanning %s: %s", w.failed,
                         strerror (w.failed_errno));
    pthread_mutex_unlock (&sess.lock);
  }
  return -1;
}

/* ------------------------------------------------------------------ */
/* The copier. */

/* Copy one chunk of N at its watermark.  Returns 1 if more remains, 0
 * when the file is done, -1 on a session failure. */
static int
copy_step (struct node *n, uint8_t *buf)
{
  CLEANUP_CLOSE int fd = -1;
  uint64_t seq = 0;
  int more = 1;

  pthread_mutex_lock (&n->lock);
  if (n->copy_done) {
    pthread_mutex_unlock (&n->lock);
    return 0;
  }
  fd = n->fh ? open_by_handle_at (share_srcfd, n->fh, O_RDONLY | O_CLOEXEC)
    : -1;
  struct stat st;
  if (fd == -1 || fstat (fd, &st) == -1 || st.st_nlink == 0) {
    /* Gone (unlinked): nothing left to copy. */
    n->copy_done = true;
    more = 0;
    goto done;
  }
  off_t data = lseek (fd, (off_t) n->watermark, SEEK_DATA);
  if (data == -1 || (uint64_t) data >= (uint64_t) st.st_size) {
    /* The rest is a hole: nothing to send. */
    pthread_mutex_lock (&sess.lock);
    if ((uint64_t) st.st_size > n->watermark)
      sess.bytes_copied += (uint64_t) st.st_size - n->watermark;
    pthread_mutex_unlock (&sess.lock);
    n->watermark = (uint64_t) st.st_size;
    n->copy_done = true;
    more = 0;
    goto done;
  }
  off_t hole = lseek (fd, data, SEEK_HOLE);
  if (hole == -1)
    hole = st.st_size;
  size_t len = (size_t) (hole - data) > COPY_CHUNK ? COPY_CHUNK
    : (size_t) (hole - data);
  ssize_t got = pread (fd, buf, len, data);
  if (got <= 0) {
    n->copy_done = true;
    more = 0;
    goto done;
  }
  struct share_req r = { .type = SHARE_WRITE, .handle = n->handle,
                         .a = (uint64_t) data, .data = buf,
                         .data_len = (uint32_t) got };
  seq = session_send_req (&r);
  if (!seq) {
    pthread_mutex_unlock (&n->lock);
    return -1;
  }
  /* Holes before DATA were skipped: they are holes on the receiver. */
  uint64_t skipped = (uint64_t) data - n->watermark;
  n->watermark = (uint64_t) data + (uint64_t) got;
  pthread_mutex_lock (&sess.lock);
  sess.bytes_copied += skipped + (uint64_t) got;
  ratelimit_charge (&sess.copy_limit, (uint64_t) got, clock_ms ());
  pthread_mutex_unlock (&sess.lock);
 done:
  if (!more) {
    pthread_mutex_lock (&sess.lock);
    sess.files_done++;
    pthread_mutex_unlock (&sess.lock);
    if (n->handle && n->opens == 0) {
      struct share_req c = { .type = SHARE_CLOSE, .handle = n->handle };
      n->handle = 0;
      session_send_req (&c);
    }
  }
  pthread_mutex_unlock (&n->lock);
  return more;
}

static void *
copier_main (void *arg)
{
  uint8_t *buf = malloc (COPY_CHUNK);

  (void) arg;
  if (!buf)
    return NULL;
  for (size_t b = 0; b < NODE_BUCKETS; ++b) {
    struct node *n;
    pthread_mutex_lock (&sess.lock);
    n = sess.nodes[b];
    pthread_mutex_unlock (&sess.lock);
    /* Nodes are only ever added at the head of a chain, and never
     * freed during a session, so walking the chain is safe. */
    for (; n; n = n->next) {
      int r;
      do {
        /* Leave room in the pipe for mirrored guest writes, and keep
         * under the cap (checked every 100 ms at most, so an abort is
         * not kept waiting). */
        pthread_mutex_lock (&sess.lock);
        while (session_running_locked () &&
               sess.inflight_bytes > COPY_INFLIGHT_BYTES)
          pthread_cond_wait (&sess.cond, &sess.lock);
        int64_t wait = ratelimit_wait_ms (&sess.copy_limit, clock_ms ());
        bool run = session_running_locked ();
        pthread_mutex_unlock (&sess.lock);
        if (run && wait > 0) {
          usleep ((useconds_t) (wait < 100 ? wait : 100) * 1000);
          r = 1;
          continue;
        }
        if (!run) {
          free (buf);
          return NULL;
        }
        r = copy_step (n, buf);
      } while (r == 1);
      if (r == -1) {
        free (buf);
        return NULL;
      }
    }
  }
  free (buf);
  pthread_mutex_lock (&sess.lock);
  if (sess.state == SESSION_COPYING) {
    sess.state = SESSION_READY;
    char names[MAX_RECEIVERS * 257];
    log_info ("share: every file copied to %s",
              links_names_locked (names, sizeof names));
  }
  pthread_cond_broadcast (&sess.cond);
  pthread_mutex_unlock (&sess.lock);
  return NULL;
}

/* ------------------------------------------------------------------ */

static void
free_nodes_locked (void)
{
  for (size_t b = 0; b < NODE_BUCKETS; ++b) {
    struct node *n = sess.nodes[b];
    while (n) {
      struct node *next = n->next;
      pthread_mutex_destroy (&n->lock);
      free (n->fh);
      free (n);
      n = next;
    }
    sess.nodes[b] = NULL;
  }
}

/* Wait for the session's threads and close its channel. */
void
session_teardown (void)
{
  pthread_mutex_lock (&sess.lock);
  __atomic_store_n (&sess.active, false, __ATOMIC_RELEASE);
  links_shutdown_locked ();
  pthread_cond_broadcast (&sess.cond);
  pthread_mutex_unlock (&sess.lock);
  if (sess.copier_started)
    pthread_join (sess.copier, NULL);
  sess.copier_started = false;
  links_join ();
  pthread_mutex_lock (&sess.lock);
  links_close ();
  free_nodes_locked ();
  pthread_mutex_unlock (&sess.lock);
}

int
session_start (const struct share_receiver *rcv, size_t n,
               uint64_t copy_rate_limit, char *err, size_t errlen)
{
  struct scan_link *links = NULL;
  char names[MAX_RECEIVERS * 257];
  int rc = -1;

  pthread_mutex_lock (&sess.lock);
  if (session_running_locked ()) {
    snprintf (err, errlen, "a share session is already running (%s)",
              session_state_names[sess.state]);
    pthread_mutex_unlock (&sess.lock);
    return -1;
  }
  pthread_mutex_unlock (&sess.lock);
  session_teardown ();
  /* No thread of the session runs: the links are this thread's. */
  if (links_connect (rcv, n, err, errlen) == -1)
    return -1;

  pthread_mutex_lock (&session_ns_lock);
  pthread_mutex_lock (&sess.lock);
  sess.why[0] = '\0';
  sess.next_seq = 1;
  sess.acked = 0;
  sess.inflight_bytes = 0;
  sess.next_handle = 0;
  sess.files = sess.files_done = sess.bytes_total = 0;
  sess.bytes_copied = sess.mirrored = 0;
  sess.final_seq = 0;
  sess.started_ms = clock_ms ();
  ratelimit_set (&sess.copy_limit, copy_rate_limit, sess.started_ms);
  sess.state = SESSION_SCANNING;
  __atomic_store_n (&sess.active, true, __ATOMIC_RELEASE);
  links_names_locked (names, sizeof names);
  pthread_mutex_unlock (&sess.lock);

  if (links_start_readers () == -1 || scan_tree (&links) == -1) {
    pthread_mutex_lock (&sess.lock);
    session_fail_locked ("the tree scan failed");
    snprintf (err, errlen, "%s", sess.why);
    pthread_mutex_unlock (&sess.lock);
    goto out;
  }
  pthread_mutex_lock (&sess.lock);
  if (sess.state == SESSION_SCANNING)
    sess.state = SESSION_COPYING;
  pthread_mutex_unlock (&sess.lock);
  if (pthread_create (&sess.copier, NULL, copier_main, NULL) == 0)
    sess.copier_started = true;
  else {
    pthread_mutex_lock (&sess.lock);
    session_fail_locked ("cannot start the copier");
    pthread_mutex_unlock (&sess.lock);
    goto out;
  }
  log_info ("share: copying to %s", names);
  rc = 0;
 out:
  pthread_mutex_unlock (&session_ns_lock);
  while (links) {
    struct scan_link *next = links->next;
    free (links->path);
    free (links);
    links = next;
  }
  return rc;
}

json_t *
session_status (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&sess.lock);
  double secs = sess.started_ms
    ? (double) (clock_ms () - sess.started_ms) / 1000 : 0;
  char names[MAX_RECEIVERS * 257];

  return json_pack ("{s:b, s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I,"
                    " s:f, s:s}",
                    "ok", 1, "state", session_state_names[sess.state],
                    "to", links_names_locked (names, sizeof names),
                    "receivers", links_status_locked (),
                    "files", (json_int_t) sess.files,
                    "files_copied", (json_int_t) sess.files_done,
                    "bytes", (json_int_t) sess.bytes_total,
                    "bytes_copied", (json_int_t) sess.bytes_copied,
                    "mirrored_writes",
                    (json_int_t) __atomic_load_n (&sess.mirrored,
                                                  __ATOMIC_RELAXED),
                    "in_flight", (json_int_t) (sess.next_seq - 1 - sess.acked),
                    "elapsed", secs, "error", sess.why);
}

void
session_shutdown (void)
{
  session_teardown ();
}
