/* handoffd: the source's calls to its VM's disk mirrors
 * (source-mirror.h), over their control sockets in the VM's run
 * directory - and, with --via, through the stream proxy that serves
 * the disks.
 *
 * With a proxy each disk has two legs: this host's mirror sends it
 * once, to the proxy's export, and the proxy's mirror sends that on to
 * every destination (proxy-disks.c).  The callers see one mirror with
 * every destination, as without a proxy:
 *   - start: this host's mirror gets the proxy's export as its one
 *     destination (the proxy's own mirror started with the relay);
 *   - status: a destination is ready when both legs are (the proxy's
 *     leg alone may be ready early: its copy found nothing but holes,
 *     and what the source's copy sends it afterwards is mirrored on
 *     before it is acknowledged); what is left for it is what is left
 *     on both; a failure on either leg is its failure;
 *   - cancel of one destination: the proxy's leg drops it;
 *   - complete: this host's leg first, whose last flush reaches every
 *     destination through the proxy's filter, then the proxy's.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "channel-proto.h"
#include "errors.h"
#include "peer-check.h"
#include "source-mirror.h"
#include "source-proxy.h"
#include "vm.h"

/* REQ to this host's own mirror of disk I. */
static json_t *
local_call (struct migration *m, size_t i, json_t *req, int timeout_ms,
            char *err, size_t errlen)
{
  char sock[32];
  snprintf (sock, sizeof sock, "disk%zu.ctl", i);
  return vm_helper_call (m->vm, sock, CHAN_SERVICE_MIRROR, req, timeout_ms,
                         err, errlen);
}

static double
num (json_t *o, const char *key)
{
  return json_number_value (json_object_get (o, key));
}

/* O's KEY, or "" (a proxy's report may lack it). */
static const char *
text (json_t *o, const char *key)
{
  const char *s = json_string_value (json_object_get (o, key));

  return s ? s : "";
}

static bool
done (const char *state)
{
  return state && (strcmp (state, "ready") == 0 ||
                   strcmp (state, "completed") == 0);
}

static bool
broken (const char *state)
{
  return !state || strcmp (state, "failed") == 0 ||
    strcmp (state, "cancelled") == 0;
}

/* MSG (a MIRROR call's fields, stolen) to the proxy's mirror of disk K:
 * the mirror's reply, or NULL (err). */
static json_t *
proxy_call (struct migration *m, size_t k, json_t *msg, int timeout_ms,
            char *err, size_t errlen)
{
  char e2[1024];
  json_t *a, *reply;

  json_object_set_new (msg, "disk", json_integer ((json_int_t) k));
  a = source_proxy_call (m, "MIRROR", msg, "MIRRORED", peer_check_mirrored,
                         timeout_ms, e2, sizeof e2);
  if (!a) {
    set_error (err, errlen, "disk%zu: %s", k, e2);
    return NULL;
  }
  reply = json_incref (json_object_get (a, "reply"));
  json_decref (a);
  return reply;
}

/* Destination D's part of the proxy's report REMOTE, with this host's
 * leg LEG (the local mirror's one destination) added. */
static json_t *
dest_status (const struct migration *m, const struct dest *d, json_t *leg,
             json_t *remote)
{
  json_t *r = json_array_get (json_object_get (remote, "destinations"),
                              (size_t) d->via_index);
  const char *leg_state = json_string_value (json_object_get (leg, "state"));
  json_t *e;

  if (d->via_index < 0 || !r)
    return json_pack ("{s:s, s:s}", "state", "failed", "error",
                      "the proxy does not mirror to it");
  e = json_deep_copy (r);
  if (broken (leg_state)) {
    json_object_set_new (e, "state", json_string ("failed"));
    json_object_set_new (e, "error", json_sprintf (
      "the way to the proxy %s: %s", m->via, text (leg, "error")));
  }
  else if (!done (leg_state) &&
           done (json_string_value (json_object_get (e, "state"))))
    json_object_set_new (e, "state", json_string (leg_state));
  json_object_set_new (e, "remaining", json_integer (
    (json_int_t) (num (e, "remaining") + num (leg, "remaining"))));
  json_object_set_new (e, "dirtied", json_integer (
    (json_int_t) (num (e, "dirtied") + num (leg, "dirtied"))));
  return e;
}

/* This host's status LOCAL and the proxy's REMOTE as one mirror's: the
 * destinations in slot order. */
static json_t *
merge_status (struct migration *m, json_t *local, json_t *remote)
{
  json_t *out = json_deep_copy (local), *per_slot = json_array ();
  json_t *leg = json_array_get (json_object_get (local, "destinations"), 0);
  const char *rstate = json_string_value (json_object_get (remote, "state"));

  if (broken (rstate)) {
    json_object_set_new (out, "state", json_string ("failed"));
    json_object_set_new (out, "error", json_sprintf (
      "on the proxy %s: %s", m->via, text (remote, "error")));
  }
  else if (done (json_string_value (json_object_get (local, "state"))) &&
           !done (rstate))
    json_object_set_new (out, "state", json_string (rstate));
  json_object_set_new (out, "remaining", json_integer (
    (json_int_t) (num (local, "remaining") + num (remote, "remaining"))));
  json_object_set_new (out, "dirtied", json_integer (
    (json_int_t) (num (local, "dirtied") + num (remote, "dirtied"))));
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = &m->dests[i];
    if (!d->alive || d->slot < 0)
      continue;
    while (json_array_size (per_slot) <= (size_t) d->slot)
      json_array_append_new (per_slot, json_object ());
    json_array_set_new (per_slot, (size_t) d->slot,
                        dest_status (m, d, leg, remote));
  }
  json_object_set_new (out, "destinations", per_slot);
  return out;
}

static json_t *
via_status (struct migration *m, size_t k, json_t *req, int timeout_ms,
            char *err, size_t errlen)
{
  json_t *local = local_call (m, k, req, timeout_ms, err, errlen);
  json_t *remote, *merged;

  if (!local)
    return NULL;
  if (broken (json_string_value (json_object_get (local, "state")))) {
    json_object_set_new (local, "error", json_sprintf (
      "on the way to the proxy %s: %s", m->via, text (local, "error")));
    return local;
  }
  remote = proxy_call (m, k, json_pack ("{s:s}", "op", "status"), timeout_ms,
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

/* Cancel of the destination whose export of disk K is REQ's. */
static json_t *
via_cancel (struct migration *m, size_t k, json_t *req, int timeout_ms,
            char *err, size_t errlen)
{
  const char *want = json_string_value (json_object_get (req, "destination"));
  const char *host = NULL;

  for (size_t i = 0; i < m->ndests && !host; ++i) {
    char uri[PATH_MAX + 512];
    const struct dest *d = &m->dests[i];
    if (d->endpoints &&
        strcmp (source_disk_uri (d, k, uri, sizeof uri), want) == 0)
      host = d->host;
  }
  json_decref (req);
  if (!host) {
    set_error (err, errlen, "disk%zu: no such destination", k);
    return NULL;
  }
  return proxy_call (m, k, json_pack ("{s:s, s:s}", "op", "cancel", "host",
                                      host), timeout_ms, err, errlen);
}

static json_t *
via_complete (struct migration *m, size_t k, json_t *req, int timeout_ms,
              char *err, size_t errlen)
{
  json_t *fields = json_deep_copy (req);
  json_t *local = local_call (m, k, req, timeout_ms, err, errlen);
  json_t *remote;

  if (!local) {
    json_decref (fields);
    return NULL;
  }
  remote = proxy_call (m, k, fields, timeout_ms + 5000, err, errlen);
  if (!remote) {
    json_decref (local);
    return NULL;
  }
  json_decref (remote);
  return local;
}

/* REQ to disk K's mirror when the proxy serves the disks. */
static json_t *
via_call (struct migration *m, size_t k, json_t *req, int timeout_ms,
          char *err, size_t errlen)
{
  const char *op = json_string_value (json_object_get (req, "op"));

  if (strcmp (op, "start") == 0) {
    char uri[PATH_MAX + 512];
    snprintf (uri, sizeof uri, "%.400s?tls-psk-file=%s",
              json_string_value (json_array_get (m->via_disks, k)),
              m->via_psk);
    json_object_set_new (req, "destinations", json_pack ("[s]", uri));
  }
  else if (strcmp (op, "status") == 0)
    return via_status (m, k, req, timeout_ms, err, errlen);
  else if (strcmp (op, "cancel") == 0 &&
           json_object_get (req, "destination"))
    return via_cancel (m, k, req, timeout_ms, err, errlen);
  else if (strcmp (op, "complete") == 0)
    return via_complete (m, k, req, timeout_ms, err, errlen);
  /* The whole mirror cancelled: the proxy's goes with its relay. */
  return local_call (m, k, req, timeout_ms, err, errlen);
}

json_t *
source_mirror_call (struct migration *m, size_t i, json_t *req, int timeout_ms,
                    char *err, size_t errlen)
{
  if (m->via_disks)
    return via_call (m, i, req, timeout_ms, err, errlen);
  return local_call (m, i, req, timeout_ms, err, errlen);
}

const char *
source_disk_uri (const struct dest *d, size_t k, char *buf, size_t len)
{
  snprintf (buf, len, "%.400s?tls-psk-file=%s",
            json_string_value (json_array_get (
              json_object_get (d->endpoints, "disks"), k)), d->psk);
  return buf;
}
