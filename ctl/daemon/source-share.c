/* handoffd: the source's calls to its VM's directory share
 * (source-share.h), over the mount's control socket in the VM's run
 * directory - and, with --via, through the stream proxy that passes
 * the share on (proxy-share.c).
 *
 * With a proxy the mount's session has one receiver, the proxy's
 * pass-on, which has the destinations' receivers.  The callers see one
 * share with every receiver, as without a proxy:
 *   - start: the session's one receiver is the proxy's pass-on (which
 *     connected to the destinations when the relay started);
 *   - status: a destination's receiver is lost when the proxy lost it,
 *     or when the way to the proxy is; a failure of the proxy's session
 *     fails the share;
 *   - drop of one destination: the proxy's pass-on drops it;
 *   - warm, commit, abort: the mount's session, whose requests the
 *     pass-on sends on in order (a COMMIT is answered once every
 *     receiver left committed).
 */
#include <stdio.h>
#include <string.h>

#include "channel-proto.h"
#include "errors.h"
#include "peer-check.h"
#include "source-proxy.h"
#include "source-share.h"
#include "vm.h"

static json_t *
local_call (struct migration *m, json_t *req, int timeout_ms, char *err,
            size_t errlen)
{
  return vm_helper_call (m->vm, "share.ctl", CHAN_SERVICE_SHARE_CTL, req,
                         timeout_ms, err, errlen);
}

/* O's KEY, or "" (a proxy's report may lack it). */
static const char *
text (json_t *o, const char *key)
{
  const char *s = json_string_value (json_object_get (o, key));

  return s ? s : "";
}

static bool
broken (const char *state)
{
  return !state || strcmp (state, "failed") == 0 ||
    strcmp (state, "aborted") == 0;
}

/* MSG (a SHARE call's fields, stolen) to the proxy's pass-on: its
 * reply, or NULL (err). */
static json_t *
proxy_call (struct migration *m, json_t *msg, int timeout_ms, char *err,
            size_t errlen)
{
  char e2[1024];
  json_t *a, *reply;

  a = source_proxy_call (m, "SHARE", msg, "SHARED", peer_check_shared,
                         timeout_ms, e2, sizeof e2);
  if (!a) {
    set_error (err, errlen, "files: %s", e2);
    return NULL;
  }
  reply = json_incref (json_object_get (a, "reply"));
  json_decref (a);
  return reply;
}

/* This host's session LOCAL and the proxy's REMOTE as one share: the
 * receivers in slot order. */
static json_t *
merge_status (struct migration *m, json_t *local, json_t *remote)
{
  json_t *out = json_deep_copy (local), *per_slot = json_array ();
  json_t *leg = json_array_get (json_object_get (local, "receivers"), 0);
  bool leg_lost = strcmp (text (leg, "state"), "lost") == 0;

  if (broken (json_string_value (json_object_get (remote, "state")))) {
    json_object_set_new (out, "state", json_string ("failed"));
    json_object_set_new (out, "error", json_sprintf (
      "on the proxy %s: %s", m->via, text (remote, "error")));
  }
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = &m->dests[i];
    json_t *r = json_array_get (json_object_get (remote, "receivers"),
                                (size_t) d->via_index);
    json_t *e;
    if (!d->alive || d->slot < 0)
      continue;
    while (json_array_size (per_slot) <= (size_t) d->slot)
      json_array_append_new (per_slot, json_object ());
    if (d->via_index < 0 || !r)
      e = json_pack ("{s:s, s:s}", "state", "lost", "error",
                     "the proxy does not pass the share on to it");
    else if (leg_lost)
      e = json_pack ("{s:s, s:s}", "state", "lost", "error",
                     text (leg, "error"));
    else
      e = json_deep_copy (r);
    json_array_set_new (per_slot, (size_t) d->slot, e);
  }
  json_object_set_new (out, "receivers", per_slot);
  return out;
}

/* LOCAL (an answer with the mount's status, stolen) with the proxy's. */
static json_t *
with_proxy (struct migration *m, json_t *local, int timeout_ms, char *err,
            size_t errlen)
{
  json_t *remote, *merged;

  if (!local)
    return NULL;
  if (broken (json_string_value (json_object_get (local, "state")))) {
    json_object_set_new (local, "error", json_sprintf (
      "on the way to the proxy %s: %s", m->via, text (local, "error")));
    return local;
  }
  remote = proxy_call (m, json_pack ("{s:s}", "op", "status"), timeout_ms,
                       err, errlen);
  if (!remote) {
    json_decref (local);
    return NULL;
  }
  merged = merge_status (m, local, remote);
  json_decref (local);
  json_decref (remote);
  return merged;
}

/* Drop of the destination whose receiver is REQ's "to". */
static json_t *
via_drop (struct migration *m, json_t *req, int timeout_ms, char *err,
          size_t errlen)
{
  const char *want = text (req, "to");
  const char *host = NULL;

  for (size_t i = 0; i < m->ndests && !host; ++i) {
    const struct dest *d = &m->dests[i];
    if (d->endpoints && strcmp (text (d->endpoints, "share"), want) == 0)
      host = d->host;
  }
  json_decref (req);
  if (!host) {
    set_error (err, errlen, "files: no such receiver");
    return NULL;
  }
  return proxy_call (m, json_pack ("{s:s, s:s}", "op", "drop", "host", host),
                     timeout_ms, err, errlen);
}

json_t *
source_share_call (struct migration *m, json_t *req, int timeout_ms, char *err,
                   size_t errlen)
{
  const char *op = text (req, "op");

  if (!m->via_share[0])
    return local_call (m, req, timeout_ms, err, errlen);
  if (strcmp (op, "start") == 0) {
    json_object_set_new (req, "to", json_pack ("[s]", m->via_share));
    json_object_set_new (req, "psk", json_pack ("[s]", m->via_psk));
    return with_proxy (m, local_call (m, req, timeout_ms, err, errlen),
                       timeout_ms, err, errlen);
  }
  if (strcmp (op, "status") == 0)
    return with_proxy (m, local_call (m, req, timeout_ms, err, errlen),
                       timeout_ms, err, errlen);
  if (strcmp (op, "drop") == 0)
    return via_drop (m, req, timeout_ms, err, errlen);
  return local_call (m, req, timeout_ms, err, errlen);
}
