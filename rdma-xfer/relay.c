/* rdma-xfer: the relay.
 *
 * Every connection accepted on the listen URI is a stream.  It is
 * carried, as its own connection, to every --to URI at once: a reader
 * thread fills a ring buffer (bounded: --buffer bytes per stream) and
 * one writer thread per destination drains it at its own pace.  When a
 * destination lags by a whole ring, the reader either waits for it
 * (which slows the source: --lagging=wait) or drops it
 * (--lagging=drop).  With a single destination, bytes coming back
 * (QEMU's return path) are carried back by a reverse thread.
 *
 * With --hold-switchover every destination's return path is read and
 * merged into one for the source, message by message (QEMU's
 * return-path messages: be16 type, be16 length, payload): the first
 * live destination's messages go through; SWITCHOVER_ACK is held
 * until SIGUSR1 (at once with --pass-switchover, a relay fanning out
 * for another that holds it) and then passed on once; the first
 * successful SHUT
 * (its destination has loaded the whole stream) is passed on, and a
 * failing SHUT only once every destination has ended.  QEMU, with
 * switchover-ack, keeps copying dirtied RAM and never switches over
 * while the ACK is held: the destinations stay warm.
 *
 * NOTES ON THE THREAD MODEL
 *
 * The accept loop runs in relay_run's thread, which also prints the
 * statistics once a second.  Each stream has its own lock and
 * condition: the reader waits for room, writers wait for data, and
 * every change of head, tail or state is broadcast.  Streams are kept
 * on a list (relay.lock) until they finish; counters are atomics read
 * by the statistics.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "relay.h"
#include "xfer-proto.h"
#include "sockets.h"

#define READ_CHUNK (1u << 20)
#define LAG_GRACE_MS 1000

struct out {
  const char *uri;
  unsigned index;               /* In cfg->to. */
  struct xfer_conn *c;
  uint64_t tail;                /* Bytes sent (stream lock). */
  uint64_t tail_at_full;        /* tail when the ring filled (lock). */
  bool done;                    /* Finished, cleanly or not (lock). */
  bool dropped;                 /* (lock) */
  bool failed;                  /* (lock) */
  pthread_t thread;
  bool started;
  pthread_t rp_thread;          /* --hold-switchover: its return path. */
  bool rp_started;
  bool rp_done;                 /* (lock) */
};

struct stream {
  struct stream *next;          /* relay.lock */
  uint32_t id;
  const struct relay_config *cfg;
  struct xfer_conn *in;
  struct out outs[RELAY_MAX_TO];
  size_t nouts;
  uint8_t *ring;
  size_t size;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint64_t head;                /* Bytes read from the source (lock). */
  bool in_eof, in_failed;       /* (lock) */
  bool reader_done, reverse_done;       /* (lock) */
  pthread_t reader, reverse, waiter;
  bool has_reverse;
  /* --hold-switchover: the merged return path (lock), written under
   * up_lock. */
  pthread_mutex_t up_lock;
  unsigned acks;                /* Destinations that sent SWITCHOVER_ACK. */
  bool ack_sent, shut_sent;
  pthread_t releaser;
  bool has_releaser;
};

/* Per destination totals for the statistics. */
struct dest_stats {
  atomic_uint_fast64_t bytes;
  atomic_uint dropped;
  atomic_uint failed;
  atomic_uint fell_back;        /* Streams carried over its --or. */
  uint64_t last_bytes;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  unsigned active, finished, failed;    /* lock */
  atomic_uint_fast64_t in_bytes;
  struct dest_stats to[RELAY_MAX_TO];
} relay = {
  .lock = PTHREAD_MUTEX_INITIALIZER,
  .cond = PTHREAD_COND_INITIALIZER,
};

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t switchover_released;

static void
on_signal (int sig)
{
  stop_signal = sig;
}

static void
on_release (int sig)
{
  (void) sig;
  switchover_released = 1;
}

static uint64_t
min_live_tail_locked (struct stream *s)
{
  uint64_t m = s->head;

  for (size_t i = 0; i < s->nouts; ++i)
    if (!s->outs[i].done && s->outs[i].tail < m)
      m = s->outs[i].tail;
  return m;
}

static bool
any_live_locked (struct stream *s)
{
  for (size_t i = 0; i < s->nouts; ++i)
    if (!s->outs[i].done)
      return true;
  return false;
}

static void *
reader_main (void *arg)
{
  struct stream *s = arg;
  const struct relay_config *cfg = s->cfg;

  for (;;) {
    size_t room, off, n;
    ssize_t r;

    pthread_mutex_lock (&s->lock);
    /* Terminates: writers advance their tails or are dropped/failed. */
    int64_t full_since = 0;
    for (;;) {
      if (!any_live_locked (s))
        break;
      uint64_t used = s->head - min_live_tail_locked (s);
      if (used < s->size)
        break;
      if (cfg->lagging == RELAY_LAG_DROP) {
        /* A destination a whole buffer behind that has not moved for
         * LAG_GRACE_MS is dropped; one that is merely slow to start or
         * briefly busy is not. */
        int64_t now = clock_ms ();
        if (!full_since) {
          full_since = now;
          for (size_t i = 0; i < s->nouts; ++i)
            s->outs[i].tail_at_full = s->outs[i].tail;
        }
        else if (now - full_since >= LAG_GRACE_MS) {
          for (size_t i = 0; i < s->nouts; ++i) {
            struct out *o = &s->outs[i];
            if (!o->done && s->head - o->tail >= s->size &&
                o->tail == o->tail_at_full) {
              o->done = o->dropped = true;
              atomic_fetch_add (&relay.to[o->index].dropped, 1);
              log_warn ("stream %u: %s fell %zu bytes behind and stopped "
                        "reading: dropped", s->id, o->uri, s->size);
              xfer_abort (o->c);
            }
          }
          full_since = 0;
          continue;
        }
        struct timespec ts = abstime_after (CLOCK_REALTIME, 100);
        pthread_cond_timedwait (&s->cond, &s->lock, &ts);
        continue;
      }
      pthread_cond_wait (&s->cond, &s->lock);
    }
    if (!any_live_locked (s)) {
      /* Nobody to carry it to: stop reading, fail the source. */
      s->in_failed = true;
      pthread_cond_broadcast (&s->cond);
      pthread_mutex_unlock (&s->lock);
      xfer_abort (s->in);
      break;
    }
    off = (size_t) (s->head % s->size);
    room = s->size - (size_t) (s->head - min_live_tail_locked (s));
    n = s->size - off;          /* Contiguous up to the ring's end. */
    if (n > room)
      n = room;
    if (n > READ_CHUNK)
      n = READ_CHUNK;
    pthread_mutex_unlock (&s->lock);

    r = xfer_recv (s->in, s->ring + off, n, -1);

    pthread_mutex_lock (&s->lock);
    if (r > 0) {
      s->head += (uint64_t) r;
      atomic_fetch_add (&relay.in_bytes, (uint64_t) r);
    }
    else if (r == 0)
      s->in_eof = true;
    else {
      s->in_failed = true;
      log_error ("stream %u: reading from %s: %m", s->id, xfer_peer (s->in));
    }
    pthread_cond_broadcast (&s->cond);
    bool end = r <= 0;
    pthread_mutex_unlock (&s->lock);
    if (end)
      break;
  }
  pthread_mutex_lock (&s->lock);
  s->reader_done = true;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

struct writer_arg {
  struct stream *s;
  struct out *o;
};

static void *
writer_main (void *arg)
{
  struct writer_arg *wa = arg;
  struct stream *s = wa->s;
  struct out *o = wa->o;
  bool clean = false;

  free (wa);
  for (;;) {
    size_t off, n;

    pthread_mutex_lock (&s->lock);
    while (!o->done && o->tail == s->head && !s->in_eof && !s->in_failed)
      pthread_cond_wait (&s->cond, &s->lock);
    if (o->done) {
      pthread_mutex_unlock (&s->lock);
      break;
    }
    if (o->tail == s->head) {
      clean = s->in_eof;
      pthread_mutex_unlock (&s->lock);
      break;
    }
    off = (size_t) (o->tail % s->size);
    n = (size_t) (s->head - o->tail);
    if (n > s->size - off)
      n = s->size - off;
    pthread_mutex_unlock (&s->lock);

    if (xfer_send (o->c, s->ring + off, n, s->cfg->io_timeout_ms) == -1) {
      pthread_mutex_lock (&s->lock);
      if (!o->done) {
        o->done = o->failed = true;
        atomic_fetch_add (&relay.to[o->index].failed, 1);
        log_error ("stream %u: sending to %s: %m", s->id, o->uri);
      }
      pthread_cond_broadcast (&s->cond);
      pthread_mutex_unlock (&s->lock);
      return NULL;
    }
    atomic_fetch_add (&relay.to[o->index].bytes, n);
    pthread_mutex_lock (&s->lock);
    o->tail += n;
    pthread_cond_broadcast (&s->cond);
    pthread_mutex_unlock (&s->lock);
  }
  if (clean)
    xfer_shutdown_write (o->c);
  else if (!o->dropped)
    /* The source failed: make sure the destination does not take a
     * truncated stream for a complete one. */
    xfer_abort (o->c);
  pthread_mutex_lock (&s->lock);
  o->done = true;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

/* The return path: destination -> source (single destination only). */
static void *
reverse_main (void *arg)
{
  struct stream *s = arg;
  struct out *o = &s->outs[0];
  uint8_t *buf = malloc (READ_CHUNK);

  if (buf) {
    for (;;) {
      ssize_t r = xfer_recv (o->c, buf, READ_CHUNK, -1);
      if (r <= 0) {
        if (r == 0)
          xfer_shutdown_write (s->in);
        break;
      }
      if (xfer_send (s->in, buf, (size_t) r, s->cfg->io_timeout_ms) == -1)
        break;
    }
    free (buf);
  }
  pthread_mutex_lock (&s->lock);
  s->reverse_done = true;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  return NULL;
}

/* QEMU's return-path message types (migration/migration.c). */
enum { RP_SHUT = 1, RP_SWITCHOVER_ACK = 7 };
#define RP_MAX_MSG (4 + 65535)

/* One message to the source, whole. */
static int
send_up (struct stream *s, const uint8_t *msg, size_t n)
{
  int r;

  pthread_mutex_lock (&s->up_lock);
  r = xfer_send (s->in, msg, n, s->cfg->io_timeout_ms);
  pthread_mutex_unlock (&s->up_lock);
  return r;
}

/* The first destination whose return path is still open speaks for
 * all. */
static bool
is_primary_locked (struct stream *s, struct out *o)
{
  for (size_t i = 0; i < s->nouts; ++i)
    if (!s->outs[i].rp_done)
      return &s->outs[i] == o;
  return false;
}

/* One message from destination O's return path. */
static void
rp_message (struct stream *s, struct out *o, const uint8_t *msg, size_t n)
{
  unsigned type = (unsigned) msg[0] << 8 | msg[1];
  bool forward = false;

  pthread_mutex_lock (&s->lock);
  if (type == RP_SWITCHOVER_ACK)
    s->acks++;
  else if (type == RP_SHUT) {
    bool ok = n == 8 && !msg[4] && !msg[5] && !msg[6] && !msg[7];
    if (ok && !s->shut_sent)
      forward = s->shut_sent = true;
  }
  else
    forward = is_primary_locked (s, o) && !s->shut_sent;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  if (forward && send_up (s, msg, n) == -1)
    log_error ("stream %u: return path to %s: %m", s->id, xfer_peer (s->in));
  if (type == RP_SHUT && forward)
    xfer_shutdown_write (s->in);
}

/* --hold-switchover: destination O's return path, parsed. */
static void *
rp_main (void *arg)
{
  struct writer_arg *wa = arg;
  struct stream *s = wa->s;
  struct out *o = wa->o;
  uint8_t *buf = malloc (RP_MAX_MSG);
  size_t have = 0;

  free (wa);
  /* Terminates: the destination closes or fails its connection. */
  while (buf) {
    ssize_t r = xfer_recv (o->c, buf + have, RP_MAX_MSG - have, -1);
    if (r <= 0)
      break;
    have += (size_t) r;
    /* Terminates: each pass consumes one whole message. */
    while (have >= 4) {
      size_t len = 4 + ((size_t) buf[2] << 8 | buf[3]);
      if (have < len)
        break;
      rp_message (s, o, buf, len);
      memmove (buf, buf + len, have - len);
      have -= len;
    }
  }
  free (buf);
  pthread_mutex_lock (&s->lock);
  o->rp_done = true;
  bool all_done = true;
  for (size_t i = 0; i < s->nouts; ++i)
    if (s->outs[i].rp_started && !s->outs[i].rp_done)
      all_done = false;
  bool fail_up = all_done && !s->shut_sent;
  if (fail_up)
    s->shut_sent = true;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
  if (fail_up) {
    /* No destination loaded the stream: the source must not wait. */
    static const uint8_t shut_failed[8] = { 0, RP_SHUT, 0, 4, 0, 0, 0, 1 };
    send_up (s, shut_failed, sizeof shut_failed);
    xfer_shutdown_write (s->in);
  }
  return NULL;
}

/* --hold-switchover: pass one SWITCHOVER_ACK on once released (and a
 * destination has sent one). */
static void *
releaser_main (void *arg)
{
  struct stream *s = arg;
  static const uint8_t ack[4] = { 0, RP_SWITCHOVER_ACK, 0, 0 };

  /* Terminates: the ACK goes out, or the stream ends. */
  for (;;) {
    pthread_mutex_lock (&s->lock);
    bool over = s->reader_done || s->shut_sent;
    bool go = switchover_released && s->acks > 0 && !s->ack_sent;
    if (go)
      s->ack_sent = true;
    if (!go && !over) {
      struct timespec ts = abstime_after (CLOCK_REALTIME, 5);
      pthread_cond_timedwait (&s->cond, &s->lock, &ts);
    }
    pthread_mutex_unlock (&s->lock);
    if (go) {
      log_info ("stream %u: switch-over released", s->id);
      send_up (s, ack, sizeof ack);
      break;
    }
    if (over)
      break;
  }
  return NULL;
}

static void
stream_free (struct stream *s)
{
  for (size_t i = 0; i < s->nouts; ++i)
    if (s->outs[i].c)
      xfer_close (s->outs[i].c);
  if (s->in)
    xfer_close (s->in);
  free (s->ring);
  pthread_mutex_destroy (&s->lock);
  pthread_mutex_destroy (&s->up_lock);
  pthread_cond_destroy (&s->cond);
  free (s);
}

/* Wait for every thread of S, then close it and count the outcome. */
static void *
stream_waiter (void *arg)
{
  struct stream *s = arg;
  bool ok;

  pthread_join (s->reader, NULL);
  for (size_t i = 0; i < s->nouts; ++i)
    if (s->outs[i].started)
      pthread_join (s->outs[i].thread, NULL);
  if (s->has_reverse) {
    /* The reverse direction ends when the destination closes; once the
     * forward stream is over, give it a moment, then cut it. */
    int64_t deadline = clock_ms () + 2000;
    pthread_mutex_lock (&s->lock);
    while (!s->reverse_done && clock_ms () < deadline) {
      struct timespec ts = abstime_after (CLOCK_REALTIME, 100);
      pthread_cond_timedwait (&s->cond, &s->lock, &ts);
    }
    pthread_mutex_unlock (&s->lock);
    xfer_abort (s->outs[0].c);
    pthread_join (s->reverse, NULL);
  }
  if (s->cfg->hold_switchover) {
    /* As above, for every destination's return path. */
    int64_t deadline = clock_ms () + 2000;
    pthread_mutex_lock (&s->lock);
    for (size_t i = 0; i < s->nouts; ++i)
      while (s->outs[i].rp_started && !s->outs[i].rp_done &&
             clock_ms () < deadline) {
        struct timespec ts = abstime_after (CLOCK_REALTIME, 100);
        pthread_cond_timedwait (&s->cond, &s->lock, &ts);
      }
    pthread_mutex_unlock (&s->lock);
    for (size_t i = 0; i < s->nouts; ++i)
      if (s->outs[i].rp_started) {
        xfer_abort (s->outs[i].c);
        pthread_join (s->outs[i].rp_thread, NULL);
      }
    if (s->has_releaser)
      pthread_join (s->releaser, NULL);
  }
  ok = s->in_eof && !s->in_failed;
  for (size_t i = 0; i < s->nouts; ++i)
    if (s->outs[i].failed)
      ok = false;
  log_info ("stream %u: %s (%" PRIu64 " bytes)", s->id,
            ok ? "done" : "failed", s->head);
  stream_free (s);

  pthread_mutex_lock (&relay.lock);
  relay.active--;
  relay.finished++;
  if (!ok)
    relay.failed++;
  pthread_cond_broadcast (&relay.cond);
  pthread_mutex_unlock (&relay.lock);
  return NULL;
}

static int
stream_start (const struct relay_config *cfg, struct xfer_conn *in,
              uint32_t id)
{
  struct stream *s = calloc (1, sizeof *s);
  pthread_attr_t detached;
  size_t live = 0;

  if (!s) {
    xfer_close (in);
    return -1;
  }
  s->id = id;
  s->cfg = cfg;
  s->in = in;
  s->size = cfg->buffer;
  s->ring = malloc (s->size);
  pthread_mutex_init (&s->lock, NULL);
  pthread_mutex_init (&s->up_lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  if (!s->ring) {
    stream_free (s);
    return -1;
  }
  /* The destination side of a stream keeps the source's stream id. */
  uint32_t out_id = xfer_stream_id (in) ? xfer_stream_id (in) : id;
  uint32_t flags = cfg->nto == 1 || cfg->hold_switchover
    ? XFER_STREAM_RETURN_PATH : 0;
  for (size_t i = 0; i < cfg->nto; ++i) {
    struct out *o = &s->outs[s->nouts++];
    o->uri = cfg->to[i];
    o->index = (unsigned) i;
    o->c = xfer_connect (cfg->to[i], &cfg->opts, out_id, flags);
    if (!o->c && cfg->or_to[i]) {
      /* The source's half of a transport fallback: the destination
       * listens on both, so the stream goes on over the other.  The
       * controller reads this line (its words are an interface). */
      log_warn ("stream %u: destination %zu: %s cannot be reached; "
                "carried over %s instead", id, i, cfg->to[i], cfg->or_to[i]);
      o->uri = cfg->or_to[i];
      o->c = xfer_connect (cfg->or_to[i], &cfg->opts, out_id, flags);
      if (o->c)
        atomic_fetch_add (&relay.to[i].fell_back, 1);
    }
    if (!o->c) {
      o->done = o->failed = true;
      atomic_fetch_add (&relay.to[i].failed, 1);
      log_error ("stream %u: %s: cannot connect", id, o->uri);
      continue;
    }
    live++;
  }
  if (live == 0) {
    log_error ("stream %u: no destination could be reached", id);
    stream_free (s);
    pthread_mutex_lock (&relay.lock);
    relay.finished++;
    relay.failed++;
    pthread_cond_broadcast (&relay.cond);
    pthread_mutex_unlock (&relay.lock);
    return -1;
  }

  pthread_mutex_lock (&relay.lock);
  relay.active++;
  pthread_mutex_unlock (&relay.lock);

  for (size_t i = 0; i < s->nouts; ++i) {
    struct writer_arg *wa;
    if (s->outs[i].done)
      continue;
    wa = malloc (sizeof *wa);
    if (!wa)
      continue;
    wa->s = s;
    wa->o = &s->outs[i];
    if (pthread_create (&s->outs[i].thread, NULL, writer_main, wa) == 0)
      s->outs[i].started = true;
    else {
      free (wa);
      s->outs[i].done = s->outs[i].failed = true;
    }
  }
  if (cfg->hold_switchover) {
    /* Locked: the threads look at each other's rp_done.  One that
     * never started reads as ended. */
    pthread_mutex_lock (&s->lock);
    for (size_t i = 0; i < s->nouts; ++i)
      s->outs[i].rp_done = true;
    for (size_t i = 0; i < s->nouts; ++i) {
      struct writer_arg *wa;
      if (s->outs[i].done || !(wa = malloc (sizeof *wa)))
        continue;
      wa->s = s;
      wa->o = &s->outs[i];
      s->outs[i].rp_done = false;
      if (pthread_create (&s->outs[i].rp_thread, NULL, rp_main, wa) == 0)
        s->outs[i].rp_started = true;
      else {
        s->outs[i].rp_done = true;
        free (wa);
      }
    }
    pthread_mutex_unlock (&s->lock);
    if (pthread_create (&s->releaser, NULL, releaser_main, s) == 0)
      s->has_releaser = true;
  }
  else if (cfg->nto == 1 && !s->outs[0].done &&
           pthread_create (&s->reverse, NULL, reverse_main, s) == 0)
    s->has_reverse = true;
  pthread_create (&s->reader, NULL, reader_main, s);
  pthread_attr_init (&detached);
  pthread_attr_setdetachstate (&detached, PTHREAD_CREATE_DETACHED);
  pthread_create (&s->waiter, &detached, stream_waiter, s);
  pthread_attr_destroy (&detached);
  log_info ("stream %u from %s: carrying to %zu destination(s)", id,
            xfer_peer (in), live);
  return 0;
}

static void
print_stats (const struct relay_config *cfg, double dt, bool final)
{
  static uint64_t last_in;
  uint64_t in = atomic_load (&relay.in_bytes);
  json_t *to = json_array (), *line;
  char *text;

  for (size_t i = 0; i < cfg->nto; ++i) {
    struct dest_stats *d = &relay.to[i];
    uint64_t b = atomic_load (&d->bytes);
    json_array_append_new (to, json_pack (
      "{s:s, s:I, s:f, s:i, s:i, s:i}",
      "uri", cfg->to[i], "bytes", (json_int_t) b,
      "rate", dt > 0 ? (double) (b - d->last_bytes) / dt : 0.0,
      "dropped", (int) atomic_load (&d->dropped),
      "failed", (int) atomic_load (&d->failed),
      "fell_back", (int) atomic_load (&d->fell_back)));
    d->last_bytes = b;
  }
  pthread_mutex_lock (&relay.lock);
  line = json_pack ("{s:s, s:f, s:i, s:i, s:i, s:I, s:f, s:o}",
                    "event", final ? "summary" : "stats",
                    "time", (double) clock_ms () / 1000.0,
                    "streams_active", (int) relay.active,
                    "streams_done", (int) relay.finished,
                    "streams_failed", (int) relay.failed,
                    "in_bytes", (json_int_t) in,
                    "in_rate", dt > 0 ? (double) (in - last_in) / dt : 0.0,
                    "to", to);
  pthread_mutex_unlock (&relay.lock);
  last_in = in;
  text = json_dumps (line, JSON_COMPACT);
  if (text) {
    printf ("%s\n", text);
    fflush (stdout);
    free (text);
  }
  json_decref (line);
}

static void
close_listeners (struct xfer_listener **l, size_t n)
{
  for (size_t i = 0; i < n; ++i)
    xfer_listener_close (l[i]);
}

int
relay_run (const struct relay_config *cfg)
{
  struct xfer_listener *l[RELAY_MAX_LISTEN] = { NULL };
  struct sigaction sa = { .sa_handler = on_signal };
  uint32_t next_id = 0;
  int64_t last_stats = clock_ms ();
  int64_t accept_deadline = cfg->accept_timeout_ms < 0 ? -1
    : clock_ms () + cfg->accept_timeout_ms;
  /* The loop also prints statistics and notices a signal: each pass
   * waits this long on every listener in turn. */
  int wait_ms;
  size_t turn = 0;
  int rc;

  if (cfg->nlisten == 0 || cfg->nlisten > RELAY_MAX_LISTEN) {
    log_error ("relay: needs one or two listen URIs");
    return -1;
  }
  wait_ms = 200 / (int) cfg->nlisten;

  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  if (cfg->hold_switchover && cfg->pass_switchover)
    switchover_released = 1;
  else if (cfg->hold_switchover) {
    struct sigaction rel = { .sa_handler = on_release };
    sigaction (SIGUSR1, &rel, NULL);
  }
  signal (SIGPIPE, SIG_IGN);

  for (size_t i = 0; i < cfg->nlisten; ++i) {
    l[i] = xfer_listen (cfg->listen[i], &cfg->opts);
    if (!l[i]) {
      close_listeners (l, i);
      return -1;
    }
    /* Who starts the relay waits for this line (an interface). */
    log_info ("relay: listening on %s, carrying to %zu destination(s)",
              cfg->listen[i], cfg->nto);
  }

  /* Terminates: by signal, by reaching the stream count, or by the
   * accept timeout. */
  while (!stop_signal) {
    struct xfer_conn *c;
    int64_t now = clock_ms ();

    pthread_mutex_lock (&relay.lock);
    bool enough = cfg->streams && relay.finished >= cfg->streams &&
      relay.active == 0;
    bool accepting = !cfg->streams || next_id < cfg->streams;
    pthread_mutex_unlock (&relay.lock);
    if (enough)
      break;
    if (cfg->json && now - last_stats >= 1000) {
      print_stats (cfg, (double) (now - last_stats) / 1000.0, false);
      last_stats = now;
    }
    if (!accepting) {
      usleep (50000);
      continue;
    }
    if (accept_deadline >= 0 && next_id == 0 && now > accept_deadline) {
      log_error ("relay: no stream arrived on %s in %d ms", cfg->listen[0],
                 cfg->accept_timeout_ms);
      close_listeners (l, cfg->nlisten);
      return -1;
    }
    c = xfer_accept (l[turn], wait_ms);
    turn = (turn + 1) % cfg->nlisten;
    if (!c)
      continue;
    stream_start (cfg, c, next_id++);
  }

  /* Let running streams finish unless we were told to stop. */
  pthread_mutex_lock (&relay.lock);
  while (relay.active > 0 && !stop_signal)
    pthread_cond_wait (&relay.cond, &relay.lock);
  rc = relay.failed == 0 && relay.finished > 0 ? 0 : -1;
  pthread_mutex_unlock (&relay.lock);
  if (cfg->json)
    print_stats (cfg, (double) (clock_ms () - last_stats) / 1000.0, true);
  close_listeners (l, cfg->nlisten);
  if (stop_signal)
    log_info ("relay: stopped by signal %d", (int) stop_signal);
  return rc;
}
