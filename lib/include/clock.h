/* handoff: clocks, in one place.  Timeouts and rates use the monotonic
 * clock; what is recorded or shown to people (journals, events) uses
 * the wall clock. */
#ifndef HANDOFF_CLOCK_H
#define HANDOFF_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds and microseconds (short spins). */
extern int64_t clock_ms (void);
extern int64_t clock_us (void);
/* clock_ms () + TIMEOUT_MS, or -1 (no deadline) for a negative one. */
extern int64_t deadline_after (int timeout_ms);
/* Wall-clock milliseconds since the epoch. */
extern int64_t wall_ms (void);

/* For pthread_cond_timedwait, whose condition variable waits on one
 * clock: the time MS milliseconds from now on CLOCK, and the
 * timespec of a deadline in milliseconds of the monotonic clock. */
extern struct timespec abstime_after (clockid_t clock, int64_t ms);
extern struct timespec abstime_of_ms (int64_t deadline_ms);

#endif /* HANDOFF_CLOCK_H */
