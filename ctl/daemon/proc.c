/* handoffd: detached helper processes.  See proc.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "proc.h"
#include "sockets.h"

extern char **environ;

/* ENVIRON plus EXTRA ("K=V", NULL-terminated or NULL), built before
 * fork so the child does not allocate. */
static char **
make_env (char *const extra[])
{
  size_t n = 0, k = 0;
  char **env;

  while (environ[n])
    n++;
  while (extra && extra[k])
    k++;
  env = calloc (n + k + 1, sizeof *env);
  if (!env)
    return NULL;
  for (size_t i = 0; i < k; ++i)
    env[i] = extra[i];
  for (size_t i = 0; i < n; ++i)
    env[k + i] = environ[i];  /* Earlier entries win for getenv. */
  return env;
}

/* The child: its descriptors in place (0 /dev/null, 1 and 2 the log,
 * 3 the exec report, 4.. the kept ones), then exec.  Only
 * async-signal-safe calls: the daemon has threads. */
static void __attribute__ ((noreturn))
exec_child (char *const argv[], char **env, const char *log, int report,
            const int *keep, size_t nkeep)
{
  int in = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int hi[PROC_MAX_KEEP_FDS], hrep;
  int e;

  if (in == -1 || out == -1)
    goto fail;
  /* Above every target first, so no dup2 overwrites a source. */
  hrep = fcntl (report, F_DUPFD_CLOEXEC, 64);
  if (hrep == -1)
    goto fail;
  report = hrep;
  for (size_t i = 0; i < nkeep; ++i)
    if ((hi[i] = fcntl (keep[i], F_DUPFD_CLOEXEC, 64)) == -1)
      goto fail;
  if (dup2 (in, 0) == -1 || dup2 (out, 1) == -1 || dup2 (out, 2) == -1 ||
      dup2 (report, 3) == -1 || fcntl (3, F_SETFD, FD_CLOEXEC) == -1)
    goto fail;
  report = 3;
  for (size_t i = 0; i < nkeep; ++i)
    if (dup2 (hi[i], (int) (4 + i)) == -1)
      goto fail;
  close_range ((unsigned) (4 + nkeep), ~0U, 0);
  signal (SIGPIPE, SIG_DFL);
  umask (077);
  execvpe (argv[0], argv, env);
 fail:
  e = errno;
  if (write (report, &e, sizeof e) < 0)
    _exit (126);
  _exit (127);
}

/* The keeper: parent of the child for as long as the child lives.
 * Programs such as nbdkit 1.32 ask for a signal when their parent
 * dies (PR_SET_PDEATHSIG): a parent that exits at once would kill
 * them, and the daemon itself may die and restart while they must
 * run on.  Reports the child's pid, then waits for it. */
static void __attribute__ ((noreturn))
keeper (char *const argv[], char **env, const char *log, int pid_report,
        int exec_report, const int *keep, size_t nkeep)
{
  struct sigaction ign = { .sa_handler = SIG_IGN };
  pid_t child = fork ();

  if (child == 0)
    exec_child (argv, env, log, exec_report, keep, nkeep);
  if (child == -1 || write (pid_report, &child, sizeof child) < 0)
    _exit (1);
  /* Nothing of the daemon's stays open here. */
  close_range (0, ~0U, 0);
  sigaction (SIGHUP, &ign, NULL);
  sigaction (SIGINT, &ign, NULL);
  sigaction (SIGTERM, &ign, NULL);
  sigaction (SIGPIPE, &ign, NULL);
  /* Terminates: when the child exits. */
  while (waitpid (child, NULL, 0) == -1 && errno == EINTR)
    ;
  _exit (0);
}

pid_t
proc_spawn (char *const argv[], char *const extra_env[], const char *log,
            const char *pidfile, char *err, size_t errlen)
{
  return proc_spawn_fds (argv, extra_env, log, pidfile, NULL, 0, err,
                         errlen);
}

pid_t
proc_spawn_fds (char *const argv[], char *const extra_env[],
                const char *log, const char *pidfile, const int *keep,
                size_t nkeep, char *err, size_t errlen)
{
  int pids[2] = { -1, -1 }, execs[2] = { -1, -1 };
  pid_t mid, pid = -1;
  int e = 0, st;
  char **env = make_env (extra_env);

  if (nkeep > PROC_MAX_KEEP_FDS) {
    snprintf (err, errlen, "cannot start %s: too many descriptors", argv[0]);
    free (env);
    return -1;
  }
  if (!env || pipe2 (pids, O_CLOEXEC) == -1 ||
      pipe2 (execs, O_CLOEXEC) == -1) {
    snprintf (err, errlen, "cannot start %s: %s", argv[0], strerror (errno));
    goto out_close;
  }
  mid = fork ();
  if (mid == -1) {
    snprintf (err, errlen, "fork: %s", strerror (errno));
    goto out_close;
  }
  if (mid == 0) {
    /* A new session, and a keeper that is nobody's child here: it and
     * the program outlive the daemon. */
    close (pids[0]);
    close (execs[0]);
    setsid ();
    pid_t k = fork ();
    if (k == 0)
      keeper (argv, env, log, pids[1], execs[1], keep, nkeep);
    _exit (k > 0 ? 0 : 1);
  }
  close (pids[1]);
  close (execs[1]);
  pids[1] = execs[1] = -1;
  waitpid (mid, &st, 0);
  if (read (pids[0], &pid, sizeof pid) != (ssize_t) sizeof pid) {
    snprintf (err, errlen, "cannot start %s", argv[0]);
    pid = -1;
    goto out_close;
  }
  /* EOF: execve closed the report fd.  Data: execve's errno. */
  if (read (execs[0], &e, sizeof e) == (ssize_t) sizeof e) {
    snprintf (err, errlen, "cannot run %s: %s", argv[0], strerror (e));
    pid = -1;
    goto out_close;
  }
  if (pidfile) {
    FILE *f = fopen (pidfile, "we");
    if (!f || fprintf (f, "%d\n", (int) pid) < 0 || fclose (f) != 0) {
      snprintf (err, errlen, "%s: %s", pidfile, strerror (errno));
      kill (pid, SIGKILL);
      pid = -1;
      goto out_close;
    }
  }
  log_debug ("started %s (pid %d)", argv[0], (int) pid);

 out_close:
  for (int i = 0; i < 2; ++i) {
    if (pids[i] >= 0)
      close (pids[i]);
    if (execs[i] >= 0)
      close (execs[i]);
  }
  free (env);
  return pid;
}

/* Alive and not a zombie (our helpers are not our children: init
 * reaps them, perhaps not at once). */
static bool
running (pid_t pid)
{
  char path[64], buf[512];
  CLEANUP_CLOSE int fd = -1;
  ssize_t n;
  char *paren;

  if (kill (pid, 0) == -1)
    return false;
  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return false;
  n = read (fd, buf, sizeof buf - 1);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  paren = strrchr (buf, ')');
  return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

pid_t
proc_alive (const char *pidfile, const char *match)
{
  char path[64], cmd[4096];
  FILE *f = fopen (pidfile, "re");
  long pid = 0;
  ssize_t n;

  if (!f)
    return 0;
  if (fgets (cmd, sizeof cmd, f))
    pid = strtol (cmd, NULL, 10);
  fclose (f);
  if (pid > INT_MAX)
    pid = 0;
  if (pid <= 1 || !running (pid))
    return 0;
  if (!match)
    return (pid_t) pid;
  snprintf (path, sizeof path, "/proc/%ld/cmdline", pid);
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return 0;
  n = read (fd, cmd, sizeof cmd - 1);
  if (n <= 0)
    return 0;
  /* Arguments are NUL-separated: search them as one string. */
  for (ssize_t i = 0; i < n; ++i)
    if (cmd[i] == '\0')
      cmd[i] = ' ';
  cmd[n] = '\0';
  /* A zombie or an exited process has an empty command line. */
  return strstr (cmd, match) ? (pid_t) pid : 0;
}

int
proc_wait_gone (pid_t pid, int timeout_ms)
{
  int64_t deadline = clock_ms () + timeout_ms;
  char path[64];

  snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
  /* Terminates: the process goes or the deadline passes.  A zombie
   * (reaped by init soon) has an empty cmdline. */
  while (clock_ms () < deadline) {
    char c;
    CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd == -1 || read (fd, &c, 1) <= 0)
      return 0;
    usleep (20000);
  }
  return -1;
}

int
proc_stop (const char *pidfile, const char *match, int grace_ms)
{
  pid_t pid = proc_alive (pidfile, match);

  if (pid > 0) {
    kill (pid, SIGTERM);
    if (proc_wait_gone (pid, grace_ms) == -1) {
      kill (pid, SIGKILL);
      if (proc_wait_gone (pid, 5000) == -1) {
        log_error ("process %d (%s) does not die", (int) pid, pidfile);
        return -1;
      }
    }
  }
  unlink (pidfile);
  return 0;
}

/* Whether a socket bound to PATH listens, from the kernel's table of
 * this network namespace's Unix sockets: it does not connect, so a
 * server that takes one connection only is not disturbed. */
static bool
unix_listening (const char *path)
{
  CLEANUP_FCLOSE FILE *f = fopen ("/proc/net/unix", "re");
  CLEANUP_FREE char *line = NULL;
  size_t cap = 0;
  bool found = false;

  if (!f)
    return false;
  /* Num: RefCount Protocol Flags Type St Inode Path; the flag
   * __SO_ACCEPTCON (0x10000) marks a listening socket. */
  while (!found && getline (&line, &cap, f) > 0) {
    char *field[8], *p = line;
    size_t n = 0;
    line[strcspn (line, "\n")] = '\0';
    /* Seven fields separated by spaces, then the path (the rest). */
    while (n < 8 && *p) {
      p += strspn (p, " ");
      field[n++] = p;
      if (n < 8)
        p += strcspn (p, " ");
    }
    if (n < 8)
      continue;
    found = (strtoul (field[3], NULL, 16) & 0x10000) &&
            strcmp (field[7], path) == 0;
  }
  return found;
}

/* Whether a TCP socket listens on PORT, from one of the namespace's
 * tables (TABLE: /proc/net/tcp or tcp6): "N: LOCALADDR:PORT
 * REMADDR:PORT ST ...", in hex; state 0A is LISTEN. */
static bool
tcp_listening_in (const char *table, int port)
{
  CLEANUP_FCLOSE FILE *f = fopen (table, "re");
  char line[512];

  if (!f)
    return false;
  /* Terminates: end of file. */
  while (fgets (line, sizeof line, f)) {
    char *p = strchr (line, ':'), *end;
    if (!p || !(p = strchr (p + 1, ':')))
      continue;
    unsigned long lport = strtoul (p + 1, &end, 16);
    if (end == p + 1 || !(p = strchr (end, ':')) || !(p = strchr (p, ' ')))
      continue;
    unsigned long st = strtoul (p, &end, 16);
    if (end != p && (int) lport == port && st == 0x0A)
      return true;
  }
  return false;
}

static bool
tcp_listening (int port)
{
  return tcp_listening_in ("/proc/net/tcp", port) ||
         tcp_listening_in ("/proc/net/tcp6", port);
}

struct listener {
  const char *path;             /* a Unix socket, or */
  int port;                     /* a TCP port */
};

static bool
listening (const struct listener *l)
{
  struct stat st;

  if (!l->path)
    return tcp_listening (l->port);
  return stat (l->path, &st) == 0 && S_ISSOCK (st.st_mode) &&
         unix_listening (l->path);
}

static int
wait_listening (const struct listener *l, pid_t pid, int timeout_ms)
{
  int64_t deadline = clock_ms () + timeout_ms;

  /* Terminates: the socket listens, the process dies, or time runs
   * out. */
  while (!listening (l)) {
    if (clock_ms () >= deadline || (pid > 0 && !running (pid)))
      return -1;
    usleep (20000);
  }
  return 0;
}

int
proc_wait_socket (const char *path, pid_t pid, int timeout_ms)
{
  struct listener l = { .path = path };

  return wait_listening (&l, pid, timeout_ms);
}

int
proc_wait_port (int port, pid_t pid, int timeout_ms)
{
  struct listener l = { .port = port };

  return wait_listening (&l, pid, timeout_ms);
}

/* Does FILE hold NEEDLE in its first 64 KiB? */
static bool
log_says (const char *file, const char *needle)
{
  char buf[65536];
  ssize_t n;
  int fd = open (file, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return false;
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  return strstr (buf, needle) != NULL;
}

int
proc_wait_log (const char *file, const char *needle, pid_t pid,
               int timeout_ms)
{
  int64_t deadline = clock_ms () + timeout_ms;

  /* Terminates: the line comes, the process dies, or time runs out. */
  while (!log_says (file, needle)) {
    if (clock_ms () >= deadline || (pid > 0 && !running (pid)))
      return -1;
    usleep (20000);
  }
  return 0;
}

int
proc_run (char *const argv[], char *out, size_t outlen, int timeout_ms)
{
  int p[2], st;
  pid_t pid;
  size_t got = 0;
  int64_t deadline = clock_ms () + timeout_ms;

  if (pipe2 (p, O_CLOEXEC) == -1)
    return -1;
  pid = fork ();
  if (pid == -1) {
    close (p[0]);
    close (p[1]);
    return -1;
  }
  if (pid == 0) {
    int in = open ("/dev/null", O_RDONLY);
    if (in == -1 || dup2 (in, 0) == -1 || dup2 (p[1], 1) == -1 ||
        dup2 (p[1], 2) == -1)
      _exit (127);
    close_range (3, ~0U, 0);
    execvp (argv[0], argv);
    _exit (127);
  }
  close (p[1]);
  /* Terminates: EOF when the program exits, or the deadline. */
  for (;;) {
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    int64_t left = deadline - clock_ms ();
    char tmp[4096];
    if (left <= 0) {
      kill (pid, SIGKILL);
      break;
    }
    if (poll (&pf, 1, (int) left) <= 0)
      continue;
    ssize_t n = read (p[0], tmp, sizeof tmp);
    if (n <= 0)
      break;
    if (out && got + 1 < outlen) {
      size_t k = (size_t) n < outlen - 1 - got ? (size_t) n : outlen - 1 - got;
      memcpy (out + got, tmp, k);
      got += k;
    }
  }
  if (out && outlen)
    out[got] = '\0';
  close (p[0]);
  if (waitpid (pid, &st, 0) == -1 || !WIFEXITED (st))
    return -1;
  return WEXITSTATUS (st);
}

void
proc_log_tail (const char *file, int lines, char *buf, size_t len)
{
  FILE *f = fopen (file, "re");
  char *all = NULL;
  size_t n = 0;

  buf[0] = '\0';
  if (!f)
    return;
  if (getdelim (&all, &n, '\0', f) > 0) {
    size_t l = strlen (all);
    int seen = 0;
    while (l > 0 && (all[l - 1] == '\n' || all[l - 1] == '\r'))
      all[--l] = '\0';
    size_t i = l;
    while (i > 0) {
      if (all[i - 1] == '\n' && ++seen == lines)
        break;
      i--;
    }
    snprintf (buf, len, "%s", all + i);
    for (char *c = buf; *c; ++c)
      if (*c == '\n')
        *c = ' ';
  }
  free (all);
  fclose (f);
}
