/* fuse-share: the receiver's state and operations (receiver.c). */
#ifndef HANDOFF_SHARE_RECEIVER_H
#define HANDOFF_SHARE_RECEIVER_H

#include <fcntl.h>
#include <stdint.h>

#include "share-proto.h"

enum receiver_state {
  RECEIVER_WAITING,             /* No source yet. */
  RECEIVER_RECEIVING,
  RECEIVER_DISCONNECTED,        /* The source went away: still partial. */
  RECEIVER_COMMITTED,
  RECEIVER_ABORTED,
};

/* Digests of files already verified, by inode: the receiver is the
 * only writer under its root, so it knows when one goes stale. */
#define RECEIVER_DIGEST_BUCKETS 1024
struct receiver_digest {
  ino_t ino;
  uint8_t sum[32];
  struct receiver_digest *next;
};

/* What changed since the last sync, by inode, with a handle to reopen
 * it: a sync flushes these, not the whole filesystem (which may hold
 * gigabytes of unrelated writes, such as the VM's disk being copied). */
struct receiver_dirty {
  ino_t ino;
  struct file_handle *fh;
  struct receiver_dirty *next;
};

struct receiver {
  int rootfd;                   /* The partial directory. */
  char *root;                   /* Its name once committed. */
  char *partial;                /* Its name until then. */
  int *fds;                     /* Handle -> fd, or -1. */
  unsigned nopen;
  uint64_t next_seq;
  uint64_t ops, bytes;
  uint64_t verified;             /* VERIFY requests that matched. */
  struct receiver_digest **digests;
  struct receiver_dirty **dirty;
  size_t ndirty;
  enum receiver_state state;
};

/* Create ROOT.handoff-partial (ROOT must not exist). */
extern int receiver_open (struct receiver *rv, const char *root,
                          char *err, size_t errlen);
/* Apply one request.  Returns 0, a positive errno (the request failed;
 * TEXT says why; the session goes on), or a negative errno (the session
 * is broken: stop). */
extern int receiver_apply (struct receiver *rv, const struct share_req *r,
                           char *text, size_t textlen);
extern int receiver_abort (struct receiver *rv);
extern void receiver_close (struct receiver *rv);
/* Remove ROOT.handoff-partial left by an earlier receiver. */
extern int receiver_remove_partial (const char *root, char *err,
                                    size_t errlen);

#endif /* HANDOFF_SHARE_RECEIVER_H */
