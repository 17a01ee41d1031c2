/* handoff: a byte-rate cap (token bucket).  See ratelimit.h.
 *
 * The bucket holds at most a tenth of a second of bytes: after a pause
 * the copy does not burst above the cap for long.  A charge may drive
 * it below zero (a 4 MiB request under a 1 MiB/s cap); the debt is
 * then waited out, so the average holds whatever the request size.
 */
#include "ratelimit.h"

static double
bucket_max (const struct ratelimit *r)
{
  return (double) r->rate / 10.0;
}

static void
refill (struct ratelimit *r, int64_t now_ms)
{
  if (now_ms > r->last_ms) {
    r->tokens += (double) r->rate * (double) (now_ms - r->last_ms) / 1000.0;
    if (r->tokens > bucket_max (r))
      r->tokens = bucket_max (r);
  }
  r->last_ms = now_ms;
}

void
ratelimit_set (struct ratelimit *r, uint64_t rate, int64_t now_ms)
{
  r->rate = rate;
  r->tokens = 0;
  r->last_ms = now_ms;
}

int64_t
ratelimit_wait_ms (struct ratelimit *r, int64_t now_ms)
{
  if (r->rate == 0)
    return 0;
  refill (r, now_ms);
  if (r->tokens >= 0)
    return 0;
  /* At least 1: a debt of under a millisecond still waits. */
  int64_t ms = (int64_t) (-r->tokens * 1000.0 / (double) r->rate) + 1;
  return ms;
}

void
ratelimit_charge (struct ratelimit *r, uint64_t bytes, int64_t now_ms)
{
  if (r->rate == 0)
    return;
  refill (r, now_ms);
  r->tokens -= (double) bytes;
}
