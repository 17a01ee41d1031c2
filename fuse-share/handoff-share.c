/* handoff-share: the file half of storage migration (handoff share ...).
 *
 *   handoff-share serve --listen tcp://ADDR:PORT --root DIR --psk FILE
 *                       [--control SOCKET]
 *   handoff-share mount SRC_DIR MOUNTPOINT [--control SOCKET]
 *   handoff share start SOCKET --to tcp://HOST:PORT --psk FILE
 *   handoff share status SOCKET [--json]
 *   handoff share commit SOCKET
 *   handoff share abort SOCKET | --root DIR
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-info.h"
#include "channel.h"
#include "cleanup.h"
#include "ctlserver.h"
#include "exitcodes.h"
#include "forward.h"
#include "jsonutil.h"
#include "log.h"
#include "mount.h"
#include "progress.h"
#include "receiver.h"
#include "session.h"
#include "share-proto.h"
#include "sockets.h"
#include "start-req.h"
#include "uri.h"
#include "util.h"

#define PROG "handoff-share"
#define CTL_VERSION 1

static const char *control_path;
static struct ctlserver *ctl;
static bool json_out;

static void __attribute__ ((noreturn))
usage (FILE *fp, int code)
{
  fprintf (fp,
"Usage:\n"
"  handoff-share serve --listen tcp://ADDR:PORT --root DIR --psk FILE\n"
"                      [--control SOCKET]\n"
"  handoff-share forward --listen tcp://ADDR:PORT --psk FILE --control SOCKET\n"
"  handoff-share mount SRC_DIR MOUNTPOINT [--control SOCKET]\n"
"                      [--timeout TIME] [-o FUSE_OPTIONS]\n"
"  handoff share start SOCKET --to tcp://HOST:PORT[,...] --psk FILE\n"
"  handoff share drop SOCKET --to tcp://HOST:PORT\n"
"  handoff share status SOCKET [--json]\n"
"  handoff share warm SOCKET\n"
"  handoff share commit SOCKET\n"
"  handoff share abort SOCKET\n"
"  handoff share abort --root DIR\n"
"\n"
"Options:\n"
"  -l, --listen URI      serve, forward: where the source connects (TLS)\n"
"  -r, --root DIR        serve: the share's final place (must not exist;\n"
"                        received into DIR.handoff-partial until commit);\n"
"                        abort: remove a partial share left behind\n"
"  -t, --to URI[,URI...] start: the receivers (one stream sent to each);\n"
"                        drop: the one that leaves, the others go on\n"
"  -k, --psk FILE        pre-shared key file (TLS)\n"
"  -c, --control SOCKET  the control socket of a mount or a receiver\n"
"      --timeout TIME    mount: a receiver silent this long fails the\n"
"                        share (default 30s)\n"
"  -o OPTIONS            mount: extra FUSE options\n"
"  -j, --json            print JSON\n"
"  -v, --verbose         more messages\n"
"  -h, --help            show this help\n"
"  -V, --version         print the version\n");
  exit (code);
}

/* ------------------------------------------------------------------ */
/* mount */

/* "drop" (REQ) of one receiver of the session: its status after. */
static json_t *
drop_reply (json_t *req)
{
  const char *to = NULL;
  char err[1024];

  if (msg_get_string (req, "to", true, &to, err, sizeof err) != 0)
    return ctl_error_reply ("bad_request", err);
  if (session_drop (to, err, sizeof err) == -1)
    return ctl_error_reply ("failed", err);
  return session_status ();
}

static json_t *
mount_handle (json_t *req, void *opaque)
{
  const char *op = NULL;
  char err[1024];

  (void) opaque;
  if (msg_get_string (req, "op", true, &op, err, sizeof err) != 0)
    return ctl_error_reply ("bad_request", err);
  if (strcmp (op, "status") == 0)
    return session_status ();
  if (strcmp (op, "start") == 0) {
    struct share_receiver rcv[SHARE_MAX_RECEIVERS];
    size_t n;
    uint64_t limit = 0;
    if (start_req_receivers (req, rcv, &n, err, sizeof err) == -1 ||
        msg_get_u64 (req, "copy_rate_limit", false, &limit, err,
                     sizeof err) == -1)
      return ctl_error_reply ("bad_request", err);
    if (session_start (rcv, n, limit, err, sizeof err) == -1)
      return ctl_error_reply ("start_failed", err);
    return session_status ();
  }
  if (strcmp (op, "drop") == 0)
    return drop_reply (req);
  if (strcmp (op, "commit") == 0) {
    if (session_commit (err, sizeof err) == -1)
      return ctl_error_reply (strstr (err, "verification failed")
                              ? "verify_failed" : "failed", err);
    return session_status ();
  }
  if (strcmp (op, "warm") == 0) {
    if (session_warm (err, sizeof err) == -1)
      return ctl_error_reply ("failed", err);
    return session_status ();
  }
  if (strcmp (op, "abort") == 0) {
    if (session_abort (err, sizeof err) == -1)
      return ctl_error_reply ("failed", err);
    return session_status ();
  }
  snprintf (err, sizeof err, "unknown op '%.64s'", op);
  return ctl_error_reply ("bad_request", err);
}

static void
mount_started (void)
{
  if (control_path) {
    struct ctlserver_config c = {
      .path = control_path, .service = CHAN_SERVICE_SHARE_CTL,
      .version = CTL_VERSION, .handle = mount_handle,
    };
    ctl = ctlserver_start (&c);
    if (!ctl)
      log_error ("control socket %s: cannot listen", control_path);
  }
}

static void
mount_stopping (void)
{
  session_shutdown ();
  ctlserver_stop (ctl);
  ctl = NULL;
}

static int
do_mount (const char *src, const char *mnt, const char *opts)
{
  char o[4096];
  char *argv[4];
  struct fuse_args args;
  struct fuse *f;
  struct fuse_loop_config *loop;
  int rc = RC_ERROR;

  share_srcfd = open (src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (share_srcfd == -1) {
    fprintf (stderr, "%s: %s: %s\n", PROG, src, strerror (errno));
    return RC_ERROR;
  }
  snprintf (o, sizeof o, "fsname=handoff-share,subtype=handoff,allow_other,"
            "default_permissions%s%s", opts ? "," : "", opts ? opts : "");
  argv[0] = (char *) PROG;
  argv[1] = (char *) "-o";
  argv[2] = o;
  argv[3] = NULL;
  args = (struct fuse_args) FUSE_ARGS_INIT (3, argv);

  /* Our own loop rather than fuse_main: the worker pool is sized here
   * (guest I/O arrives from many threads at once), and the mount stays
   * in the foreground under the caller's supervision. */
  static struct share_mount_hooks hooks = {
    .started = mount_started, .stopping = mount_stopping,
  };
  f = fuse_new (&args, &share_ops, sizeof share_ops, &hooks);
  if (!f)
    goto out_args;
  if (fuse_mount (f, mnt) == -1)
    goto out_destroy;
  if (fuse_set_signal_handlers (fuse_get_session (f)) == -1)
    goto out_unmount;
  loop = fuse_loop_cfg_create ();
  if (loop) {
    fuse_loop_cfg_set_clone_fd (loop, 0);
    fuse_loop_cfg_set_idle_threads (loop, 8);
    fuse_loop_cfg_set_max_threads (loop, 32);
    if (fuse_loop_mt (f, loop) == 0)
      rc = RC_OK;
    fuse_loop_cfg_destroy (loop);
  }
  fuse_remove_signal_handlers (fuse_get_session (f));
 out_unmount:
  fuse_unmount (f);
 out_destroy:
  fuse_destroy (f);
 out_args:
  fuse_opt_free_args (&args);
  return rc;
}

/* ------------------------------------------------------------------ */
/* serve */

static struct {
  pthread_mutex_t lock;
  struct receiver rv;           /* lock */
  struct channel *session;      /* lock */
  bool abort_requested;         /* lock */
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const char *const receiver_state_names[] = {
  [RECEIVER_WAITING] = "waiting", [RECEIVER_RECEIVING] = "receiving",
  [RECEIVER_DISCONNECTED] = "disconnected",
  [RECEIVER_COMMITTED] = "committed", [RECEIVER_ABORTED] = "aborted",
};

static json_t *
serve_handle (json_t *req, void *opaque)
{
  const char *op = NULL;
  char err[256];
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&srv.lock);

  (void) opaque;
  if (msg_get_string (req, "op", true, &op, err, sizeof err) != 0)
    return ctl_error_reply ("bad_request", err);
  if (strcmp (op, "abort") == 0) {
    if (srv.rv.state == RECEIVER_COMMITTED)
      return ctl_error_reply ("failed", "the share is already committed");
    srv.abort_requested = true;
    if (srv.session)
      chan_shutdown (srv.session);
    receiver_abort (&srv.rv);
  }
  else if (strcmp (op, "status") != 0) {
    snprintf (err, sizeof err, "unknown op '%.64s'", op);
    return ctl_error_reply ("bad_request", err);
  }
  return json_pack ("{s:b, s:s, s:s, s:s, s:I, s:I}", "ok", 1,
                    "state", receiver_state_names[srv.rv.state],
                    "root", srv.rv.root, "partial", srv.rv.partial,
                    "requests", (json_int_t) srv.rv.ops,
                    "bytes", (json_int_t) srv.rv.bytes);
}

/* Apply one session.  Returns when it commits, aborts or breaks. */
static void
serve_session (struct channel *c)
{
  char pathbuf[2 * (SHARE_MAX_PATH + 1)];
  char text[SHARE_MAX_REPLY_TEXT + 1], err[512];
  uint8_t reply[sizeof (struct share_reply) + SHARE_MAX_REPLY_TEXT];

  /* Terminates: at end of stream, a broken stream, commit or abort. */
  for (;;) {
    void *buf = NULL;
    struct share_req r;
    ssize_t n = chan_recv_timeout (c, &buf, -1);
    int e;

    if (n <= 0) {
      if (n == 0)
        log_warn ("the source closed the share session");
      break;
    }
    if (share_decode (buf, (size_t) n, &r, pathbuf, err, sizeof err) == -1) {
      log_error ("refused a request from %s: %s", chan_peer_name (c), err);
      free (buf);
      break;
    }
    pthread_mutex_lock (&srv.lock);
    e = srv.abort_requested ? ECANCELED
      : receiver_apply (&srv.rv, &r, text, sizeof text);
    pthread_mutex_unlock (&srv.lock);
    free (buf);
    if (e < 0) {
      log_error ("refused a request from %s: %s", chan_peer_name (c), text);
      break;
    }
    if (e > 0 && e != EILSEQ)
      log_warn ("%s", text);
    size_t len = share_encode_reply (r.seq, e, e ? text : NULL, reply,
                                     sizeof reply);
    if (chan_send (c, reply, len) == -1)
      break;
    if (r.type == SHARE_COMMIT || r.type == SHARE_ABORT)
      break;
  }
}

static volatile sig_atomic_t serve_stop;

static void
on_signal (int sig)
{
  serve_stop = sig;
}

static int
do_serve (const char *listen, const char *root, const char *psk)
{
  struct chan_config cfg = {
    .service = CHAN_SERVICE_SHARE, .version_min = SHARE_PROTO_VERSION,
    .version_max = SHARE_PROTO_VERSION, .max_frame = SHARE_MAX_FRAME,
    .timeout_ms = 30000, .psk_file = psk,
  };
  struct sigaction sa = { .sa_handler = on_signal };
  struct chan_listener *l;
  struct rlimit rl;
  char err[1024];
  int rc = RC_ERROR;

  if (!psk) {
    fprintf (stderr, "%s serve: --psk FILE is required (the share is TLS "
             "only)\n", PROG);
    return RC_ERROR;
  }
  /* A handle is an open file: allow as many as the source may use. */
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit (RLIMIT_NOFILE, &rl);
  }
  if (receiver_open (&srv.rv, root, err, sizeof err) == -1) {
    fprintf (stderr, "%s: %s\n", PROG, err);
    return RC_ERROR;
  }
  l = chan_listen (listen, &cfg);
  if (!l) {
    receiver_abort (&srv.rv);
    receiver_close (&srv.rv);
    return RC_ERROR;
  }
  if (control_path) {
    struct ctlserver_config c = {
      .path = control_path, .service = CHAN_SERVICE_SHARE_CTL,
      .version = CTL_VERSION, .handle = serve_handle,
    };
    ctl = ctlserver_start (&c);
  }
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);
  log_info ("receiving into %s (partial until commit)", srv.rv.partial);

  /* Terminates: commit, abort, a signal, or (without a control socket)
   * the end of the one session. */
  for (;;) {
    struct channel *c;
    bool done;

    pthread_mutex_lock (&srv.lock);
    done = srv.rv.state == RECEIVER_COMMITTED ||
      srv.rv.state == RECEIVER_ABORTED || srv.abort_requested;
    bool had_session = srv.rv.state != RECEIVER_WAITING;
    pthread_mutex_unlock (&srv.lock);
    if (done || serve_stop)
      break;
    if (had_session && !control_path)
      break;                    /* The source is gone; nobody can abort. */
    if (had_session) {
      usleep (200000);          /* Wait for an abort on the control. */
      continue;
    }
    c = chan_accept (l, 1000);
    if (!c)
      continue;
    log_info ("share session from %s", chan_peer_name (c));
    pthread_mutex_lock (&srv.lock);
    srv.session = c;
    pthread_mutex_unlock (&srv.lock);
    serve_session (c);
    pthread_mutex_lock (&srv.lock);
    srv.session = NULL;
    if (srv.rv.state == RECEIVER_RECEIVING ||
        srv.rv.state == RECEIVER_WAITING)
      srv.rv.state = RECEIVER_DISCONNECTED;
    pthread_mutex_unlock (&srv.lock);
    chan_close (c);
  }
  chan_listener_close (l);
  ctlserver_stop (ctl);
  pthread_mutex_lock (&srv.lock);
  if (srv.abort_requested && srv.rv.state != RECEIVER_COMMITTED)
    receiver_abort (&srv.rv);
  switch (srv.rv.state) {
  case RECEIVER_COMMITTED:
    printf ("share committed: %s\n", srv.rv.root);
    rc = RC_OK;
    break;
  case RECEIVER_ABORTED:
    printf ("share aborted: nothing kept\n");
    rc = RC_OK;
    break;
  default:
    fprintf (stderr, "%s: the share is incomplete; %s is left partial "
             "(handoff share abort --root %s removes it)\n", PROG,
             srv.rv.partial, srv.rv.root);
    rc = RC_ERROR;
  }
  receiver_close (&srv.rv);
  pthread_mutex_unlock (&srv.lock);
  return rc;
}

/* ------------------------------------------------------------------ */
/* forward: a stream proxy's pass-on of the source's session. */

static struct {
  pthread_mutex_t lock;
  bool started;                 /* "start" connected the receivers. */
} fwd = { .lock = PTHREAD_MUTEX_INITIALIZER };

static json_t *
forward_handle (json_t *req, void *opaque)
{
  const char *op = NULL;
  char err[1024];
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&fwd.lock);

  (void) opaque;
  if (msg_get_string (req, "op", true, &op, err, sizeof err) != 0)
    return ctl_error_reply ("bad_request", err);
  if (strcmp (op, "status") == 0)
    return session_status ();
  if (strcmp (op, "start") == 0) {
    struct share_receiver rcv[SHARE_MAX_RECEIVERS];
    size_t n;
    if (fwd.started)
      return ctl_error_reply ("failed", "already started");
    if (start_req_receivers (req, rcv, &n, err, sizeof err) == -1)
      return ctl_error_reply ("bad_request", err);
    if (forward_start (rcv, n, err, sizeof err) == -1)
      return ctl_error_reply ("start_failed", err);
    fwd.started = true;
    return session_status ();
  }
  if (strcmp (op, "drop") == 0)
    return drop_reply (req);
  snprintf (err, sizeof err, "unknown op '%.64s'", op);
  return ctl_error_reply ("bad_request", err);
}

static int
do_forward (const char *listen, const char *psk)
{
  struct chan_config cfg = {
    .service = CHAN_SERVICE_SHARE, .version_min = SHARE_PROTO_VERSION,
    .version_max = SHARE_PROTO_VERSION, .max_frame = SHARE_MAX_FRAME,
    .timeout_ms = 30000, .psk_file = psk,
  };
  struct ctlserver_config cc = {
    .path = control_path, .service = CHAN_SERVICE_SHARE_CTL,
    .version = CTL_VERSION, .handle = forward_handle,
  };
  struct sigaction sa = { .sa_handler = on_signal };
  struct chan_listener *l;
  struct channel *c = NULL;
  char err[1024];
  int rc = RC_ERROR;

  if (!psk || !control_path) {
    fprintf (stderr, "%s forward: needs --psk FILE and --control SOCKET\n",
             PROG);
    return RC_ERROR;
  }
  l = chan_listen (listen, &cfg);
  if (!l)
    return RC_ERROR;
  ctl = ctlserver_start (&cc);
  if (!ctl) {
    chan_listener_close (l);
    return RC_ERROR;
  }
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  signal (SIGPIPE, SIG_IGN);
  /* Terminates: the source connects once the receivers are there, or
   * a signal. */
  while (!serve_stop) {
    pthread_mutex_lock (&fwd.lock);
    bool started = fwd.started;
    pthread_mutex_unlock (&fwd.lock);
    if (!started) {
      usleep (100000);
      continue;
    }
    c = chan_accept (l, 1000);
    if (c)
      break;
  }
  chan_listener_close (l);
  if (c) {
    log_info ("passing on the share session from %s", chan_peer_name (c));
    if (forward_session (c, err, sizeof err) == 0)
      rc = RC_OK;
    else
      log_error ("the share session: %s", err);
    chan_close (c);
  }
  /* Its status stays readable (committed, or why not) until the proxy
   * lets go. */
  while (!serve_stop)
    usleep (100000);
  ctlserver_stop (ctl);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Control clients. */

static int
call_control (const char *path, json_t *req)
{
  struct chan_config cfg = {
    .service = CHAN_SERVICE_SHARE_CTL, .version_min = CTL_VERSION,
    .version_max = CTL_VERSION, .timeout_ms = 10000,
  };
  char uri[4200], err[2048];
  struct channel *c;
  struct stat st;
  json_t *reply;

  if (stat (path, &st) == -1) {
    fprintf (stderr, "%s: %s: %s\n", PROG, path, strerror (errno));
    json_decref (req);
    return errno == ENOENT ? RC_NOT_FOUND : RC_ERROR;
  }
  uri_unix (path, uri, sizeof uri);
  c = chan_connect (uri, &cfg);
  if (!c) {
    json_decref (req);
    fprintf (stderr, "%s: %s: cannot reach the share\n", PROG, path);
    return RC_UNREACHABLE;
  }
  reply = chan_call (c, req, -1, err, sizeof err);
  chan_close (c);
  if (!reply) {
    fprintf (stderr, "%s: %s\n", PROG, err);
    return strstr (err, "verification failed") ? RC_VERIFY_FAILED : RC_ERROR;
  }
  if (json_out) {
    char *s = json_dumps (reply, JSON_COMPACT);
    printf ("%s\n", s);
    free (s);
  }
  else {
    const char *state = json_string_value (json_object_get (reply, "state"));
    const char *why = json_string_value (json_object_get (reply, "error"));
    json_int_t b = json_integer_value (json_object_get (reply, "bytes"));
    json_int_t bc = json_integer_value (json_object_get (reply,
                                                         "bytes_copied"));
    char x[32], y[32];
    printf ("state: %s\n", state ? state : "?");
    if (json_object_get (reply, "files")) {
      format_bytes ((uint64_t) bc, x, sizeof x);
      format_bytes ((uint64_t) b, y, sizeof y);
      printf ("files: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
              " copied, %s of %s, %" JSON_INTEGER_FORMAT " writes mirrored\n",
              json_integer_value (json_object_get (reply, "files_copied")),
              json_integer_value (json_object_get (reply, "files")), x, y,
              json_integer_value (json_object_get (reply, "mirrored_writes")));
    }
    json_t *rcv = json_object_get (reply, "receivers");
    for (size_t i = 0; json_array_size (rcv) > 1 &&
           i < json_array_size (rcv); ++i) {
      json_t *r = json_array_get (rcv, i);
      const char *e = json_string_value (json_object_get (r, "error"));
      printf ("receiver %s: %s%s%s\n",
              json_string_value (json_object_get (r, "to")),
              json_string_value (json_object_get (r, "state")),
              e && *e ? " - " : "", e && *e ? e : "");
    }
    if (why && *why)
      printf ("error: %s\n", why);
  }
  json_decref (reply);
  return RC_OK;
}

/* The request of a control command CMD: start and drop name receivers
 * (--to; start: several, comma-separated, and the key file), the
 * others nothing more.  NULL (said on stderr) if one is missing. */
static json_t *
control_request (const char *cmd, const char *to, const char *psk)
{
  json_t *req = json_pack ("{s:s}", "op", cmd);
  char abs[4096];

  if (strcmp (cmd, "start") != 0 && strcmp (cmd, "drop") != 0)
    return req;
  if (!to) {
    fprintf (stderr, "%s %s: needs --to URI\n", PROG, cmd);
    json_decref (req);
    return NULL;
  }
  if (strcmp (cmd, "drop") == 0) {
    json_object_set_new (req, "to", json_string (to));
    return req;
  }
  json_t *list = json_array ();
  CLEANUP_FREE char *copy = strdup (to);
  char *save = NULL;
  for (char *t = copy ? strtok_r (copy, ",", &save) : NULL; t;
       t = strtok_r (NULL, ",", &save))
    json_array_append_new (list, json_string (t));
  json_object_set_new (req, "to", list);
  /* The mount process resolves it from its own directory. */
  if (psk && !realpath (psk, abs)) {
    fprintf (stderr, "%s: %s: %s\n", PROG, psk, strerror (errno));
    json_decref (req);
    return NULL;
  }
  if (psk)
    json_object_set_new (req, "psk", json_string (abs));
  return req;
}

int
main (int argc, char **argv)
{
  enum { OPT_TIMEOUT = 256 };
  static const struct option long_options[] = {
    { "listen", required_argument, NULL, 'l' },
    { "root", required_argument, NULL, 'r' },
    { "to", required_argument, NULL, 't' },
    { "psk", required_argument, NULL, 'k' },
    { "control", required_argument, NULL, 'c' },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "json", no_argument, NULL, 'j' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  const char *listen = NULL, *root = NULL, *to = NULL, *psk = NULL;
  const char *fuse_opts = NULL, *cmd;
  char err[256];
  uint64_t v;
  int c;

  log_set_program (PROG);
  log_set_level (LOG_LEVEL_WARN);
  /* GNU getopt permutes: options may come before or after the command
   * and its arguments. */
  while ((c = getopt_long (argc, argv, "l:r:t:k:c:o:jvhV", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'l': listen = optarg; break;
    case 'r': root = optarg; break;
    case 't': to = optarg; break;
    case 'k': psk = optarg; break;
    case 'c': control_path = optarg; break;
    case 'o': fuse_opts = optarg; break;
    case OPT_TIMEOUT:
      if (parse_duration_ms (optarg, &v, err, sizeof err) == -1 ||
          v < 100 || v > 3600000) {
        fprintf (stderr, "%s: --timeout: %s\n", PROG,
                 v < 100 || v > 3600000 ? "100ms to 1h" : err);
        return RC_ERROR;
      }
      share_timeout_ms = (int) v;
      break;
    case 'j': json_out = true; break;
    case 'v': log_more_verbose (); break;
    case 'h': usage (stdout, RC_OK);
    case 'V':
      printf ("handoff-share %s (%s)\n", HANDOFF_VERSION, HANDOFF_GIT_REV);
      return RC_OK;
    default: usage (stderr, RC_ERROR);
    }
  }
  if (optind >= argc) {
    fprintf (stderr, "%s: expected a command; see --help\n", PROG);
    return RC_ERROR;
  }
  cmd = argv[optind++];
  char **pos = argv + optind;
  int npos = argc - optind;

  if (strcmp (cmd, "serve") == 0) {
    if (npos || !listen || !root) {
      fprintf (stderr, "%s serve: needs --listen URI and --root DIR\n", PROG);
      return RC_ERROR;
    }
    return do_serve (listen, root, psk);
  }
  if (strcmp (cmd, "forward") == 0) {
    if (npos || !listen) {
      fprintf (stderr, "%s forward: needs --listen URI\n", PROG);
      return RC_ERROR;
    }
    return do_forward (listen, psk);
  }
  if (strcmp (cmd, "mount") == 0) {
    if (npos != 2) {
      fprintf (stderr, "%s mount: needs SRC_DIR and MOUNTPOINT\n", PROG);
      return RC_ERROR;
    }
    return do_mount (pos[0], pos[1], fuse_opts);
  }
  if (strcmp (cmd, "abort") == 0 && root && npos == 0) {
    char e2[512];
    if (receiver_remove_partial (root, e2, sizeof e2) == -1) {
      fprintf (stderr, "%s: %s\n", PROG, e2);
      return RC_NOT_FOUND;
    }
    printf ("removed the partial share of %s\n", root);
    return RC_OK;
  }
  if (strcmp (cmd, "start") == 0 || strcmp (cmd, "status") == 0 ||
      strcmp (cmd, "commit") == 0 || strcmp (cmd, "abort") == 0 ||
      strcmp (cmd, "warm") == 0 || strcmp (cmd, "drop") == 0) {
    json_t *req;
    if (npos != 1) {
      fprintf (stderr, "%s %s: needs the control SOCKET\n", PROG, cmd);
      return RC_ERROR;
    }
    req = control_request (cmd, to, psk);
    if (!req)
      return RC_ERROR;
    return call_control (pos[0], req);
  }
  fprintf (stderr, "%s: unknown command '%s' (serve, forward, mount, start, "
           "status, warm, commit, abort, drop)\n", PROG, cmd);
  return RC_ERROR;
}
