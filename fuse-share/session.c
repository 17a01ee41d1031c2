/* fuse-share: the source side of a share session.  See session.h for
 * the thread model.
 *
 * Start: connect to the receiver, then, holding ns_lock (no namespace
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
 * Commit: wait for the copier, then (under ns_lock) send every entry's
 * owner, mode and times, flush the receiver, verify every entry
 * (type, size, mode, mtime, SHA-256 of content or link target), and
 * only then COMMIT.
 */
#include <dirent.h>
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
#include "digest.h"
#include "log.h"
#include "session.h"
#include "share-proto.h"
#include "sockets.h"

#define NODE_BUCKETS 4096
#define MAX_INFLIGHT 512                /* Messages without a reply. */
#define COPY_INFLIGHT_BYTES (8u << 20)  /* Copier's share of the pipe. */
#define COPY_CHUNK (1u << 20)

int share_srcfd = -1;
bool share_frozen;
int share_timeout_ms = 30000;

const char *const session_state_names[] = {
  [SESSION_IDLE] = "idle", [SESSION_SCANNING] = "scanning",
  [SESSION_COPYING] = "copying", [SESSION_READY] = "ready",
  [SESSION_COMMITTING] = "committing", [SESSION_COMMITTED] = "committed",
  [SESSION_FAILED] = "failed", [SESSION_ABORTED] = "aborted",
};

static pthread_mutex_t ns_lock = PTHREAD_MUTEX_INITIALIZER;
/* Orders frames on the wire with their sequence numbers.  Held across
 * the (possibly blocking) send, so never together with s.lock there:
 * the reply reader needs s.lock to make room. */
static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  enum session_state state;     /* lock */
  bool active;                  /* Mirroring on (lock; read unlocked as a
                                   hint by session_active). */
  char to[256];
  char why[1024];               /* Failure reason (lock). */
  struct channel *chan;
  uint64_t next_seq;            /* lock */
  uint64_t acked;               /* lock */
  uint32_t inflight_len[MAX_INFLIGHT];  /* Data bytes per seq (lock). */
  uint64_t inflight_bytes;      /* lock */
  struct node *nodes[NODE_BUCKETS];     /* lock */
  uint64_t next_handle;         /* lock */
  uint64_t files, files_done, bytes_total, bytes_copied, mirrored;
  uint64_t verify_fail;         /* lock */
  uint64_t final_seq;           /* COMMIT or ABORT sent, or 0 (lock). */
  char verify_why[512];         /* lock */
  pthread_t reader, copier;
  bool reader_started, copier_started;
  int64_t started_ms;
} s = {
  .lock = PTHREAD_MUTEX_INITIALIZER,
  .cond = PTHREAD_COND_INITIALIZER,
};

static const struct chan_config share_chan_cfg = {
  .service = CHAN_SERVICE_SHARE,
  .version_min = SHARE_PROTO_VERSION,
  .version_max = SHARE_PROTO_VERSION,
  .max_frame = SHARE_MAX_FRAME,
  .timeout_ms = 30000,
};

bool
session_active (void)
{
  return __atomic_load_n (&s.active, __ATOMIC_ACQUIRE);
}

static bool
running_locked (void)
{
  return s.state == SESSION_SCANNING || s.state == SESSION_COPYING ||
    s.state == SESSION_READY || s.state == SESSION_COMMITTING;
}

static void
fail_locked (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
fail_locked (const char *fmt, ...)
{
  va_list ap;

  if (!running_locked ())
    return;
  va_start (ap, fmt);
  vsnprintf (s.why, sizeof s.why, fmt, ap);
  va_end (ap);
  s.state = SESSION_FAILED;
  __atomic_store_n (&s.active, false, __ATOMIC_RELEASE);
  log_error ("share: %s", s.why);
  if (s.chan)
    chan_shutdown (s.chan);
  pthread_cond_broadcast (&s.cond);
}

/* ------------------------------------------------------------------ */
/* Sending and replies. */

/* Send R; its sequence number is assigned here.  Returns it, or 0 if
 * the session is not running.  Waits while too many are in flight. */
static uint64_t
send_req (struct share_req *r)
{
  static __thread uint8_t *buf;
  size_t len;
  uint64_t seq;

  if (!buf && !(buf = malloc (SHARE_MAX_FRAME)))
    return 0;
  /* The sequence number and the frame's place on the wire are taken
   * together, under send_lock, so the receiver sees them in order. */
  pthread_mutex_lock (&send_lock);
  pthread_mutex_lock (&s.lock);
  /* Terminates: replies arrive or the session fails. */
  while (running_locked () && s.next_seq - s.acked > MAX_INFLIGHT - 1)
    pthread_cond_wait (&s.cond, &s.lock);
  if (!running_locked ()) {
    pthread_mutex_unlock (&s.lock);
    pthread_mutex_unlock (&send_lock);
    return 0;
  }
  seq = r->seq = s.next_seq++;
  if (r->type == SHARE_COMMIT || r->type == SHARE_ABORT)
    s.final_seq = seq;
  s.inflight_len[seq % MAX_INFLIGHT] = r->data_len;
  s.inflight_bytes += r->data_len;
  struct channel *chan = s.chan;
  pthread_mutex_unlock (&s.lock);

  len = share_encode (r, buf, SHARE_MAX_FRAME);
  if (len == 0 || chan_send (chan, buf, len) == -1) {
    int e = errno;
    pthread_mutex_unlock (&send_lock);
    pthread_mutex_lock (&s.lock);
    fail_locked ("sending %s to %s: %s", share_type_name (r->type), s.to,
                 len == 0 ? "message too large" : strerror (e));
    pthread_mutex_unlock (&s.lock);
    return 0;
  }
  pthread_mutex_unlock (&send_lock);
  return seq;
}

uint64_t
session_send (struct share_req *r)
{
  return send_req (r);
}

void
session_wait (uint64_t seq)
{
  struct timespec ts;

  /* s.cond waits on the realtime clock. */
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += share_timeout_ms / 1000;
  ts.tv_nsec += (share_timeout_ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }

  if (seq == 0)
    return;
  pthread_mutex_lock (&s.lock);
  /* Terminates: the reply arrives, the session fails, or time is up. */
  while (s.acked < seq && running_locked ()) {
    if (pthread_cond_timedwait (&s.cond, &s.lock, &ts) == ETIMEDOUT) {
      fail_locked ("%s did not answer for %d ms", s.to, share_timeout_ms);
      break;
    }
  }
  pthread_mutex_unlock (&s.lock);
}

static void *
reader_main (void *arg)
{
  (void) arg;
  /* Terminates: the channel ends or fails (shutdown on session end). */
  for (;;) {
    void *buf = NULL;
    ssize_t n = chan_recv_timeout (s.chan, &buf, -1);
    uint64_t seq;
    int e;
    char text[SHARE_MAX_REPLY_TEXT + 1];

    if (n <= 0) {
      int err = errno;
      pthread_mutex_lock (&s.lock);
      /* After the answer to COMMIT or ABORT the receiver hangs up. */
      if (!(s.final_seq && s.acked >= s.final_seq))
        fail_locked ("the receiver %s %s%s", s.to,
                     n == 0 ? "closed the connection"
                     : "connection failed: ", n == 0 ? "" : strerror (err));
      pthread_cond_broadcast (&s.cond);
      pthread_mutex_unlock (&s.lock);
      return NULL;
    }
    int r = share_decode_reply (buf, (size_t) n, &seq, &e, text, sizeof text);
    free (buf);
    pthread_mutex_lock (&s.lock);
    if (r == -1 || seq != s.acked + 1) {
      fail_locked ("bad reply from %s", s.to);
      pthread_mutex_unlock (&s.lock);
      return NULL;
    }
    s.acked = seq;
    s.inflight_bytes -= s.inflight_len[seq % MAX_INFLIGHT];
    if (e == EILSEQ) {
      /* A VERIFY that found a difference: commit reports it. */
      if (s.verify_fail++ == 0)
        snprintf (s.verify_why, sizeof s.verify_why, "%.500s", text);
    }
    else if (e)
      fail_locked ("the receiver refused a request: %s", text);
    pthread_cond_broadcast (&s.cond);
    pthread_mutex_unlock (&s.lock);
  }
}

/* ------------------------------------------------------------------ */
/* Nodes. */

static struct node **
bucket (ino_t ino)
{
  return &s.nodes[(ino * 2654435761u) % NODE_BUCKETS];
}

struct node *
session_node (ino_t ino, bool create)
{
  struct node *n;

  pthread_mutex_lock (&s.lock);
  for (n = *bucket (ino); n; n = n->next)
    if (n->ino == ino)
      break;
  if (!n && create && running_locked ()) {
    n = calloc (1, sizeof *n);
    if (n) {
      n->ino = ino;
      pthread_mutex_init (&n->lock, NULL);
      n->next = *bucket (ino);
      *bucket (ino) = n;
    }
  }
  pthread_mutex_unlock (&s.lock);
  return n;
}

static uint64_t
new_handle (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s.lock);
  /* Handles are reused modulo the range; one held that long is closed
   * long before (CLOSE after the copy). */
  if (++s.next_handle > SHARE_MAX_HANDLES)
    s.next_handle = 1;
  return s.next_handle;
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
  if (path[1] == '\0' || send_req (&r) == 0)
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
    seq = send_req (&r);
    if (!seq)
      return 0;
    r.a += chunk;
    p += chunk;
    len -= chunk;
  }
  __atomic_add_fetch (&s.mirrored, 1, __ATOMIC_RELAXED);
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
  return send_req (&r);
}

uint64_t
session_truncate_locked (struct node *n, const char *path, uint64_t size)
{
  struct share_req r = { .type = SHARE_TRUNCATE, .a = size };

  if (size < n->watermark)
    n->watermark = size;
  if (!(r.handle = ensure_handle_locked (n, path)))
    return 0;
  return send_req (&r);
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
  /* The caller holds ns_lock: the CREATE goes out in namespace order. */
  seq = send_req (&r);
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
    seq = send_req (&r);
  }
  pthread_mutex_unlock (&n->lock);
  (void) seq;                   /* A close need not be waited for. */
}

/* ------------------------------------------------------------------ */
/* Namespace changes. */

void
session_ns_begin (void)
{
  pthread_mutex_lock (&ns_lock);
}

void
session_ns_end (int local_result, struct share_req *mirror)
{
  uint64_t seq = 0;

  if (local_result >= 0 && mirror && session_active ())
    seq = send_req (mirror);
  pthread_mutex_unlock (&ns_lock);
  session_wait (seq);
}

/* ------------------------------------------------------------------ */
/* The tree scan. */

struct scan_link {
  ino_t ino;
  char *path;
  struct scan_link *next;
};

static int
scan_dir (int dirfd, const char *rel, struct scan_link **links)
{
  DIR *d;
  struct dirent *de;
  /* Not dup for the root: a dup shares the directory offset. */
  int fd = openat (dirfd, rel[0] ? rel : ".", O_RDONLY | O_DIRECTORY |
                   O_NOFOLLOW | O_CLOEXEC);

  if (fd == -1 || !(d = fdopendir (fd))) {
    if (fd >= 0)
      close (fd);
    pthread_mutex_lock (&s.lock);
    fail_locked ("scanning %s: %s", rel[0] ? rel : ".", strerror (errno));
    pthread_mutex_unlock (&s.lock);
    return -1;
  }
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL) {
    char path[SHARE_MAX_PATH + 1];
    struct stat st;

    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    if (snprintf (path, sizeof path, "%s%s%s", rel, rel[0] ? "/" : "",
                  de->d_name) >= (int) sizeof path)
      continue;
    if (fstatat (share_srcfd, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
      continue;
    if (S_ISDIR (st.st_mode)) {
      struct share_req r = { .type = SHARE_MKDIR, .path = path,
                             .a = st.st_mode & 07777 };
      if (!send_req (&r) || scan_dir (dirfd, path, links) == -1) {
        closedir (d);
        return -1;
      }
    }
    else if (S_ISLNK (st.st_mode)) {
      char target[SHARE_MAX_PATH + 1];
      ssize_t n = readlinkat (share_srcfd, path, target, sizeof target - 1);
      if (n < 0)
        continue;
      target[n] = '\0';
      struct share_req r = { .type = SHARE_SYMLINK, .path = path,
                             .path2 = target };
      send_req (&r);
    }
    else if (S_ISREG (st.st_mode)) {
      struct scan_link *l;
      bool linked = false;
      if (st.st_nlink > 1) {
        for (l = *links; l; l = l->next)
          if (l->ino == st.st_ino) {
            struct share_req r = { .type = SHARE_LINK, .path = l->path,
                                   .path2 = path };
            send_req (&r);
            linked = true;
            break;
          }
        if (!linked && (l = malloc (sizeof *l))) {
          l->ino = st.st_ino;
          l->path = strdup (path);
          l->next = *links;
          *links = l;
        }
      }
      if (linked)
        continue;
      struct node *n = session_node (st.st_ino, true);
      if (!n)
        continue;
      pthread_mutex_lock (&n->lock);
      n->watermark = 0;
      n->copy_done = st.st_size == 0;
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
                             .handle = n->handle, .a = st.st_mode & 07777,
                             .b = (uint64_t) st.st_size };
      send_req (&r);
      pthread_mutex_unlock (&n->lock);
      pthread_mutex_lock (&s.lock);
      s.files++;
      if (st.st_size == 0)
        s.files_done++;
      s.bytes_total += (uint64_t) st.st_size;
      pthread_mutex_unlock (&s.lock);
    }
    else
      log_warn ("share: %s: not a regular file, directory or symlink: "
                "not shared", path);
  }
  closedir (d);
  return 0;
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
    pthread_mutex_lock (&s.lock);
    if ((uint64_t) st.st_size > n->watermark)
      s.bytes_copied += (uint64_t) st.st_size - n->watermark;
    pthread_mutex_unlock (&s.lock);
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
  seq = send_req (&r);
  if (!seq) {
    pthread_mutex_unlock (&n->lock);
    return -1;
  }
  /* Holes before DATA were skipped: they are holes on the receiver. */
  uint64_t skipped = (uint64_t) data - n->watermark;
  n->watermark = (uint64_t) data + (uint64_t) got;
  pthread_mutex_lock (&s.lock);
  s.bytes_copied += skipped + (uint64_t) got;
  pthread_mutex_unlock (&s.lock);
 done:
  if (!more) {
    pthread_mutex_lock (&s.lock);
    s.files_done++;
    pthread_mutex_unlock (&s.lock);
    if (n->handle && n->opens == 0) {
      struct share_req c = { .type = SHARE_CLOSE, .handle = n->handle };
      n->handle = 0;
      send_req (&c);
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
    pthread_mutex_lock (&s.lock);
    n = s.nodes[b];
    pthread_mutex_unlock (&s.lock);
    /* Nodes are only ever added at the head of a chain, and never
     * freed during a session, so walking the chain is safe. */
    for (; n; n = n->next) {
      int r;
      do {
        /* Leave room in the pipe for mirrored guest writes. */
        pthread_mutex_lock (&s.lock);
        while (running_locked () && s.inflight_bytes > COPY_INFLIGHT_BYTES)
          pthread_cond_wait (&s.cond, &s.lock);
        bool run = running_locked ();
        pthread_mutex_unlock (&s.lock);
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
  pthread_mutex_lock (&s.lock);
  if (s.state == SESSION_COPYING) {
    s.state = SESSION_READY;
    log_info ("share: every file copied to %s", s.to);
  }
  pthread_cond_broadcast (&s.cond);
  pthread_mutex_unlock (&s.lock);
  return NULL;
}

/* ------------------------------------------------------------------ */

static void
free_nodes_locked (void)
{
  for (size_t b = 0; b < NODE_BUCKETS; ++b) {
    struct node *n = s.nodes[b];
    while (n) {
      struct node *next = n->next;
      pthread_mutex_destroy (&n->lock);
      free (n->fh);
      free (n);
      n = next;
    }
    s.nodes[b] = NULL;
  }
}

/* Wait for the session's threads and close its channel. */
static void
teardown (void)
{
  pthread_mutex_lock (&s.lock);
  __atomic_store_n (&s.active, false, __ATOMIC_RELEASE);
  if (s.chan)
    chan_shutdown (s.chan);
  pthread_cond_broadcast (&s.cond);
  pthread_mutex_unlock (&s.lock);
  if (s.copier_started)
    pthread_join (s.copier, NULL);
  if (s.reader_started)
    pthread_join (s.reader, NULL);
  s.copier_started = s.reader_started = false;
  pthread_mutex_lock (&s.lock);
  if (s.chan) {
    chan_close (s.chan);
    s.chan = NULL;
  }
  free_nodes_locked ();
  pthread_mutex_unlock (&s.lock);
}

int
session_start (const char *to, const char *psk, char *err, size_t errlen)
{
  struct chan_config cfg = share_chan_cfg;
  struct scan_link *links = NULL;
  int rc = -1;

  pthread_mutex_lock (&s.lock);
  if (running_locked ()) {
    snprintf (err, errlen, "a share session is already running (%s)",
              session_state_names[s.state]);
    pthread_mutex_unlock (&s.lock);
    return -1;
  }
  pthread_mutex_unlock (&s.lock);
  teardown ();

  cfg.psk_file = psk;
  log_clear_last_error ();
  struct channel *c = chan_connect (to, &cfg);
  if (!c) {
    snprintf (err, errlen, "cannot reach the receiver: %s",
              log_last_error ()[0] ? log_last_error () : to);
    return -1;
  }

  pthread_mutex_lock (&ns_lock);
  pthread_mutex_lock (&s.lock);
  s.chan = c;
  snprintf (s.to, sizeof s.to, "%s", to);
  s.why[0] = s.verify_why[0] = '\0';
  s.next_seq = 1;
  s.acked = 0;
  s.inflight_bytes = 0;
  s.next_handle = 0;
  s.files = s.files_done = s.bytes_total = s.bytes_copied = s.mirrored = 0;
  s.verify_fail = 0;
  s.final_seq = 0;
  s.started_ms = clock_ms ();
  s.state = SESSION_SCANNING;
  __atomic_store_n (&s.active, true, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&s.lock);

  if (pthread_create (&s.reader, NULL, reader_main, NULL) == 0)
    s.reader_started = true;
  if (!s.reader_started || scan_dir (share_srcfd, "", &links) == -1) {
    pthread_mutex_lock (&s.lock);
    fail_locked ("the tree scan failed");
    snprintf (err, errlen, "%s", s.why);
    pthread_mutex_unlock (&s.lock);
    goto out;
  }
  pthread_mutex_lock (&s.lock);
  if (s.state == SESSION_SCANNING)
    s.state = SESSION_COPYING;
  pthread_mutex_unlock (&s.lock);
  if (pthread_create (&s.copier, NULL, copier_main, NULL) == 0)
    s.copier_started = true;
  else {
    pthread_mutex_lock (&s.lock);
    fail_locked ("cannot start the copier");
    pthread_mutex_unlock (&s.lock);
    goto out;
  }
  log_info ("share: copying to %s", to);
  rc = 0;
 out:
  pthread_mutex_unlock (&ns_lock);
  while (links) {
    struct scan_link *next = links->next;
    free (links->path);
    free (links);
    links = next;
  }
  return rc;
}

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

/* Walk the source tree: WALK_ATTRS sends every entry's owner, mode and
 * times; WALK_VERIFY what the destination must hold, counting the
 * entries; WALK_WARM has both sides learn the files' digests early. */
static int
walk_dir (const char *rel, enum walk how, uint64_t *verified)
{
  bool verify = how != WALK_ATTRS;
  /* A fresh open, not dup: a dup shares the directory offset, and the
   * second walk would start at the end of the first.
   */
  int fd = openat (share_srcfd, rel[0] ? rel : ".", O_RDONLY | O_DIRECTORY |
                   O_NOFOLLOW | O_CLOEXEC);
  DIR *d;
  struct dirent *de;

  if (fd == -1 || !(d = fdopendir (fd))) {
    if (fd >= 0)
      close (fd);
    return -1;
  }
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL) {
    char path[SHARE_MAX_PATH + 1];
    struct stat st;

    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    if (snprintf (path, sizeof path, "%s%s%s", rel, rel[0] ? "/" : "",
                  de->d_name) >= (int) sizeof path ||
        fstatat (share_srcfd, path, &st, AT_SYMLINK_NOFOLLOW) == -1)
      continue;
    if (!S_ISDIR (st.st_mode) && !S_ISREG (st.st_mode) &&
        !S_ISLNK (st.st_mode))
      continue;
    if (S_ISDIR (st.st_mode) && walk_dir (path, how, verified) == -1) {
      closedir (d);
      return -1;
    }
    if (!verify) {
      struct share_req r = { .type = SHARE_CHOWN, .path = path,
                             .a = st.st_uid, .b = st.st_gid };
      send_req (&r);
      if (!S_ISLNK (st.st_mode)) {
        struct share_req m = { .type = SHARE_CHMOD, .path = path,
                               .a = st.st_mode & 07777 };
        send_req (&m);
      }
      struct share_req t = {
        .type = SHARE_UTIMENS, .path = path,
        .a = (uint64_t) st.st_atim.tv_sec * 1000000000 +
             (uint64_t) st.st_atim.tv_nsec,
        .b = (uint64_t) st.st_mtim.tv_sec * 1000000000 +
             (uint64_t) st.st_mtim.tv_nsec,
      };
      send_req (&t);
      continue;
    }
    struct share_verify v = {
      .kind = htobe32 (S_ISREG (st.st_mode) ? SHARE_KIND_FILE
                       : S_ISDIR (st.st_mode) ? SHARE_KIND_DIR
                       : SHARE_KIND_LINK),
      .mode = htobe32 (st.st_mode & 07777),
      .size = htobe64 ((uint64_t) st.st_size),
      .mtime_ns = (int64_t) htobe64 ((uint64_t) st.st_mtim.tv_sec *
                                     1000000000 +
                                     (uint64_t) st.st_mtim.tv_nsec),
    };
    if (how == WALK_WARM && !S_ISREG (st.st_mode))
      continue;
    if (S_ISREG (st.st_mode)) {
      CLEANUP_CLOSE int f = openat (share_srcfd, path, O_RDONLY | O_NOFOLLOW |
                                    O_CLOEXEC);
      if (f >= 0)
        file_digest (f, &st, v.sha256);
    }
    else if (S_ISLNK (st.st_mode)) {
      char target[SHARE_MAX_PATH + 1];
      ssize_t n = readlinkat (share_srcfd, path, target, sizeof target);
      if (n >= 0)
        gnutls_hash_fast (GNUTLS_DIG_SHA256, target, (size_t) n, v.sha256);
    }
    struct share_req r = { .type = SHARE_VERIFY, .path = path,
                           .c = how == WALK_WARM ? SHARE_VERIFY_WARM : 0,
                           .data = (const uint8_t *) &v,
                           .data_len = sizeof v };
    if (!send_req (&r))
      break;
    if (how == WALK_VERIFY)
      (*verified)++;
  }
  closedir (d);
  return 0;
}

/* Wait until every request sent so far has its reply. */
static void
drain (void)
{
  pthread_mutex_lock (&s.lock);
  uint64_t last = s.next_seq - 1;
  pthread_mutex_unlock (&s.lock);
  session_wait (last);
}

int
session_warm (char *err, size_t errlen)
{
  uint64_t ignored = 0;

  pthread_mutex_lock (&s.lock);
  if (!running_locked ()) {
    snprintf (err, errlen, "no share session is running");
    pthread_mutex_unlock (&s.lock);
    return -1;
  }
  pthread_mutex_unlock (&s.lock);
  /* No namespace lock: a warm-up only primes digests, and whatever
   * changes meanwhile is checked again at commit. */
  struct share_req sync = { .type = SHARE_FSYNC };
  if (walk_dir ("", WALK_WARM, &ignored) == -1) {
    snprintf (err, errlen, "cannot walk the source tree");
    return -1;
  }
  /* Flush what was copied so far, so the commit's sync is small. */
  send_req (&sync);
  drain ();
  pthread_mutex_lock (&s.lock);
  bool ok = running_locked ();
  if (!ok)
    snprintf (err, errlen, "the share failed: %s", s.why);
  pthread_mutex_unlock (&s.lock);
  return ok ? 0 : -1;
}

int
session_commit (char *err, size_t errlen)
{
  pthread_mutex_lock (&s.lock);
  if (!running_locked ()) {
    snprintf (err, errlen, s.state == SESSION_FAILED
              ? "the share failed: %s" : "no share session is running%s",
              s.state == SESSION_FAILED ? s.why : "");
    pthread_mutex_unlock (&s.lock);
    return -1;
  }
  /* Terminates: the copier finishes or the session fails. */
  while (s.state == SESSION_COPYING || s.state == SESSION_SCANNING)
    pthread_cond_wait (&s.cond, &s.lock);
  if (s.state != SESSION_READY) {
    snprintf (err, errlen, "the share failed: %s", s.why);
    pthread_mutex_unlock (&s.lock);
    return -1;
  }
  s.state = SESSION_COMMITTING;
  pthread_mutex_unlock (&s.lock);

  /* No namespace change from here to the end. */
  pthread_mutex_lock (&ns_lock);
  struct share_req sync = { .type = SHARE_FSYNC };
  uint64_t entries = 0;
  if (walk_dir ("", WALK_ATTRS, NULL) == -1 || !send_req (&sync) ||
      walk_dir ("", WALK_VERIFY, &entries) == -1) {
    pthread_mutex_lock (&s.lock);
    fail_locked ("commit: cannot walk the source tree");
    pthread_mutex_unlock (&s.lock);
  }
  drain ();
  pthread_mutex_lock (&s.lock);
  if (s.state == SESSION_COMMITTING && s.verify_fail) {
    fail_locked ("verification failed for %" PRIu64 " entr%s: %s",
                 s.verify_fail, s.verify_fail == 1 ? "y" : "ies",
                 s.verify_why);
  }
  bool ok = s.state == SESSION_COMMITTING;
  pthread_mutex_unlock (&s.lock);
  if (ok) {
    /* The root's own mode and times go with the commit. */
    struct stat root;
    struct share_req c = { .type = SHARE_COMMIT, .a = entries };
    if (fstat (share_srcfd, &root) == 0) {
      c.c = root.st_mode & 07777;
      c.b = (uint64_t) root.st_mtim.tv_sec * 1000000000 +
            (uint64_t) root.st_mtim.tv_nsec;
    }
    session_wait (send_req (&c));
  }
  pthread_mutex_lock (&s.lock);
  /* The receiver checks the entry count again: a refusal arrives as a
   * failed VERIFY would. */
  if (s.state == SESSION_COMMITTING && s.verify_fail)
    fail_locked ("the receiver refused the commit: %s", s.verify_why);
  if (s.state == SESSION_COMMITTING) {
    s.state = SESSION_COMMITTED;
    /* The directory belongs to the destination now: writes here would
     * be lost to it. */
    __atomic_store_n (&share_frozen, true, __ATOMIC_RELEASE);
    __atomic_store_n (&s.active, false, __ATOMIC_RELEASE);
    log_info ("share: committed to %s", s.to);
  }
  ok = s.state == SESSION_COMMITTED;
  if (!ok)
    snprintf (err, errlen, "%s", s.why);
  pthread_mutex_unlock (&s.lock);
  pthread_mutex_unlock (&ns_lock);
  teardown ();
  return ok ? 0 : -1;
}

int
session_abort (char *err, size_t errlen)
{
  pthread_mutex_lock (&s.lock);
  bool running = running_locked ();
  pthread_mutex_unlock (&s.lock);
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
  session_wait (send_req (&a));
  pthread_mutex_lock (&s.lock);
  s.state = SESSION_ABORTED;
  __atomic_store_n (&s.active, false, __ATOMIC_RELEASE);
  pthread_cond_broadcast (&s.cond);
  pthread_mutex_unlock (&s.lock);
  teardown ();
  log_info ("share: aborted");
  return 0;
}

json_t *
session_status (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s.lock);
  double secs = s.started_ms ? (double) (clock_ms () - s.started_ms) / 1000
    : 0;

  return json_pack ("{s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f,"
                    " s:s}",
                    "ok", 1, "state", session_state_names[s.state],
                    "to", s.to,
                    "files", (json_int_t) s.files,
                    "files_copied", (json_int_t) s.files_done,
                    "bytes", (json_int_t) s.bytes_total,
                    "bytes_copied", (json_int_t) s.bytes_copied,
                    "mirrored_writes",
                    (json_int_t) __atomic_load_n (&s.mirrored,
                                                  __ATOMIC_RELAXED),
                    "in_flight", (json_int_t) (s.next_seq - 1 - s.acked),
                    "elapsed", secs, "error", s.why);
}

void
session_shutdown (void)
{
  teardown ();
}
