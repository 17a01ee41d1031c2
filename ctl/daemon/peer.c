/* handoffd: peer protocol helpers.  See peer.h. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "channel-proto.h"
#include "config.h"
#include "log.h"
#include "peer.h"

struct channel *
peer_connect (const char *to, char *err, size_t errlen)
{
  const char *uri = hd_peer_uri (to);
  struct chan_config cfg = {
    .service = CHAN_SERVICE_CTL, .version_min = PEER_PROTO_VERSION,
    .version_max = PEER_PROTO_VERSION, .max_frame = PEER_MAX_FRAME,
    .timeout_ms = hd.io_timeout_ms, .psk_file = hd.psk,
  };
  struct channel *c;

  if (!uri) {
    snprintf (err, errlen, "unknown host '%s' (not a --peer, not a tcp:// "
              "URI)", to);
    return NULL;
  }
  log_clear_last_error ();
  c = chan_connect (uri, &cfg);
  if (!c)
    snprintf (err, errlen, "cannot reach %s: %s", to,
              log_last_error ()[0] ? log_last_error () : uri);
  return c;
}

json_t *
peer_msg (const char *type)
{
  return json_pack ("{s:s}", "type", type);
}

json_t *
peer_call (struct channel *c, json_t *msg, int timeout_ms, char *err,
           size_t errlen)
{
  const char *type = json_string_value (json_object_get (msg, "type"));
  char what[64];
  bool eof = false;
  json_t *r;

  snprintf (what, sizeof what, "%s", type ? type : "?");
  if (chan_send_json (c, msg) == -1) {
    snprintf (err, errlen, "%s: the peer is gone", what);
    json_decref (msg);
    return NULL;
  }
  json_decref (msg);
  r = chan_recv_json (c, timeout_ms, &eof);
  if (!r) {
    snprintf (err, errlen, "%s: %s", what,
              eof ? "the peer closed the connection"
              : "no valid answer in time (timeout or broken connection)");
    return NULL;
  }
  if (!json_is_string (json_object_get (r, "type"))) {
    snprintf (err, errlen, "%s: the answer has no type", what);
    json_decref (r);
    return NULL;
  }
  return r;
}

int
peer_ask (struct channel *c, json_t *msg, const char *want, int timeout_ms,
          char *err, size_t errlen)
{
  json_t *a = peer_call (c, msg, timeout_ms, err, errlen);
  int r = a && peer_expect (a, want, err, errlen) == 0 ? 0 : -1;

  json_decref (a);
  return r;
}

int
peer_expect (json_t *answer, const char *want, char *err, size_t errlen)
{
  const char *type = json_string_value (json_object_get (answer, "type"));
  const char *reason = json_string_value (json_object_get (answer, "reason"));

  if (type && strcmp (type, want) == 0)
    return 0;
  snprintf (err, errlen, "%s%s%s", type ? type : "no answer",
            reason ? ": " : "", reason ? reason : "");
  return -1;
}

json_t *
peer_query_migration (const char *to, const char *id, int timeout_ms,
                      char *err, size_t errlen)
{
  int64_t deadline = clock_ms () + timeout_ms;

  /* Terminates: an answer, or the deadline. */
  for (;;) {
    struct channel *c = peer_connect (to, err, errlen);
    if (c) {
      json_t *a = peer_call (c, json_pack ("{s:s, s:s}", "type",
                                           "QUERY_MIGRATION", "id", id),
                             hd.io_timeout_ms, err, errlen);
      chan_close (c);
      if (a && peer_expect (a, "STATUS", err, errlen) == 0)
        return a;
      json_decref (a);
    }
    if (clock_ms () >= deadline)
      return NULL;
    sleep (1);
  }
}

json_t *
peer_abort_migration_state (const char *to, const char *id, char *err,
                            size_t errlen)
{
  struct channel *c = peer_connect (to, err, errlen);
  json_t *a;

  if (!c)
    return NULL;
  a = peer_call (c, json_pack ("{s:s, s:s}", "type", "ABORT_MIGRATION", "id",
                               id), hd.io_timeout_ms, err, errlen);
  chan_close (c);
  if (a && peer_expect (a, "STATUS", err, errlen) == -1) {
    json_decref (a);
    return NULL;
  }
  return a;
}

void
peer_abort_migration (struct channel *peer, const char *to, const char *id,
                      const char *reason)
{
  char err[512];
  json_t *a = NULL;

  if (peer)
    a = peer_call (peer, json_pack ("{s:s, s:s}", "type", "ABORT", "reason",
                                    reason), hd.io_timeout_ms, err,
                   sizeof err);
  if (!a) {
    struct channel *c = peer_connect (to, err, sizeof err);
    if (c) {
      a = peer_call (c, json_pack ("{s:s, s:s}", "type", "ABORT_MIGRATION",
                                   "id", id), hd.io_timeout_ms, err,
                     sizeof err);
      chan_close (c);
    }
  }
  if (!a)
    log_warn ("migration %s: could not tell %s to drop it (%s); it will on "
              "its own", id, to, err);
  json_decref (a);
}

void
peer_address (struct channel *c, char *buf, size_t len)
{
  const char *n = chan_peer_name (c);
  const char *colon = strrchr (n, ':');
  size_t k = colon ? (size_t) (colon - n) : strlen (n);

  if (n[0] == '[' && k > 2)
    snprintf (buf, len, "%.*s", (int) (k - 2), n + 1);
  else
    snprintf (buf, len, "%.*s", (int) k, n);
}
