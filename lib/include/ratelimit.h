/* handoff: a byte-rate cap (token bucket) for the background copies,
 * so that --bandwidth holds for a whole migration.  Not locked: the
 * caller's lock covers it.  Times are the caller's clock_ms (), passed
 * in so that the arithmetic can be tested alone. */
#ifndef HANDOFF_RATELIMIT_H
#define HANDOFF_RATELIMIT_H

#include <stdint.h>

struct ratelimit {
  uint64_t rate;                /* Bytes per second; 0 is no cap. */
  double tokens;                /* Bytes that may go now; < 0 is debt. */
  int64_t last_ms;
};

/* Cap at RATE bytes/s from NOW_MS on (0: none), starting empty so that
 * the first second is no burst. */
extern void ratelimit_set (struct ratelimit *r, uint64_t rate, int64_t now_ms);
/* 0 if bytes may go now; else how many ms until they may. */
extern int64_t ratelimit_wait_ms (struct ratelimit *r, int64_t now_ms);
/* BYTES went (may run into debt: a request larger than the bucket). */
extern void ratelimit_charge (struct ratelimit *r, uint64_t bytes,
                              int64_t now_ms);

#endif /* HANDOFF_RATELIMIT_H */
