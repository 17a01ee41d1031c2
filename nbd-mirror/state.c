/* nbd-mirror: the session's state and its rules (state.h): which
 * destinations are alive, a destination failing, when a session has no
 * destination left, and what status reports.  No I/O.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "state.h"

const char *const mirror_state_names[] = {
  [MIRROR_IDLE] = "idle",
  [MIRROR_COPYING] = "copying",
  [MIRROR_READY] = "ready",
  [MIRROR_COMPLETED] = "completed",
  [MIRROR_FAILED] = "failed",
  [MIRROR_CANCELLED] = "cancelled",
};

const char *const dest_state_names[] = {
  [DEST_CONNECTING] = "connecting",
  [DEST_COPYING] = "copying",
  [DEST_READY] = "ready",
  [DEST_COMPLETED] = "completed",
  [DEST_FAILED] = "failed",
  [DEST_CANCELLED] = "cancelled",
};


bool
dest_active_locked (const struct dest *d)
{
  return d->state == DEST_CONNECTING || d->state == DEST_COPYING ||
    d->state == DEST_READY;
}

void
dest_wake (struct dest *d)
{
  uint64_t one = 1;

  for (unsigned i = 0; i < d->nconn; ++i)
    if (d->conn[i].wake_fd >= 0 &&
        write (d->conn[i].wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
      log_debug ("wake %s: %m", d->uri);
}

void
dest_leave_locked (struct dest *d, enum dest_state state)
{
  d->state = state;
  atomic_store (&d->gone, true);
}

void
dest_fail_locked (struct dest *d, const char *fmt, ...)
{
  va_list ap;

  if (!dest_active_locked (d))
    return;
  va_start (ap, fmt);
  vsnprintf (d->error, sizeof d->error, fmt, ap);
  va_end (ap);
  dest_leave_locked (d, DEST_FAILED);
  log_error ("mirror: destination %s failed: %s", d->uri, d->error);
  dest_wake (d);
  pthread_cond_broadcast (&d->m->cond);
  session_check_locked (d->m);
}

bool
session_running_locked (struct mirror *m)
{
  return m->state == MIRROR_COPYING || m->state == MIRROR_READY;
}

/* ------------------------------------------------------------------ */
/* Sessions. */

void
session_check_locked (struct mirror *m)
{
  size_t active = 0, failed = 0;

  if (!session_running_locked (m))
    return;
  for (size_t i = 0; i < m->ndests; ++i) {
    if (dest_active_locked (m->dests[i]))
      active++;
    else if (m->dests[i]->state == DEST_FAILED)
      failed++;
  }
  if (active > 0)
    return;
  m->state = failed > 0 ? MIRROR_FAILED : MIRROR_CANCELLED;
  atomic_store (&m->active, false);
  if (failed > 0)
    session_failure_summary_locked (m, m->last_error,
                                    sizeof m->last_error);
  log_warn ("mirror %s: no destination left",
            mirror_state_names[m->state]);
  pthread_cond_broadcast (&m->cond);
}

const char *
session_failure_summary_locked (struct mirror *m, char *buf, size_t len)
{
  size_t n = 0;

  buf[0] = '\0';
  if (!m->allocated) {
    snprintf (buf, len, "%s", m->last_error);
    return buf;
  }
  for (size_t i = 0; i < m->ndests && n < len; ++i)
    if (m->dests[i]->state == DEST_FAILED)
      n += (size_t) snprintf (buf + n, len - n, "%s%s: %s", n ? "; " : "",
                              m->dests[i]->uri, m->dests[i]->error);
  return buf;
}

static uint64_t
chunks_bytes (struct mirror *m, uint64_t chunks)
{
  uint64_t b = chunks * m->map.chunk_size;
  return b > m->size ? m->size : b;
}

json_t *
session_dests_json_locked (struct mirror *m, size_t *active_r, size_t *ready_r,
                          uint64_t *min_copied_r, uint64_t *dirtied_r,
                          uint64_t *inflight_r)
{
  json_t *dests;
  uint64_t min_copied = UINT64_MAX;

  *active_r = *ready_r = 0;
  *dirtied_r = *inflight_r = 0;
  if (!m->allocated) {
    *min_copied_r = 0;
    return m->last_dests ? json_deep_copy (m->last_dests)
      : json_array ();
  }
  dests = json_array ();
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = m->dests[i];
    enum dest_state ds = d->state;
    uint64_t copied = chunks_bytes (m, d->track.copied);

    if (dest_active_locked (d)) {
      (*active_r)++;
      if (copied < min_copied)
        min_copied = copied;
      *dirtied_r += chunks_bytes (m, d->track.dirtied);
      *inflight_r += chunks_bytes (m, d->track.inflight);
      if (ds == DEST_COPYING && d->track.copied == m->map.nchunks &&
          d->track.inflight == 0) {
        ds = DEST_READY;
        (*ready_r)++;
      }
    }
    if (ds == DEST_COMPLETED)
      copied = m->size;
    json_array_append_new (dests, json_pack (
      "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:i, s:s}",
      "uri", d->uri,
      "state", dest_state_names[ds],
      "copied", (json_int_t) copied,
      "remaining", (json_int_t) (m->size - copied),
      "dirtied", (json_int_t) chunks_bytes (m, d->track.dirtied),
      "sent", (json_int_t) d->sent,
      "mirrored", (json_int_t) d->mirrored,
      "connections", (int) d->connected,
      "error", d->error));
  }
  *min_copied_r = *active_r ? min_copied : 0;
  return dests;
}
