/* nbd-mirror: sessions and the guest write path.
 *
 * See mirror.h for the thread model and chunkmap.h for the rules that
 * keep destinations from holding stale data.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "copier.h"
#include "dest.h"
#include "mirror.h"
#include "pool.h"
#include "source.h"
#include "state.h"
#include "verify.h"
#include "sockets.h"

struct mirror mirror = {
  .lock = PTHREAD_MUTEX_INITIALIZER,
  .ctx_lock = PTHREAD_MUTEX_INITIALIZER,
};

void
mirror_init (void)
{
  pthread_condattr_t a;

  /* Timed waits use the monotonic clock, immune to clock changes. */
  pthread_condattr_init (&a);
  pthread_condattr_setclock (&a, CLOCK_MONOTONIC);
  pthread_cond_init (&mirror.cond, &a);
  pthread_condattr_destroy (&a);
}

/* Wait on mirror.cond until the monotonic DEADLINE_MS (<0: forever).
 * Returns false on timeout. */
static bool
wait_until (int64_t deadline_ms)
{
  if (deadline_ms < 0) {
    pthread_cond_wait (&mirror.cond, &mirror.lock);
    return true;
  }
  struct timespec ts = abstime_of_ms (deadline_ms);
  return pthread_cond_timedwait (&mirror.cond, &mirror.lock, &ts) == 0 ||
    clock_ms () < deadline_ms;
}





/* ------------------------------------------------------------------ */
/* Guest requests. */

/* A guest request's command on one destination. */
struct req_slot {
  struct dest *d;
  struct pool_handle *h;        /* Held from begin to end. */
  int64_t cookie;               /* -1: not submitted. */
  int error;                    /* 0, or why it failed... */
  char why[256];                /* ...in words. */
};

struct mirror_req {
  enum mirror_op op;
  uint64_t first, last;         /* Chunk range (not for flush). */
  uint64_t offset;
  uint32_t count;
  bool fua;
  void *bounce;                 /* Private copy of the guest data. */
  unsigned ntargets;
  struct req_slot slot[MIRROR_MAX_DESTS];
};

/* Locked: choose a pool handle on every destination that needs R.
 * ALL: every active destination (flush); otherwise the destinations
 * holding a copied chunk of R's range (active mode). */
static void
req_pick_targets_locked (struct mirror_req *r, bool all)
{
  for (size_t i = 0; i < mirror.ndests; ++i) {
    struct dest *d = mirror.dests[i];
    struct pool_handle *h;

    if (!dest_active_locked (d) || d->state == DEST_CONNECTING)
      continue;
    if (all) {
      if (!d->can_flush)
        continue;
    }
    else if (!track_any_copied (&d->track, r->first, r->last))
      continue;
    else if (mirror.mode == MIRROR_MODE_BACKGROUND) {
      track_dirty (&d->track, r->first, r->last);
      dest_wake (d);
      continue;
    }
    h = dest_pool_get_locked (d);
    if (!h)
      continue;
    r->slot[r->ntargets] = (struct req_slot) { .d = d, .h = h, .cookie = -1 };
    r->ntargets++;
    d->pending++;
  }
}

/* Unlocked: send R to every target. */
static void
req_submit (struct mirror_req *r)
{
  for (unsigned i = 0; i < r->ntargets; ++i) {
    struct req_slot *s = &r->slot[i];
    s->cookie = dest_pool_submit (s->d, s->h, r->op, r->bounce, r->count,
                                  r->offset, r->fua, s->why, sizeof s->why);
    if (s->cookie == -1)
      s->error = EIO;
  }
}

/* Unlocked: wait for every target's reply (each is bounded by
 * dest-timeout), and flush targets that cannot do FUA themselves. */
static void
req_wait (struct mirror_req *r)
{
  int64_t deadline = clock_ms () + mirror.cfg.dest_timeout_ms;

  for (unsigned i = 0; i < r->ntargets; ++i) {
    struct req_slot *s = &r->slot[i];
    if (s->cookie == -1)
      continue;
    if (dest_pool_wait (s->h, s->cookie, deadline, s->why,
                        sizeof s->why) == -1) {
      s->error = errno ? errno : EIO;
      continue;
    }
    if (r->fua && r->op != MIRROR_OP_FLUSH && !s->d->can_fua &&
        s->d->can_flush) {
      int64_t c = dest_pool_submit (s->d, s->h, MIRROR_OP_FLUSH, NULL, 0, 0,
                                    false, s->why, sizeof s->why);
      if (c == -1 || dest_pool_wait (s->h, c, deadline, s->why,
                                     sizeof s->why) == -1)
        s->error = EIO;
    }
  }
}

/* Locked: give the handles back and fail the destinations that did not
 * take R. */
static void
req_finish_locked (struct mirror_req *r)
{
  static const char *const what[] = {
    [MIRROR_OP_WRITE] = "write", [MIRROR_OP_ZERO] = "zero",
    [MIRROR_OP_FLUSH] = "flush",
  };

  for (unsigned i = 0; i < r->ntargets; ++i) {
    struct req_slot *s = &r->slot[i];
    dest_pool_put_locked (s->d, s->h, s->error != 0);
    s->d->pending--;
    if (s->error)
      dest_fail_locked (s->d, "mirrored %s at offset %" PRIu64 ": %s",
                        what[r->op], r->offset, s->why);
    else if (r->op != MIRROR_OP_FLUSH)
      s->d->mirrored += r->count;
  }
}

int
mirror_write_begin (enum mirror_op op, const void *buf, uint32_t count,
                    uint64_t offset, uint32_t flags, struct mirror_req **r_out)
{
  struct mirror_req *r;

  *r_out = NULL;
  if (!atomic_load_explicit (&mirror.active, memory_order_acquire))
    return 0;
  /* Without this record the copier could miss the write: refuse it
   * rather than acknowledge data a destination may never get. */
  r = calloc (1, sizeof *r);
  if (!r) {
    errno = ENOMEM;
    return -1;
  }
  r->op = op;
  r->offset = offset;
  r->count = count;
  r->fua = (flags & NBDKIT_FLAG_FUA) != 0;

  pthread_mutex_lock (&mirror.lock);
  if (!session_running_locked (&mirror) || !mirror.allocated || count == 0) {
    pthread_mutex_unlock (&mirror.lock);
    free (r);
    return 0;
  }
  chunkmap_range (&mirror.map, offset, count, &r->first, &r->last);
  /* Overlapping writes are ordered: two mirrored writes to the same
   * chunk must reach every copy in the same order. */
  while (chunkmap_range_busy (&mirror.map, r->first, r->last))
    pthread_cond_wait (&mirror.cond, &mirror.lock);
  chunkmap_write_begin (&mirror.map, r->first, r->last);
  mirror.guest_inflight++;
  mirror.guest_writes++;
  mirror.guest_bytes += count;
  req_pick_targets_locked (r, false);
  pthread_mutex_unlock (&mirror.lock);

  if (r->ntargets > 0 && op == MIRROR_OP_WRITE) {
    /* The destinations get a private copy: the caller's buffer is only
     * promised to us for the length of the call. */
    r->bounce = malloc (count);
    if (!r->bounce) {
      /* Without memory we cannot mirror; the copier redoes the range. */
      pthread_mutex_lock (&mirror.lock);
      for (unsigned i = 0; i < r->ntargets; ++i) {
        track_dirty (&r->slot[i].d->track, r->first, r->last);
        dest_pool_put_locked (r->slot[i].d, r->slot[i].h, false);
        r->slot[i].d->pending--;
        dest_wake (r->slot[i].d);
      }
      r->ntargets = 0;
      pthread_mutex_unlock (&mirror.lock);
      *r_out = r;
      return 0;
    }
    memcpy (r->bounce, buf, count);
  }
  req_submit (r);
  *r_out = r;
  return 0;
}

void
mirror_write_end (struct mirror_req *r, bool exact)
{
  if (!r)
    return;
  req_wait (r);

  pthread_mutex_lock (&mirror.lock);
  req_finish_locked (r);
  if (!exact) {
    /* The local disk may not hold what the destinations got: copy the
     * range again from the source. */
    for (size_t i = 0; i < mirror.ndests; ++i)
      if (dest_active_locked (mirror.dests[i])) {
        track_dirty (&mirror.dests[i]->track, r->first, r->last);
        dest_wake (mirror.dests[i]);
      }
  }
  if (r->ntargets)
    mirror.mirrored_writes++;
  chunkmap_write_end (&mirror.map, r->first, r->last);
  mirror.guest_inflight--;
  /* Wake copiers waiting for these chunks to be free. */
  for (size_t i = 0; i < mirror.ndests; ++i)
    if (dest_active_locked (mirror.dests[i]) &&
        !track_all_copied (&mirror.dests[i]->track, &mirror.map))
      dest_wake (mirror.dests[i]);
  pthread_cond_broadcast (&mirror.cond);
  session_check_locked (&mirror);
  pthread_mutex_unlock (&mirror.lock);
  free (r->bounce);
  free (r);
}

void
mirror_flush (void)
{
  struct mirror_req *r;

  if (!atomic_load_explicit (&mirror.active, memory_order_acquire))
    return;
  r = calloc (1, sizeof *r);
  if (!r)
    return;
  r->op = MIRROR_OP_FLUSH;

  pthread_mutex_lock (&mirror.lock);
  if (!session_running_locked (&mirror) || !mirror.allocated) {
    pthread_mutex_unlock (&mirror.lock);
    free (r);
    return;
  }
  mirror.guest_inflight++;
  req_pick_targets_locked (r, true);
  pthread_mutex_unlock (&mirror.lock);

  req_submit (r);
  req_wait (r);

  pthread_mutex_lock (&mirror.lock);
  req_finish_locked (r);
  mirror.guest_inflight--;
  pthread_cond_broadcast (&mirror.cond);
  session_check_locked (&mirror);
  pthread_mutex_unlock (&mirror.lock);
  free (r);
}

/* ------------------------------------------------------------------ */

void
mirror_reap (void)
{
  struct dest *dests[MIRROR_MAX_DESTS];
  size_t n;

  pthread_mutex_lock (&mirror.lock);
  if (!mirror.allocated || session_running_locked (&mirror)) {
    pthread_mutex_unlock (&mirror.lock);
    return;
  }
  if (mirror.reaping) {
    while (mirror.reaping)
      pthread_cond_wait (&mirror.cond, &mirror.lock);
    pthread_mutex_unlock (&mirror.lock);
    return;
  }
  mirror.reaping = true;
  mirror.stopping = true;
  n = mirror.ndests;
  for (size_t i = 0; i < n; ++i)
    dests[i] = mirror.dests[i];
  for (size_t i = 0; i < n; ++i)
    dest_wake (dests[i]);
  pthread_mutex_unlock (&mirror.lock);

  /* Workers close their connections on the way out, which completes
   * every command a guest request may still wait for. */
  for (size_t i = 0; i < n; ++i)
    dest_join (dests[i]);

  pthread_mutex_lock (&mirror.lock);
  while (mirror.guest_inflight > 0)
    pthread_cond_wait (&mirror.cond, &mirror.lock);
  {
    size_t a, r;
    uint64_t c, d, f;
    json_t *snap = session_dests_json_locked (&mirror, &a, &r, &c, &d, &f);
    json_decref (mirror.last_dests);
    mirror.last_dests = snap;
  }
  for (size_t i = 0; i < n; ++i) {
    dest_free (dests[i]);
    mirror.dests[i] = NULL;
  }
  mirror.ndests = 0;
  copier_free_buffers ();
  chunkmap_free (&mirror.map);
  mirror.allocated = false;
  mirror.stopping = false;
  mirror.reaping = false;
  pthread_cond_broadcast (&mirror.cond);
  pthread_mutex_unlock (&mirror.lock);
}

/* Locked: wait until each of DESTS is connected or has failed (those
 * still connecting after the timeout fail).  How many were usable. */
static size_t
wait_connected_locked (struct dest **dests, size_t n)
{
  int64_t deadline = clock_ms () + mirror.cfg.dest_timeout_ms + 1000;
  size_t connected, i;

  /* Terminates: every destination leaves "connecting", or the
   * deadline passes. */
  for (;;) {
    size_t pending = 0;
    connected = 0;
    for (i = 0; i < n; ++i) {
      if (dests[i]->state == DEST_CONNECTING)
        pending++;
      /* One that failed after connecting was usable: its failure shows
       * in the status, as any later failure would. */
      else if (dests[i]->reached)
        connected++;
    }
    if (pending == 0 || !wait_until (deadline))
      break;
  }
  for (i = 0; i < n; ++i)
    if (dests[i]->state == DEST_CONNECTING)
      dest_fail_locked (dests[i], "no connection after %d ms",
                        mirror.cfg.dest_timeout_ms);
  return connected;
}

int
mirror_start (const char *const *uris, size_t n, enum mirror_mode mode,
              uint64_t copy_rate_limit, char *err, size_t errlen)
{
  struct dest *dests[MIRROR_MAX_DESTS] = { NULL };
  size_t i, connected = 0;

  if (n == 0 || n > MIRROR_MAX_DESTS) {
    set_error (err, errlen, "between 1 and %d destinations are needed",
               MIRROR_MAX_DESTS);
    return -1;
  }
  for (i = 0; i < n; ++i)
    for (size_t j = 0; j < i; ++j)
      if (strcmp (uris[i], uris[j]) == 0) {
        set_error (err, errlen, "destination %s is given twice", uris[i]);
        return -1;
      }

  pthread_mutex_lock (&mirror.lock);
  if (session_running_locked (&mirror)) {
    set_error (err, errlen, "a mirror is already running (state %s)",
               mirror_state_names[mirror.state]);
    pthread_mutex_unlock (&mirror.lock);
    return -1;
  }
  pthread_mutex_unlock (&mirror.lock);
  mirror_reap ();
  if (!mirror.ctx) {
    set_error (err, errlen, "the disk is not available to the mirror");
    return -1;
  }

  pthread_mutex_lock (&mirror.lock);
  if (session_running_locked (&mirror) || mirror.allocated) {
    set_error (err, errlen, "a mirror is already running");
    pthread_mutex_unlock (&mirror.lock);
    return -1;
  }
  if (chunkmap_init (&mirror.map, mirror.size, mirror.cfg.chunk_size) == -1) {
    set_error (err, errlen, "chunk map: %s", strerror (errno));
    pthread_mutex_unlock (&mirror.lock);
    return -1;
  }
  mirror.allocated = true;
  pthread_mutex_unlock (&mirror.lock);

  for (i = 0; i < n; ++i) {
    dests[i] = dest_new (&mirror, uris[i], err, errlen);
    if (!dests[i])
      goto error;
  }

  pthread_mutex_lock (&mirror.lock);
  for (i = 0; i < n; ++i)
    mirror.dests[i] = dests[i];
  mirror.ndests = n;
  mirror.mode = mode;
  mirror.paused = false;
  mirror.stopping = false;
  mirror.started_ms = clock_ms ();
  mirror.ready_ms = 0;
  mirror.guest_writes = mirror.guest_bytes = mirror.mirrored_writes = 0;
  mirror.total_sent = 0;
  ratelimit_set (&mirror.copy_limit, copy_rate_limit, mirror.started_ms);
  mirror.copy_rate = mirror.write_rate = 0;
  mirror.rate_sent = mirror.rate_guest = 0;
  mirror.rate_ms = mirror.started_ms;
  mirror.last_error[0] = '\0';
  mirror.state = MIRROR_COPYING;
  /* From here guest writes are tracked; nothing is copied yet, so they
   * stay local until their chunks are copied. */
  atomic_store_explicit (&mirror.active, true, memory_order_release);
  pthread_mutex_unlock (&mirror.lock);

  for (i = 0; i < n; ++i)
    if (dest_start (dests[i]) == -1) {
      pthread_mutex_lock (&mirror.lock);
      dest_fail_locked (dests[i], "cannot start its thread: %s",
                        strerror (errno));
      pthread_mutex_unlock (&mirror.lock);
    }

  /* Wait until each destination is connected or has failed. */
  pthread_mutex_lock (&mirror.lock);
  connected = wait_connected_locked (dests, n);
  if (connected == 0) {
    size_t len = 0;
    len += (size_t) snprintf (err, errlen, "no destination could be used:");
    for (i = 0; i < n && len < errlen; ++i)
      len += (size_t) snprintf (err + len, errlen - len, " %s: %s;",
                                dests[i]->uri, dests[i]->error);
    if (len > 0 && len < errlen && err[len - 1] == ';')
      err[len - 1] = '\0';
    session_check_locked (&mirror);
    pthread_mutex_unlock (&mirror.lock);
    mirror_reap ();
    return -1;
  }
  pthread_mutex_unlock (&mirror.lock);
  log_info ("mirror started to %zu destination(s), %zu connected", n,
            connected);
  return 0;

 error:
  for (i = 0; i < n; ++i)
    if (dests[i])
      dest_free (dests[i]);
  pthread_mutex_lock (&mirror.lock);
  chunkmap_free (&mirror.map);
  mirror.allocated = false;
  pthread_mutex_unlock (&mirror.lock);
  return -1;
}

/* Locked: every active destination holds every chunk. */
static bool
all_copied_locked (size_t *active_r)
{
  size_t active = 0;
  bool all = true;

  for (size_t i = 0; i < mirror.ndests; ++i) {
    struct dest *d = mirror.dests[i];
    if (!dest_active_locked (d))
      continue;
    active++;
    if (d->state == DEST_CONNECTING || d->track.inflight > 0 ||
        !track_all_copied (&d->track, &mirror.map))
      all = false;
  }
  *active_r = active;
  return all && active > 0;
}




int
mirror_complete (bool verify, int64_t timeout_ms, uint64_t *verified_r,
                 char *err, size_t errlen)
{
  int64_t deadline = timeout_ms > 0 ? clock_ms () + timeout_ms : -1;
  size_t active;
  char why[1024];

  *verified_r = 0;
  pthread_mutex_lock (&mirror.lock);
  if (!session_running_locked (&mirror)) {
    if (mirror.state == MIRROR_FAILED)
      set_error (err, errlen, "the mirror failed: %s",
                 session_failure_summary_locked (&mirror, why, sizeof why));
    else
      set_error (err, errlen, "no mirror is running (state %s)",
                 mirror_state_names[mirror.state]);
    pthread_mutex_unlock (&mirror.lock);
    return -1;
  }
  /* From now on every guest write to a copied chunk is mirrored, so
   * once all chunks are copied they stay copied. */
  mirror.mode = MIRROR_MODE_ACTIVE;
  mirror.paused = false;
  for (size_t i = 0; i < mirror.ndests; ++i)
    dest_wake (mirror.dests[i]);
  while (!all_copied_locked (&active)) {
    if (active == 0) {
      set_error (err, errlen, "every destination failed: %s",
                 session_failure_summary_locked (&mirror, why, sizeof why));
      pthread_mutex_unlock (&mirror.lock);
      mirror_reap ();
      return -1;
    }
    if (!wait_until (deadline)) {
      set_error (err, errlen, "timed out waiting for the copy to finish");
      errno = ETIMEDOUT;
      pthread_mutex_unlock (&mirror.lock);
      return -1;
    }
  }
  pthread_mutex_unlock (&mirror.lock);

  /* Everything acknowledged so far reaches stable storage. */
  mirror_flush ();

  if (verify && mirror_verify (&mirror, verified_r, err, errlen) == -1) {
    errno = EILSEQ;
    return -1;
  }

  pthread_mutex_lock (&mirror.lock);
  active = 0;
  for (size_t i = 0; i < mirror.ndests; ++i)
    if (dest_active_locked (mirror.dests[i])) {
      mirror.dests[i]->state = DEST_COMPLETED;
      active++;
    }
  if (active == 0 || !session_running_locked (&mirror)) {
    set_error (err, errlen, "every destination failed: %s",
               session_failure_summary_locked (&mirror, why, sizeof why));
    session_check_locked (&mirror);
    pthread_mutex_unlock (&mirror.lock);
    mirror_reap ();
    return -1;
  }
  mirror.state = MIRROR_COMPLETED;
  atomic_store (&mirror.active, false);
  pthread_cond_broadcast (&mirror.cond);
  pthread_mutex_unlock (&mirror.lock);
  mirror_reap ();
  log_info ("mirror completed to %zu destination(s)", active);
  return 0;
}

int
mirror_cancel (const char *uri, char *err, size_t errlen)
{
  bool found = false;

  pthread_mutex_lock (&mirror.lock);
  if (!session_running_locked (&mirror)) {
    set_error (err, errlen, "no mirror is running (state %s)",
               mirror_state_names[mirror.state]);
    pthread_mutex_unlock (&mirror.lock);
    return -1;
  }
  for (size_t i = 0; i < mirror.ndests; ++i) {
    struct dest *d = mirror.dests[i];
    if (uri && strcmp (uri, d->uri) != 0)
      continue;
    found = true;
    if (dest_active_locked (d)) {
      dest_leave_locked (d, DEST_CANCELLED);
      dest_wake (d);
    }
  }
  if (!found) {
    set_error (err, errlen, "%s is not a destination of this mirror", uri);
    pthread_mutex_unlock (&mirror.lock);
    return -1;
  }
  if (!uri) {
    mirror.state = MIRROR_CANCELLED;
    atomic_store (&mirror.active, false);
  }
  session_check_locked (&mirror);
  pthread_cond_broadcast (&mirror.cond);
  pthread_mutex_unlock (&mirror.lock);
  mirror_reap ();
  return 0;
}

int
mirror_pause (bool pause, char *err, size_t errlen)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);

  if (!session_running_locked (&mirror)) {
    set_error (err, errlen, "no mirror is running (state %s)",
               mirror_state_names[mirror.state]);
    return -1;
  }
  mirror.paused = pause;
  for (size_t i = 0; i < mirror.ndests; ++i)
    dest_wake (mirror.dests[i]);
  return 0;
}

void
mirror_update_rates (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
  int64_t now = clock_ms ();
  double dt = (double) (now - mirror.rate_ms) / 1000.0;

  if (dt < 0.5)
    return;
  if (session_running_locked (&mirror)) {
    double cr = (double) (mirror.total_sent - mirror.rate_sent) / dt;
    double wr = (double) (mirror.guest_bytes - mirror.rate_guest) / dt;
    /* Smooth over a few seconds so one slow second does not swing the
     * ETA. */
    mirror.copy_rate = mirror.copy_rate ? 0.5 * mirror.copy_rate + 0.5 * cr
      : cr;
    mirror.write_rate = mirror.write_rate ? 0.5 * mirror.write_rate + 0.5 * wr
      : wr;
  }
  mirror.rate_sent = mirror.total_sent;
  mirror.rate_guest = mirror.guest_bytes;
  mirror.rate_ms = now;
}

void
mirror_shutdown (void)
{
  pthread_mutex_lock (&mirror.lock);
  if (session_running_locked (&mirror)) {
    for (size_t i = 0; i < mirror.ndests; ++i)
      if (dest_active_locked (mirror.dests[i]))
        dest_leave_locked (mirror.dests[i], DEST_CANCELLED);
    mirror.state = MIRROR_CANCELLED;
    atomic_store (&mirror.active, false);
  }
  pthread_mutex_unlock (&mirror.lock);
  mirror_reap ();
}
