/* nbd-mirror: the control socket (protocol in mirror-proto.h), served
 * by lib/ctlserver.
 *
 * NOTES ON THE THREAD MODEL: the control server's accept thread opens
 * the plugin context for the copier when it starts, and once a second
 * updates the rates and reaps a finished session.  Each client has its
 * own thread; a "complete" blocks only its own client.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "cleanup.h"
#include "control.h"
#include "ctlserver.h"
#include "jsonutil.h"
#include "log.h"
#include "mirror.h"
#include "source.h"
#include "state.h"
#include "sockets.h"

static json_t *
status_json (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
  enum mirror_state st = mirror.state;
  uint64_t min_copied, dirtied, inflight;
  size_t active, ready;
  json_t *dests = session_dests_json_locked (&mirror, &active, &ready,
                                            &min_copied, &dirtied, &inflight);
  char why[1024];

  if ((st == MIRROR_COPYING || st == MIRROR_READY) && active > 0)
    st = ready == active ? MIRROR_READY : MIRROR_COPYING;
  if (st == MIRROR_COMPLETED)
    min_copied = mirror.size;

  return json_pack (
    "{s:b, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I,"
    " s:f, s:f, s:f, s:f, s:I, s:I, s:s, s:o}",
    "ok", 1,
    "state", mirror_state_names[st],
    "mode", mirror.mode == MIRROR_MODE_ACTIVE ? "active" : "background",
    "paused", mirror.paused,
    "size", (json_int_t) mirror.size,
    "chunk_size", (json_int_t) mirror.cfg.chunk_size,
    "copied", (json_int_t) min_copied,
    "remaining", (json_int_t) (mirror.size - min_copied),
    "dirtied", (json_int_t) dirtied,
    "inflight", (json_int_t) inflight,
    "copy_rate", mirror.copy_rate,
    "write_rate", mirror.write_rate,
    "elapsed", mirror.started_ms
      ? (double) (clock_ms () - mirror.started_ms) / 1000.0 : 0.0,
    "ready_after", mirror.ready_ms
      ? (double) (mirror.ready_ms - mirror.started_ms) / 1000.0 : 0.0,
    "guest_writes", (json_int_t) mirror.guest_writes,
    "mirrored_writes", (json_int_t) mirror.mirrored_writes,
    "error", st == MIRROR_FAILED
      ? session_failure_summary_locked (&mirror, why, sizeof why) : "",
    "destinations", dests);
}

static json_t *
do_start (json_t *req)
{
  json_t *arr, *v;
  const char *mode = "active";
  char err[2048];
  char *uris[MIRROR_MAX_DESTS];
  size_t n, i;
  enum mirror_mode m;

  if (msg_get_array (req, "destinations", true, &arr, err, sizeof err) != 0 ||
      msg_get_string (req, "mode", false, &mode, err, sizeof err) == -1)
    return ctl_error_reply ("bad_request", err);
  n = json_array_size (arr);
  if (n == 0 || n > MIRROR_MAX_DESTS) {
    snprintf (err, sizeof err, "'destinations' must list 1 to %d URIs",
              MIRROR_MAX_DESTS);
    return ctl_error_reply ("bad_request", err);
  }
  json_array_foreach (arr, i, v) {
    if (!json_is_string (v) || json_string_length (v) == 0 ||
        json_string_length (v) > MIRROR_MAX_URI ||
        strlen (json_string_value (v)) != json_string_length (v))
      return ctl_error_reply ("bad_request",
                          "'destinations' must hold non-empty URI strings");
    uris[i] = (char *) json_string_value (v);
  }
  if (strcmp (mode, "active") == 0)
    m = MIRROR_MODE_ACTIVE;
  else if (strcmp (mode, "background") == 0)
    m = MIRROR_MODE_BACKGROUND;
  else
    return ctl_error_reply ("bad_request",
                        "'mode' must be \"active\" or \"background\"");
  if (mirror_start (uris, n, m, err, sizeof err) == -1)
    return ctl_error_reply ("start_failed", err);
  return status_json ();
}

static json_t *
do_complete (json_t *req)
{
  bool verify = false;
  uint64_t timeout = 0, verified;
  char err[2048];
  json_t *r;

  if (msg_get_bool (req, "verify", false, &verify, err, sizeof err) == -1 ||
      msg_get_u64 (req, "timeout_ms", false, &timeout, err, sizeof err) == -1)
    return ctl_error_reply ("bad_request", err);
  if (timeout > INT64_MAX / 2)
    return ctl_error_reply ("bad_request", "'timeout_ms' is too large");
  if (mirror_complete (verify, (int64_t) timeout, &verified,
                       err, sizeof err) == -1)
    return ctl_error_reply (errno == ETIMEDOUT ? "timeout"
                        : errno == EILSEQ ? "verify_failed" : "failed", err);
  r = status_json ();
  json_object_set_new (r, "verified", json_integer ((json_int_t) verified));
  return r;
}

static json_t *
handle (json_t *req)
{
  const char *op = NULL, *uri = NULL;
  char err[1024];

  if (msg_get_string (req, "op", true, &op, err, sizeof err) != 0)
    return ctl_error_reply ("bad_request", err);
  if (strcmp (op, "status") == 0)
    return status_json ();
  if (strcmp (op, "start") == 0)
    return do_start (req);
  if (strcmp (op, "complete") == 0)
    return do_complete (req);
  if (strcmp (op, "cancel") == 0) {
    if (msg_get_string (req, "destination", false, &uri, err,
                        sizeof err) == -1)
      return ctl_error_reply ("bad_request", err);
    if (mirror_cancel (uri, err, sizeof err) == -1)
      return ctl_error_reply ("failed", err);
    return status_json ();
  }
  if (strcmp (op, "pause") == 0 || strcmp (op, "resume") == 0) {
    if (mirror_pause (op[0] == 'p', err, sizeof err) == -1)
      return ctl_error_reply ("failed", err);
    return status_json ();
  }
  snprintf (err, sizeof err, "unknown op '%.64s'", op);
  return ctl_error_reply ("bad_request", err);
}

static json_t *
handle_request (json_t *req, void *opaque)
{
  (void) opaque;
  return handle (req);
}

static void
control_thread_start (void *opaque)
{
  (void) opaque;
  if (source_open (&mirror) == -1)
    log_error ("mirror: the disk cannot be copied; serving it without "
               "mirroring");
}

static void
control_tick (void *opaque)
{
  (void) opaque;
  mirror_update_rates ();
  mirror_reap ();
}

static void
control_stopping (void *opaque)
{
  (void) opaque;
  /* Clients blocked in "complete" return once the session ends. */
  mirror_shutdown ();
}

static struct ctlserver *server;

int
control_start (const char *path)
{
  const struct ctlserver_config cfg = {
    .path = path, .service = CHAN_SERVICE_MIRROR,
    .version = MIRROR_PROTO_VERSION, .handle = handle_request,
    .tick = control_tick, .thread_start = control_thread_start,
    .stopping = control_stopping,
  };

  server = ctlserver_start (&cfg);
  return server ? 0 : -1;
}

void
control_stop (void)
{
  ctlserver_stop (server);
  server = NULL;
}
