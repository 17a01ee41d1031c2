/* handoff: checked arithmetic.
 *
 * Every offset and length read from the wire or from a disk goes
 * through these before it is used.  Each returns true if the result
 * overflowed (the value stored in *r is then unspecified).
 */
#ifndef HANDOFF_CHECKED_OVERFLOW_H
#define HANDOFF_CHECKED_OVERFLOW_H

#include <stdbool.h>
#include <stdint.h>

#define ADD_OVERFLOW(a, b, r) __builtin_add_overflow ((a), (b), (r))
#define SUB_OVERFLOW(a, b, r) __builtin_sub_overflow ((a), (b), (r))
#define MUL_OVERFLOW(a, b, r) __builtin_mul_overflow ((a), (b), (r))

/* True if [offset, offset+count) does not fit inside [0, size). */
static inline bool
range_outside (uint64_t offset, uint64_t count, uint64_t size)
{
  uint64_t end;

  if (ADD_OVERFLOW (offset, count, &end))
    return true;
  return end > size;
}

/* Round up to a multiple of the power of two ALIGN, checking for
 * overflow.  Returns true on overflow. */
static inline bool
round_up_overflow (uint64_t v, uint64_t align, uint64_t *r)
{
  uint64_t t;

  if (ADD_OVERFLOW (v, align - 1, &t))
    return true;
  *r = t & ~(align - 1);
  return false;
}

#endif /* HANDOFF_CHECKED_OVERFLOW_H */
