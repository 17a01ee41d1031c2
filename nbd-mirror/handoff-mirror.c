/* handoff-mirror: control the nbd-mirror filter (handoff mirror ...).
 *
 *   handoff mirror start SOCKET --to URI [--to URI...] [--mode MODE]
 *   handoff mirror status SOCKET [--json] [--watch] [--interval TIME]
 *   handoff mirror complete SOCKET [--verify] [--timeout TIME] [--json]
 *   handoff mirror cancel SOCKET [--to URI]
 *   handoff mirror pause|resume SOCKET
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-info.h"
#include "channel.h"
#include "exitcodes.h"
#include "jsonutil.h"
#include "log.h"
#include "mirror-proto.h"
#include "progress.h"
#include "uri.h"
#include "util.h"

#define PROG "handoff mirror"

static bool json_out;

static void __attribute__ ((noreturn))
usage (FILE *fp, int code)
{
  fprintf (fp,
"Usage:\n"
"  handoff mirror start SOCKET --to URI [--to URI ...] [--mode active|background]\n"
"  handoff mirror status SOCKET [--json] [--watch] [--interval TIME]\n"
"  handoff mirror complete SOCKET [--verify] [--timeout TIME] [--json]\n"
"  handoff mirror cancel SOCKET [--to URI]\n"
"  handoff mirror pause SOCKET\n"
"  handoff mirror resume SOCKET\n"
"\n"
"SOCKET is the filter's mirror-control= socket.  URIs are NBD URIs:\n"
"nbd://, nbds:// (TLS with the filter's mirror-tls-psk= key), nbd+unix://,\n"
"nbds+unix://.\n"
"\n"
"Options:\n"
"  -t, --to URI         destination (start: repeat for several; cancel: one)\n"
"  -m, --mode MODE      active (mirror guest writes, default) or background\n"
"      --verify         complete: compare every chunk with the source\n"
"      --timeout TIME   complete: give up after TIME (e.g. 90s, 5m)\n"
"  -w, --watch          status: repeat until the mirror ends\n"
"  -i, --interval TIME  status --watch: time between updates (1s)\n"
"  -j, --json           print JSON\n"
"  -v, --verbose        more messages\n"
"  -h, --help           show this help\n"
"  -V, --version        print the version\n");
  exit (code);
}

static struct channel *
open_control (const char *path)
{
  struct chan_config cfg = {
    .service = CHAN_SERVICE_MIRROR,
    .version_min = MIRROR_PROTO_VERSION,
    .version_max = MIRROR_PROTO_VERSION,
    .timeout_ms = 10000,
  };
  struct stat st;
  char uri[4200];
  struct channel *c;

  if (stat (path, &st) == -1) {
    fprintf (stderr, "%s: %s: %s\n", PROG, path, strerror (errno));
    exit (errno == ENOENT ? RC_NOT_FOUND : RC_ERROR);
  }
  if (!S_ISSOCK (st.st_mode)) {
    fprintf (stderr, "%s: %s: not a socket\n", PROG, path);
    exit (RC_ERROR);
  }
  uri_unix (path, uri, sizeof uri);
  c = chan_connect (uri, &cfg);
  if (!c) {
    fprintf (stderr, "%s: %s: cannot reach the mirror filter\n", PROG, path);
    exit (RC_UNREACHABLE);
  }
  return c;
}

static int
exit_code_for (json_t *reply_err_code)
{
  const char *code = json_string_value (reply_err_code);

  if (!code)
    return RC_ERROR;
  if (strcmp (code, "timeout") == 0)
    return RC_TIMEOUT;
  if (strcmp (code, "verify_failed") == 0)
    return RC_VERIFY_FAILED;
  return RC_ERROR;
}

/* Send REQ, print an error and return the exit code on failure. */
static json_t *
call (struct channel *c, json_t *req, int timeout_ms, int *rc)
{
  bool eof;
  json_t *reply;

  *rc = RC_OK;
  if (chan_send_json (c, req) == -1) {
    json_decref (req);
    fprintf (stderr, "%s: cannot send the request\n", PROG);
    *rc = RC_UNREACHABLE;
    return NULL;
  }
  json_decref (req);
  reply = chan_recv_json (c, timeout_ms, &eof);
  if (!reply) {
    fprintf (stderr, "%s: %s\n", PROG,
             eof ? "the filter closed the connection" : "no valid reply");
    *rc = RC_UNREACHABLE;
    return NULL;
  }
  if (!json_is_true (json_object_get (reply, "ok"))) {
    const char *e = json_string_value (json_object_get (reply, "error"));
    *rc = exit_code_for (json_object_get (reply, "code"));
    if (json_out)
      printf ("%s\n", json_dumps (reply, JSON_COMPACT));
    fprintf (stderr, "%s: %s\n", PROG, e ? e : "request failed");
    json_decref (reply);
    return NULL;
  }
  return reply;
}

static uint64_t
jint (json_t *o, const char *k)
{
  json_int_t v = json_integer_value (json_object_get (o, k));
  return v < 0 ? 0 : (uint64_t) v;
}

static void
print_status (json_t *st, bool tty)
{
  json_t *dests = json_object_get (st, "destinations"), *d;
  uint64_t size = jint (st, "size"), copied = jint (st, "copied");
  double rate = json_real_value (json_object_get (st, "copy_rate"));
  double wrate = json_real_value (json_object_get (st, "write_rate"));
  char a[32], b[32], r[32];
  size_t i;

  if (json_out) {
    char *s = json_dumps (st, JSON_COMPACT);
    printf ("%s\n", s);
    free (s);
    fflush (stdout);
    return;
  }
  if (tty) {
    progress_line (stdout, json_string_value (json_object_get (st, "state")),
                   copied, size, rate, false);
    return;
  }
  format_bytes (copied, a, sizeof a);
  format_bytes (size, b, sizeof b);
  format_rate (rate, r, sizeof r);
  printf ("state: %s (%s)%s\n", json_string_value (json_object_get (st,
                                                                    "state")),
          json_string_value (json_object_get (st, "mode")),
          json_is_true (json_object_get (st, "paused")) ? ", paused" : "");
  printf ("copied: %s of %s, copy rate %s", a, b, r);
  format_rate (wrate, r, sizeof r);
  printf (", guest writes %s\n", r);
  format_bytes (jint (st, "remaining"), a, sizeof a);
  format_bytes (jint (st, "dirtied"), b, sizeof b);
  printf ("remaining: %s, dirtied again: %s\n", a, b);
  json_array_foreach (dests, i, d) {
    const char *e = json_string_value (json_object_get (d, "error"));
    format_bytes (jint (d, "copied"), a, sizeof a);
    printf ("  %s: %s, %s copied%s%s\n",
            json_string_value (json_object_get (d, "uri")),
            json_string_value (json_object_get (d, "state")), a,
            e && *e ? ", error: " : "", e && *e ? e : "");
  }
  fflush (stdout);
}

static bool
state_is_final (json_t *st)
{
  const char *s = json_string_value (json_object_get (st, "state"));
  return !s || (strcmp (s, "copying") != 0 && strcmp (s, "ready") != 0);
}

static int
cmd_start (struct channel *c, char **to, size_t nto, const char *mode)
{
  json_t *arr = json_array (), *reply;
  int rc;

  if (nto == 0) {
    fprintf (stderr, "%s start: at least one --to URI is needed\n", PROG);
    return RC_ERROR;
  }
  for (size_t i = 0; i < nto; ++i)
    json_array_append_new (arr, json_string (to[i]));
  reply = call (c, json_pack ("{s:s, s:o, s:s}", "op", "start",
                              "destinations", arr, "mode", mode),
                -1, &rc);
  if (!reply)
    return rc;
  if (json_out)
    print_status (reply, false);
  else {
    json_t *d;
    size_t i;
    json_array_foreach (json_object_get (reply, "destinations"), i, d) {
      const char *e = json_string_value (json_object_get (d, "error"));
      if (e && *e)
        fprintf (stderr, "%s: warning: %s: %s\n", PROG,
                 json_string_value (json_object_get (d, "uri")), e);
    }
    printf ("mirror started (%s) to %zu destination(s)\n", mode, nto);
  }
  json_decref (reply);
  return RC_OK;
}

static int
cmd_status (struct channel *c, bool watch, double interval)
{
  bool tty = !json_out && watch && isatty (STDOUT_FILENO);
  int rc;

  for (;;) {
    json_t *st = call (c, json_pack ("{s:s}", "op", "status"), 10000, &rc);
    if (!st)
      return rc;
    bool final = state_is_final (st);
    print_status (st, tty);
    json_decref (st);
    /* The reader went away ("--watch | head"): stop, quietly for a
     * closed pipe, as other tools do. */
    if (fflush (stdout) == EOF || ferror (stdout)) {
      if (errno == EPIPE)
        return RC_OK;
      fprintf (stderr, "%s: cannot write the status: %s\n", PROG,
               strerror (errno));
      return RC_ERROR;
    }
    if (!watch || final)
      break;
    usleep ((useconds_t) (interval * 1e6));
  }
  if (tty)
    printf ("\n");
  return RC_OK;
}

/* While "complete" blocks, a second connection shows progress. */
struct watcher {
  const char *path;
  volatile bool done;
};

static void *
watch_progress (void *arg)
{
  struct watcher *w = arg;
  struct channel *c = open_control (w->path);

  while (!w->done) {
    bool eof;
    json_t *req = json_pack ("{s:s}", "op", "status"), *st;
    if (chan_send_json (c, req) == -1) {
      json_decref (req);
      break;
    }
    json_decref (req);
    st = chan_recv_json (c, 10000, &eof);
    if (!st)
      break;
    if (!w->done)
      print_status (st, true);
    json_decref (st);
    usleep (500000);
  }
  chan_close (c);
  return NULL;
}

static int
cmd_complete (struct channel *c, const char *path, bool verify,
              uint64_t timeout_ms)
{
  struct watcher w = { .path = path };
  pthread_t t;
  bool watching = !json_out && isatty (STDOUT_FILENO) &&
    pthread_create (&t, NULL, watch_progress, &w) == 0;
  json_t *reply;
  int rc;

  reply = call (c, json_pack ("{s:s, s:b, s:I}", "op", "complete",
                              "verify", verify,
                              "timeout_ms", (json_int_t) timeout_ms),
                -1, &rc);
  if (watching) {
    w.done = true;
    pthread_join (t, NULL);
    printf ("\n");
  }
  if (!reply)
    return rc;
  if (json_out)
    print_status (reply, false);
  else {
    char b[32];
    format_bytes (jint (reply, "size"), b, sizeof b);
    printf ("mirror completed: %s on every destination", b);
    if (verify) {
      format_bytes (jint (reply, "verified"), b, sizeof b);
      printf (", verified %s", b);
    }
    printf ("\n");
  }
  json_decref (reply);
  return RC_OK;
}

static int
cmd_simple (struct channel *c, const char *op, const char *dest)
{
  json_t *req = json_pack ("{s:s}", "op", op), *reply;
  int rc;

  if (dest)
    json_object_set_new (req, "destination", json_string (dest));
  reply = call (c, req, 60000, &rc);
  if (!reply)
    return rc;
  if (json_out)
    print_status (reply, false);
  else
    printf ("mirror: %s%s%s done\n", op, dest ? " " : "", dest ? dest : "");
  json_decref (reply);
  return RC_OK;
}

int
main (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "to", required_argument, NULL, 't' },
    { "mode", required_argument, NULL, 'm' },
    { "verify", no_argument, NULL, 'Y' },
    { "timeout", required_argument, NULL, 'T' },
    { "watch", no_argument, NULL, 'w' },
    { "interval", required_argument, NULL, 'i' },
    { "json", no_argument, NULL, 'j' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  char *to[MIRROR_MAX_DESTS];
  size_t nto = 0;
  const char *mode = "active", *cmd, *path;
  bool verify = false, watch = false;
  uint64_t timeout_ms = 0, interval_ms = 1000;
  char err[256] = "";
  struct channel *c;
  int opt, rc;

  log_set_program (PROG);
  while ((opt = getopt_long (argc, argv, "t:m:wi:jvhV", long_options,
                             NULL)) != -1) {
    switch (opt) {
    case 't':
      if (nto >= MIRROR_MAX_DESTS) {
        fprintf (stderr, "%s: at most %d --to\n", PROG, MIRROR_MAX_DESTS);
        return RC_ERROR;
      }
      to[nto++] = optarg;
      break;
    case 'm':
      if (strcmp (optarg, "active") != 0 &&
          strcmp (optarg, "background") != 0) {
        fprintf (stderr, "%s: --mode: '%s': expected active or background\n",
                 PROG, optarg);
        return RC_ERROR;
      }
      mode = optarg;
      break;
    case 'Y': verify = true; break;
    case 'T':
      if (parse_duration_ms (optarg, &timeout_ms, err, sizeof err) == -1) {
        fprintf (stderr, "%s: --timeout: %s\n", PROG, err);
        return RC_ERROR;
      }
      break;
    case 'w': watch = true; break;
    case 'i':
      if (parse_duration_ms (optarg, &interval_ms, err, sizeof err) == -1 ||
          interval_ms < 10 || interval_ms > 3600000) {
        fprintf (stderr, "%s: --interval: %s\n", PROG,
                 err[0] ? err : "10 ms to 1 h");
        return RC_ERROR;
      }
      break;
    case 'j': json_out = true; break;
    case 'v': log_more_verbose (); break;
    case 'h': usage (stdout, RC_OK);
    case 'V':
      printf ("handoff-mirror %s (%s)\n", HANDOFF_VERSION, HANDOFF_GIT_REV);
      return RC_OK;
    default: usage (stderr, RC_ERROR);
    }
  }
  if (argc - optind != 2) {
    fprintf (stderr, "%s: expected a command and the control SOCKET; "
             "see --help\n", PROG);
    return RC_ERROR;
  }
  cmd = argv[optind];
  path = argv[optind + 1];
  if (strcmp (cmd, "start") != 0 && strcmp (cmd, "status") != 0 &&
      strcmp (cmd, "complete") != 0 && strcmp (cmd, "cancel") != 0 &&
      strcmp (cmd, "pause") != 0 && strcmp (cmd, "resume") != 0) {
    fprintf (stderr, "%s: unknown command '%s' (start, status, complete, "
             "cancel, pause, resume)\n", PROG, cmd);
    return RC_ERROR;
  }
  if (nto > 0 && strcmp (cmd, "start") != 0 && strcmp (cmd, "cancel") != 0) {
    fprintf (stderr, "%s %s: --to is not used here\n", PROG, cmd);
    return RC_ERROR;
  }
  if (nto > 1 && strcmp (cmd, "cancel") == 0) {
    fprintf (stderr, "%s cancel: give at most one --to\n", PROG);
    return RC_ERROR;
  }

  c = open_control (path);
  if (strcmp (cmd, "start") == 0)
    rc = cmd_start (c, to, nto, mode);
  else if (strcmp (cmd, "status") == 0)
    rc = cmd_status (c, watch, (double) interval_ms / 1000.0);
  else if (strcmp (cmd, "complete") == 0)
    rc = cmd_complete (c, path, verify, timeout_ms);
  else if (strcmp (cmd, "cancel") == 0)
    rc = cmd_simple (c, "cancel", nto ? to[0] : NULL);
  else
    rc = cmd_simple (c, cmd, NULL);
  chan_close (c);
  return rc;
}
