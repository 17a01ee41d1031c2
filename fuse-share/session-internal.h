/* fuse-share: what the source side's files share of a session
 * (session.c, commit.c) - not for the FUSE operations or the control
 * socket, which use session.h.
 */
#ifndef HANDOFF_SHARE_SESSION_INTERNAL_H
#define HANDOFF_SHARE_SESSION_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "ratelimit.h"
#include "session.h"
#include "share-proto.h"

#define NODE_BUCKETS 4096
#define MAX_INFLIGHT 512                /* Messages without a reply. */
#define MAX_RECEIVERS SHARE_MAX_RECEIVERS

/* One receiver of the session (links.c): the same ordered stream goes
 * to each. */
struct share_link {
  char to[256];
  struct channel *chan;
  uint64_t acked;               /* Its last answered request (lock). */
  bool lost;                    /* Dropped; the others go on (lock). */
  char why[512];                /* Why it was lost (lock). */
  uint64_t verify_fail;         /* VERIFYs it found different (lock). */
  char verify_why[512];         /* lock */
  pthread_t reader;
  bool reader_started;
};

/* The one session of this process. */
struct share_session {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  enum session_state state;     /* lock */
  bool active;                  /* Mirroring on (lock; read unlocked as a
                                   hint by session_active). */
  char why[1024];               /* Failure reason (lock). */
  struct share_link links[MAX_RECEIVERS];
  size_t nlinks;                /* Set at start, before any thread. */
  uint64_t next_seq;            /* lock */
  uint64_t acked;               /* Answered by every link left (lock). */
  uint32_t inflight_len[MAX_INFLIGHT];  /* Data bytes per seq (lock). */
  uint64_t inflight_bytes;      /* lock */
  struct ratelimit copy_limit;  /* The copier's cap; mirrored writes are
                                   not held back (lock). */
  struct node *nodes[NODE_BUCKETS];     /* lock */
  uint64_t next_handle;         /* lock */
  uint64_t files, files_done, bytes_total, bytes_copied, mirrored;
  uint64_t final_seq;           /* COMMIT or ABORT sent, or 0 (lock). */
  pthread_t copier;
  bool copier_started;
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
/* Send R to every link left; its sequence number is assigned here.
 * Returns it, or 0 if the session cannot send. */
extern uint64_t session_send_req (struct share_req *r);

/* The links (links.c). */
/* Connect to each of N receivers (sess.links, sess.nlinks).  One that
 * cannot be reached is lost from the start; -1 (err) if none can. */
extern int links_connect (const struct share_receiver *rcv, size_t n,
                          char *err, size_t errlen);
extern int links_start_readers (void);
/* sess.lock held: link L failed (the reason given): it is shut down and
 * the others go on; the last one fails the session. */
extern void link_lose_locked (struct share_link *l, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
extern size_t links_alive_locked (void);
extern void links_shutdown_locked (void);
extern void links_join (void);
extern void links_close (void);
/* sess.lock held: the addresses of the links left, comma-separated. */
extern const char *links_names_locked (char *buf, size_t len);
/* sess.lock held: one object per link (to, state, acked, error). */
extern json_t *links_status_locked (void);
/* Wait for the session's threads and close its channel. */
extern void session_teardown (void);

#endif /* HANDOFF_SHARE_SESSION_INTERNAL_H */
