/* fuse-share: the state every part of a session shares (session.h,
 * session-internal.h): the one session of this process, its
 * configuration and its locks.  Its own file so that the session
 * (session.c), its links (links.c) and its commit (commit.c) each
 * depend on it, and not on one another in a loop.
 */
#include <pthread.h>
#include <stdbool.h>

#include "session-internal.h"
#include "session.h"

int share_srcfd = -1;
bool share_frozen;
/* Writer-preferring: a stream of guest writes cannot hold a commit off. */
pthread_rwlock_t share_gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
int share_timeout_ms = 30000;

const char *const session_state_names[] = {
  [SESSION_IDLE] = "idle", [SESSION_SCANNING] = "scanning",
  [SESSION_COPYING] = "copying", [SESSION_READY] = "ready",
  [SESSION_COMMITTING] = "committing", [SESSION_COMMITTED] = "committed",
  [SESSION_FAILED] = "failed", [SESSION_ABORTED] = "aborted",
};

pthread_mutex_t session_ns_lock = PTHREAD_MUTEX_INITIALIZER;

struct share_session sess = {
  .lock = PTHREAD_MUTEX_INITIALIZER,
  .cond = PTHREAD_COND_INITIALIZER,
};

bool
session_active (void)
{
  return __atomic_load_n (&sess.active, __ATOMIC_ACQUIRE);
}

bool
session_running_locked (void)
{
  return sess.state == SESSION_SCANNING || sess.state == SESSION_COPYING ||
    sess.state == SESSION_READY || sess.state == SESSION_COMMITTING;
}

