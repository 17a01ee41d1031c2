/* handoffd: holding a migration warm and letting it go
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

void
warm_enter (struct migration *m)
{
  m->holding = true;
  record_set_phase (m, "warm", "%zu destination%s hold%s a warm copy; "
                    "'handoff cutover %s' switches over",
                    record_dests_alive (m),
                    record_dests_alive (m) == 1 ? "" : "s",
                    record_dests_alive (m) == 1 ? "s" : "", m->vm);
  for (size_t i = 0; i < m->ndests; ++i)
    if (m->dests[i].alive)
      record_dest (m, i, "warm", NULL);
}

/* The seed's exit conditions, from the last progress sample: the
 * blackout predicted from what is left and the rates.  What is left
 * of RAM at one instant can be near nothing just before QEMU syncs the
 * dirty bitmap again, so QEMU's own prediction, made from what was
 * dirty at the last sync, must agree as well. */
static bool
exit_holds (const struct migration *m)
{
  double limit = (double) m->max_downtime_ms;
  bool sync_ok = m->sync_downtime_ms <= limit;

  if (!m->copied_once)
    return false;
  if (strcmp (m->warm_exit, "copied") == 0)
    return true;
  if (!sync_ok)
    return false;
  if (m->remaining <= 0)
    return true;
  if (strcmp (m->warm_exit, "downtime") == 0)
    return m->rate > 0 && m->remaining / m->rate * 1000.0 < limit;
  /* converging: what is left shrinks fast enough. */
  return m->rate > m->dirty_rate &&
    m->remaining / (m->rate - m->dirty_rate) * 1000.0 < limit;
}

bool
warm_cutover_due (struct migration *m)
{
  pthread_mutex_lock (&m->lock);
  bool asked = m->cutover_requested;
  pthread_mutex_unlock (&m->lock);
  return asked && exit_holds (m);
}

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
