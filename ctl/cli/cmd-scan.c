/* handoff hostid, handoff scan: migration-safe inventory scans.
 *
 * A scan reads the host component ID, runs the scanner, and reads the
 * ID again.  If the VM moved in between, the scanner's view of "the
 * host" mixes two machines: its output is withheld and the exit status
 * says so (RC_INCONSISTENT_OUTPUT), optionally after running it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "commands.h"
#include "exitcodes.h"
#include "hostid.h"
#include "util.h"

#define MAX_REPEAT 100

/* ---- hostid ------------------------------------------------------- */

static void
hostid_usage (FILE *f)
{
  fprintf (f,
"Usage: handoff hostid [--source SPEC] [--json]\n"
"\n"
"Print the ID of the host this VM runs on right now.\n"
"\n"
"  -s, --source SPEC  fwcfg (default: published by handoffd), dmi,\n"
"                     file:PATH or cmd:COMMAND\n"
"  -j, --json         print JSON\n");
}

int
cmd_hostid (int argc, char **argv)
{
  static const struct option opts[] = {
    { "source", required_argument, NULL, 's' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *source = "fwcfg";
  bool json_out = false;
  char id[HOSTID_MAX], info[HOSTID_INFO_LEN + 1] = "", err[512];
  int c;

  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+s:jh", opts, NULL)) != -1) {
    switch (c) {
    case 's': source = optarg; break;
    case 'j': json_out = true; break;
    case 'h': hostid_usage (stdout); return RC_OK;
    default: return cli_bad_option ("hostid", argv, "+s:jh");
    }
  }
  if (optind != argc) {
    hostid_usage (stderr);
    return RC_ERROR;
  }
  if (hostid_read (source, id, sizeof id, err, sizeof err) == -1) {
    fprintf (stderr, "handoff hostid: %s\n", err);
    return RC_ERROR;
  }
  if (strcmp (source, "fwcfg") == 0)
    hostid_fwcfg_info (info, sizeof info);
  if (json_out) {
    json_t *j = json_pack ("{s:s, s:s}", "id", id, "source", source);
    if (info[0])
      json_object_set_new (j, "info", json_string (info));
    json_dumpf (j, stdout, JSON_COMPACT);
    printf ("\n");
    json_decref (j);
  }
  else if (info[0])
    printf ("%s %s\n", id, info);
  else
    printf ("%s\n", id);
  return RC_OK;
}

/* ---- scan --------------------------------------------------------- */

static void
scan_usage (FILE *f)
{
  fprintf (f,
"Usage: handoff scan [--source SPEC] [--repeat N] [--notify CMD]\n"
"                    [--keep-output] -- COMMAND [ARGS...]\n"
"       handoff scan --watch --notify CMD [--source SPEC]\n"
"                    [--interval TIME] [--exit-file PATH]\n"
"\n"
"Run COMMAND; pass its output and exit status through only if the VM\n"
"did not move to another host while it ran.\n"
"\n"
"  -s, --source SPEC     host ID source: fwcfg (default), dmi,\n"
"                        file:PATH, cmd:COMMAND\n"
"  -r, --repeat N        run COMMAND again, up to N times (0-%d), until\n"
"                        a run does not cross a migration\n"
"  -n, --notify CMD      run CMD (sh -c) when the ID changes, with\n"
"                        HANDOFF_OLD_ID, HANDOFF_NEW_ID and\n"
"                        HANDOFF_DETECTED_AT in its environment\n"
"  -k, --keep-output     print a crossing run's output all the same\n"
"  -w, --watch           run --notify at each change until stopped\n"
"                        (SIGTERM, SIGINT, or --exit-file appears)\n"
"  -i, --interval TIME   watch: how often to read the ID (default 5s)\n"
"  -x, --exit-file PATH  watch: stop once PATH exists\n"
"\n"
"Exit status: COMMAND's own when no migration crossed it (126 if it\n"
"cannot run, 127 if it does not exist); 3 if every run crossed one;\n"
"1 on an error (bad option, unreadable ID).\n", MAX_REPEAT);
}

struct scan_opts {
  const char *source;
  const char *notify;
  const char *exit_file;
  uint64_t repeat;
  uint64_t interval_ms;
  bool keep_output;
  bool watch;
};

static void
describe (const char *source, const char *id, const char *info, char *buf,
          size_t len)
{
  (void) source;
  if (info && info[0])
    snprintf (buf, len, "%.16s... (%s)", id, info);
  else if (strlen (id) > 40)
    snprintf (buf, len, "%.16s...", id);
  else
    snprintf (buf, len, "%s", id);
}

/* Run the notify command; its failure is reported, never fatal. */
static void
notify (const char *cmd, const char *old_id, const char *new_id)
{
  char when[64];
  time_t now = time (NULL);
  struct tm tm;
  int status;
  pid_t pid;

  if (!cmd)
    return;
  gmtime_r (&now, &tm);
  strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  fflush (stdout);
  pid = fork ();
  if (pid == -1) {
    fprintf (stderr, "handoff scan: notify: fork: %s\n", strerror (errno));
    return;
  }
  if (pid == 0) {
    setenv ("HANDOFF_OLD_ID", old_id, 1);
    setenv ("HANDOFF_NEW_ID", new_id, 1);
    setenv ("HANDOFF_DETECTED_AT", when, 1);
    /* Its output goes to stderr: stdout carries the scan's. */
    dup2 (STDERR_FILENO, STDOUT_FILENO);
    execl ("/bin/sh", "sh", "-c", cmd, (char *) NULL);
    _exit (127);
  }
  while (waitpid (pid, &status, 0) == -1 && errno == EINTR)
    ;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    fprintf (stderr, "handoff scan: warning: the notify command failed "
             "(%s %d); the scan's result is unchanged\n",
             WIFEXITED (status) ? "exit" : "signal",
             WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
}

/* Copy everything in FD (from its start) to OUT. */
static void
replay (int fd, FILE *out)
{
  char buf[65536];
  ssize_t r;

  if (lseek (fd, 0, SEEK_SET) == -1)
    return;
  fflush (out);
  /* Terminates: end of the file. */
  while ((r = read (fd, buf, sizeof buf)) > 0 || (r == -1 && errno == EINTR))
    if (r > 0 && fwrite (buf, 1, (size_t) r, out) != (size_t) r)
      break;
  fflush (out);
}

/* Run ARGV with stdout and stderr into temporary files.  Returns its
 * exit status as a shell would (128+N for signal N, 126/127 when it
 * cannot run), or -1 if it could not be started at all. */
static int
run_captured (char **argv, int *out_fd, int *err_fd)
{
  FILE *o = tmpfile (), *e = tmpfile ();
  int status, pipefd[2];
  pid_t pid;

  if (!o || !e || pipe2 (pipefd, O_CLOEXEC) == -1) {
    fprintf (stderr, "handoff scan: temporary files: %s\n", strerror (errno));
    if (o)
      fclose (o);
    if (e)
      fclose (e);
    return -1;
  }
  *out_fd = dup (fileno (o));
  *err_fd = dup (fileno (e));
  fclose (o);
  fclose (e);
  pid = fork ();
  if (pid == -1) {
    fprintf (stderr, "handoff scan: fork: %s\n", strerror (errno));
    close (pipefd[0]);
    close (pipefd[1]);
    return -1;
  }
  if (pid == 0) {
    int saved = errno;
    dup2 (*out_fd, STDOUT_FILENO);
    dup2 (*err_fd, STDERR_FILENO);
    execvp (argv[0], argv);
    saved = errno;
    /* Tell the parent why (it reports on the real stderr). */
    if (write (pipefd[1], &saved, sizeof saved) == -1) {
      /* Nothing better to do. */
    }
    _exit (saved == ENOENT ? 127 : 126);
  }
  close (pipefd[1]);
  int exec_errno = 0;
  ssize_t n;
  while ((n = read (pipefd[0], &exec_errno, sizeof exec_errno)) == -1 &&
         errno == EINTR)
    ;
  close (pipefd[0]);
  while (waitpid (pid, &status, 0) == -1 && errno == EINTR)
    ;
  if (n == (ssize_t) sizeof exec_errno)
    fprintf (stderr, "handoff scan: %s: %s\n", argv[0],
             strerror (exec_errno));
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  return WEXITSTATUS (status);
}

static int
scan_once_loop (const struct scan_opts *o, char **argv)
{
  char before[HOSTID_MAX], after[HOSTID_MAX], err[512];
  char info_a[HOSTID_INFO_LEN + 1] = "", info_b[HOSTID_INFO_LEN + 1] = "";
  bool fwcfg = strcmp (o->source, "fwcfg") == 0;

  if (hostid_read (o->source, before, sizeof before, err, sizeof err) == -1) {
    fprintf (stderr, "handoff scan: cannot read the host ID: %s\n", err);
    return RC_ERROR;
  }
  if (fwcfg)
    hostid_fwcfg_info (info_a, sizeof info_a);
  for (uint64_t attempt = 0;; ++attempt) {
    int out_fd = -1, err_fd = -1;
    int rc = run_captured (argv, &out_fd, &err_fd);
    if (rc == -1)
      return RC_ERROR;
    if (hostid_read (o->source, after, sizeof after, err, sizeof err) == -1) {
      fprintf (stderr, "handoff scan: cannot read the host ID after the scan "
               "(%s): its output (exit %d) is withheld\n", err, rc);
      close (out_fd);
      close (err_fd);
      return RC_ERROR;
    }
    if (strcmp (before, after) == 0) {
      replay (out_fd, stdout);
      replay (err_fd, stderr);
      close (out_fd);
      close (err_fd);
      return rc;
    }
    if (fwcfg)
      hostid_fwcfg_info (info_b, sizeof info_b);
    char from[512], to[512];
    describe (o->source, before, info_a, from, sizeof from);
    describe (o->source, after, info_b, to, sizeof to);
    if (o->keep_output) {
      replay (out_fd, stdout);
      replay (err_fd, stderr);
    }
    close (out_fd);
    close (err_fd);
    fprintf (stderr, "handoff scan: the scan crossed a migration, from host "
             "%s to host %s; its output (exit %d) is %s\n", from, to, rc,
             o->keep_output ? "above, but inconsistent" : "discarded");
    notify (o->notify, before, after);
    if (attempt >= o->repeat) {
      if (o->repeat)
        fprintf (stderr, "handoff scan: %" PRIu64 " run%s crossed a "
                 "migration; giving up\n", attempt + 1,
                 attempt ? "s" : "");
      return RC_INCONSISTENT_OUTPUT;
    }
    fprintf (stderr, "handoff scan: running it again (%" PRIu64 " of %"
             PRIu64 ")\n", attempt + 1, o->repeat);
    snprintf (before, sizeof before, "%s", after);
    snprintf (info_a, sizeof info_a, "%s", info_b);
  }
}

static volatile sig_atomic_t stop_watch;

static void
on_stop (int sig)
{
  (void) sig;
  stop_watch = 1;
}

static int
watch (const struct scan_opts *o)
{
  char cur[HOSTID_MAX], now[HOSTID_MAX], err[512];
  struct sigaction sa = { .sa_handler = on_stop };
  bool failing = false;
  struct stat st;

  if (hostid_read (o->source, cur, sizeof cur, err, sizeof err) == -1) {
    fprintf (stderr, "handoff scan: cannot read the host ID: %s\n", err);
    return RC_ERROR;
  }
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGINT, &sa, NULL);
  fprintf (stderr, "handoff scan: watching the host ID (now %.16s...)\n",
           cur);
  /* Terminates: a signal or the exit file. */
  while (!stop_watch) {
    if (o->exit_file && stat (o->exit_file, &st) == 0)
      break;
    if (hostid_read (o->source, now, sizeof now, err, sizeof err) == -1) {
      if (!failing)
        fprintf (stderr, "handoff scan: warning: cannot read the host ID "
                 "(%s); trying again\n", err);
      failing = true;
    }
    else {
      failing = false;
      if (strcmp (now, cur) != 0) {
        fprintf (stderr, "handoff scan: the host ID changed: %.16s... -> "
                 "%.16s...\n", cur, now);
        notify (o->notify, cur, now);
        snprintf (cur, sizeof cur, "%s", now);
      }
    }
    struct timespec ts = {
      .tv_sec = (time_t) (o->interval_ms / 1000),
      .tv_nsec = (long) (o->interval_ms % 1000) * 1000000,
    };
    nanosleep (&ts, NULL);
  }
  fprintf (stderr, "handoff scan: watch stopped\n");
  return RC_OK;
}

int
cmd_scan (int argc, char **argv)
{
  static const struct option opts[] = {
    { "source", required_argument, NULL, 's' },
    { "repeat", required_argument, NULL, 'r' },
    { "notify", required_argument, NULL, 'n' },
    { "keep-output", no_argument, NULL, 'k' },
    { "watch", no_argument, NULL, 'w' },
    { "interval", required_argument, NULL, 'i' },
    { "exit-file", required_argument, NULL, 'x' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct scan_opts o = { .source = "fwcfg", .interval_ms = 5000 };
  char err[256];
  int c;

  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+s:r:n:kwi:x:h", opts, NULL)) != -1) {
    switch (c) {
    case 's': o.source = optarg; break;
    case 'r':
      if (parse_uint (optarg, 0, MAX_REPEAT, &o.repeat, err,
                      sizeof err) == -1) {
        fprintf (stderr, "handoff scan: --repeat: %s\n", err);
        return RC_ERROR;
      }
      break;
    case 'n': o.notify = optarg; break;
    case 'k': o.keep_output = true; break;
    case 'w': o.watch = true; break;
    case 'i':
      if (parse_duration_ms (optarg, &o.interval_ms, err, sizeof err) == -1 ||
          o.interval_ms < 10 || o.interval_ms > 86400000) {
        fprintf (stderr, "handoff scan: --interval: %s\n",
                 o.interval_ms < 10 || o.interval_ms > 86400000
                 ? "must be between 10ms and 24h" : err);
        return RC_ERROR;
      }
      break;
    case 'x': o.exit_file = optarg; break;
    case 'h': scan_usage (stdout); return RC_OK;
    default: return cli_bad_option ("scan", argv, "+s:r:n:kwi:x:h");
    }
  }
  if (o.notify && !o.notify[0]) {
    fprintf (stderr, "handoff scan: --notify: empty command\n");
    return RC_ERROR;
  }
  if (o.watch) {
    if (!o.notify || optind != argc) {
      fprintf (stderr, "handoff scan: --watch needs --notify CMD and no "
               "COMMAND\n");
      return RC_ERROR;
    }
    return watch (&o);
  }
  if (optind >= argc) {
    fprintf (stderr, "handoff scan: expected -- COMMAND [ARGS...]\n");
    scan_usage (stderr);
    return RC_ERROR;
  }
  return scan_once_loop (&o, argv + optind);
}
