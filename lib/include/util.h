/* handoff: small parsers for command-line values.  Never print. */
#ifndef HANDOFF_UTIL_H
#define HANDOFF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* "4096", "64K", "1M", "2G", "1T" (powers of 1024; optional "iB"/"B"). */
extern int parse_size (const char *s, uint64_t *r, char *err, size_t errlen);
/* Decimal integer in [min, max]. */
extern int parse_uint (const char *s, uint64_t min, uint64_t max,
                       uint64_t *r, char *err, size_t errlen);
/* "250ms", "5s", "2m", plain number = seconds. */
extern int parse_duration_ms (const char *s, uint64_t *ms_r,
                              char *err, size_t errlen);
/* Rate such as "100M" (bytes/s), "1G".  Same as parse_size. */
#define parse_rate parse_size

/* Make DIR and parents (mode 0755); succeeds if it exists. */
extern int mkdir_p (const char *dir, unsigned mode);

#endif /* HANDOFF_UTIL_H */
