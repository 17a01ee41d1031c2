/* fuse-share: the source side of a share session (session.c), used by
 * the FUSE operations (mount.c) and the control socket (control.c).
 *
 * NOTES ON THE THREAD MODEL
 *
 * FUSE runs its operations on many threads.  A session adds a reply
 * reader thread and a copier thread.  Locks, in the order they nest:
 *
 *   ns_lock     held by every namespace change (mkdir, rename, unlink,
 *               ...) across the local change and the send of its
 *               mirror, so the receiver sees them in the source's order;
 *               held by the tree scan and by commit.
 *   node->lock  held by a write, truncate or copy of one file across the
 *               local I/O and the send, so a copied chunk and a mirrored
 *               write of the same file reach the receiver in order.
 *   s.lock      the session's counters, state, node table, sequence
 *               numbers; send_lock (in the channel) orders frames.
 *
 * Every message goes down one ordered channel and gets one reply, in
 * order; a writer waits for the reply to its own message (the mirror is
 * synchronous) without holding any lock.
 */
#ifndef HANDOFF_SHARE_SESSION_H
#define HANDOFF_SHARE_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

enum session_state {
  SESSION_IDLE,
  SESSION_SCANNING,
  SESSION_COPYING,
  SESSION_READY,                /* Everything copied; mirroring. */
  SESSION_COMMITTING,
  SESSION_COMMITTED,
  SESSION_FAILED,
  SESSION_ABORTED,
};

extern const char *const session_state_names[];

/* One regular file the session knows. */
struct node {
  ino_t ino;
  pthread_mutex_t lock;
  uint64_t handle;              /* Destination handle, or 0 (lock). */
  uint64_t watermark;           /* Bytes copied (lock). */
  bool copy_done;               /* Every later write is mirrored (lock). */
  unsigned opens;               /* Guest opens (lock). */
  struct file_handle *fh;       /* To reopen it whatever its name. */
  struct node *next;            /* Hash chain (s.lock). */
};

/* Set once at mount time. */
extern int share_srcfd;          /* The source directory. */
extern int share_timeout_ms;

/* Session control (control.c calls these). */
#define SHARE_MAX_RECEIVERS 4    /* As many as a VM's destinations. */

/* One receiver: its address and the key file (NULL: none). */
struct share_receiver {
  const char *to;
  const char *psk;
};
/* Start copying to N receivers at once (one stream, sent to each).
 * COPY_RATE_LIMIT caps the copy of the tree (bytes/s; 0: none). */
extern int session_start (const struct share_receiver *rcv, size_t n,
                          uint64_t copy_rate_limit, char *err, size_t errlen);
/* Drop receiver TO from a session with several; the others go on. */
extern int session_drop (const char *to, char *err, size_t errlen);
extern int session_commit (char *err, size_t errlen);
/* After a commit the mount refuses changes (EROFS) until an abort. */
extern bool share_frozen;
/* Every change holds the read side across its local change and its
 * mirror; a commit holds the write side (mount.c, commit.c). */
extern pthread_rwlock_t share_gate;
/* Before a commit, while the VM runs: both sides compute the digests
 * of every file, so the commit re-reads only what changed since. */
extern int session_warm (char *err, size_t errlen);
extern int session_abort (char *err, size_t errlen);
extern json_t *session_status (void);
extern void session_shutdown (void);

/* Hooks for the FUSE operations.  All are cheap when no session runs. */
extern bool session_active (void);
/* A namespace change: call begin (takes ns_lock), do the local change,
 * then end with its result and the mirror request (NULL: nothing to
 * mirror).  end releases ns_lock and waits for the receiver. */
struct share_req;
extern void session_ns_begin (void);
extern void session_ns_end (int local_result, struct share_req *mirror);
/* Regular files. */
extern struct node *session_node (ino_t ino, bool create);
/* A file created by the guest (call under session_ns_begin; wait for
 * the returned sequence number after session_ns_end). */
extern uint64_t session_node_created (ino_t ino, const char *path,
                                      mode_t mode);
extern void session_node_opened (ino_t ino, bool truncated,
                                 const char *path);
extern void session_node_released (ino_t ino);
/* Called with node->lock held after a local write of [off, +len) that
 * succeeded; returns the sequence number to wait for (0: none). */
extern uint64_t session_write_locked (struct node *n, const char *path,
                                      const void *buf, size_t len,
                                      uint64_t off);
extern uint64_t session_truncate_locked (struct node *n, const char *path,
                                         uint64_t size);
extern uint64_t session_fallocate_locked (struct node *n, const char *path,
                                          uint32_t mode, uint64_t off,
                                          uint64_t len);
/* Send a request in order (its sequence number, or 0). */
extern uint64_t session_send (struct share_req *r);
/* Wait for the reply to SEQ (0: nothing to wait for), at most the
 * session timeout: a receiver that does not answer fails the session,
 * never the caller. */
extern void session_wait (uint64_t seq);

#endif /* HANDOFF_SHARE_SESSION_H */
