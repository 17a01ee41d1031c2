/* handoff: clocks.  See clock.h. */
#include <time.h>

#include "clock.h"

static int64_t
ms_of (clockid_t id)
{
  struct timespec ts;

  clock_gettime (id, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clock_ms (void)
{
  return ms_of (CLOCK_MONOTONIC);
}

int64_t
clock_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
deadline_after (int timeout_ms)
{
  return timeout_ms < 0 ? -1 : clock_ms () + timeout_ms;
}

int64_t
wall_ms (void)
{
  return ms_of (CLOCK_REALTIME);
}

struct timespec
abstime_after (clockid_t clock, int64_t ms)
{
  struct timespec ts;

  clock_gettime (clock, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long) (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

struct timespec
abstime_of_ms (int64_t deadline_ms)
{
  struct timespec ts = { .tv_sec = deadline_ms / 1000,
                         .tv_nsec = (long) (deadline_ms % 1000) * 1000000 };
  return ts;
}
