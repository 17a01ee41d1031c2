/* handoffd: a migration's destinations, one or several (DESIGN.md
 * §1 "multi-destination"): dropping one that failed while the others
 * go on, and the race at the switch-over -
 * every destination loads the VM, the first to have it runs it.
 * source.c drives the phases.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel-proto.h"
#include "channel.h"
#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "exitcodes.h"
#include "log.h"
#include "peer.h"
#include "record.h"
#include "source-dests.h"
#include "source-helpers.h"
#include "vm.h"

/* Telling a destination that left to drop what it received, in a
 * thread of its own: one that stopped answering costs its timeouts
 * (the call on its channel, then a new connection) to no one else -
 * meanwhile the others must get their keepalives, or they give up on
 * a source silent for two I/O timeouts. */
struct telling {
  struct channel *peer;         /* Its channel, now the thread's. */
  char host[sizeof ((struct dest *) 0)->host];
  char id[sizeof ((struct migration *) 0)->id];
  char reason[1024];
};

static void *
tell_main (void *arg)
{
  struct telling *t = arg;

  peer_abort_migration (t->peer, t->host, t->id, t->reason);
  if (t->peer)
    chan_close (t->peer);
  free (t);
  return NULL;
}

static void
tell_drop (struct dest *d, const char *id, const char *reason)
{
  struct telling *t = calloc (1, sizeof *t);
  pthread_attr_t attr;
  pthread_t thread;

  if (!t) {
    peer_abort_migration (d->peer, d->host, id, reason);
    return;
  }
  t->peer = d->peer;
  d->peer = NULL;
  snprintf (t->host, sizeof t->host, "%s", d->host);
  snprintf (t->id, sizeof t->id, "%s", id);
  snprintf (t->reason, sizeof t->reason, "%s", reason);
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create (&thread, &attr, tell_main, t) != 0)
    tell_main (t);
  pthread_attr_destroy (&attr);
}

/* Destination I broke (WHY) and is now STATE (failed, or lost if it
 * stopped answering).  With one destination that ends the migration:
 * -1, err and *RC = CODE, and the rollback tells it to drop what it
 * made.  With several it leaves alone: it is told now (unless it only
 * refused: nothing was made) and the others go on - -1 only when it
 * was the last. */
int
source_drop_dest (struct migration *m, size_t i, const char *state,
                  const char *why, int code, int *rc, char *err,
                  size_t errlen)
{
  struct dest *d = &m->dests[i];
  char reason[1024];

  snprintf (reason, sizeof reason, "%s", why);
  record_dest (m, i, state, reason);
  *rc = code;
  if (m->ndests == 1) {
    snprintf (err, errlen, "%s", reason);
    return -1;
  }
  snprintf (err, errlen, "%s: %s", d->host, reason);
  /* Its streams let go of it at once: the guest's writes would wait
   * for its replies, and it may never answer again. */
  source_leave_streams (m, d);
  if (d->admitted && !d->told)
    tell_drop (d, m->id, reason);
  d->told = true;
  if (d->peer)
    chan_close (d->peer);
  d->peer = NULL;
  return record_dests_alive (m) > 0 ? 0 : -1;
}

/* Destination I if it is still part of the migration, else NULL. */
struct dest *
source_alive_dest (struct migration *m, size_t i)
{
  return m->dests[i].alive ? &m->dests[i] : NULL;
}

/* Several destinations load the VM at once; the first to have it
 * loaded runs it.  Each loader thread asks one destination. */
struct race {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  size_t pending;               /* lock */
  int first;                    /* lock: the first loaded, or -1 */
};

struct loader {
  struct race *race;
  struct migration *m;
  json_t *evs, *objs;           /* The management state it sends. */
  size_t i;
  pthread_t thread;
  bool running;
  bool loaded;                  /* race->lock */
  char err[1024];
};

int
source_send_state (struct dest *d, json_t *evs, json_t *objs, char *err,
                   size_t errlen)
{
  json_t *msgs[] = {
    json_pack ("{s:s, s:O}", "type", "QUEUED_EVENTS", "events", evs),
    json_pack ("{s:s, s:O}", "type", "MANAGEMENT_UPDATE", "objects", objs),
  };
  int rv = 0;

  for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; ++i) {
    /* peer_ask takes what it sends; the rest are dropped here. */
    if (rv == 0)
      rv = peer_ask (d->peer, msgs[i], "SUCCESS", hd.io_timeout_ms, err,
                     errlen);
    else
      json_decref (msgs[i]);
  }
  return rv;
}

static void *
load_main (void *arg)
{
  struct loader *l = arg;
  struct dest *d = &l->m->dests[l->i];
  json_t *a = NULL;

  if (source_send_state (d, l->evs, l->objs, l->err, sizeof l->err) == 0)
    a = peer_call (d->peer, json_pack ("{s:s, s:b}", "type",
                                       "MIGRATION_COMPLETE", "hold", 1),
                   hd.io_timeout_ms + 10000, l->err, sizeof l->err);
  bool ok = a && peer_expect (a, "LOADED", l->err, sizeof l->err) == 0;

  json_decref (a);
  pthread_mutex_lock (&l->race->lock);
  l->loaded = ok;
  if (ok && l->race->first < 0)
    l->race->first = (int) l->i;
  l->race->pending--;
  pthread_cond_broadcast (&l->race->cond);
  pthread_mutex_unlock (&l->race->lock);
  return NULL;
}

json_t *
source_resume (struct migration *m, struct dest *w, json_t *msg, char *err,
               size_t errlen)
{
  /* --cascade: once the VM runs there, W migrates it on by itself. */
  if (m->cascade[0])
    json_object_set_new (msg, "cascade", json_pack (
                           "{s:s, s:b, s:I, s:s}", "to", m->cascade,
                           "prewarm", m->prewarm, "max_downtime_ms",
                           (json_int_t) m->max_downtime_ms, "warm_exit",
                           m->warm_exit));
  /* What the destination does before it answers is bounded: loading
   * (one I/O timeout, MIGRATION_COMPLETE only), QEMU's 'cont' (10 s)
   * and its RESUME event (5 s).  Past that the answer was lost. */
  json_t *a = peer_call (w->peer, msg, hd.io_timeout_ms + 20000, err, errlen);

  const char *state;

  if (!a) {
    /* The answer was lost: ask on a new connection. */
    log_warn ("migration %s: no answer from %s (%s); asking it on a new "
              "connection whether it runs %s", m->id, w->host, err, m->vm);
    a = peer_query_migration (w->host, m->id, 60000, err, errlen);
    if (!a)
      return NULL;
    state = json_string_value (json_object_get (a, "state"));
    if (state && strcmp (state, "resumed") == 0) {
      log_info ("migration %s: %s says it runs %s", m->id, w->host, m->vm);
      json_object_set_new (a, "asked_again", json_true ());
      return a;
    }
  }
  if (peer_expect (a, "ACK", err, errlen) == 0)
    return a;
  state = json_string_value (json_object_get (a, "state"));
  if (state)
    /* Its answer to the question on a new connection. */
    snprintf (err, errlen, "%s did not resume the VM (asked again, it "
              "says the migration is %s there)", w->host, state);
  json_decref (a);
  return NULL;
}

/* Several destinations.  No destination runs the VM until it is told
 * RESUME, and only one is: the source's decision, journalled (with
 * the winner as the journal's peer) before the RESUME goes out.  A
 * restart before that rolls back (recover.c); after it, it asks the
 * winner, as with one destination.  A destination that loaded and
 * then loses the source drops what it made (destination.c): it was
 * never told to run. */
int
source_complete_race (struct migration *m, json_t *evs, json_t *objs,
                      json_t **ack_r, int *rc, char *err, size_t errlen)
{
  struct race race = { .first = -1 };
  struct loader ls[MAX_DESTS];
  int w;

  pthread_mutex_init (&race.lock, NULL);
  pthread_cond_init (&race.cond, NULL);
  size_t n = record_dests_alive (m);
  record_set_phase (m, "loading", "RAM and devices sent to %zu host%s; the "
                    "first to load the VM runs it", n, n == 1 ? "" : "s");
  memset (ls, 0, sizeof ls);
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = source_alive_dest (m, i);
    if (!d)
      continue;
    struct loader *l = &ls[i];
    l->race = &race;
    l->m = m;
    l->evs = evs;
    l->objs = objs;
    l->i = i;
    record_dest (m, i, "loading", NULL);
    pthread_mutex_lock (&race.lock);
    race.pending++;
    pthread_mutex_unlock (&race.lock);
    if (pthread_create (&l->thread, NULL, load_main, l) == 0)
      l->running = true;
    else {
      snprintf (l->err, sizeof l->err, "cannot start a thread");
      pthread_mutex_lock (&race.lock);
      race.pending--;
      pthread_mutex_unlock (&race.lock);
    }
  }
  pthread_mutex_lock (&race.lock);
  /* Terminates: every loader ends (each call has a time limit). */
  while (race.first < 0 && race.pending > 0)
    pthread_cond_wait (&race.cond, &race.lock);
  w = race.first;
  pthread_mutex_unlock (&race.lock);
  /* Fleet mode: the VM becomes the winner's before it is told to
   * resume; if it cannot, the winner is discarded with the others. */
  if (w >= 0 && cluster_move_vm (m->vm, m->dests[w].host, m->owner_rev, err,
                                 errlen) == -1)
    w = -1;

  json_t *ack = NULL;
  if (w >= 0) {
    struct dest *win = &m->dests[w];
    pthread_join (ls[w].thread, NULL);
    ls[w].running = false;
    pthread_mutex_lock (&m->lock);
    snprintf (m->to, sizeof m->to, "%s", win->host);
    pthread_mutex_unlock (&m->lock);
    /* The journal names the winner first: a restart from here on asks
     * it (once the phase says the RESUME may have gone out). */
    db_journal_phase_peer (m->id, "loading", win->host, "chosen: the first "
                           "destination to load the VM");
    m->complete_sent = true;
    record_set_phase (m, "complete_sent", "%s loaded the VM first: it "
                      "resumes it", win->host);
    ack = source_resume (m, win, peer_msg ("RESUME"), err, errlen);
    if (ack) {
      m->running_at = clock_ms ();
      m->running_wall = wall_ms ();
      record_dest (m, (size_t) w, "running", NULL);
    }
  }
  /* The others: each told to drop what it made. */
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = &m->dests[i];
    char e[1024];
    int code;
    if ((int) i == w || !d->alive)
      continue;
    if (ls[i].running)
      pthread_join (ls[i].thread, NULL);
    if (!ls[i].loaded) {
      source_drop_dest (m, i, "failed", ls[i].err, RC_ROLLED_BACK, &code, e,
                 sizeof e);
      if (w < 0 && !err[0])
        snprintf (err, errlen, "%s", e);
      continue;
    }
    record_dest (m, i, "discarded", w >= 0 ? "another destination runs the "
                 "VM" : "the migration rolled back");
    peer_abort_migration (d->peer, d->host, m->id, w >= 0
                          ? "another destination runs the VM"
                          : "the migration rolled back");
    d->told = true;
    d->alive = false;
  }
  pthread_mutex_destroy (&race.lock);
  pthread_cond_destroy (&race.cond);
  if (w < 0) {
    *rc = RC_ROLLED_BACK;
    if (!err[0])
      set_error (err, errlen, "no destination loaded the VM");
    return -1;
  }
  if (!ack)
    return -1;
  *ack_r = ack;
  return 0;
}
