/* fuse-share: a session's receivers (its links) and the one ordered
 * stream that goes to each of them.
 *
 * A session sends to one receiver, or to several at once when a VM is
 * copied to several destinations.  Every request gets one sequence
 * number and the same bytes go to every link, in the same order, so
 * each receiver applies the same stream; each link has its own reply
 * reader and its own count of answered requests.  A request counts as
 * answered (sess.acked) once every link still in the session answered
 * it: a writer that waits for its mirror waits for all of them.
 *
 * A link that fails - its connection breaks, it refuses a request, it
 * does not answer within the session timeout, its copy does not verify
 * - is lost: it is shut down and the others go on untouched.  The
 * session fails only when its last link is lost, so with one receiver
 * every failure fails the session, as it always did.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "session-internal.h"
#include "share-proto.h"

/* Orders frames on the wire with their sequence numbers.  Held across
 * the (possibly blocking) sends, so never together with sess.lock
 * there: the reply readers need sess.lock to make room. */
static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct chan_config share_chan_cfg = {
  .service = CHAN_SERVICE_SHARE,
  .version_min = SHARE_PROTO_VERSION,
  .version_max = SHARE_PROTO_VERSION,
  .max_frame = SHARE_MAX_FRAME,
  .timeout_ms = 30000,
};

void
session_fail_locked (const char *fmt, ...)
{
  va_list ap;

  if (!session_running_locked ())
    return;
  va_start (ap, fmt);
  vsnprintf (sess.why, sizeof sess.why, fmt, ap);
  va_end (ap);
  sess.state = SESSION_FAILED;
  __atomic_store_n (&sess.active, false, __ATOMIC_RELEASE);
  log_error ("share: %s", sess.why);
  for (size_t i = 0; i < sess.nlinks; ++i)
    if (sess.links[i].chan)
      chan_shutdown (sess.links[i].chan);
  pthread_cond_broadcast (&sess.cond);
}

/* sess.acked is the last request every remaining link answered; the
 * bytes of the requests it passes leave the pipe. */
static void
recount_acked_locked (void)
{
  uint64_t low = UINT64_MAX;

  for (size_t i = 0; i < sess.nlinks; ++i)
    if (!sess.links[i].lost && sess.links[i].acked < low)
      low = sess.links[i].acked;
  if (low == UINT64_MAX)
    return;
  for (uint64_t s = sess.acked + 1; s <= low; ++s)
    sess.inflight_bytes -= sess.inflight_len[s % MAX_INFLIGHT];
  if (low > sess.acked)
    sess.acked = low;
}

size_t
links_alive_locked (void)
{
  size_t n = 0;

  for (size_t i = 0; i < sess.nlinks; ++i)
    n += !sess.links[i].lost;
  return n;
}

void
link_lose_locked (struct share_link *l, const char *fmt, ...)
{
  va_list ap;

  if (l->lost || !session_running_locked ())
    return;
  va_start (ap, fmt);
  vsnprintf (l->why, sizeof l->why, fmt, ap);
  va_end (ap);
  if (links_alive_locked () == 1) {
    /* The last one: the session ends with it. */
    session_fail_locked ("%s", l->why);
    return;
  }
  l->lost = true;
  if (l->chan)
    chan_shutdown (l->chan);
  log_error ("share: receiver %s dropped, the others go on: %s", l->to,
             l->why);
  recount_acked_locked ();
  pthread_cond_broadcast (&sess.cond);
}

/* Send R to every remaining link; its sequence number is assigned
 * here.  Returns it, or 0 if the session is not running.  Waits while
 * too many are in flight. */
uint64_t
session_send_req (struct share_req *r)
{
  static __thread uint8_t *buf;
  struct share_link *to[MAX_RECEIVERS];
  bool failed[MAX_RECEIVERS] = { false };
  int errs[MAX_RECEIVERS] = { 0 };
  size_t n = 0, len;
  uint64_t seq;

  if (!buf && !(buf = malloc (SHARE_MAX_FRAME)))
    return 0;
  /* The sequence number and the frame's place on the wire are taken
   * together, under send_lock, so every receiver sees them in order. */
  pthread_mutex_lock (&send_lock);
  pthread_mutex_lock (&sess.lock);
  /* Terminates: replies arrive, links are lost, or the session fails. */
  while (session_running_locked () &&
         sess.next_seq - sess.acked > MAX_INFLIGHT - 1)
    pthread_cond_wait (&sess.cond, &sess.lock);
  /* After an ABORT the receivers hang up: what changes here now stays
   * here.  (Nothing changes after a COMMIT: share_gate.) */
  if (!session_running_locked () || sess.final_seq) {
    pthread_mutex_unlock (&sess.lock);
    pthread_mutex_unlock (&send_lock);
    return 0;
  }
  seq = r->seq = sess.next_seq++;
  if (r->type == SHARE_COMMIT || r->type == SHARE_ABORT)
    sess.final_seq = seq;
  sess.inflight_len[seq % MAX_INFLIGHT] = r->data_len;
  sess.inflight_bytes += r->data_len;
  for (size_t i = 0; i < sess.nlinks; ++i)
    if (!sess.links[i].lost)
      to[n++] = &sess.links[i];
  pthread_mutex_unlock (&sess.lock);

  len = share_encode (r, buf, SHARE_MAX_FRAME);
  for (size_t i = 0; i < n; ++i) {
    if (len == 0 || chan_send (to[i]->chan, buf, len) == -1) {
      failed[i] = true;
      errs[i] = errno;
    }
  }
  pthread_mutex_unlock (&send_lock);

  pthread_mutex_lock (&sess.lock);
  for (size_t i = 0; i < n; ++i)
    if (failed[i])
      link_lose_locked (to[i], "sending %s to %s: %s",
                        share_type_name (r->type), to[i]->to,
                        len == 0 ? "message too large" : strerror (errs[i]));
  bool running = session_running_locked ();
  pthread_mutex_unlock (&sess.lock);
  return running ? seq : 0;
}

void
session_wait (uint64_t seq)
{
  /* sess.cond waits on the realtime clock. */
  struct timespec ts = abstime_after (CLOCK_REALTIME, share_timeout_ms);

  if (seq == 0)
    return;
  pthread_mutex_lock (&sess.lock);
  /* Terminates: the replies arrive, the session fails, or time is up
   * and every link that has not answered is lost. */
  while (sess.acked < seq && session_running_locked ()) {
    if (pthread_cond_timedwait (&sess.cond, &sess.lock, &ts) == ETIMEDOUT) {
      for (size_t i = 0; i < sess.nlinks; ++i) {
        struct share_link *l = &sess.links[i];
        if (!l->lost && l->acked < seq)
          link_lose_locked (l, "%s did not answer for %d ms", l->to,
                            share_timeout_ms);
      }
      break;
    }
  }
  pthread_mutex_unlock (&sess.lock);
}

static void *
reader_main (void *arg)
{
  struct share_link *l = arg;

  /* Terminates: the channel ends or fails (shutdown on session end or
   * when the link is lost). */
  for (;;) {
    void *buf = NULL;
    ssize_t n = chan_recv_timeout (l->chan, &buf, -1);
    uint64_t seq;
    int e;
    char text[SHARE_MAX_REPLY_TEXT + 1];

    if (n <= 0) {
      int err = errno;
      pthread_mutex_lock (&sess.lock);
      /* After the answer to COMMIT or ABORT the receiver hangs up. */
      if (!(sess.final_seq && l->acked >= sess.final_seq))
        link_lose_locked (l, "the receiver %s %s%s", l->to,
                          n == 0 ? "closed the connection"
                          : "connection failed: ",
                          n == 0 ? "" : strerror (err));
      pthread_cond_broadcast (&sess.cond);
      pthread_mutex_unlock (&sess.lock);
      return NULL;
    }
    int r = share_decode_reply (buf, (size_t) n, &seq, &e, text, sizeof text);
    free (buf);
    pthread_mutex_lock (&sess.lock);
    if (r == -1 || seq != l->acked + 1) {
      link_lose_locked (l, "bad reply from %s", l->to);
      pthread_mutex_unlock (&sess.lock);
      return NULL;
    }
    l->acked = seq;
    if (e == EILSEQ) {
      /* A VERIFY that found a difference: commit reports it. */
      if (l->verify_fail++ == 0)
        snprintf (l->verify_why, sizeof l->verify_why, "%.500s", text);
    }
    else if (e)
      link_lose_locked (l, "the receiver %s refused a request: %s", l->to,
                        text);
    if (!l->lost)
      recount_acked_locked ();
    pthread_cond_broadcast (&sess.cond);
    pthread_mutex_unlock (&sess.lock);
  }
}

/* One receiver's connection, in a thread of its own: the links connect
 * side by side, so one that cannot be reached costs the start its
 * timeout once, not once per receiver. */
struct connecting {
  const struct share_receiver *rcv;
  struct share_link *l;
  pthread_t thread;
  bool started;
  char why[512];
};

static void *
connect_main (void *arg)
{
  struct connecting *c = arg;
  struct chan_config cfg = share_chan_cfg;

  cfg.psk_file = c->rcv->psk;
  /* A receiver silent this long is lost anyway (session_wait). */
  cfg.timeout_ms = share_timeout_ms;
  log_clear_last_error ();
  c->l->chan = chan_connect (c->rcv->to, &cfg);
  if (!c->l->chan)
    snprintf (c->why, sizeof c->why, "cannot reach the receiver: %s",
              log_last_error ()[0] ? log_last_error () : c->rcv->to);
  return NULL;
}

int
links_connect (const struct share_receiver *rcv, size_t n, char *err,
               size_t errlen)
{
  struct connecting c[MAX_RECEIVERS];
  size_t up = 0;

  if (n == 0 || n > MAX_RECEIVERS) {
    snprintf (err, errlen, "a share session has 1 to %d receivers",
              MAX_RECEIVERS);
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    memset (&sess.links[i], 0, sizeof sess.links[i]);
    snprintf (sess.links[i].to, sizeof sess.links[i].to, "%s", rcv[i].to);
    c[i] = (struct connecting) { .rcv = &rcv[i], .l = &sess.links[i] };
    c[i].started = n > 1 &&
      pthread_create (&c[i].thread, NULL, connect_main, &c[i]) == 0;
    if (!c[i].started)
      connect_main (&c[i]);
  }
  for (size_t i = 0; i < n; ++i) {
    struct share_link *l = &sess.links[i];
    if (c[i].started)
      pthread_join (c[i].thread, NULL);
    if (l->chan) {
      up++;
      continue;
    }
    /* One of several unreachable: it is lost from the start, and the
     * controller drops that destination. */
    l->lost = true;
    snprintf (l->why, sizeof l->why, "%s", c[i].why);
    log_error ("share: %s", l->why);
  }
  sess.nlinks = n;
  if (up == 0) {
    snprintf (err, errlen, "%s", n == 1 ? sess.links[0].why
              : "cannot reach any receiver");
    links_close ();
    return -1;
  }
  return 0;
}

int
links_start_readers (void)
{
  for (size_t i = 0; i < sess.nlinks; ++i) {
    struct share_link *l = &sess.links[i];
    if (l->chan && pthread_create (&l->reader, NULL, reader_main, l) != 0)
      return -1;
    l->reader_started = l->chan != NULL;
  }
  return 0;
}

void
links_shutdown_locked (void)
{
  for (size_t i = 0; i < sess.nlinks; ++i)
    if (sess.links[i].chan)
      chan_shutdown (sess.links[i].chan);
}

void
links_join (void)
{
  for (size_t i = 0; i < sess.nlinks; ++i) {
    if (sess.links[i].reader_started)
      pthread_join (sess.links[i].reader, NULL);
    sess.links[i].reader_started = false;
  }
}

void
links_close (void)
{
  for (size_t i = 0; i < sess.nlinks; ++i) {
    if (sess.links[i].chan)
      chan_close (sess.links[i].chan);
    sess.links[i].chan = NULL;
  }
}

int
session_drop (const char *to, char *err, size_t errlen)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&sess.lock);

  if (!session_running_locked ()) {
    snprintf (err, errlen, "no share session is running");
    return -1;
  }
  for (size_t i = 0; i < sess.nlinks; ++i) {
    struct share_link *l = &sess.links[i];
    if (strcmp (l->to, to) != 0)
      continue;
    if (l->lost)
      return 0;
    if (links_alive_locked () == 1) {
      snprintf (err, errlen, "%s is the session's last receiver: abort "
                "the session instead", to);
      return -1;
    }
    link_lose_locked (l, "dropped by the controller");
    return 0;
  }
  snprintf (err, errlen, "%.256s is not a receiver of this session", to);
  return -1;
}

const char *
links_names_locked (char *buf, size_t len)
{
  size_t off = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < sess.nlinks && off < len; ++i) {
    if (sess.links[i].lost)
      continue;
    int k = snprintf (buf + off, len - off, "%s%s", off ? "," : "",
                      sess.links[i].to);
    if (k < 0)
      break;
    off += (size_t) k;
  }
  return buf;
}

json_t *
links_status_locked (void)
{
  json_t *a = json_array ();

  for (size_t i = 0; i < sess.nlinks; ++i) {
    const struct share_link *l = &sess.links[i];
    json_array_append_new (a, json_pack (
      "{s:s, s:s, s:I, s:s}", "to", l->to,
      "state", l->lost ? "lost" : session_state_names[sess.state],
      "acked", (json_int_t) l->acked,
      "error", l->why[0] ? l->why
      : sess.state == SESSION_FAILED ? sess.why : ""));
  }
  return a;
}
