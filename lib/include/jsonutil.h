/* handoff: JSON messages on control channels.
 *
 * Requests are objects with an "op" string; replies carry "ok": true
 * plus fields, or "ok": false and "error": a one-line reason.  The
 * getters check type and presence and name the field in the error, so
 * every message is validated before use.  They never print.
 */
#ifndef HANDOFF_JSONUTIL_H
#define HANDOFF_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct channel;

extern json_t *msg_ok (void);
extern json_t *msg_error (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));
/* {"ok": false, "error": MSG, "code": CODE} (no "code" if CODE is
 * NULL): a reply whose code the CLI turns into its exit status. */
extern json_t *msg_error_code (const char *code, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Getters: 0 found, 1 absent and optional (output untouched), -1 bad
 * (err filled). */
extern int msg_get_string (json_t *o, const char *key, bool required,
                           const char **out, char *err, size_t errlen);
extern int msg_get_u64 (json_t *o, const char *key, bool required,
                        uint64_t *out, char *err, size_t errlen);
extern int msg_get_bool (json_t *o, const char *key, bool required,
                         bool *out, char *err, size_t errlen);
extern int msg_get_array (json_t *o, const char *key, bool required,
                          json_t **out, char *err, size_t errlen);
extern int msg_get_object (json_t *o, const char *key, bool required,
                           json_t **out, char *err, size_t errlen);

/* Send REQ (steals the reference) and wait TIMEOUT_MS for the reply.
 * Returns the reply when "ok" is true.  Otherwise NULL, with the
 * peer's reason (or the transport failure) in err. */
extern json_t *chan_call (struct channel *c, json_t *req, int timeout_ms,
                          char *err, size_t errlen);

#endif /* HANDOFF_JSONUTIL_H */
