/* handoffd: one step asked of every destination at once
 * (source-each.h).
 *
 * Asked in turn, a destination that stopped answering would hold up
 * every one after it for its whole time limit - 120 s for START_VM -
 * and the source's loop with them.  Asked at once, the step costs what
 * the slowest destination still in the race costs, and with a grace
 * not even that: the quorum is enough to go on.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "clock.h"
#include "config.h"
#include "exitcodes.h"
#include "peer.h"
#include "source-dests.h"
#include "source-each.h"
#include "source-relay.h"
#include "source-warm.h"

struct each_run {
  pthread_mutex_t lock;
  pthread_cond_t cond;          /* A step ended. */
  struct migration *m;
  each_step *step;
  void *arg;
  size_t pending;               /* lock: steps still running */
  size_t ok;                    /* lock: steps that succeeded */
};

struct each_call {
  struct each_run *run;
  size_t i;
  pthread_t thread;
  bool started;
  bool done;                    /* run->lock */
  bool late;                    /* Cut off after the grace. */
  int rv, code;                 /* Once done. */
  char err[1024];
};

static void *
each_main (void *arg)
{
  struct each_call *c = arg;
  struct each_run *r = c->run;
  char err[sizeof c->err] = "";
  int code = RC_ROLLED_BACK;
  int rv = r->step (r->m, c->i, r->arg, &code, err, sizeof err);

  pthread_mutex_lock (&r->lock);
  c->rv = rv;
  c->code = code;
  memcpy (c->err, err, sizeof err);
  c->done = true;
  r->pending--;
  if (rv == 0)
    r->ok++;
  pthread_cond_broadcast (&r->cond);
  pthread_mutex_unlock (&r->lock);
  return NULL;
}

/* Wait on R's condition until the monotonic time AT_MS. */
static void
wait_until (struct each_run *r, int64_t at_ms)
{
  struct timespec ts = {
    .tv_sec = at_ms / 1000, .tv_nsec = (at_ms % 1000) * 1000000,
  };

  pthread_cond_timedwait (&r->cond, &r->lock, &ts);
}

int
source_each_dest (struct migration *m, const char *what, each_step *step,
                  void *arg, int grace_ms, const char *state, int *rc,
                  char *err, size_t errlen)
{
  struct each_run run = { .m = m, .step = step, .arg = arg };
  struct each_call calls[MAX_DESTS];
  pthread_condattr_t attr;
  size_t n = 0;
  int64_t cut_at = -1;
  int ret = 0;

  pthread_mutex_init (&run.lock, NULL);
  /* clock_ms () is CLOCK_MONOTONIC: so are the waits. */
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&run.cond, &attr);
  pthread_condattr_destroy (&attr);
  memset (calls, 0, sizeof calls);
  for (size_t i = 0; i < m->ndests; ++i) {
    struct each_call *c = &calls[i];
    if (!source_alive_dest (m, i))
      continue;
    c->run = &run;
    c->i = i;
    n++;
    pthread_mutex_lock (&run.lock);
    run.pending++;
    pthread_mutex_unlock (&run.lock);
    if (pthread_create (&c->thread, NULL, each_main, c) == 0)
      c->started = true;
    else
      each_main (c);            /* In this thread, then. */
  }

  size_t need = warm_quorum_need (m, n);
  pthread_mutex_lock (&run.lock);
  /* Terminates: every step has a time limit, and the grace has one. */
  while (run.pending > 0) {
    if (grace_ms > 0 && run.ok >= need && cut_at < 0)
      cut_at = clock_ms () + grace_ms;
    if (cut_at < 0)
      pthread_cond_wait (&run.cond, &run.lock);
    else if (clock_ms () < cut_at)
      wait_until (&run, cut_at);
    else
      break;
  }
  /* Those still out are left behind: shutting their channel down
   * wakes the step waiting on it. */
  for (size_t i = 0; i < m->ndests; ++i)
    if (calls[i].started && !calls[i].done) {
      calls[i].late = true;
      if (m->dests[i].peer)
        chan_shutdown (m->dests[i].peer);
    }
  pthread_mutex_unlock (&run.lock);

  for (size_t i = 0; i < m->ndests; ++i) {
    struct each_call *c = &calls[i];
    char e[1024];
    int code;
    if (c->started)
      pthread_join (c->thread, NULL);
    if (!c->run || (c->rv == 0 && !c->late))
      continue;
    if (c->late)
      snprintf (c->err, sizeof c->err, "%s: no answer within %d s of the "
                "other destination%s", what, grace_ms / 1000,
                n > 2 ? "s" : "");
    if (source_drop_dest (m, i, state, c->err, c->code, &code, e,
                          sizeof e) == -1 && ret == 0) {
      ret = -1;
      *rc = code;
      snprintf (err, errlen, "%s", e);
    }
  }
  pthread_mutex_destroy (&run.lock);
  pthread_cond_destroy (&run.cond);
  return ret;
}

static int
ping_step (struct migration *m, size_t i, void *arg, int *code, char *err,
           size_t errlen)
{
  (void) arg;
  *code = RC_ROLLED_BACK;
  if (!m->dests[i].peer)
    return 0;
  return peer_ask (m->dests[i].peer, peer_msg ("PING"), "PONG",
                   hd.io_timeout_ms, err, errlen);
}

/* While the data moves the control channel is idle: a PING every few
 * seconds shows each side the other is alive (the destination gives
 * up on a source silent for two I/O timeouts).  All at once, and one
 * that stays silent once the others answered is lost after the grace,
 * not after its whole I/O timeout: the loop that samples progress and
 * takes the cutover waits meanwhile. */
int
source_keepalive (struct migration *m, int *rc, char *err, size_t errlen)
{
  static __thread int64_t last;

  if (clock_ms () - last < 2000)
    return 0;
  last = clock_ms ();
  if (source_each_dest (m, "PING", ping_step, NULL,
                        EACH_GRACE_MS < hd.io_timeout_ms
                        ? EACH_GRACE_MS : hd.io_timeout_ms,
                        "lost", rc, err, errlen) == -1)
    return -1;
  /* Without its proxy no destination gets the RAM stream. */
  *rc = RC_ROLLED_BACK;
  return source_ping_via (m, err, errlen);
}
