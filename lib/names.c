/* handoff: checks for names, ids, keys and paths.  See names.h. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "names.h"

const char *
name_quote (const char *s, char *buf, size_t len)
{
  size_t o = 0;

  if (len == 0)
    return buf;
  for (const unsigned char *p = (const unsigned char *) s; *p; ++p) {
    char tmp[5];
    size_t n;
    if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
      tmp[0] = (char) *p;
      n = 1;
    }
    else
      n = (size_t) snprintf (tmp, sizeof tmp, "\\x%02x", *p);
    /* Room for this, "..." and the NUL. */
    if (o + n + 4 > len) {
      if (o + 4 <= len) {
        memcpy (buf + o, "...", 3);
        o += 3;
      }
      break;
    }
    memcpy (buf + o, tmp, n);
    o += n;
  }
  buf[o] = '\0';
  return buf;
}

/* Letters, digits and the characters of EXTRA. */
static bool
all_in (const char *s, const char *extra)
{
  for (; *s; ++s) {
    char c = *s;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || (c && strchr (extra, c))))
      return false;
  }
  return true;
}

/* The VM and host rule, with the subject named in the message. */
static int
check_plain_name (const char *what, const char *s, size_t max, char *err,
                  size_t errlen)
{
  char q[96];
  size_t n = strnlen (s, max + 1);

  if (n == 0 || n > max || s[0] == '-' || s[0] == '.' || !all_in (s, "-_."))
    return set_error (err, errlen,
                      "%s name '%s' must be 1-%zu letters, digits, "
                      "'-', '_' or '.', and not begin with '-' or '.'", what,
                      name_quote (s, q, sizeof q), max);
  return 0;
}

int
name_check_vm (const char *s, char *err, size_t errlen)
{
  return check_plain_name ("VM", s, NAME_VM_MAX, err, errlen);
}

int
name_check_host (const char *s, char *err, size_t errlen)
{
  return check_plain_name ("host", s, NAME_HOST_MAX, err, errlen);
}

int
name_check_id (const char *what, const char *s, size_t max, char *err,
               size_t errlen)
{
  char q[96];
  size_t n = strnlen (s, max + 1);

  if (n == 0 || n > max || s[0] == '-' || s[0] == '.' || !all_in (s, "-_."))
    return set_error (err, errlen, "%s '%s' must be 1-%zu letters, digits, "
                      "'-', '_' or '.', and not begin with '-' or '.'", what,
                      name_quote (s, q, sizeof q), max);
  return 0;
}

int
name_check_event_type (const char *s, char *err, size_t errlen)
{
  char q[96];
  size_t n = strnlen (s, NAME_EVENT_TYPE_MAX + 1);

  if (n == 0 || n > NAME_EVENT_TYPE_MAX || !all_in (s, "-_.:") ||
      !all_in ((char[]) { s[0], '\0' }, ""))
    return set_error (err, errlen, "event type '%s' must be 1-%d letters, "
                      "digits, '-', '_', '.' or ':', beginning with a letter "
                      "or digit", name_quote (s, q, sizeof q),
                      NAME_EVENT_TYPE_MAX);
  return 0;
}

int
name_check_label_key (const char *s, char *err, size_t errlen)
{
  char q[96];
  size_t n = strnlen (s, NAME_LABEL_MAX + 1);

  if (n == 0 || n > NAME_LABEL_MAX || !all_in (s, "-_.:/") ||
      !all_in ((char[]) { s[0], '\0' }, ""))
    return set_error (err, errlen, "label key '%s' must be 1-%d letters, "
                      "digits, '-', '_', '.', ':' or '/', beginning with a "
                      "letter or digit", name_quote (s, q, sizeof q),
                      NAME_LABEL_MAX);
  return 0;
}

int
name_check_object_key (const char *s, char *err, size_t errlen)
{
  char q[96];

  if (strcmp (s, "policy") == 0)
    return 0;
  if (strncmp (s, "label:", 6) == 0)
    return name_check_label_key (s + 6, err, errlen);
  return set_error (err, errlen, "management object '%s': only 'policy' and "
                    "'label:KEY' are known", name_quote (s, q, sizeof q));
}

/* Length of the UTF-8 sequence at P (1-4), or 0 if it is not valid:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t
utf8_len (const unsigned char *p)
{
  unsigned c = p[0];

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    return (p[1] & 0xc0) == 0x80 ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
        (c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
      return 0;
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
        (p[3] & 0xc0) != 0x80 || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] >= 0x90))
      return 0;
    return 4;
  }
  return 0;
}

int
name_check_text (const char *what, const char *s, size_t max, char *err,
                 size_t errlen)
{
  const unsigned char *p = (const unsigned char *) s;
  size_t n = strnlen (s, max + 1);

  if (n > max)
    return set_error (err, errlen, "%s is longer than %zu bytes", what, max);
  /* Terminates: each pass moves P by at least one byte, to the NUL. */
  while (*p) {
    size_t k = utf8_len (p);
    if (k == 0)
      return set_error (err, errlen, "%s is not valid UTF-8", what);
    if (*p < 0x20 || *p == 0x7f)
      return set_error (err, errlen, "%s holds a control character", what);
    p += k;
  }
  return 0;
}

void
text_sanitize (char *s)
{
  unsigned char *p = (unsigned char *) s;

  /* Terminates: each pass moves P by at least one byte, to the NUL. */
  while (*p) {
    size_t k = utf8_len (p);
    if (k == 0 || *p < 0x20 || *p == 0x7f) {
      *p++ = '?';
      continue;
    }
    p += k;
  }
}

enum path_part
path_parts_check (const char *s, size_t len, size_t max, bool allow_empty)
{
  size_t start = 0;

  /* Terminates: start moves past each component. */
  while (start <= len) {
    const char *slash = memchr (s + start, '/', len - start);
    size_t end = slash ? (size_t) (slash - s) : len;
    size_t n = end - start;

    if (n == 0 && !allow_empty)
      return PATH_PART_EMPTY;
    if (n > max)
      return PATH_PART_LONG;
    if ((n == 1 && s[start] == '.') ||
        (n == 2 && s[start] == '.' && s[start + 1] == '.'))
      return PATH_PART_DOT;
    start = end + 1;
  }
  return PATH_PART_OK;
}

int
path_check_abs (const char *what, const char *s, char *err, size_t errlen)
{
  char q[96];
  size_t n = strnlen (s, PATH_MAX);

  if (n == 0 || s[0] != '/')
    return set_error (err, errlen, "%s '%s' is not an absolute path", what,
                      name_quote (s, q, sizeof q));
  if (n >= PATH_MAX - 64)
    return set_error (err, errlen, "%s is too long", what);
  if (n > 1 && s[n - 1] == '/')
    return set_error (err, errlen, "%s '%s' ends with '/'", what,
                      name_quote (s, q, sizeof q));
  for (const char *c = s; *c; ++c)
    if ((unsigned char) *c < 0x20 || *c == 0x7f || *c == ',')
      return set_error (err, errlen, "%s '%s' holds a control character or "
                        "','", what, name_quote (s, q, sizeof q));
  if (n > 1 && path_parts_check (s + 1, n - 1, NAME_MAX, false) !=
      PATH_PART_OK)
    return set_error (err, errlen, "%s '%s' is not in normal form (an empty, "
                      "'.', '..' or overlong component)", what,
                      name_quote (s, q, sizeof q));
  if (name_check_text (what, s, PATH_MAX, err, errlen) == -1)
    return -1;
  return 0;
}

int
path_check_leaf (const char *what, const char *s, char *err, size_t errlen)
{
  char q[96];
  size_t n = strnlen (s, NAME_MAX + 1);

  if (n == 0 || n > NAME_MAX || strchr (s, '/') || strcmp (s, ".") == 0 ||
      strcmp (s, "..") == 0)
    return set_error (err, errlen, "%s '%s' is not a file name", what,
                      name_quote (s, q, sizeof q));
  for (const char *c = s; *c; ++c)
    if ((unsigned char) *c < 0x20 || *c == 0x7f || *c == ',')
      return set_error (err, errlen, "%s '%s' holds a control character or "
                        "','", what, name_quote (s, q, sizeof q));
  return 0;
}

bool
path_is_beneath (const char *path, const char *dir)
{
  size_t n = strlen (dir);

  if (strcmp (dir, "/") == 0)
    return path[0] == '/' && path[1] != '\0';
  return strncmp (path, dir, n) == 0 && path[n] == '/' && path[n + 1] != '\0';
}
