/* handoff: JSON message helpers.  See jsonutil.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "channel.h"
#include "jsonutil.h"

json_t *
msg_ok (void)
{
  return json_pack ("{s:b}", "ok", 1);
}

json_t *
msg_error (const char *fmt, ...)
{
  char buf[1024];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  return json_pack ("{s:b, s:s}", "ok", 0, "error", buf);
}

json_t *
msg_error_code (const char *code, const char *fmt, ...)
{
  char buf[2048];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  json_t *r = json_pack ("{s:b, s:s}", "ok", 0, "error", buf);
  if (r && code)
    json_object_set_new (r, "code", json_string (code));
  return r;
}

static json_t *
get (json_t *o, const char *key, bool required, int *r,
     char *err, size_t errlen)
{
  json_t *v = json_is_object (o) ? json_object_get (o, key) : NULL;

  if (!v || json_is_null (v)) {
    *r = required ? set_error (err, errlen, "field '%s' is missing", key) : 1;
    return NULL;
  }
  *r = 0;
  return v;
}

int
msg_get_string (json_t *o, const char *key, bool required, const char **out,
                char *err, size_t errlen)
{
  int r;
  json_t *v = get (o, key, required, &r, err, errlen);

  if (!v)
    return r;
  if (!json_is_string (v))
    return set_error (err, errlen, "field '%s' must be a string", key);
  if (strlen (json_string_value (v)) != json_string_length (v))
    return set_error (err, errlen, "field '%s' contains a NUL byte", key);
  *out = json_string_value (v);
  return 0;
}

int
msg_get_u64 (json_t *o, const char *key, bool required, uint64_t *out,
             char *err, size_t errlen)
{
  int r;
  json_t *v = get (o, key, required, &r, err, errlen);

  if (!v)
    return r;
  if (!json_is_integer (v))
    return set_error (err, errlen, "field '%s' must be an integer", key);
  if (json_integer_value (v) < 0)
    return set_error (err, errlen, "field '%s' must not be negative", key);
  *out = (uint64_t) json_integer_value (v);
  return 0;
}

int
msg_get_bool (json_t *o, const char *key, bool required, bool *out,
              char *err, size_t errlen)
{
  int r;
  json_t *v = get (o, key, required, &r, err, errlen);

  if (!v)
    return r;
  if (!json_is_boolean (v))
    return set_error (err, errlen, "field '%s' must be true or false", key);
  *out = json_is_true (v);
  return 0;
}

int
msg_get_array (json_t *o, const char *key, bool required, json_t **out,
               char *err, size_t errlen)
{
  int r;
  json_t *v = get (o, key, required, &r, err, errlen);

  if (!v)
    return r;
  if (!json_is_array (v))
    return set_error (err, errlen, "field '%s' must be an array", key);
  *out = v;
  return 0;
}

int
msg_get_object (json_t *o, const char *key, bool required, json_t **out,
                char *err, size_t errlen)
{
  int r;
  json_t *v = get (o, key, required, &r, err, errlen);

  if (!v)
    return r;
  if (!json_is_object (v))
    return set_error (err, errlen, "field '%s' must be an object", key);
  *out = v;
  return 0;
}

json_t *
chan_call (struct channel *c, json_t *req, int timeout_ms,
           char *err, size_t errlen)
{
  json_t *reply;
  bool eof, ok = false;
  const char *why = NULL;
  int r;

  r = chan_send_json (c, req);
  json_decref (req);
  if (r == -1) {
    set_error (err, errlen, "%s: cannot send request: %s", chan_peer_name (c),
               strerror (errno));
    return NULL;
  }
  reply = chan_recv_json (c, timeout_ms, &eof);
  if (!reply) {
    set_error (err, errlen, "%s: %s", chan_peer_name (c),
               eof ? "connection closed before the reply"
               : errno == ETIMEDOUT ? "no reply in time" : "bad reply");
    return NULL;
  }
  if (msg_get_bool (reply, "ok", true, &ok, err, errlen) == -1) {
    json_decref (reply);
    return NULL;
  }
  if (!ok) {
    if (msg_get_string (reply, "error", false, &why, err, errlen) != 0)
      why = "unspecified error";
    set_error (err, errlen, "%s", why);
    json_decref (reply);
    return NULL;
  }
  return reply;
}
