/* handoffd: peer protocol helpers.  See peer.h. */
#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "channel-proto.h"
#include "daemon.h"
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
