/* nbd-mirror: the control socket (protocol in mirror-proto.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * control_start (from .after_fork) starts the control thread.  It opens
 * the plugin context for the copier, listens on the control socket, and
 * loops: accept a client (one detached thread per client), and once a
 * second update the rates and reap a finished session.  Client threads
 * are counted (clients, under clients_lock) so control_stop can shut
 * their channels down and wait for them.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "cleanup.h"
#include "control.h"
#include "jsonutil.h"
#include "log.h"
#include "mirror.h"
#include "sockets.h"

#define MAX_CLIENTS 32

static struct chan_listener *listener;
static pthread_t control_thread;
static bool control_running;
static volatile bool control_quit;

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t clients_cond = PTHREAD_COND_INITIALIZER;
static struct channel *clients[MAX_CLIENTS];   /* clients_lock */
static unsigned nclients;                        /* clients_lock */

static const struct chan_config control_cfg = {
  .service = CHAN_SERVICE_MIRROR,
  .version_min = MIRROR_PROTO_VERSION,
  .version_max = MIRROR_PROTO_VERSION,
  .timeout_ms = 10000,
  .unix_mode = 0600,
};

static json_t *
status_json (void)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&mirror.lock);
  enum mirror_state st = mirror.state;
  uint64_t min_copied, dirtied, inflight;
  size_t active, ready;
  json_t *dests = mirror_dests_json_locked (&active, &ready, &min_copied,
                                            &dirtied, &inflight);
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
      ? mirror_failure_summary_locked (why, sizeof why) : "",
    "destinations", dests);
}

static json_t *
error_reply (const char *code, const char *msg)
{
  json_t *r = msg_error ("%s", msg);

  if (code)
    json_object_set_new (r, "code", json_string (code));
  return r;
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
    return error_reply ("bad_request", err);
  n = json_array_size (arr);
  if (n == 0 || n > MIRROR_MAX_DESTS) {
    snprintf (err, sizeof err, "'destinations' must list 1 to %d URIs",
              MIRROR_MAX_DESTS);
    return error_reply ("bad_request", err);
  }
  json_array_foreach (arr, i, v) {
    if (!json_is_string (v) || json_string_length (v) == 0 ||
        json_string_length (v) > MIRROR_MAX_URI ||
        strlen (json_string_value (v)) != json_string_length (v))
      return error_reply ("bad_request",
                          "'destinations' must hold non-empty URI strings");
    uris[i] = (char *) json_string_value (v);
  }
  if (strcmp (mode, "active") == 0)
    m = MIRROR_MODE_ACTIVE;
  else if (strcmp (mode, "background") == 0)
    m = MIRROR_MODE_BACKGROUND;
  else
    return error_reply ("bad_request",
                        "'mode' must be \"active\" or \"background\"");
  if (mirror_start (uris, n, m, err, sizeof err) == -1)
    return error_reply ("start_failed", err);
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
    return error_reply ("bad_request", err);
  if (timeout > INT64_MAX / 2)
    return error_reply ("bad_request", "'timeout_ms' is too large");
  if (mirror_complete (verify, (int64_t) timeout, &verified,
                       err, sizeof err) == -1)
    return error_reply (errno == ETIMEDOUT ? "timeout"
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
    return error_reply ("bad_request", err);
  if (strcmp (op, "status") == 0)
    return status_json ();
  if (strcmp (op, "start") == 0)
    return do_start (req);
  if (strcmp (op, "complete") == 0)
    return do_complete (req);
  if (strcmp (op, "cancel") == 0) {
    if (msg_get_string (req, "destination", false, &uri, err,
                        sizeof err) == -1)
      return error_reply ("bad_request", err);
    if (mirror_cancel (uri, err, sizeof err) == -1)
      return error_reply ("failed", err);
    return status_json ();
  }
  if (strcmp (op, "pause") == 0 || strcmp (op, "resume") == 0) {
    if (mirror_pause (op[0] == 'p', err, sizeof err) == -1)
      return error_reply ("failed", err);
    return status_json ();
  }
  snprintf (err, sizeof err, "unknown op '%.64s'", op);
  return error_reply ("bad_request", err);
}

static void *
client_main (void *arg)
{
  struct channel *c = arg;

  /* Terminates: on end of stream, any channel error, or shutdown. */
  while (!control_quit) {
    bool eof;
    json_t *req = chan_recv_json (c, -1, &eof);
    json_t *reply;

    if (!req) {
      if (!eof && !control_quit) {
        /* A bad frame may be followed by more bytes; the channel is
         * already broken, so tell the client if we can and stop. */
        json_t *e = error_reply ("bad_request", "malformed request");
        chan_send_json (c, e);
        json_decref (e);
      }
      break;
    }
    reply = handle (req);
    json_decref (req);
    if (!reply)
      reply = error_reply ("failed", "out of memory");
    int r = chan_send_json (c, reply);
    json_decref (reply);
    if (r == -1)
      break;
  }

  pthread_mutex_lock (&clients_lock);
  for (unsigned i = 0; i < MAX_CLIENTS; ++i)
    if (clients[i] == c)
      clients[i] = NULL;
  nclients--;
  pthread_cond_broadcast (&clients_cond);
  pthread_mutex_unlock (&clients_lock);
  chan_close (c);
  return NULL;
}

static void
add_client (struct channel *c)
{
  pthread_t t;
  pthread_attr_t a;
  int e;

  pthread_mutex_lock (&clients_lock);
  if (nclients >= MAX_CLIENTS) {
    pthread_mutex_unlock (&clients_lock);
    log_warn ("mirror control: too many clients, refusing one");
    chan_close (c);
    return;
  }
  for (unsigned i = 0; i < MAX_CLIENTS; ++i)
    if (!clients[i]) {
      clients[i] = c;
      break;
    }
  nclients++;
  pthread_mutex_unlock (&clients_lock);

  pthread_attr_init (&a);
  pthread_attr_setdetachstate (&a, PTHREAD_CREATE_DETACHED);
  e = pthread_create (&t, &a, client_main, c);
  pthread_attr_destroy (&a);
  if (e != 0) {
    errno = e;
    log_error ("mirror control: cannot start a client thread: %m");
    pthread_mutex_lock (&clients_lock);
    for (unsigned i = 0; i < MAX_CLIENTS; ++i)
      if (clients[i] == c)
        clients[i] = NULL;
    nclients--;
    pthread_mutex_unlock (&clients_lock);
    chan_close (c);
  }
}

static void *
control_main (void *arg)
{
  (void) arg;
  if (mirror_ctx_open () == -1)
    log_error ("mirror: the disk cannot be copied; serving it without "
               "mirroring");

  /* Terminates: control_stop sets control_quit; we poll every second. */
  while (!control_quit) {
    struct pollfd pfd = { .fd = chan_listener_fd (listener),
                          .events = POLLIN };
    int r = poll (&pfd, 1, 1000);

    mirror_update_rates ();
    mirror_reap ();
    if (r > 0 && (pfd.revents & POLLIN) && !control_quit) {
      struct channel *c = chan_accept (listener, 0);
      if (c)
        add_client (c);
    }
  }
  return NULL;
}

int
control_start (const char *path)
{
  char uri[4200];
  int e;

  snprintf (uri, sizeof uri, "unix:%s", path);
  listener = chan_listen (uri, &control_cfg);
  if (!listener)
    return -1;
  control_quit = false;
  e = pthread_create (&control_thread, NULL, control_main, NULL);
  if (e != 0) {
    errno = e;
    log_error ("mirror control: cannot start its thread: %m");
    chan_listener_close (listener);
    listener = NULL;
    return -1;
  }
  control_running = true;
  return 0;
}

void
control_stop (void)
{
  if (!control_running)
    return;
  control_quit = true;
  pthread_join (control_thread, NULL);
  control_running = false;

  pthread_mutex_lock (&clients_lock);
  for (unsigned i = 0; i < MAX_CLIENTS; ++i)
    if (clients[i])
      chan_shutdown (clients[i]);
  pthread_mutex_unlock (&clients_lock);

  /* Clients blocked in "complete" return once the session ends. */
  mirror_shutdown ();

  pthread_mutex_lock (&clients_lock);
  while (nclients > 0)
    pthread_cond_wait (&clients_cond, &clients_lock);
  pthread_mutex_unlock (&clients_lock);
  chan_listener_close (listener);
  listener = NULL;
}
