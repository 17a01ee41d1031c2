/* handoff: small parsers.  See util.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "errors.h"
#include "checked-overflow.h"
#include "util.h"

/* Digits only: strtoull would accept signs and spaces. */
static int
parse_digits (const char *s, size_t n, uint64_t *r)
{
  uint64_t v = 0;

  if (n == 0)
    return -1;
  for (size_t i = 0; i < n; ++i) {
    if (!isdigit ((unsigned char) s[i]))
      return -1;
    if (MUL_OVERFLOW (v, 10, &v) || ADD_OVERFLOW (v, (uint64_t) (s[i] - '0'),
                                                  &v))
      return -2;
  }
  *r = v;
  return 0;
}

int
parse_uint (const char *s, uint64_t min, uint64_t max, uint64_t *r,
            char *err, size_t errlen)
{
  uint64_t v;
  int e = parse_digits (s, strlen (s), &v);

  if (e == -1)
    return set_error (err, errlen, "'%s' is not a number", s);
  if (e == -2 || v < min || v > max)
    return set_error (err, errlen, "'%s' is out of range (%llu-%llu)", s,
                      (unsigned long long) min, (unsigned long long) max);
  *r = v;
  return 0;
}

int
parse_size_in (const char *s, uint64_t bare_unit, uint64_t *r, char *err,
               size_t errlen)
{
  size_t n = 0;
  uint64_t v, mult = bare_unit;
  const char *suf;

  while (isdigit ((unsigned char) s[n]))
    n++;
  suf = s + n;
  if (parse_digits (s, n, &v) != 0)
    return set_error (err, errlen, "'%s' is not a size (for example 64K, 1G)",
                      s);
  switch (toupper ((unsigned char) *suf)) {
  case '\0': break;
  case 'B': if (suf[1]) goto bad; mult = 1; break;
  case 'K': mult = 1ULL << 10; suf++; break;
  case 'M': mult = 1ULL << 20; suf++; break;
  case 'G': mult = 1ULL << 30; suf++; break;
  case 'T': mult = 1ULL << 40; suf++; break;
  default: goto bad;
  }
  /* After K, M, G or T: nothing, "B" or "iB". */
  if (mult > 1 && *suf && strcasecmp (suf, "iB") != 0 &&
      strcasecmp (suf, "B") != 0)
    goto bad;
  if (MUL_OVERFLOW (v, mult, &v))
    return set_error (err, errlen, "'%s' is too large", s);
  *r = v;
  return 0;
 bad:
  return set_error (err, errlen, "'%s': unknown size suffix (use K, M, G or T)",
                    s);
}

int
parse_size (const char *s, uint64_t *r, char *err, size_t errlen)
{
  return parse_size_in (s, 1, r, err, errlen);
}

int
parse_duration_ms (const char *s, uint64_t *ms_r, char *err, size_t errlen)
{
  return parse_duration_in (s, 1000, ms_r, err, errlen);
}

int
parse_duration_in (const char *s, uint64_t bare_ms, uint64_t *ms_r,
                   char *err, size_t errlen)
{
  size_t n = 0, nf = 0;
  uint64_t v, frac = 0, frac_div = 1, mult;
  const char *unit;

  while (isdigit ((unsigned char) s[n]))
    n++;
  if (parse_digits (s, n, &v) != 0)
    goto bad;
  unit = s + n;
  if (*unit == '.') {
    /* A fraction: "1.5s", "0.25m".  Up to nine digits, enough for a
     * millisecond of an hour. */
    while (isdigit ((unsigned char) unit[1 + nf]))
      nf++;
    if (nf == 0 || nf > 9 || parse_digits (unit + 1, nf, &frac) != 0)
      goto bad;
    for (size_t i = 0; i < nf; ++i)
      frac_div *= 10;
    unit += 1 + nf;
  }
  if (*unit == '\0')
    mult = bare_ms;
  else if (strcmp (unit, "s") == 0)
    mult = 1000;
  else if (strcmp (unit, "ms") == 0)
    mult = 1;
  else if (strcmp (unit, "m") == 0)
    mult = 60000;
  else if (strcmp (unit, "h") == 0)
    mult = 3600000;
  else
    return set_error (err, errlen, "'%s': unknown unit (use ms, s, m or h)", s);
  /* frac < frac_div <= 10^9 and mult <= 3.6e6: no overflow. */
  if ((frac * mult) % frac_div != 0)
    return set_error (err, errlen, "'%s' is not a whole number of "
                      "milliseconds", s);
  if (MUL_OVERFLOW (v, mult, &v) || ADD_OVERFLOW (v, frac * mult / frac_div,
                                                  &v))
    return set_error (err, errlen, "'%s' is too long", s);
  *ms_r = v;
  return 0;
 bad:
  return set_error (err, errlen, "'%s' is not a duration (for example 500ms, "
                    "1.5s, 30s, 5m)", s);
}

int
mkdir_p (const char *dir, unsigned mode)
{
  char buf[4096];
  size_t n = strlen (dir);

  if (n == 0 || n >= sizeof buf) {
    errno = EINVAL;
    return -1;
  }
  memcpy (buf, dir, n + 1);
  for (size_t i = 1; i <= n; ++i) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir (buf, mode) == -1 && errno != EEXIST)
        return -1;
      buf[i] = c;
    }
  }
  return 0;
}
