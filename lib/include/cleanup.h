/* handoff: cleanup attributes.
 *
 * Variables marked with one of these are released when they go out of
 * scope, on every exit path.  Always initialise them (to NULL or -1) so
 * an early return releases nothing.
 */
#ifndef HANDOFF_CLEANUP_H
#define HANDOFF_CLEANUP_H

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}
#define CLEANUP_FREE __attribute__ ((cleanup (cleanup_free)))

/* Closes a file descriptor unless it is -1; preserves errno so that an
 * error path can still report the original failure. */
static inline void
cleanup_close (int *fd)
{
  if (*fd >= 0) {
    int saved = errno;
    close (*fd);
    errno = saved;
  }
}
#define CLEANUP_CLOSE __attribute__ ((cleanup (cleanup_close)))

static inline void
cleanup_fclose (FILE **fp)
{
  if (*fp) {
    int saved = errno;
    fclose (*fp);
    errno = saved;
  }
}
#define CLEANUP_FCLOSE __attribute__ ((cleanup (cleanup_fclose)))

static inline void
cleanup_mutex_unlock (pthread_mutex_t **lock)
{
  int r = pthread_mutex_unlock (*lock);
  assert (r == 0);
  (void) r;
}
#define CLEANUP_MUTEX_UNLOCK __attribute__ ((cleanup (cleanup_mutex_unlock)))

/* Hold MUTEX until the end of the enclosing scope. */
#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex) \
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE_1 (mutex, _lock_ ## __LINE__)
#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE_1(mutex, lock)                   \
  CLEANUP_MUTEX_UNLOCK pthread_mutex_t *lock = (mutex);                 \
  do {                                                                  \
    int _r = pthread_mutex_lock (lock);                                 \
    assert (_r == 0);                                                   \
    (void) _r;                                                          \
  } while (0)

/* Steal a pointer from a CLEANUP_FREE variable (returning ownership). */
#define TAKE_PTR(p) ({ __typeof__ (p) _p = (p); (p) = NULL; _p; })
#define TAKE_FD(fd) ({ int _fd = (fd); (fd) = -1; _fd; })

#endif /* HANDOFF_CLEANUP_H */
