/* nbd-mirror: the mirror engine's types, and its sessions (mirror.c).
 *
 * NOTES ON THE THREAD MODEL
 *
 * One global struct mirror per nbdkit process (one disk).  Threads:
 *  - nbdkit's worker threads run guest requests (filter.c), calling
 *    mirror_write_begin / mirror_write_end around local I/O;
 *  - the control thread (control.c) accepts clients, one thread each;
 *  - each destination has one worker thread per NBD connection
 *    (dest.c): it takes chunks, reads them, submits asynchronous
 *    writes, and drives libnbd's state machine.
 *
 * mirror.lock protects every field marked so, the chunk map and every
 * destination's track and counters.  mirror.cond is broadcast on any
 * change a waiter might want (chunks copied, destination state, session
 * end).  Lock order: mirror.lock is a leaf with respect to libnbd: no
 * nbd_* call is ever made while holding it, because libnbd runs our
 * completion callbacks (which take mirror.lock) under its handle lock.
 */
#ifndef HANDOFF_MIRROR_H
#define HANDOFF_MIRROR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <libnbd.h>

#include <nbdkit-filter.h>

#include "chunkmap.h"
#include "mirror-proto.h"
#include "ratelimit.h"

#define MIRROR_MAX_CONNS 16

enum mirror_state {
  MIRROR_IDLE,
  MIRROR_COPYING,
  MIRROR_READY,
  MIRROR_COMPLETED,
  MIRROR_FAILED,
  MIRROR_CANCELLED,
};

enum mirror_mode {
  MIRROR_MODE_ACTIVE,
  MIRROR_MODE_BACKGROUND,
};

enum mirror_op { MIRROR_OP_WRITE, MIRROR_OP_ZERO, MIRROR_OP_FLUSH };

enum dest_state {
  DEST_CONNECTING,
  DEST_COPYING,
  DEST_READY,
  DEST_COMPLETED,
  DEST_FAILED,
  DEST_CANCELLED,
};

extern const char *const mirror_state_names[];
extern const char *const dest_state_names[];

struct mirror_config {
  const char *control;          /* Control socket path. */
  uint32_t chunk_size;
  uint32_t request_size;        /* Largest copy write. */
  unsigned max_inflight;        /* Copy requests in flight per connection. */
  unsigned connections;         /* Copy connections per destination. */
  unsigned pool_size;           /* Guest connections per destination. */
  const char *tls_psk;          /* PSK file for nbds:// destinations. */
  int dest_timeout_ms;          /* A destination request older fails it. */
  unsigned reply_poll_us;       /* Poll for a guest reply this long before
                                   sleeping (dest_pool_wait). */
};

struct dest;

/* One NBD connection to a destination and the thread driving it. */
struct conn {
  struct dest *d;
  unsigned index;
  struct nbd_handle *nbd;       /* Owned by the worker thread. */
  int wake_fd;                  /* eventfd: "look again". */
  pthread_t thread;
  bool thread_started;
  unsigned copies;              /* Copy runs in flight (mirror.lock). */
  unsigned cmds;                /* NBD commands in flight (mirror.lock). */
  int64_t progress_ms;          /* Last submit-from-idle or completion
                                   (mirror.lock). */
  bool idle;                    /* Found nothing to copy (mirror.lock). */
  int64_t throttle_ms;          /* Held back by the copy cap for this
                                   long (mirror.lock). */
};

struct mirror;
struct pool_handle;

struct dest {
  struct mirror *m;             /* The session it belongs to. */
  char *uri;
  enum dest_state state;        /* mirror.lock */
  atomic_bool gone;             /* Left the mirror (failed or cancelled):
                                   read without the lock by a guest
                                   write waiting for its reply. */
  char error[512];              /* Why it failed (mirror.lock). */
  struct chunk_track track;     /* mirror.lock */
  unsigned nconn;
  struct conn conn[MIRROR_MAX_CONNS];
  bool can_fua, can_zero, can_flush, can_block_status, multi_conn;
  uint64_t sent;                /* Bytes the copier wrote (mirror.lock). */
  uint64_t mirrored;            /* Guest bytes mirrored (mirror.lock). */
  unsigned pending;             /* Guest commands outstanding (mirror.lock). */
  unsigned rr;                  /* Round robin over conns (mirror.lock). */
  unsigned connected;           /* Conns connected (mirror.lock). */
  bool reached;                 /* Was connected and checked once, even
                                   if it failed since (mirror.lock). */
  bool tls;
  char *psk_file;               /* For nbds:// without ?tls-psk-file. */
  char *identity;               /* TLS user name when the URI has none. */
  struct pool_handle *pool;     /* Guest handles (array of pool_size). */
  unsigned npool;               /* Connected (mirror.lock). */
  unsigned pool_waiters;        /* Threads waiting for one (mirror.lock). */
};

struct mirror {
  struct mirror_config cfg;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  atomic_bool active;           /* Fast path for guest I/O. */

  nbdkit_backend *backend;      /* From .after_fork. */
  nbdkit_next *ctx;             /* Shared plugin context (copier, verify). */
  bool ctx_parallel;            /* Plugin allows parallel requests. */
  pthread_mutex_t ctx_lock;     /* Serialises ctx when not parallel. */
  uint64_t size;                /* Disk size (from ctx). */
  bool ctx_can_extents, ctx_can_zero;

  /* The session: everything below is protected by lock. */
  enum mirror_state state;
  enum mirror_mode mode;
  bool paused;
  bool stopping;                /* Workers must wind down. */
  struct chunkmap map;
  struct dest *dests[MIRROR_MAX_DESTS];
  size_t ndests;
  int64_t started_ms;
  int64_t ready_ms;             /* When every destination first held
                                   every chunk, or 0. */
  bool allocated;               /* map and dests exist. */
  bool reaping;                 /* session_reap running. */
  unsigned guest_inflight;      /* Requests between begin and end. */
  uint64_t guest_writes, guest_bytes, mirrored_writes;
  uint64_t total_sent;
  /* The background copy's cap over every destination (a migration's
   * --bandwidth); guest writes are never held back by it. */
  struct ratelimit copy_limit;
  char last_error[1024];        /* Why the last session failed. */
  json_t *last_dests;           /* Destinations of the last session, as
                                   status shows them, once reaped. */
  /* Rates, updated once a second by the control thread. */
  double copy_rate, write_rate;
  uint64_t rate_sent, rate_guest;
  int64_t rate_ms;
};

/* The one mirror of this nbdkit process (mirror.c); the files below it
 * (state, source, connect, copier, pool, dest, verify) are handed a
 * pointer instead of reaching for it. */
extern struct mirror mirror;

/* Sessions (mirror.c). */
extern int mirror_start (const char *const *uris, size_t n,
                         enum mirror_mode mode, uint64_t copy_rate_limit,
                         char *err, size_t errlen);
extern int mirror_complete (bool verify, int64_t timeout_ms,
                            uint64_t *verified_r, char *err, size_t errlen);
extern int mirror_cancel (const char *uri, char *err, size_t errlen);
extern int mirror_pause (bool pause, char *err, size_t errlen);
extern void mirror_shutdown (void);
extern void mirror_update_rates (void);
/* Free a finished session's threads and memory (no-op otherwise). */
extern void mirror_reap (void);
extern void mirror_init (void);

/* Guest I/O hooks (mirror.c).  A write first calls begin (-1: refuse
 * the request with errno), then does its local I/O, then calls end
 * (a NULL request is fine). */
struct mirror_req;
extern int mirror_write_begin (enum mirror_op op, const void *buf,
                               uint32_t count, uint64_t offset,
                               uint32_t flags, struct mirror_req **r_out);
/* EXACT: the local disk now holds exactly what was sent (false after a
 * failed local write or an advisory trim: the range is copied again). */
extern void mirror_write_end (struct mirror_req *r, bool exact);
extern void mirror_flush (void);

#endif /* HANDOFF_MIRROR_H */
