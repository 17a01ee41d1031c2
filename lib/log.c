/* handoff: logging sinks.  See log.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "names.h"

enum log_level log_level_current = LOG_LEVEL_WARN;

static const char *program = "handoff";
static enum log_sink sink = LOG_SINK_STDERR;
static log_callback callback;

static const char *const level_names[] = {
  [LOG_LEVEL_ERROR] = "error",
  [LOG_LEVEL_WARN] = "warn",
  [LOG_LEVEL_INFO] = "info",
  [LOG_LEVEL_DEBUG] = "debug",
};

void
log_set_program (const char *name)
{
  program = name;
}

const char *
log_program (void)
{
  return program;
}

void
log_set_level (enum log_level level)
{
  log_level_current = level;
}

void
log_more_verbose (void)
{
  if (log_level_current < LOG_LEVEL_DEBUG)
    log_level_current++;
}

int
log_set_sink (enum log_sink s)
{
  if (s == LOG_SINK_SYSLOG)
    openlog (program, LOG_PID, LOG_DAEMON);
  sink = s;
  return 0;
}

void
log_set_callback (log_callback cb)
{
  callback = cb;
  sink = LOG_SINK_CALLBACK;
}

const char *
log_level_name (enum log_level level)
{
  if ((unsigned) level < sizeof level_names / sizeof level_names[0])
    return level_names[level];
  return "unknown";
}

int
log_level_from_name (const char *name, enum log_level *level_r)
{
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; ++i) {
    if (strcmp (name, level_names[i]) == 0) {
      *level_r = (enum log_level) i;
      return 0;
    }
  }
  return -1;
}

/* Write the whole buffer with one write(2) when possible, so lines from
 * several threads do not interleave. */
static void
write_all_stderr (const char *buf, size_t len)
{
  while (len > 0) {
    ssize_t r = write (STDERR_FILENO, buf, len);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    buf += r;
    len -= (size_t) r;
  }
}

static void
emit_json (enum log_level level, const char *msg)
{
  struct timespec ts;
  json_t *obj;
  char *s;

  clock_gettime (CLOCK_REALTIME, &ts);
  obj = json_pack ("{s:f, s:s, s:s, s:i, s:s}",
                   "time", (double) ts.tv_sec + ts.tv_nsec / 1e9,
                   "level", log_level_name (level),
                   "prog", program,
                   "pid", (int) getpid (),
                   "msg", msg);
  if (!obj)
    return;
  s = json_dumps (obj, JSON_COMPACT);
  json_decref (obj);
  if (!s)
    return;
  size_t n = strlen (s);
  char *line = malloc (n + 2);
  if (line) {
    memcpy (line, s, n);
    line[n] = '\n';
    write_all_stderr (line, n + 1);
    free (line);
  }
  free (s);
}

/* The last error this thread logged, for callers that must also
 * return the reason to a remote client. */
static __thread char last_error[512];

const char *
log_last_error (void)
{
  return last_error;
}

void
log_clear_last_error (void)
{
  last_error[0] = '\0';
}

void
log_vmsg (enum log_level level, const char *fmt, va_list ap)
{
  int saved_errno = errno;
  char msg[4096];
  char line[4200];
  int n;

  if (level > log_level_current && level != LOG_LEVEL_ERROR)
    goto out;

  /* glibc's vsnprintf understands %m using errno, which we restore
   * first in case the caller's arguments clobbered it. */
  errno = saved_errno;
  vsnprintf (msg, sizeof msg, fmt, ap);
  /* A peer's text may end up here: one line, valid UTF-8 (a JSON sink
   * would drop the message otherwise), no terminal escapes. */
  text_sanitize (msg);
  if (level == LOG_LEVEL_ERROR) {
    size_t len = strnlen (msg, sizeof last_error - 1);
    memcpy (last_error, msg, len);
    last_error[len] = '\0';
  }
  if (level > log_level_current)
    goto out;

  switch (sink) {
  case LOG_SINK_CALLBACK:
    if (callback) {
      callback (level, msg);
      break;
    }
    /* fall through */
  case LOG_SINK_STDERR:
    if (level == LOG_LEVEL_ERROR)
      n = snprintf (line, sizeof line, "%s: %s\n", program, msg);
    else
      n = snprintf (line, sizeof line, "%s: %s: %s\n",
                    program, log_level_name (level), msg);
    if (n > 0)
      write_all_stderr (line, (size_t) n < sizeof line ? (size_t) n
                        : sizeof line - 1);
    break;
  case LOG_SINK_SYSLOG: {
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    syslog (prio[level], "%s", msg);
    break;
  }
  case LOG_SINK_JSON:
    emit_json (level, msg);
    break;
  }

 out:
  errno = saved_errno;
}

void
log_msg (enum log_level level, const char *fmt, ...)
{
  int saved_errno = errno;
  va_list ap;

  va_start (ap, fmt);
  errno = saved_errno;
  log_vmsg (level, fmt, ap);
  va_end (ap);
  errno = saved_errno;
}
