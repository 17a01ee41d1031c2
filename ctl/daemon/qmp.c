/* handoffd: QMP client.  See qmp.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "qmp.h"
#include "sockets.h"

#define MAX_EVENTS 64
#define MAX_LINE (4u << 20)

struct qmp_event {
  char name[48];
  double time;
};

struct qmp {
  pthread_mutex_t lock;
  int fd;
  char *buf;                    /* Unparsed input. */
  size_t len, cap;
  struct qmp_event events[MAX_EVENTS];
  unsigned nevents, next_event;
};

static int
connect_unix (const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (path) >= sizeof sun.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  strcpy (sun.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1) {
    int e = errno;
    close (fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Read one JSON line, waiting until DEADLINE (mono ms).  NULL on
 * timeout or error (errno). */
static json_t *
read_message (struct qmp *q, int64_t deadline)
{
  /* Terminates: each pass consumes a line, reads more, or times out. */
  for (;;) {
    char *nl = q->len ? memchr (q->buf, '\n', q->len) : NULL;
    if (nl) {
      size_t n = (size_t) (nl - q->buf) + 1;
      json_t *j = json_loadb (q->buf, n, 0, NULL);
      memmove (q->buf, q->buf + n, q->len - n);
      q->len -= n;
      if (json_is_object (j))
        return j;
      json_decref (j);
      continue;                 /* Blank or broken line: skip it. */
    }
    int64_t left = deadline - clock_ms ();
    if (left <= 0) {
      errno = ETIMEDOUT;
      return NULL;
    }
    struct pollfd p = { .fd = q->fd, .events = POLLIN };
    int r = poll (&p, 1, (int) (left > 1000 ? 1000 : left));
    if (r == -1 && errno != EINTR)
      return NULL;
    if (r <= 0)
      continue;
    if (q->cap - q->len < 65536) {
      size_t ncap = q->cap ? q->cap * 2 : 131072;
      char *nb;
      if (ncap > MAX_LINE || !(nb = realloc (q->buf, ncap))) {
        errno = ENOMEM;
        return NULL;
      }
      q->buf = nb;
      q->cap = ncap;
    }
    ssize_t got = read (q->fd, q->buf + q->len, q->cap - q->len);
    if (got == 0) {
      errno = ECONNRESET;
      return NULL;
    }
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return NULL;
    }
    q->len += (size_t) got;
  }
}

static void
remember_event (struct qmp *q, json_t *ev)
{
  const char *name = json_string_value (json_object_get (ev, "event"));
  json_t *ts = json_object_get (ev, "timestamp");
  struct qmp_event *e;

  /* Each pass over RAM: nothing here waits for them, and a burst of
   * them must not push out the events that are waited for. */
  if (!name || strcmp (name, "MIGRATION_PASS") == 0)
    return;
  e = &q->events[q->next_event];
  q->next_event = (q->next_event + 1) % MAX_EVENTS;
  if (q->nevents < MAX_EVENTS)
    q->nevents++;
  snprintf (e->name, sizeof e->name, "%s", name);
  e->time = (double) json_integer_value (json_object_get (ts, "seconds")) +
    (double) json_integer_value (json_object_get (ts, "microseconds")) / 1e6;
  log_debug ("qmp event %s at %.6f", e->name, e->time);
}

static int
send_line (struct qmp *q, json_t *msg)
{
  char *s = json_dumps (msg, JSON_COMPACT);
  size_t n, off = 0;

  if (!s)
    return -1;
  n = strlen (s);
  s[n++] = '\n';                /* json_dumps' NUL becomes the newline. */
  /* Terminates: each write makes progress or fails. */
  while (off < n) {
    ssize_t w = send (q->fd, s + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      free (s);
      return -1;
    }
    off += (size_t) w;
  }
  free (s);
  return 0;
}

struct qmp *
qmp_connect (const char *path, int timeout_ms, char *err, size_t errlen)
{
  struct qmp *q = calloc (1, sizeof *q);
  int64_t deadline = clock_ms () + timeout_ms;
  json_t *greeting, *r;

  if (!q) {
    snprintf (err, errlen, "out of memory");
    return NULL;
  }
  pthread_mutex_init (&q->lock, NULL);
  /* Terminates: connected, or the deadline passes. */
  while ((q->fd = connect_unix (path)) == -1) {
    if (clock_ms () >= deadline || (errno != ENOENT && errno != ECONNREFUSED)) {
      snprintf (err, errlen, "QMP %s: %s", path, strerror (errno));
      free (q);
      return NULL;
    }
    usleep (50000);
  }
  greeting = read_message (q, deadline);
  if (!greeting || !json_object_get (greeting, "QMP")) {
    snprintf (err, errlen, "QMP %s: no greeting", path);
    json_decref (greeting);
    qmp_close (q);
    return NULL;
  }
  json_decref (greeting);
  r = qmp_exec (q, "qmp_capabilities", NULL,
                (int) (deadline - clock_ms () > 1000 ? deadline - clock_ms ()
                       : 1000), err, errlen);
  if (!r) {
    qmp_close (q);
    return NULL;
  }
  json_decref (r);
  return q;
}

void
qmp_close (struct qmp *q)
{
  if (!q)
    return;
  if (q->fd >= 0)
    close (q->fd);
  free (q->buf);
  pthread_mutex_destroy (&q->lock);
  free (q);
}

json_t *
qmp_exec (struct qmp *q, const char *cmd, json_t *args, int timeout_ms,
          char *err, size_t errlen)
{
  json_t *msg = json_pack ("{s:s}", "execute", cmd);
  json_t *result = NULL;
  int64_t deadline = clock_ms () + timeout_ms;

  if (args)
    json_object_set_new (msg, "arguments", args);
  pthread_mutex_lock (&q->lock);
  if (send_line (q, msg) == -1) {
    snprintf (err, errlen, "QMP %s: %s", cmd, strerror (errno));
    goto out;
  }
  /* Terminates: a reply arrives, or read_message times out or fails. */
  for (;;) {
    json_t *m = read_message (q, deadline);
    if (!m) {
      snprintf (err, errlen, "QMP %s: %s", cmd,
                errno == ETIMEDOUT ? "no reply in time" : strerror (errno));
      break;
    }
    if (json_object_get (m, "event")) {
      remember_event (q, m);
      json_decref (m);
      continue;
    }
    json_t *ret = json_object_get (m, "return");
    if (ret) {
      result = json_incref (ret);
      json_decref (m);
      break;
    }
    json_t *e = json_object_get (m, "error");
    snprintf (err, errlen, "QMP %s: %s", cmd,
              e ? json_string_value (json_object_get (e, "desc"))
              : "unexpected reply");
    json_decref (m);
    break;
  }
 out:
  pthread_mutex_unlock (&q->lock);
  json_decref (msg);
  return result;
}

static double
find_event_locked (struct qmp *q, const char *name)
{
  double t = 0;

  for (unsigned i = 0; i < q->nevents; ++i)
    if (strcmp (q->events[i].name, name) == 0 && q->events[i].time > t)
      t = q->events[i].time;
  return t;
}

double
qmp_event_time (struct qmp *q, const char *name)
{
  pthread_mutex_lock (&q->lock);
  double t = find_event_locked (q, name);
  pthread_mutex_unlock (&q->lock);
  return t;
}

double
qmp_wait_event (struct qmp *q, const char *name, int timeout_ms)
{
  int64_t deadline = clock_ms () + timeout_ms;
  double t;

  pthread_mutex_lock (&q->lock);
  /* Terminates: the event arrives, or the deadline passes. */
  while ((t = find_event_locked (q, name)) == 0) {
    json_t *m = read_message (q, deadline);
    if (!m)
      break;
    if (json_object_get (m, "event"))
      remember_event (q, m);
    json_decref (m);
  }
  pthread_mutex_unlock (&q->lock);
  return t;
}

void
qmp_forget_events (struct qmp *q)
{
  pthread_mutex_lock (&q->lock);
  q->nevents = q->next_event = 0;
  pthread_mutex_unlock (&q->lock);
}

int
qmp_run_state (struct qmp *q, char *buf, size_t len)
{
  char err[256];
  json_t *r = qmp_exec (q, "query-status", NULL, 5000, err, sizeof err);
  const char *s;

  if (!r)
    return -1;
  s = json_string_value (json_object_get (r, "status"));
  snprintf (buf, len, "%s", s ? s : "unknown");
  json_decref (r);
  return 0;
}
