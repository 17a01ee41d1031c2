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
#include "control-req.h"
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
do_start (const struct control_req *r)
{
  char err[2048];

  if (mirror_start (r->uris, r->ndests, r->background
                    ? MIRROR_MODE_BACKGROUND : MIRROR_MODE_ACTIVE,
                    r->copy_rate_limit, err, sizeof err) == -1)
    return ctl_error_reply ("start_failed", err);
  return status_json ();
}

static json_t *
do_complete (const struct control_req *r)
{
  uint64_t verified;
  char err[2048];
  json_t *reply;

  if (mirror_complete (r->verify, r->timeout_ms, &verified,
                       err, sizeof err) == -1)
    return ctl_error_reply (errno == ETIMEDOUT ? "timeout"
                        : errno == EILSEQ ? "verify_failed" : "failed", err);
  reply = status_json ();
  json_object_set_new (reply, "verified", json_integer ((json_int_t) verified));
  return reply;
}

static json_t *
handle (json_t *req)
{
  struct control_req r;
  char err[1024];

  if (control_req_parse (req, &r, err, sizeof err) == -1)
    return ctl_error_reply ("bad_request", err);
  switch (r.op) {
  case CONTROL_STATUS:
    return status_json ();
  case CONTROL_START:
    return do_start (&r);
  case CONTROL_COMPLETE:
    return do_complete (&r);
  case CONTROL_CANCEL:
    if (mirror_cancel (r.destination, err, sizeof err) == -1)
      return ctl_error_reply ("failed", err);
    return status_json ();
  case CONTROL_PAUSE:
  case CONTROL_RESUME:
    if (mirror_pause (r.op == CONTROL_PAUSE, err, sizeof err) == -1)
      return ctl_error_reply ("failed", err);
    return status_json ();
  }
  return ctl_error_reply ("bad_request", "unknown op");
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
