/* handoffd: a migration's record: what its thread and everyone
 * following it share (record.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "log.h"
#include "record.h"

void
record_emit (struct migration *m, json_t *ev)
{
  json_object_set_new (ev, "elapsed",
                       json_real ((double) (clock_ms () - m->t0) / 1000.0));
  pthread_mutex_lock (&m->lock);
  json_array_append_new (m->events, ev);
  pthread_cond_broadcast (&m->cond);
  pthread_mutex_unlock (&m->lock);
}

void
phase_enter (const char *id, const char *phase, const char *msg,
             void (*emit) (void *opaque, json_t *ev), void *opaque)
{
  db_journal_phase (id, phase, msg);
  log_info ("migration %s: %s: %s", id, phase, msg);
  if (emit)
    emit (opaque, json_pack ("{s:s, s:s, s:s}", "event", "phase", "phase",
                             phase, "message", msg));
  hd_crash_point (phase);
}

static void
emit_to_record (void *opaque, json_t *ev)
{
  record_emit (opaque, ev);
}

void
record_set_phase (struct migration *m, const char *phase, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  pthread_mutex_lock (&m->lock);
  snprintf (m->phase, sizeof m->phase, "%s", phase);
  pthread_mutex_unlock (&m->lock);
  phase_enter (m->id, phase, msg, emit_to_record, m);
}

/* Is a destination in STATE out of the migration? */
static bool
state_gone (const char *state)
{
  return strcmp (state, "failed") == 0 || strcmp (state, "lost") == 0 ||
    strcmp (state, "discarded") == 0;
}

void
record_dest (struct migration *m, size_t i, const char *state,
             const char *reason)
{
  struct dest *d = &m->dests[i];

  pthread_mutex_lock (&m->lock);
  snprintf (d->state, sizeof d->state, "%s", state);
  snprintf (d->reason, sizeof d->reason, "%s", reason ? reason : "");
  pthread_mutex_unlock (&m->lock);
  if (state_gone (state))
    d->alive = false;
  if (m->ndests > 1) {
    log_info ("migration %s: destination %s: %s%s%s", m->id, d->host, state,
              reason ? ": " : "", reason ? reason : "");
    record_emit (m, json_pack ("{s:s, s:s, s:s, s:s}", "event",
                               "destination", "host", d->host, "state",
                               state, "reason", reason ? reason : ""));
  }
}

int
record_cutover (struct migration *m, const char *to, char *err,
                size_t errlen)
{
  char list[sizeof m->cutover_to], *save = NULL;
  size_t chosen = 0;
  int rv = -1;

  if (to && strlen (to) >= sizeof list)
    return set_error (err, errlen, "--to: too long");
  snprintf (list, sizeof list, "%s", to ? to : "");
  pthread_mutex_lock (&m->lock);
  /* Every named host must be a destination still in the migration. */
  for (char *h = strtok_r (list, ",", &save); h;
       h = strtok_r (NULL, ",", &save)) {
    bool found = false;
    for (size_t i = 0; i < m->ndests && !found; ++i)
      if (strcmp (m->dests[i].host, h) == 0) {
        if (state_gone (m->dests[i].state)) {
          set_error (err, errlen, "%s has left the migration (%s)", h,
                     m->dests[i].state);
          goto out;
        }
        found = true;
      }
    if (!found) {
      set_error (err, errlen, "%s is not a destination of this migration",
                 h);
      goto out;
    }
    chosen++;
  }
  if (to && chosen == 0)
    set_error (err, errlen, "--to: expected HOST[,HOST...]");
  else if (m->cutover_requested)
    set_error (err, errlen, "a cutover was already asked for");
  else if (m->finished)
    set_error (err, errlen, "the migration has ended");
  else {
    m->cutover_requested = true;
    m->cutover_at = clock_ms ();
    snprintf (m->cutover_to, sizeof m->cutover_to, "%s", to ? to : "");
    pthread_cond_broadcast (&m->cond);
    rv = 0;
  }
 out:
  pthread_mutex_unlock (&m->lock);
  return rv;
}

size_t
record_event_count (struct migration *m)
{
  pthread_mutex_lock (&m->lock);
  size_t n = json_array_size (m->events);
  pthread_mutex_unlock (&m->lock);
  return n;
}

/* The key under which EV replaces an earlier event in a catch-up
 * (KEY of KEYLEN), or false if a follower joining late can miss it. */
static bool
catch_up_key (json_t *ev, char *key, size_t keylen)
{
  static const char *const kinds[] = { "attempt", "phase", "progress" };
  const char *t = json_string_value (json_object_get (ev, "event"));

  if (!t)
    return false;
  if (strcmp (t, "destination") == 0) {
    const char *host = json_string_value (json_object_get (ev, "host"));
    snprintf (key, keylen, "destination %s", host ? host : "");
    return true;
  }
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; ++i)
    if (strcmp (t, kinds[i]) == 0) {
      snprintf (key, keylen, "%s", t);
      return true;
    }
  return false;
}

json_t *
record_catch_up (struct migration *m, size_t *cursor)
{
  /* One key per kind and per destination: a handful. */
  char seen[MAX_DESTS + 4][64 + 16];
  size_t nseen = 0, n;
  json_t *out = json_array ();

  pthread_mutex_lock (&m->lock);
  n = json_array_size (m->events);
  /* Newest first, so each key keeps its last event; a migration held
   * warm for hours has many progress events, so one pass. */
  for (size_t i = n; i-- > 0 && nseen < sizeof seen / sizeof seen[0];) {
    json_t *ev = json_array_get (m->events, i);
    char key[sizeof seen[0]];
    bool dup = false;

    if (!catch_up_key (ev, key, sizeof key))
      continue;
    for (size_t k = 0; k < nseen && !dup; ++k)
      dup = strcmp (seen[k], key) == 0;
    if (dup)
      continue;
    memcpy (seen[nseen++], key, sizeof key);
    json_array_insert (out, 0, ev);
  }
  /* Finished already: the result (never part of the catch-up) is the
   * last event, and the follower still gets it. */
  *cursor = m->finished && n > 0 ? n - 1 : n;
  pthread_mutex_unlock (&m->lock);
  return out;
}

size_t
record_dests_alive (const struct migration *m)
{
  size_t n = 0;

  for (size_t i = 0; i < m->ndests; ++i)
    n += m->dests[i].alive;
  return n;
}

bool
record_aborted (struct migration *m)
{
  pthread_mutex_lock (&m->lock);
  bool a = m->abort_requested;
  pthread_mutex_unlock (&m->lock);
  return a;
}


void
record_finish (struct migration *m, json_t *result)
{
  pthread_mutex_lock (&m->lock);
  json_object_set_new (result, "event", json_string ("result"));
  json_object_set_new (result, "vm", json_string (m->vm));
  json_object_set_new (result, "to", json_string (m->to));
  json_object_set_new (result, "id", json_string (m->id));
  json_object_set_new (result, "total_ms",
                       json_integer ((json_int_t) (clock_ms () - m->t0)));
  json_array_append_new (m->events, result);
  m->finished = true;
  pthread_cond_broadcast (&m->cond);
  pthread_mutex_unlock (&m->lock);
}

/* Volume mode reports through the same event list. */

void
record_volume_emit (void *opaque, json_t *ev)
{
  struct migration *m = opaque;
  const char *type = json_string_value (json_object_get (ev, "event"));

  if (type && strcmp (type, "result") == 0) {
    json_object_del (ev, "event");
    record_finish (m, ev);
    return;
  }
  if (type && strcmp (type, "phase") == 0) {
    pthread_mutex_lock (&m->lock);
    snprintf (m->phase, sizeof m->phase, "%s",
              json_string_value (json_object_get (ev, "phase")));
    pthread_mutex_unlock (&m->lock);
  }
  record_emit (m, ev);
}

json_t *
record_next_event (struct migration *m, size_t *cursor, int timeout_ms,
                    bool *done)
{
  json_t *ev = NULL;
  /* m->cond waits on the realtime clock. */
  struct timespec ts = abstime_after (CLOCK_REALTIME, timeout_ms);
  pthread_mutex_lock (&m->lock);
  /* Terminates: an event arrives or the wait times out. */
  while (*cursor >= json_array_size (m->events))
    if (pthread_cond_timedwait (&m->cond, &m->lock, &ts) == ETIMEDOUT)
      break;
  if (*cursor < json_array_size (m->events)) {
    ev = json_incref (json_array_get (m->events, *cursor));
    (*cursor)++;
    *done = m->finished && *cursor == json_array_size (m->events);
  }
  pthread_mutex_unlock (&m->lock);
  return ev;
}

bool
record_wait_cutover (struct migration *m, int timeout_ms)
{
  /* m->cond waits on the realtime clock. */
  struct timespec ts = abstime_after (CLOCK_REALTIME, timeout_ms);
  pthread_mutex_lock (&m->lock);
  bool before = m->cutover_requested || m->abort_requested;
  /* Terminates: asked for, or the wait times out.  Other wake-ups (new
   * events) only look again. */
  while (!before && !m->cutover_requested && !m->abort_requested)
    if (pthread_cond_timedwait (&m->cond, &m->lock, &ts) == ETIMEDOUT)
      break;
  pthread_mutex_unlock (&m->lock);
  return !before;
}

json_t *
record_result (struct migration *m)
{
  json_t *r = NULL;

  pthread_mutex_lock (&m->lock);
  if (m->finished)
    r = json_incref (json_array_get (m->events,
                                     json_array_size (m->events) - 1));
  pthread_mutex_unlock (&m->lock);
  return r;
}

void
record_put (struct migration *m)
{
  bool last;

  pthread_mutex_lock (&m->lock);
  last = --m->refs == 0;
  pthread_mutex_unlock (&m->lock);
  if (!last)
    return;
  json_decref (m->events);
  json_decref (m->def);
  json_decref (m->ram_final);
  json_decref (m->objects);
  json_decref (m->via_disks);
  pthread_mutex_destroy (&m->via_lock);
  pthread_mutex_destroy (&m->lock);
  pthread_cond_destroy (&m->cond);
  free (m);
}

json_t *
record_summary (struct migration *m)
{
  json_t *last_progress = NULL, *ev;
  size_t i;

  pthread_mutex_lock (&m->lock);
  json_array_foreach (m->events, i, ev) {
    const char *t = json_string_value (json_object_get (ev, "event"));
    if (t && strcmp (t, "progress") == 0)
      last_progress = ev;
  }
  json_t *dests = json_array ();
  for (i = 0; i < m->ndests; ++i) {
    const struct dest *d = &m->dests[i];
    json_t *o = json_pack ("{s:s, s:s, s:f, s:f, s:b}", "host", d->host,
                           "state", d->state, "remaining", d->left,
                           "rate", d->rate, "copied", d->copied);
    if (d->reason[0])
      json_object_set_new (o, "reason", json_string (d->reason));
    if (d->transport[0])
      json_object_set_new (o, "transport", json_string (d->transport));
    json_array_append_new (dests, o);
  }
  json_t *s = json_pack ("{s:s, s:s, s:s, s:s, s:b, s:O, s:o, s:I, s:I}",
                         "id", m->id, "vm", m->vm, "to", m->to, "phase",
                         m->phase, "finished", m->finished, "progress",
                         last_progress ? last_progress : json_null (),
                         "destinations", dests, "attempt",
                         (json_int_t) m->attempt, "attempts",
                         (json_int_t) m->attempts);
  /* m->via is set before the migration thread starts, never after. */
  if (m->via[0])
    json_object_set_new (s, "via", json_string (m->via));
  pthread_mutex_unlock (&m->lock);
  return s;
}
