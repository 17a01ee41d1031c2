/* handoff: the one way a parser or check says what is wrong.
 *
 * Functions that must not print (parsers, checks, anything a fuzzer or
 * unit test calls) fill a caller's buffer with a one-line reason and
 * return -1:
 *
 *   if (n > max)
 *     return set_error (err, errlen, "%s is longer than %zu bytes", ...);
 */
#ifndef HANDOFF_ERRORS_H
#define HANDOFF_ERRORS_H

#include <stddef.h>

/* Format the reason into ERR (ERRLEN bytes), set errno to EINVAL and
 * return -1. */
extern int set_error (char *err, size_t errlen, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* The same, setting errno to E. */
extern int set_error_errno (int e, char *err, size_t errlen,
                            const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

#endif /* HANDOFF_ERRORS_H */
