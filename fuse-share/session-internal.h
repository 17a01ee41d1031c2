/* fuse-share: what the source side's files share of a session
 * (session.c, commit.c) - not for the FUSE operations or the control
 * socket, which use session.h.
 */
#ifndef HANDOFF_SHARE_SESSION_INTERNAL_H
#define HANDOFF_SHARE_SESSION_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ratelimit.h"
#include "session.h"
#include "share-proto.h"

#define NODE_BUCKETS 4096
#define MAX_INFLIGHT 512                /* Messages without a reply. */

/* The one session of this process. */
struct share_session {
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
  struct ratelimit copy_limit;  /* The copier's cap; mirrored writes are
                                   not held back (lock). */
  struct node *nodes[NODE_BUCKETS];     /* lock */
  uint64_t next_handle;         /* lock */
  uint64_t files, files_done, bytes_total, bytes_copied, mirrored;
  uint64_t verify_fail;         /* lock */
  uint64_t final_seq;           /* COMMIT or ABORT sent, or 0 (lock). */
  char verify_why[512];         /* lock */
  pthread_t reader, copier;
  bool reader_started, copier_started;
  int64_t started_ms;
};

extern struct share_session sess;

/* Held by every namespace change across the local change and the send
 * of its mirror, by the tree scan and by commit (session.h). */
extern pthread_mutex_t session_ns_lock;

/* sess.lock held: is a session scanning, copying, ready or
 * committing? */
extern bool session_running_locked (void);
/* sess.lock held: the session fails (once), for the reason given. */
extern void session_fail_locked (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));
/* Send R; its sequence number is assigned here.  Returns it, or 0 if
 * the session cannot send. */
extern uint64_t session_send_req (struct share_req *r);
/* Wait for the session's threads and close its channel. */
extern void session_teardown (void);

#endif /* HANDOFF_SHARE_SESSION_INTERNAL_H */
