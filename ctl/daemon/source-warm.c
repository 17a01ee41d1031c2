/* handoffd: holding a migration warm and letting it go, and when it
 * may go: --warm-exit per destination, --quorum over them
 * (source-warm.h).
 *
 * QEMU has one outgoing migration and no "hold" state of its own.  With
 * the return-path and switchover-ack capabilities it does not switch
 * over before the destination acknowledges, and the relay holds that
 * acknowledgement back (handoff-xfer relay --hold-switchover): QEMU
 * keeps sending what the guest dirties, the guest keeps running, and
 * nothing pauses until SIGUSR1 reaches the relay.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "exitcodes.h"
#include "log.h"
#include "record.h"
#include "source-warm.h"

/* Is HOST in the comma-separated LIST? */
static bool
listed (const char *list, const char *host)
{
  size_t n = strlen (host);

  /* Terminates: p moves past one name each pass. */
  for (const char *p = list; *p; ) {
    size_t k = strcspn (p, ",");
    if (k == n && strncmp (p, host, n) == 0)
      return true;
    p += k;
    if (*p == ',')
      p++;
  }
  return false;
}

size_t
warm_quorum_need (const struct migration *m, size_t n)
{
  size_t need = m->quorum_pct ? (n * m->quorum_pct + 99) / 100 : 1;

  return need ? need : 1;
}

/* The seed's exit conditions for destination D, from the last progress
 * sample: the blackout predicted from what is left to send it and the
 * rates.  What is left of RAM at one instant can be near nothing just
 * before QEMU syncs the dirty bitmap again, so QEMU's own prediction,
 * made from what was dirty at the last sync, must agree as well. */
static bool
dest_exit_holds (const struct migration *m, const struct dest *d)
{
  double limit = (double) m->max_downtime_ms;

  if (!d->copied)
    return false;
  if (strcmp (m->warm_exit, "copied") == 0)
    return true;
  if (m->sync_downtime_ms > limit)
    return false;
  if (d->left <= 0)
    return true;
  if (strcmp (m->warm_exit, "downtime") == 0)
    return d->rate > 0 && d->left / d->rate * 1000.0 < limit;
  /* converging: what is left shrinks fast enough. */
  return d->rate > m->dirty_rate &&
    d->left / (d->rate - m->dirty_rate) * 1000.0 < limit;
}

/* What a quorum is counted on. */
enum quorum_of { STORED, COPIED, EXIT_HOLDS };

/* Does WHAT hold for a quorum of the alive destinations in TO (all of
 * them if TO is "")? */
static bool
quorum_holds (const struct migration *m, const char *to, enum quorum_of what)
{
  size_t n = 0, k = 0;

  for (size_t i = 0; i < m->ndests; ++i) {
    const struct dest *d = &m->dests[i];
    if (!d->alive || (to[0] && !listed (to, d->host)))
      continue;
    n++;
    k += what == STORED ? d->stored : what == COPIED ? d->copied
      : dest_exit_holds (m, d);
  }
  return n > 0 && k >= warm_quorum_need (m, n);
}

bool
warm_storage_ready (const struct migration *m)
{
  return quorum_holds (m, "", STORED);
}

bool
warm_ready (const struct migration *m)
{
  return quorum_holds (m, "", COPIED);
}

void
warm_enter (struct migration *m)
{
  m->holding = true;
  record_set_phase (m, "warm", "%zu destination%s hold%s a warm copy; "
                    "'handoff cutover %s' switches over",
                    record_dests_alive (m),
                    record_dests_alive (m) == 1 ? "" : "s",
                    record_dests_alive (m) == 1 ? "s" : "", m->vm);
  warm_update (m);
}

void
warm_update (struct migration *m)
{
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = &m->dests[i];
    pthread_mutex_lock (&m->lock);
    bool now_warm = d->alive && d->copied && strcmp (d->state, "warm") != 0;
    pthread_mutex_unlock (&m->lock);
    if (now_warm)
      record_dest (m, i, "warm", NULL);
  }
}

/* HOLDS (the exit condition now) only once it has held across one of
 * QEMU's dirty syncs: QEMU's prediction comes from the last sync, and
 * if the link slowed since (or the guest began dirtying faster), what
 * is left looks small until the next sync shows otherwise. */
static bool
settled (struct migration *m, bool holds)
{
  if (!holds || strcmp (m->warm_exit, "copied") == 0) {
    m->exit_seen = false;
    return holds;
  }
  if (!m->exit_seen) {
    m->exit_seen = true;
    m->exit_sync = m->dirty_syncs;
    return false;
  }
  return m->dirty_syncs > m->exit_sync;
}

bool
warm_cutover_due (struct migration *m)
{
  char to[sizeof m->cutover_to];

  pthread_mutex_lock (&m->lock);
  /* Not pre-warmed: asked for from the start. */
  bool asked = m->cutover_requested || !m->prewarm;
  snprintf (to, sizeof to, "%s", m->cutover_to);
  pthread_mutex_unlock (&m->lock);
  /* Judged at every sample, asked for or not: a cutover asked for
   * after the condition has long held goes at once. */
  bool holds = settled (m, quorum_holds (m, to, EXIT_HOLDS));
  return asked && holds;
}

int
warm_release (struct migration *m, int *rc, char *err, size_t errlen)
{
  char to[sizeof m->cutover_to];

  pthread_mutex_lock (&m->lock);
  snprintf (to, sizeof to, "%s", m->cutover_to);
  pthread_mutex_unlock (&m->lock);
  /* The hosts not chosen leave now, but are told to drop what they
   * have only once the VM runs elsewhere (source.c): telling them
   * waits for their exports to close, and that must not hold up the
   * cutover.  None of them is ever told to resume. */
  if (to[0])
    for (size_t i = 0; i < m->ndests; ++i)
      if (m->dests[i].alive && !listed (to, m->dests[i].host))
        record_dest (m, i, "discarded", "not chosen for the cutover");
  /* One still copying would have the rest of its copy in the blackout:
   * the quorum that holds goes on without it. */
  for (size_t i = 0; i < m->ndests; ++i)
    if (m->dests[i].alive && !m->dests[i].copied)
      record_dest (m, i, "discarded", "not yet copied when the cutover "
                   "began");
  if (record_dests_alive (m) == 0) {
    *rc = RC_ROLLED_BACK;
    return set_error (err, errlen, "no warm destination is left to cut "
                      "over to");
  }
  m->holding = false;
  m->released = true;
  m->deadline = clock_ms () + (int64_t) m->timeout_s * 1000;
  record_set_phase (m, "memory", "cutting over%s%s: the last of RAM goes "
                    "to %zu destination%s", to[0] ? " to " : "", to,
                    record_dests_alive (m),
                    record_dests_alive (m) == 1 ? "" : "s");
  if (m->relay_pid <= 0 || kill (m->relay_pid, SIGUSR1) == -1) {
    *rc = RC_ROLLED_BACK;
    return set_error (err, errlen, "cannot release the stream relay: %s",
                      strerror (errno));
  }
  return 0;
}
