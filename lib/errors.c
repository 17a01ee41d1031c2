/* handoff: reasons for a caller's buffer.  See errors.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "errors.h"

static int
vset (int e, char *err, size_t errlen, const char *fmt, va_list ap)
{
  if (err && errlen)
    vsnprintf (err, errlen, fmt, ap);
  errno = e;
  return -1;
}

int
set_error (char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = vset (EINVAL, err, errlen, fmt, ap);
  va_end (ap);
  return r;
}

int
set_error_errno (int e, char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = vset (e, err, errlen, fmt, ap);
  va_end (ap);
  return r;
}
