/* handoffd: checks of peer messages.  See peer-check.h. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "def-check.h"
#include "errors.h"
#include "jsonutil.h"
#include "names.h"
#include "peer-check.h"
#include "transport.h"
#include "uri.h"

#define MAX_EVENTS 100000

static int
check_id_field (json_t *msg, char *err, size_t errlen)
{
  const char *id;

  if (msg_get_string (msg, "id", true, &id, err, errlen) != 0)
    return -1;
  return name_check_id ("migration id", id, NAME_ID_MAX, err, errlen);
}

static int
check_start (json_t *msg, char *err, size_t errlen)
{
  const char *vm, *source, *mode = "live";
  uint64_t timeout_s = 0, v;
  json_t *needs;

  if (check_id_field (msg, err, errlen) == -1 ||
      msg_get_string (msg, "vm", true, &vm, err, errlen) != 0 ||
      name_check_vm (vm, err, errlen) == -1 ||
      msg_get_string (msg, "source", true, &source, err, errlen) != 0 ||
      name_check_host (source, err, errlen) == -1 ||
      msg_get_string (msg, "mode", false, &mode, err, errlen) == -1 ||
      msg_get_u64 (msg, "timeout_s", false, &timeout_s, err, errlen) == -1 ||
      msg_get_object (msg, "needs", true, &needs, err, errlen) != 0)
    return -1;
  if (strcmp (mode, "live") != 0 && strcmp (mode, "volume") != 0 &&
      strcmp (mode, "offline") != 0)
    return set_error (err, errlen, "mode must be 'live', 'offline' or "
                      "'volume'");
  if (timeout_s > 86400)
    return set_error (err, errlen, "timeout_s must be at most one day");
  for (const char *const *k = (const char *const[]) { "memory", "vcpus",
                                                      "disk_bytes", NULL };
       *k; ++k)
    if (msg_get_u64 (needs, *k, false, &v, err, errlen) == -1)
      return -1;
  return 0;
}

int
peer_check_events (json_t *events, char *err, size_t errlen)
{
  json_t *ev;
  size_t i;

  if (!json_is_array (events) || json_array_size (events) > MAX_EVENTS)
    return set_error (err, errlen, "'events' must be an array of at most %d",
                      MAX_EVENTS);
  json_array_foreach (events, i, ev) {
    const char *uid, *type;
    uint64_t posted;
    if (!json_is_object (ev))
      return set_error (err, errlen, "event %zu is not an object", i);
    if (msg_get_string (ev, "uid", true, &uid, err, errlen) != 0 ||
        name_check_id ("event uid", uid, NAME_EVENT_ID_MAX, err,
                       errlen) == -1 ||
        msg_get_string (ev, "type", true, &type, err, errlen) != 0 ||
        name_check_event_type (type, err, errlen) == -1 ||
        msg_get_u64 (ev, "posted", true, &posted, err, errlen) != 0)
      return -1;
  }
  return 0;
}

static int
check_state (json_t *msg, char *err, size_t errlen)
{
  json_t *def, *objects;
  const char *transport = "tcp";

  if (msg_get_object (msg, "def", true, &def, err, errlen) != 0 ||
      msg_get_object (msg, "objects", true, &objects, err, errlen) != 0 ||
      msg_get_string (msg, "transport", false, &transport, err,
                      errlen) == -1 ||
      vm_def_check (def, err, errlen) == -1 ||
      objects_check (objects, err, errlen) == -1)
    return -1;
  /* The RAM stream: over TCP, over RDMA, or RDMA if the destination
   * can. */
  enum transport t;
  return transport_parse (transport, &t, err, errlen);
}

static int
check_volume_handoff (json_t *msg, char *err, size_t errlen)
{
  json_t *def, *objects, *volumes;

  if (msg_get_object (msg, "def", true, &def, err, errlen) != 0 ||
      msg_get_object (msg, "objects", true, &objects, err, errlen) != 0 ||
      msg_get_array (msg, "volumes", true, &volumes, err, errlen) != 0 ||
      def_check_on_volumes (def, volumes, err, errlen) == -1 ||
      objects_check (objects, err, errlen) == -1)
    return -1;
  return 0;
}

static int
check_reason (json_t *msg, char *err, size_t errlen)
{
  const char *reason;
  int r = msg_get_string (msg, "reason", false, &reason, err, errlen);

  if (r == -1)
    return -1;
  if (r == 0 && name_check_text ("reason", reason, NAME_TEXT_MAX, err,
                                 errlen) == -1)
    return -1;
  return 0;
}

/* One endpoint: a URI of SCHEME (or ALT) on HOST (NULL: any host),
 * nothing else. */
static int
check_endpoint (const char *what, json_t *v, const char *host,
                enum uri_scheme scheme, int alt, char *err, size_t errlen)
{
  struct uri u;
  char e2[256], q[96];
  int rv = -1;

  if (!json_is_string (v))
    return set_error (err, errlen, "endpoint %s is missing", what);
  if (uri_parse (json_string_value (v), &u, e2, sizeof e2) == -1)
    return set_error (err, errlen, "endpoint %s: %s", what, e2);
  if (u.scheme != scheme && (int) u.scheme != alt)
    snprintf (err, errlen, "endpoint %s '%s' is not %s://", what,
              name_quote (json_string_value (v), q, sizeof q),
              uri_scheme_name (scheme));
  else if (!u.host || (host && strcmp (u.host, host) != 0))
    snprintf (err, errlen, "endpoint %s '%s' is not on the destination "
              "(%s)", what, name_quote (json_string_value (v), q, sizeof q),
              host);
  /* Even an empty query: the receiver appends its own parameters. */
  else if (u.socket || u.tls_psk_file || u.tls_username || u.token_file ||
           strchr (json_string_value (v), '?'))
    snprintf (err, errlen, "endpoint %s '%s' carries parameters", what,
              name_quote (json_string_value (v), q, sizeof q));
  else
    rv = 0;
  uri_free (&u);
  return rv;
}

/* A key file's one line, "IDENTITY:HEX" (a migration key). */
static bool
is_key_text (const char *key)
{
  const char *colon = key ? strchr (key, ':') : NULL;

  return colon && colon != key && colon - key <= 64 &&
    strlen (colon + 1) >= 32 && strlen (colon + 1) <= 128 &&
    strspn (colon + 1, "0123456789abcdefABCDEF") == strlen (colon + 1) &&
    strspn (key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "0123456789-_.") == (size_t) (colon - key);
}

int
peer_check_endpoints (json_t *ep, const char *peer_host, size_t ndisks,
                      bool has_dir, char *err, size_t errlen)
{
  json_t *disks, *d;
  size_t i;

  if (!json_is_object (ep))
    return set_error (err, errlen, "the destination sent no endpoints");
  if (!is_key_text (json_string_value (json_object_get (ep, "psk"))))
    return set_error (err, errlen,
                      "the destination sent no usable migration key");
  disks = json_object_get (ep, "disks");
  if (!json_is_array (disks) || json_array_size (disks) != ndisks)
    return set_error (err, errlen,
                      "the destination's endpoints do not match the "
                      "VM's %zu disk%s", ndisks, ndisks == 1 ? "" : "s");
  json_array_foreach (disks, i, d) {
    char what[32];
    snprintf (what, sizeof what, "disk %zu", i);
    if (check_endpoint (what, d, peer_host, URI_SCHEME_NBDS, -1, err,
                        errlen) == -1)
      return -1;
  }
  if (has_dir && check_endpoint ("share", json_object_get (ep, "share"),
                                 peer_host, URI_SCHEME_TCP, -1, err,
                                 errlen) == -1)
    return -1;
  if (check_endpoint ("xfer", json_object_get (ep, "xfer"), peer_host,
                      URI_SCHEME_TCP, URI_SCHEME_RDMA, err, errlen) == -1)
    return -1;
  /* TCP beside RDMA, for a source that cannot set RDMA up: only then. */
  json_t *alt = json_object_get (ep, "xfer_tcp");
  if (!alt)
    return 0;
  if (strncmp (json_string_value (json_object_get (ep, "xfer")), "rdma://",
               7) != 0)
    return set_error (err, errlen, "endpoint xfer_tcp is only for a RAM "
                      "stream over RDMA");
  return check_endpoint ("xfer_tcp", alt, peer_host, URI_SCHEME_TCP, -1, err,
                         errlen);
}

/* ARR: N disk exports (nbds://, no parameters) on HOST (NULL: any). */
static int
check_disk_exports (const char *whose, json_t *arr, size_t n,
                    const char *host, char *err, size_t errlen)
{
  json_t *v;
  size_t i;

  if (!json_is_array (arr) || json_array_size (arr) != n)
    return set_error (err, errlen, "%s: not one disk export per disk (%zu)",
                      whose, n);
  json_array_foreach (arr, i, v) {
    char what[96];
    snprintf (what, sizeof what, "%.64s disk %zu", whose, i);
    if (check_endpoint (what, v, host, URI_SCHEME_NBDS, -1, err,
                        errlen) == -1)
      return -1;
  }
  return 0;
}

int
peer_check_relaying (json_t *answer, const char *proxy_host, size_t ndisks,
                     bool share, char *err, size_t errlen)
{
  if (check_endpoint ("xfer", json_object_get (answer, "xfer"), proxy_host,
                      URI_SCHEME_TCP, -1, err, errlen) == -1)
    return -1;
  if (!is_key_text (json_string_value (json_object_get (answer, "key"))))
    return set_error (err, errlen, "the proxy sent no usable key");
  if (!share && json_object_get (answer, "share"))
    return set_error (err, errlen, "the proxy passes on a share it was not "
                      "asked for");
  if (share && check_endpoint ("share", json_object_get (answer, "share"),
                               proxy_host, URI_SCHEME_TCP, -1, err,
                               errlen) == -1)
    return -1;
  if (ndisks == 0)
    return json_object_get (answer, "disks")
      ? set_error (err, errlen, "the proxy serves disks it was not asked "
                   "for") : 0;
  return check_disk_exports ("the proxy's", json_object_get (answer, "disks"),
                             ndisks, proxy_host, err, errlen);
}

int
peer_check_mirrored (json_t *answer, char *err, size_t errlen)
{
  json_t *reply = json_object_get (answer, "reply"), *dests, *d;
  size_t i;

  if (!json_is_object (reply) ||
      !json_is_string (json_object_get (reply, "state")))
    return set_error (err, errlen, "the proxy's mirror sent no state");
  dests = json_object_get (reply, "destinations");
  if (!dests)
    return 0;
  if (!json_is_array (dests) || json_array_size (dests) > MAX_DESTS)
    return set_error (err, errlen, "the proxy's mirror reports more than "
                      "%d destinations", MAX_DESTS);
  json_array_foreach (dests, i, d)
    if (!json_is_string (json_object_get (d, "state")))
      return set_error (err, errlen, "the proxy's mirror reports "
                        "destination %zu without a state", i);
  return 0;
}

int
peer_check_shared (json_t *answer, char *err, size_t errlen)
{
  json_t *reply = json_object_get (answer, "reply"), *rcv, *r;
  size_t i;

  if (!json_is_object (reply) ||
      !json_is_string (json_object_get (reply, "state")))
    return set_error (err, errlen, "the proxy's share sent no state");
  rcv = json_object_get (reply, "receivers");
  if (!rcv)
    return 0;
  if (!json_is_array (rcv) || json_array_size (rcv) > MAX_DESTS)
    return set_error (err, errlen, "the proxy's share reports more than %d "
                      "receivers", MAX_DESTS);
  json_array_foreach (rcv, i, r)
    if (!json_is_string (json_object_get (r, "state")))
      return set_error (err, errlen, "the proxy's share reports receiver "
                        "%zu without a state", i);
  return 0;
}

/* SHARE, while a proxy passes the share on (handoff migrate --via):
 * "status", or "drop" of one destination's receiver, by "host". */
static int
check_share_call (json_t *msg, char *err, size_t errlen)
{
  const char *op, *host;

  if (msg_get_string (msg, "op", true, &op, err, errlen) != 0)
    return -1;
  if (strcmp (op, "status") == 0)
    return 0;
  if (strcmp (op, "drop") == 0)
    return msg_get_string (msg, "host", true, &host, err, errlen) != 0 ||
      name_check_host (host, err, errlen) == -1 ? -1 : 0;
  {
    char q[48];
    return set_error (err, errlen, "unknown share call '%s'",
                      name_quote (op, q, sizeof q));
  }
}

/* MIRROR, while a proxy serves the disks (handoff migrate --via): one
 * call of the proxy's mirror of a disk.  "status"; "complete" with
 * "verify" and "timeout_ms"; "cancel" of one destination, by "host". */
static int
check_mirror_call (json_t *msg, char *err, size_t errlen)
{
  const char *op, *host;
  uint64_t disk, timeout = 0;
  bool verify;

  if (msg_get_u64 (msg, "disk", true, &disk, err, errlen) != 0)
    return -1;
  if (disk >= DEF_MAX_DISKS)
    return set_error (err, errlen, "no disk %llu", (unsigned long long) disk);
  if (msg_get_string (msg, "op", true, &op, err, errlen) != 0)
    return -1;
  if (strcmp (op, "status") == 0)
    return 0;
  if (strcmp (op, "complete") == 0) {
    if (msg_get_bool (msg, "verify", false, &verify, err, errlen) == -1 ||
        msg_get_u64 (msg, "timeout_ms", false, &timeout, err, errlen) == -1)
      return -1;
    return timeout > 3600 * 1000
      ? set_error (err, errlen, "'timeout_ms' is over an hour") : 0;
  }
  if (strcmp (op, "cancel") == 0)
    return msg_get_string (msg, "host", true, &host, err, errlen) != 0 ||
      name_check_host (host, err, errlen) == -1 ? -1 : 0;
  {
    char q[48];
    return set_error (err, errlen, "unknown mirror call '%s'",
                      name_quote (op, q, sizeof q));
  }
}

/* RELAY_STREAM (handoff migrate --via): who asks, whether its QEMU
 * holds the switch-over, and each destination's RAM stream address
 * (no parameters: the proxy adds the key) and migration key.  Whether
 * each address is its host's is the proxy's policy (proxy.c). */
static int
check_relay_stream (json_t *msg, char *err, size_t errlen)
{
  const char *source, *id, *vm;
  bool hold;
  json_t *to, *d, *disks, *v;
  size_t i;

  /* The id and the VM's name were checked if there: they must be. */
  if (msg_get_string (msg, "id", true, &id, err, errlen) != 0 ||
      msg_get_string (msg, "vm", true, &vm, err, errlen) != 0 ||
      msg_get_string (msg, "source", true, &source, err, errlen) != 0 ||
      name_check_host (source, err, errlen) == -1 ||
      msg_get_bool (msg, "hold", false, &hold, err, errlen) == -1 ||
      msg_get_array (msg, "to", true, &to, err, errlen) != 0)
    return -1;
  if (json_array_size (to) < 1 || json_array_size (to) > MAX_DESTS)
    return set_error (err, errlen, "a stream is relayed to 1 to %d "
                      "destinations, not %zu", MAX_DESTS,
                      json_array_size (to));
  /* The disks' sizes, when the proxy is to serve them too. */
  disks = json_object_get (msg, "disks");
  if (disks && (!json_is_array (disks) || json_array_size (disks) < 1 ||
                json_array_size (disks) > DEF_MAX_DISKS))
    return set_error (err, errlen, "'disks' must list 1 to %d sizes",
                      DEF_MAX_DISKS);
  json_array_foreach (disks, i, v)
    if (!json_is_integer (v) || json_integer_value (v) <= 0 ||
        (uint64_t) json_integer_value (v) > DEF_MAX_DISK_BYTES)
      return set_error (err, errlen, "disk %zu: not a size", i);
  /* ... and how much data they hold. */
  uint64_t bytes;
  int have = msg_get_u64 (msg, "disk_bytes", false, &bytes, err, errlen);
  if (have == -1)
    return -1;
  if (have == 0 && (!disks || bytes > DEF_MAX_DISKS * DEF_MAX_DISK_BYTES))
    return set_error (err, errlen, "'disk_bytes' %s",
                      disks ? "is more than the disks can hold"
                      : "without the disks");
  json_array_foreach (to, i, d) {
    const char *host, *xfer;
    json_t *alt;
    if (!json_is_object (d))
      return set_error (err, errlen, "destination %zu is not an object", i);
    if (msg_get_string (d, "host", true, &host, err, errlen) != 0 ||
        name_check_host (host, err, errlen) == -1 ||
        check_endpoint ("xfer", json_object_get (d, "xfer"), NULL,
                        URI_SCHEME_TCP, URI_SCHEME_RDMA, err, errlen) == -1)
      return -1;
    if (!is_key_text (json_string_value (json_object_get (d, "key"))))
      return set_error (err, errlen, "destination %s: no usable migration "
                        "key", host);
    for (size_t k = 0; k < i; ++k)
      if (strcmp (json_string_value (json_object_get (
                    json_array_get (to, k), "host")), host) == 0)
        return set_error (err, errlen, "destination %s named twice", host);
    xfer = json_string_value (json_object_get (d, "xfer"));
    alt = json_object_get (d, "xfer_tcp");
    if (alt && strncmp (xfer, "rdma://", 7) != 0)
      return set_error (err, errlen, "destination %s: xfer_tcp is only for "
                        "a RAM stream over RDMA", host);
    if (alt && check_endpoint ("xfer_tcp", alt, NULL, URI_SCHEME_TCP, -1,
                               err, errlen) == -1)
      return -1;
    /* The directory's receiver: every destination's, or none. */
    if ((json_object_get (d, "share") != NULL) !=
        (json_object_get (json_array_get (to, 0), "share") != NULL))
      return set_error (err, errlen, "destination %s: a share receiver for "
                        "some destinations only", host);
    if (json_object_get (d, "share") &&
        check_endpoint ("share", json_object_get (d, "share"), NULL,
                        URI_SCHEME_TCP, -1, err, errlen) == -1)
      return -1;
    if (disks ? check_disk_exports (host, json_object_get (d, "disks"),
                                    json_array_size (disks), NULL, err,
                                    errlen) == -1
        : json_object_get (d, "disks") != NULL)
      return disks ? -1 : set_error (err, errlen, "destination %s: disks "
                                     "without their sizes", host);
  }
  return 0;
}

/* --cascade, with the message that makes a destination run the VM:
 * where it then migrates the VM on by itself, "HOST[,HOST...]" (1 to
 * 4 names), and how. */
static int
check_cascade (json_t *msg, char *err, size_t errlen)
{
  json_t *c = NULL;
  const char *to, *warm_exit = "converging";
  uint64_t downtime = 300;
  bool prewarm = false;
  char list[4 * (NAME_HOST_MAX + 1)], *save = NULL;
  size_t n = 0;

  if (msg_get_object (msg, "cascade", false, &c, err, errlen) == -1)
    return -1;
  if (!c)
    return 0;
  if (msg_get_string (c, "to", true, &to, err, errlen) != 0 ||
      msg_get_bool (c, "prewarm", false, &prewarm, err, errlen) == -1 ||
      msg_get_u64 (c, "max_downtime_ms", false, &downtime, err,
                   errlen) == -1 ||
      msg_get_string (c, "warm_exit", false, &warm_exit, err, errlen) == -1)
    return -1;
  if (downtime < 1 || downtime > 600000)
    return set_error (err, errlen, "cascade: max_downtime_ms must be 1 to "
                      "600000");
  if (strcmp (warm_exit, "copied") != 0 &&
      strcmp (warm_exit, "downtime") != 0 &&
      strcmp (warm_exit, "converging") != 0)
    return set_error (err, errlen, "cascade: warm_exit must be copied, "
                      "downtime or converging");
  if (!to[0] || strlen (to) >= sizeof list || to[0] == ',' ||
      strstr (to, ",,") ||
      to[strlen (to) - 1] == ',')
    return set_error (err, errlen, "cascade: expected HOST[,HOST...]");
  snprintf (list, sizeof list, "%s", to);
  for (char *h = strtok_r (list, ",", &save); h;
       h = strtok_r (NULL, ",", &save)) {
    if (++n > 4)
      return set_error (err, errlen, "cascade: at most 4 hosts");
    if (name_check_host (h, err, errlen) == -1)
      return -1;
  }
  return 0;
}

/* Messages that carry nothing but their type. */
static const char *const bare[] = {
  "PING", "OFFLINE_COMPLETE", "END", NULL,
};

int
peer_check_message (json_t *msg, char *err, size_t errlen)
{
  const char *type;

  if (!json_is_object (msg))
    return set_error (err, errlen, "a message must be a JSON object");
  if (msg_get_string (msg, "type", true, &type, err, errlen) != 0)
    return -1;
  /* A VM name or a migration id is checked wherever it appears, even
   * in a message that has no use for it: no handler can then meet an
   * unchecked one. */
  if (json_object_get (msg, "vm")) {
    const char *vm;
    if (msg_get_string (msg, "vm", true, &vm, err, errlen) != 0 ||
        name_check_vm (vm, err, errlen) == -1)
      return -1;
  }
  if (json_object_get (msg, "id") && check_id_field (msg, err, errlen) == -1)
    return -1;
  for (const char *const *b = bare; *b; ++b)
    if (strcmp (type, *b) == 0)
      return 0;
  if (strcmp (type, "START_MIGRATION") == 0)
    return check_start (msg, err, errlen);
  if (strcmp (type, "MANAGEMENT_STATE") == 0)
    return check_state (msg, err, errlen);
  if (strcmp (type, "QUEUED_EVENTS") == 0)
    return peer_check_events (json_object_get (msg, "events"), err, errlen);
  if (strcmp (type, "VOLUME_COMMIT") == 0)
    return json_object_get (msg, "events")
      ? peer_check_events (json_object_get (msg, "events"), err, errlen) : 0;
  if (strcmp (type, "MANAGEMENT_UPDATE") == 0)
    return objects_check (json_object_get (msg, "objects"), err, errlen);
  if (strcmp (type, "VOLUME_HANDOFF") == 0)
    return check_volume_handoff (msg, err, errlen);
  if (strcmp (type, "ABORT") == 0)
    return check_reason (msg, err, errlen);
  if (strcmp (type, "START_VM") == 0) {
    bool prewarm;
    return msg_get_bool (msg, "prewarm", false, &prewarm, err, errlen) == -1
      ? -1 : 0;
  }
  if (strcmp (type, "MIGRATION_COMPLETE") == 0) {
    bool hold;
    return msg_get_bool (msg, "hold", false, &hold, err, errlen) == -1 ||
      check_cascade (msg, err, errlen) == -1 ? -1 : 0;
  }
  if (strcmp (type, "RESUME") == 0)
    return check_cascade (msg, err, errlen);
  if (strcmp (type, "RELAY_STREAM") == 0)
    return check_relay_stream (msg, err, errlen);
  if (strcmp (type, "MIRROR") == 0)
    return check_mirror_call (msg, err, errlen);
  if (strcmp (type, "SHARE") == 0)
    return check_share_call (msg, err, errlen);
  if (strcmp (type, "QUERY_MIGRATION") == 0 ||
      strcmp (type, "ABORT_MIGRATION") == 0)
    return check_id_field (msg, err, errlen);
  {
    char q[48];
    snprintf (err, errlen, "unknown message type '%s'",
              name_quote (type, q, sizeof q));
  }
  return -1;
}
