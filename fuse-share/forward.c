/* fuse-share: a session passed on to several receivers
 * (handoff-share forward; forward.h).
 *
 * A stream proxy (handoff migrate --via) takes the source's one share
 * session and sends it on to every destination's receiver, so that the
 * source's uplink carries the directory once.  To the source this is
 * one receiver; to the destinations it is the source.  Every request
 * goes on as it came, in order, through the session's links
 * (links.c): the same stream to each receiver, a receiver that fails
 * is lost and the others go on, a request counts as answered once
 * every receiver left answered it.  The source's request is answered
 * then, so a write the guest waits for has reached every destination.
 *
 * VERIFY: a receiver whose copy differs is lost when the COMMIT comes
 * (as the source's own session does), not reported upstream; only if
 * none is left does the COMMIT get the difference as its answer.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "clock.h"
#include "forward.h"
#include "log.h"
#include "session-internal.h"
#include "share-proto.h"

/* The requests passed on, waiting for their answer: the links' seq
 * and the source's, in order. */
struct passed {
  uint64_t down, up;
  uint16_t type;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct passed q[MAX_INFLIGHT];
  size_t head, n;
  bool closed;                  /* No more requests come. */
} fq = {
  .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
};

static void close_queue (void);

static void
push (uint64_t down, uint64_t up, uint16_t type)
{
  pthread_mutex_lock (&fq.lock);
  /* Full while the source takes its answers slowly; after the replier
   * ended nothing is answered any more. */
  while (fq.n == MAX_INFLIGHT && !fq.closed)
    pthread_cond_wait (&fq.cond, &fq.lock);
  if (fq.closed) {
    pthread_mutex_unlock (&fq.lock);
    return;
  }
  fq.q[(fq.head + fq.n) % MAX_INFLIGHT] = (struct passed) {
    .down = down, .up = up, .type = type,
  };
  fq.n++;
  pthread_cond_broadcast (&fq.cond);
  pthread_mutex_unlock (&fq.lock);
}

/* The next request passed on, or false once none is left. */
static bool
pop (struct passed *p)
{
  bool ok;

  pthread_mutex_lock (&fq.lock);
  while (fq.n == 0 && !fq.closed)
    pthread_cond_wait (&fq.cond, &fq.lock);
  ok = fq.n > 0;
  if (ok) {
    *p = fq.q[fq.head];
    fq.head = (fq.head + 1) % MAX_INFLIGHT;
    fq.n--;
    pthread_cond_broadcast (&fq.cond);
  }
  pthread_mutex_unlock (&fq.lock);
  return ok;
}

static void
close_queue (void)
{
  pthread_mutex_lock (&fq.lock);
  fq.closed = true;
  pthread_cond_broadcast (&fq.cond);
  pthread_mutex_unlock (&fq.lock);
}

/* sess.lock held: receivers whose copy differs leave (WHAT: when). */
static void
lose_differing_locked (const char *what)
{
  for (size_t i = 0; i < sess.nlinks; ++i) {
    struct share_link *l = &sess.links[i];
    if (!l->lost && l->verify_fail && links_alive_locked () > 1)
      link_lose_locked (l, "%s: %" PRIu64 " entr%s differ on %s: %s", what,
                        l->verify_fail, l->verify_fail == 1 ? "y" : "ies",
                        l->to, l->verify_why);
  }
}

/* The answer to P for the source, into TEXT: 0 or an errno. */
static int
answer_of (const struct passed *p, char *text, size_t len)
{
  int e = 0;

  session_wait (p->down);
  pthread_mutex_lock (&sess.lock);
  if (p->type == SHARE_COMMIT)
    lose_differing_locked ("the commit");
  if (!session_running_locked () || sess.acked < p->down) {
    snprintf (text, len, "%s", sess.why[0] ? sess.why
              : "no receiver answered");
    e = EIO;
  }
  else if (p->type == SHARE_COMMIT) {
    /* The last receiver left: its difference is the answer. */
    for (size_t i = 0; i < sess.nlinks && !e; ++i) {
      struct share_link *l = &sess.links[i];
      if (!l->lost && l->verify_fail) {
        snprintf (text, len, "%s", l->verify_why);
        e = EILSEQ;
      }
    }
    if (!e)
      sess.state = SESSION_COMMITTED;
  }
  pthread_mutex_unlock (&sess.lock);
  return e;
}

static void *
replier_main (void *arg)
{
  struct channel *up = arg;
  uint8_t reply[sizeof (struct share_reply) + SHARE_MAX_REPLY_TEXT];
  char text[SHARE_MAX_REPLY_TEXT + 1];
  struct passed p;

  /* Terminates: the queue closes and empties, or an answer ends it. */
  while (pop (&p)) {
    int e = answer_of (&p, text, sizeof text);
    size_t len = share_encode_reply (p.up, e, e ? text : NULL, reply,
                                     sizeof reply);
    if (chan_send (up, reply, len) == -1 || e == EIO ||
        p.type == SHARE_COMMIT || p.type == SHARE_ABORT)
      break;
  }
  /* Nothing more goes upstream: the reader stops too. */
  close_queue ();
  chan_shutdown (up);
  return NULL;
}

int
forward_start (const struct share_receiver *rcv, size_t n, char *err,
               size_t errlen)
{
  if (links_connect (rcv, n, err, errlen) == -1)
    return -1;
  pthread_mutex_lock (&sess.lock);
  sess.why[0] = '\0';
  sess.next_seq = 1;
  sess.acked = 0;
  sess.final_seq = 0;
  sess.started_ms = clock_ms ();
  sess.state = SESSION_COPYING;
  pthread_mutex_unlock (&sess.lock);
  if (links_start_readers () == -1) {
    snprintf (err, errlen, "cannot start the receivers' readers");
    return -1;
  }
  return 0;
}

int
forward_session (struct channel *up, char *err, size_t errlen)
{
  char pathbuf[2 * (SHARE_MAX_PATH + 1)];
  pthread_t replier;
  int rv = -1;

  if (pthread_create (&replier, NULL, replier_main, up) != 0) {
    snprintf (err, errlen, "cannot start the replier");
    return -1;
  }
  /* Terminates: the source's stream ends or breaks, a COMMIT or ABORT
   * passes, or the receivers are all gone. */
  for (;;) {
    void *buf = NULL;
    struct share_req r;
    ssize_t n = chan_recv_timeout (up, &buf, -1);
    uint64_t up_seq, down;

    if (n <= 0) {
      snprintf (err, errlen, "the source %s", n == 0
                ? "closed the session" : "session broke");
      break;
    }
    if (share_decode (buf, (size_t) n, &r, pathbuf, err, errlen) == -1) {
      free (buf);
      break;
    }
    up_seq = r.seq;
    down = session_send_req (&r);
    free (buf);
    if (down == 0) {
      pthread_mutex_lock (&sess.lock);
      snprintf (err, errlen, "%s", sess.why[0] ? sess.why
                : "every receiver is gone");
      pthread_mutex_unlock (&sess.lock);
      break;
    }
    push (down, up_seq, r.type);
    if (r.type == SHARE_COMMIT || r.type == SHARE_ABORT) {
      rv = 0;
      break;
    }
  }
  close_queue ();
  pthread_join (replier, NULL);
  pthread_mutex_lock (&sess.lock);
  if (rv == 0 && sess.state != SESSION_COMMITTED)
    sess.state = SESSION_ABORTED;
  if (rv == -1)
    session_fail_locked ("%s", err);
  links_shutdown_locked ();
  pthread_mutex_unlock (&sess.lock);
  links_join ();
  links_close ();
  return rv;
}
