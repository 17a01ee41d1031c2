/* handoff: small parsers for command-line values.  Never print. */
#ifndef HANDOFF_UTIL_H
#define HANDOFF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* "4096", "64K", "1M", "2G", "1T" (powers of 1024; optional "iB"/"B";
 * "512B" is bytes). */
extern int parse_size (const char *s, uint64_t *r, char *err, size_t errlen);
/* The same in bytes, but a bare number counts in BARE_UNIT bytes: QEMU's
 * -m takes "512" as MiB and "512K" as KiB. */
extern int parse_size_in (const char *s, uint64_t bare_unit, uint64_t *r,
                          char *err, size_t errlen);
/* Decimal integer in [min, max]. */
extern int parse_uint (const char *s, uint64_t min, uint64_t max,
                       uint64_t *r, char *err, size_t errlen);
/* "250ms", "5s", "1.5s", "2m", "0.5h"; a plain number is seconds.  A
 * fraction must come to whole milliseconds. */
extern int parse_duration_ms (const char *s, uint64_t *ms_r,
                              char *err, size_t errlen);
/* The same, but a bare number counts in BARE_MS milliseconds (1 for an
 * option documented in milliseconds, such as --max-downtime). */
extern int parse_duration_in (const char *s, uint64_t bare_ms, uint64_t *ms_r,
                              char *err, size_t errlen);
/* Rate such as "100M" (bytes/s), "1G".  Same as parse_size. */
#define parse_rate parse_size

/* Make DIR and parents (mode 0755); succeeds if it exists. */
extern int mkdir_p (const char *dir, unsigned mode);

#endif /* HANDOFF_UTIL_H */
