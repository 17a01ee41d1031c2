/* handoff CLI: migrate, with progress. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "client.h"
#include "commands.h"
#include "exitcodes.h"
#include "jsonutil.h"
#include "progress.h"
#include "util.h"

static void
usage (FILE *fp)
{
  fprintf (fp,
"Usage: handoff migrate NAME --to HOST[,HOST...] [--mode live|offline|volume]\n"
"         [--max-downtime TIME] [--bandwidth RATE] [--timeout TIME]\n"
"         [--shutdown-timeout TIME]\n"
"         [--prewarm] [--warm-exit copied|downtime|converging]\n"
"         [--quorum PCT]\n"
"         [--fallback HOST[,HOST...]] [--retries N]\n"
"         [--cascade HOST[,HOST...]] [--transport auto|rdma|tcp]\n"
"         [--via HOST]\n"
"         [--delete-source] [--offline] [--detach] [--json] [--socket PATH]\n"
"\n"
"Moves VM NAME to another host, with progress; Ctrl-C on a terminal asks\n"
"whether to abort (elsewhere it lets go: the migration goes on).\n"
"\n"
"  -t, --to HOST[,HOST...]  the destination (peer names); several: copied\n"
"                           to all, the first to load it runs it; in\n"
"                           fleet mode auto[:N]: N picked by free memory\n"
"  -m, --mode MODE          live (default): disks, directory and RAM;\n"
"                           offline: a stopped VM's disks and directory;\n"
"                           volume: hand a SAN volume over by identity\n"
"  -O, --offline            --mode offline: the VM stays stopped, as\n"
"                           virsh migrate --offline\n"
"  -D, --max-downtime TIME  the longest pause (bare: ms; 300ms default,\n"
"                           1 ms to 10 min)\n"
"  -b, --bandwidth RATE     cap the whole migration (disks, files, then\n"
"                           RAM), bytes/s: 100M, 1G (K, M, G are powers\n"
"                           of 1024; default no cap)\n"
"  -T, --timeout TIME       give up and roll back after (bare: seconds;\n"
"                           default 600s, whole seconds, 5 s to 1 day)\n"
"  -P, --shutdown-timeout TIME\n"
"                           volume mode: how long the guest may take to\n"
"                           power off (bare: seconds; default 20s)\n"
"  -W, --prewarm            several destinations: copy and hold them warm\n"
"                           until 'handoff cutover'\n"
"  -E, --warm-exit COND     when a warm destination may cut over: copied,\n"
"                           downtime or converging (default)\n"
"  -Q, --quorum PCT         several destinations: cut over once the\n"
"                           condition holds for PCT%% of them (1-100;\n"
"                           default: any one); the others are discarded\n"
"                           if not yet copied\n"
"  -F, --fallback HOSTS     where to try next if every --to host fails\n"
"  -R, --retries N          attempts after the first, 0 to 10 (default 0)\n"
"  -C, --cascade HOSTS      once the VM runs on the winner, it migrates the\n"
"                           VM on to HOSTS by itself (pre-warmed, and held,\n"
"                           with --prewarm)\n"
"  -V, --via HOST           RAM, disks and files go once to HOST, which\n"
"                           carries them to every destination (the\n"
"                           source's uplink carries each once)\n"
"  -r, --transport auto|rdma|tcp\n"
"                           the RAM stream: RDMA when both hosts have it\n"
"                           (auto; handoffd's --transport by default),\n"
"                           RDMA or fail, or TCP (TLS)\n"
"  -X, --delete-source      remove the source's disk files afterwards\n"
"  -d, --detach             return once started ('handoff job NAME\n"
"                           --watch' follows it)\n"
"  -j, --json               events and the result as JSON lines\n"
"  -S, --socket PATH        handoffd's CLI socket\n");
}

static void
cutover_usage (FILE *fp)
{
  fprintf (fp,
"Usage: handoff cutover NAME [--to HOST[,HOST...]] [--json] [--socket PATH]\n"
"\n"
"Switches a pre-warmed migration over: at once if its warm-up exit\n"
"condition holds, else as soon as it does.\n"
"\n"
"  -t, --to HOST[,HOST...]  only these of the warm destinations\n"
"  -j, --json               events and the result as JSON lines\n"
"  -S, --socket PATH        handoffd's CLI socket\n");
}

struct view {
  bool tty;
  int lines;                    /* Lines drawn last time (tty). */
  double last_print;            /* Non-tty: elapsed of the last line. */
};

static void
draw_progress (struct view *v, json_t *ev)
{
  json_t *streams = json_object_get (ev, "streams"), *s;
  double elapsed = json_number_value (json_object_get (ev, "elapsed"));
  double pred = json_number_value (json_object_get (ev,
                                                    "predicted_downtime_ms"));
  size_t i;

  if (!v->tty) {
    if (elapsed - v->last_print < 2.0)
      return;
    v->last_print = elapsed;
  }
  if (v->tty && v->lines)
    printf ("\033[%dA", v->lines);
  v->lines = 0;
  json_array_foreach (streams, i, s) {
    char label[32];
    double done = json_number_value (json_object_get (s, "done"));
    double total = json_number_value (json_object_get (s, "total"));
    snprintf (label, sizeof label, "  %-6s %-8s",
              json_string_value (json_object_get (s, "name")),
              json_string_value (json_object_get (s, "state")));
    progress_line (stdout, label, (uint64_t) done, (uint64_t) total,
                   json_number_value (json_object_get (s, "rate")), false);
    if (v->tty)
      printf ("\033[K\n");
    v->lines++;
  }
  char eta[32];
  json_t *e = json_object_get (ev, "eta_s");
  /* The whole migration's, to its cutover (each bar has its own). */
  format_eta (e ? json_number_value (e) : -1, eta, sizeof eta);
  if (pred >= 0)
    printf ("  predicted downtime: %.0f ms   overall ETA %s%s\n", pred, eta,
            v->tty ? "\033[K" : "");
  else
    printf ("  predicted downtime: --   overall ETA %s%s\n", eta,
            v->tty ? "\033[K" : "");
  v->lines++;
  fflush (stdout);
}

static void print_job (json_t *r);

/* The result's "ram": what the RAM stream moved, in how long, over
 * what. */
static void
print_ram (json_t *ram)
{
  double bytes = json_number_value (json_object_get (ram, "bytes"));
  double ms = json_number_value (json_object_get (ram, "ms"));
  const char *over = json_string_value (json_object_get (ram, "over"));

  if (!ram || ms <= 0)
    return;
  printf ("RAM: %.1f MiB in %.1f s (%.1f MiB/s) over %s\n",
          bytes / (1 << 20), ms / 1000.0, bytes / (1 << 20) / (ms / 1000.0),
          over ? over : "?");
}

/* The last message: what happened, and the exit code. */
static int
print_result (json_t *ev, struct view *view, const char *vm, const char *to,
              bool json_out, bool detach)
{
  bool ok = json_is_true (json_object_get (ev, "ok"));

  /* "handoff job --watch" when nothing runs: the last job's summary. */
  if (ok && json_object_get (ev, "active")) {
    if (!json_out)
      print_job (ev);
    return RC_OK;
  }

  if (json_out)
    /* follow () made "code" the exit status. */
    return ok ? RC_OK : (int) json_integer_value (json_object_get (ev,
                                                                   "code"));
  if (view->tty && view->lines)
    printf ("\n");
  if (ok && detach)
    printf ("migration %s started\n",
            json_string_value (json_object_get (ev, "id")));
  else if (ok) {
    double dt = json_number_value (json_object_get (ev, "downtime_ms"));
    double tot = json_number_value (json_object_get (ev, "total_ms"));
    /* With several destinations the result names the one that won. */
    if (json_string_value (json_object_get (ev, "to")))
      to = json_string_value (json_object_get (ev, "to"));
    if (json_is_true (json_object_get (ev, "stopped")))
      printf ("%s is now on %s, stopped ('handoff start %s' there boots "
              "it)\n", vm, to, vm);
    else
      printf ("%s now runs on %s\n", vm, to);
    if (json_integer_value (json_object_get (ev, "attempt")) > 1)
      printf ("(attempt %lld of %lld)\n",
              (long long) json_integer_value (json_object_get (ev, "attempt")),
              (long long) json_integer_value (json_object_get (ev,
                                                               "attempts")));
    if (json_object_get (ev, "cutover_ms"))
      printf ("cutover: %.1f ms (asked for to running on %s)\n",
              json_number_value (json_object_get (ev, "cutover_ms")), to);
    if (json_string_value (json_object_get (ev, "note")))
      printf ("note: %s\n", json_string_value (json_object_get (ev, "note")));
    if (json_string_value (json_object_get (ev, "cascade")))
      printf ("%s migrates it on to %s ('handoff job %s' there follows "
              "it)\n", to, json_string_value (json_object_get (ev, "cascade")),
              vm);
    if (json_object_get (ev, "downtime_ms"))
      printf ("downtime: %.1f ms (paused on this host to resumed on %s)\n",
              dt, to);
    print_ram (json_object_get (ev, "ram"));
    if (json_object_get (ev, "running_after_ms"))
      printf ("total time: %.1f s (the VM ran on %s after %.2f s; the rest "
              "released it here)\n", tot / 1000.0, to,
              json_number_value (json_object_get (ev, "running_after_ms"))
              / 1000.0);
    else
      printf ("total time: %.1f s\n", tot / 1000.0);
  }
  else if (json_integer_value (json_object_get (ev, "attempts")) > 1)
    fprintf (stderr, "handoff: migration of %s failed (attempt %lld of "
             "%lld): %s\n", vm,
             (long long) json_integer_value (json_object_get (ev, "attempt")),
             (long long) json_integer_value (json_object_get (ev,
                                                              "attempts")),
             json_string_value (json_object_get (ev, "error")));
  else
    fprintf (stderr, "handoff: migration of %s failed: %s\n", vm,
             json_string_value (json_object_get (ev, "error")));
  if (ok)
    return RC_OK;
  return cli_code_rc (json_string_value (json_object_get (ev, "code")));
}

/* A phase line or the progress bars. */
static void
show_event (struct view *view, const char *type, json_t *ev)
{
  if (strcmp (type, "phase") == 0) {
    if (view->tty && view->lines) {
      printf ("\n");
      view->lines = 0;
    }
    printf ("[%6.1fs] %-10s %s\n",
            json_number_value (json_object_get (ev, "elapsed")),
            json_string_value (json_object_get (ev, "phase")),
            json_string_value (json_object_get (ev, "message")));
    view->last_print = -10;
    fflush (stdout);
  }
  else if (strcmp (type, "progress") == 0)
    draw_progress (view, ev);
  else if (strcmp (type, "attempt") == 0) {
    if (view->tty && view->lines) {
      printf ("\n");
      view->lines = 0;
    }
    printf ("[%6.1fs] %-10s %lld of %lld, to %s (the last failed: %s)\n",
            json_number_value (json_object_get (ev, "elapsed")), "attempt",
            (long long) json_integer_value (json_object_get (ev, "attempt")),
            (long long) json_integer_value (json_object_get (ev, "attempts")),
            json_string_value (json_object_get (ev, "to")),
            json_string_value (json_object_get (ev, "previous_error")));
    view->last_print = -10;
    fflush (stdout);
  }
  else if (strcmp (type, "destination") == 0) {
    /* One of several destinations changed state. */
    const char *why = json_string_value (json_object_get (ev, "reason"));
    if (view->tty && view->lines) {
      printf ("\n");
      view->lines = 0;
    }
    printf ("[%6.1fs] %-10s %s: %s%s%s\n",
            json_number_value (json_object_get (ev, "elapsed")),
            "dest", json_string_value (json_object_get (ev, "host")),
            json_string_value (json_object_get (ev, "state")),
            why && why[0] ? ": " : "", why ? why : "");
    view->last_print = -10;
    fflush (stdout);
  }
}

/* Ctrl-C while a migration is followed, as virsh migrate: on a
 * terminal, a question (abort it, or go on); elsewhere the command lets
 * go and the migration goes on in handoffd, as with --detach.  The
 * handler only notes it: the question comes with the next message from
 * the daemon (progress comes every second). */
static volatile sig_atomic_t interrupted;

static void
on_sigint (int sig)
{
  (void) sig;
  interrupted = 1;
}

static void
catch_sigint (void)
{
  struct sigaction sa = { .sa_handler = on_sigint };

  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
}

/* After Ctrl-C: -1 to go on following, else the exit code (the command
 * lets go). */
static int
on_interrupt (struct view *view, const char *vm, bool json_out)
{
  char answer[32] = "";
  int rc;

  interrupted = 0;
  if (json_out || !isatty (STDIN_FILENO) || !isatty (STDERR_FILENO)) {
    if (json_out) {
      json_t *d = json_pack ("{s:b, s:b, s:s}", "ok", 1, "detached", 1,
                             "vm", vm);
      cli_print_json (d);
      json_decref (d);
    }
    fprintf (stderr, "handoff migrate: interrupted: the migration of %s goes "
             "on in handoffd ('handoff job %s --watch' follows it, "
             "'handoff abort %s' stops it)\n", vm, vm, vm);
    return RC_OK;
  }
  if (view->tty && view->lines)
    printf ("\n");
  view->lines = 0;
  fflush (stdout);
  fprintf (stderr, "\nAbort the migration of %s? It would go on running "
           "here, as before. [y/N] ", vm);
  /* A second Ctrl-C here (EINTR) is no answer: go on. */
  if (!fgets (answer, sizeof answer, stdin) && errno == EINTR)
    interrupted = 0;
  clearerr (stdin);
  if (answer[0] != 'y' && answer[0] != 'Y') {
    fprintf (stderr, "%sgoing on\n", answer[0] ? "" : "\n");
    return -1;
  }
  json_t *r = cli_request (json_pack ("{s:s, s:s}", "op", "abort", "vm", vm),
                           &rc);
  if (r)
    fprintf (stderr, "aborting: the migration rolls back\n");
  json_decref (r);
  return -1;
}

/* What the daemon sends until the result: phases and progress drawn
 * (or JSON lines), then the outcome.  The exit code. */
static int
follow (struct channel *ch, const char *vm, const char *to, uint64_t timeout,
        bool json_out, bool detach)
{
  struct view view = { .tty = isatty (1) };
  int rc = RC_ERROR;

  /* Terminates: the daemon always ends with a reply that has "ok". */
  for (;;) {
    bool eof;
    json_t *ev = chan_recv_json (ch, (int) (timeout + 120) * 1000, &eof);
    const char *type;
    if (interrupted) {
      int irc = on_interrupt (&view, vm, json_out);
      if (irc >= 0) {
        json_decref (ev);
        return irc;
      }
    }
    if (!ev) {
      rc = cli_fail (RC_UNREACHABLE, "lost handoffd%s",
                     eof ? "" : " (no news in time)");
      break;
    }
    type = json_string_value (json_object_get (ev, "event"));
    if (json_out && json_object_get (ev, "ok") &&
        !json_is_true (json_object_get (ev, "ok"))) {
      /* As every failure under --json: "code" is the exit status; the
       * outcome's name moves to "outcome". */
      const char *name = json_string_value (json_object_get (ev, "code"));
      int code = cli_code_rc (name);
      if (name)
        json_object_set_new (ev, "outcome", json_string (name));
      json_object_set_new (ev, "code", json_integer (code));
    }
    if (json_out)
      cli_print_json (ev);
    if (json_object_get (ev, "ok")) {
      rc = print_result (ev, &view, vm, to, json_out, detach);
      json_decref (ev);
      break;
    }
    if (!json_out && type)
      show_event (&view, type, ev);
    json_decref (ev);
  }
  return rc;
}

/* Send REQ (stolen) to handoffd and follow what comes back: the exit
 * code.  Ctrl-C asks whether to abort (INTERRUPTIBLE: migrate,
 * cutover). */
static int
request (json_t *req, const char *vm, const char *to, uint64_t timeout,
         bool json_out, bool detach, bool interruptible)
{
  int rc;

  if (interruptible && !detach)
    catch_sigint ();
  struct channel *ch = cli_send (req, &rc);
  if (!ch)
    return rc;
  rc = follow (ch, vm, to, timeout, json_out, detach);
  chan_close (ch);
  return rc;
}

/* KEY = V (stolen) in REQ, if an option gave it (V not NULL). */
static void
set_if_given (json_t *req, const char *key, json_t *v)
{
  if (v)
    json_object_set_new (req, key, v);
}

int
cmd_migrate (int argc, char **argv)
{
  static const struct option opts[] = {
    { "to", required_argument, NULL, 't' },
    { "mode", required_argument, NULL, 'm' },
    { "max-downtime", required_argument, NULL, 'D' },
    { "bandwidth", required_argument, NULL, 'b' },
    { "timeout", required_argument, NULL, 'T' },
    { "shutdown-timeout", required_argument, NULL, 'P' },
    { "delete-source", no_argument, NULL, 'X' },
    { "prewarm", no_argument, NULL, 'W' },
    { "fallback", required_argument, NULL, 'F' },
    { "retries", required_argument, NULL, 'R' },
    { "cascade", required_argument, NULL, 'C' },
    { "via", required_argument, NULL, 'V' },
    { "warm-exit", required_argument, NULL, 'E' },
    { "quorum", required_argument, NULL, 'Q' },
    { "transport", required_argument, NULL, 'r' },
    { "detach", no_argument, NULL, 'd' },
    { "offline", no_argument, NULL, 'O' },
    { "json", no_argument, NULL, 'j' },
    { "socket", required_argument, NULL, 'S' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *to = NULL, *mode = "live", *warm_exit = "converging";
  const char *fallback = NULL, *cascade = NULL, *transport = NULL, *via = NULL;
  uint64_t retries = 0, quorum = 0;
  bool prewarm = false;
  uint64_t downtime = 300, bandwidth = 0, timeout = 600;
  uint64_t shutdown_ms = 20000;
  bool json_out = false, detach = false, delete_source = false;
  char err[256] = "";
  int c;

  opterr = 0;
  while ((c = getopt_long (argc, argv, "t:m:D:b:T:P:XWE:Q:F:R:C:V:r:dOjS:h", opts,
                           NULL)) != -1) {
    switch (c) {
    case 't': to = optarg; break;
    case 'm': mode = optarg; break;
    case 'D':
      /* A bare number is milliseconds, as it always was. */
      if (parse_duration_in (optarg, 1, &downtime, err, sizeof err) == -1 ||
          downtime < 1 || downtime > 600000)
        return cli_fail (RC_ERROR, "--max-downtime: %s",
                         err[0] ? err : "1 ms to 10 min");
      break;
    case 'b':
      if (parse_rate (optarg, &bandwidth, err, sizeof err) == -1)
        return cli_fail (RC_ERROR, "--bandwidth: %s", err);
      break;
    case 'T':
      if (parse_duration_ms (optarg, &timeout, err, sizeof err) == -1 ||
          timeout % 1000 != 0 || timeout < 5000 || timeout > 86400000)
        return cli_fail (RC_ERROR, "--timeout: %s",
                         err[0] ? err : "whole seconds, 5 s to 1 day");
      timeout /= 1000;
      break;
    case 'P':
      if (parse_duration_ms (optarg, &shutdown_ms, err, sizeof err) == -1 ||
          shutdown_ms > 600000)
        return cli_fail (RC_ERROR, "--shutdown-timeout: %s",
                         shutdown_ms > 600000 ? "at most 10 minutes" : err);
      break;
    case 'X': delete_source = true; break;
    case 'W': prewarm = true; break;
    case 'F': fallback = optarg; break;
    case 'C': cascade = optarg; break;
    case 'V': via = optarg; break;
    case 'R':
      if (parse_uint (optarg, 0, 10, &retries, err, sizeof err) == -1)
        return cli_fail (RC_ERROR, "--retries: %s", err);
      break;
    case 'E': warm_exit = optarg; break;
    case 'Q':
      if (parse_uint (optarg, 1, 100, &quorum, err, sizeof err) == -1)
        return cli_fail (RC_ERROR, "--quorum: %s", err);
      break;
    case 'r': transport = optarg; break;     /* handoffd checks it. */
    case 'd': detach = true; break;
    case 'O': mode = "offline"; break;
    case 'j': json_out = true; break;
    case 'S': cli_socket_path = optarg; break;
    case 'h': usage (stdout); return RC_OK;
    default:
      return cli_bad_option ("migrate", argv,
                             "t:m:D:b:T:P:XWE:Q:F:R:C:V:r:dOjS:h");
    }
  }
  cli_json = json_out;
  if (argc - optind != 1 || !to)
    return cli_fail (RC_ERROR, "expected NAME and --to HOST");
  if (strcmp (mode, "live") != 0 && strcmp (mode, "volume") != 0 &&
      strcmp (mode, "offline") != 0)
    return cli_fail (RC_ERROR, "--mode must be live, offline or volume");

  json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b, "
                           "s:b}",
                           "op", "migrate", "vm", argv[optind], "to", to,
                           "mode", mode,
                           "max_downtime_ms", (json_int_t) downtime,
                           "bandwidth", (json_int_t) bandwidth,
                           "timeout_s", (json_int_t) timeout,
                           "shutdown_timeout_ms", (json_int_t) shutdown_ms,
                           "delete_source", delete_source,
                           "follow", !detach);
  if (prewarm)
    json_object_set_new (req, "prewarm", json_true ());
  json_object_set_new (req, "warm_exit", json_string (warm_exit));
  set_if_given (req, "quorum", quorum ? json_integer ((json_int_t) quorum)
                : NULL);
  set_if_given (req, "fallback", fallback ? json_string (fallback) : NULL);
  set_if_given (req, "cascade", cascade ? json_string (cascade) : NULL);
  set_if_given (req, "via", via ? json_string (via) : NULL);
  set_if_given (req, "transport", transport ? json_string (transport) : NULL);
  set_if_given (req, "retries", retries ? json_integer ((json_int_t) retries)
                : NULL);
  return request (req, argv[optind], to, timeout, json_out, detach, true);
}

int
cmd_cutover (int argc, char **argv)
{
  static const struct option opts[] = {
    { "to", required_argument, NULL, 't' },
    { "json", no_argument, NULL, 'j' },
    { "socket", required_argument, NULL, 'S' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *to = NULL;
  bool json_out = false;
  int c;

  opterr = 0;
  while ((c = getopt_long (argc, argv, "t:jS:h", opts, NULL)) != -1) {
    switch (c) {
    case 't': to = optarg; break;
    case 'j': json_out = true; break;
    case 'S': cli_socket_path = optarg; break;
    case 'h': cutover_usage (stdout); return RC_OK;
    default: return cli_bad_option ("cutover", argv, "t:jS:h");
    }
  }
  cli_json = json_out;
  if (argc - optind != 1)
    return cli_fail (RC_ERROR, "expected NAME");

  json_t *req = json_pack ("{s:s, s:s}", "op", "cutover", "vm",
                           argv[optind]);
  if (to)
    json_object_set_new (req, "to", json_string (to));
  /* The migration's events from the cutover on, then its result. */
  return request (req, argv[optind], to ? to : "its destination", 86400,
                  json_out, false, true);
}

static void
job_usage (FILE *fp)
{
  fprintf (fp,
"Usage: handoff job NAME [--watch] [--json] [--socket PATH]\n"
"  The running migration of NAME (phase, streams, destinations), else\n"
"  the last one this host took part in.\n"
"\n"
"  -w, --watch         follow the running one to its end, as migrate does\n"
"  -j, --json          the job (or its events) as JSON\n"
"  -S, --socket PATH   handoffd's CLI socket\n");
}

/* The summary of a running job, or the journal's last one. */
static void
print_job (json_t *r)
{
  json_t *j = json_object_get (r, "job"), *d, *st;
  size_t i;

  if (!json_is_true (json_object_get (r, "active"))) {
    json_t *l = json_object_get (r, "last");
    const char *res = json_string_value (json_object_get (l, "result"));
    printf ("last migration %s: %s %s %s; phase %s; %s\n",
            json_string_value (json_object_get (l, "id")),
            json_string_value (json_object_get (l, "role")),
            strcmp (json_string_value (json_object_get (l, "role")),
                    "source") == 0 ? "to" : "from",
            json_string_value (json_object_get (l, "peer")),
            json_string_value (json_object_get (l, "phase")),
            res && res[0] ? res : "still open");
    json_array_foreach (json_object_get (l, "steps"), i, st)
      printf ("  %-14s %s\n", json_string_value (json_object_get (st, "phase")),
              json_string_value (json_object_get (st, "note")));
    return;
  }
  printf ("migration %s: %s to %s, phase %s (attempt %lld of %lld)\n",
          json_string_value (json_object_get (j, "id")),
          json_string_value (json_object_get (j, "vm")),
          json_string_value (json_object_get (j, "to")),
          json_string_value (json_object_get (j, "phase")),
          (long long) json_integer_value (json_object_get (j, "attempt")),
          (long long) json_integer_value (json_object_get (j, "attempts")));
  if (json_is_object (json_object_get (j, "progress"))) {
    struct view v = { .tty = false, .last_print = -10 };
    draw_progress (&v, json_object_get (j, "progress"));
  }
  json_array_foreach (json_object_get (j, "destinations"), i, d) {
    const char *why = json_string_value (json_object_get (d, "reason"));
    printf ("  %-16s %s%s%s\n", json_string_value (json_object_get (d, "host")),
            json_string_value (json_object_get (d, "state")),
            why ? ": " : "", why ? why : "");
  }
}

int
cmd_job (int argc, char **argv)
{
  static const struct option opts[] = {
    { "watch", no_argument, NULL, 'w' },
    { "json", no_argument, NULL, 'j' },
    { "socket", required_argument, NULL, 'S' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool watch = false;
  json_t *req, *r;
  int c, rc;

  opterr = 0;
  while ((c = getopt_long (argc, argv, "wjS:h", opts, NULL)) != -1) {
    switch (c) {
    case 'w': watch = true; break;
    case 'j': cli_json = true; break;
    case 'S': cli_socket_path = optarg; break;
    case 'h': job_usage (stdout); return RC_OK;
    default: return cli_bad_option ("job", argv, "wjS:h");
    }
  }
  if (argc - optind != 1)
    return cli_fail (RC_ERROR, "expected NAME");
  req = json_pack ("{s:s, s:s, s:b}", "op", "job", "vm", argv[optind],
                   "watch", watch);
  if (watch)
    /* A running one is followed to its result; with none, the answer
     * is the last one's summary, which ends the follow as a result
     * would (print_result). */
    return request (req, argv[optind], "its destination", 86400, cli_json,
                    false, false);
  r = cli_request (req, &rc);
  if (!r)
    return rc;
  if (cli_json)
    cli_print_json (r);
  else
    print_job (r);
  json_decref (r);
  return RC_OK;
}
