/* handoff: JSON control server.  See ctlserver.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "cleanup.h"
#include "ctlserver.h"
#include "jsonutil.h"
#include "log.h"
#include "uri.h"

#define MAX_CLIENTS 32
/* How long ctlserver_stop lets requests being answered finish. */
#define STOP_REPLY_MS 2000

struct ctlserver {
  struct ctlserver_config cfg;
  char *path;
  struct chan_listener *listener;
  pthread_t thread;
  volatile bool quit;
  int wake_fd;                  /* eventfd: ctlserver_stop wakes the
                                   accept thread out of its poll. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct channel *clients[MAX_CLIENTS];       /* lock */
  unsigned answering;           /* lock: requests of the plain handler
                                   (cfg.handle) being answered */
  unsigned nclients;                          /* lock */
};

struct client {
  struct ctlserver *s;
  struct channel *c;
};

json_t *
ctl_error_reply (const char *code, const char *msg)
{
  json_t *r = msg_error ("%s", msg);

  if (code)
    json_object_set_new (r, "code", json_string (code));
  return r;
}

static void
forget_client (struct ctlserver *s, struct channel *c)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
  for (unsigned i = 0; i < MAX_CLIENTS; ++i)
    if (s->clients[i] == c)
      s->clients[i] = NULL;
  s->nclients--;
  pthread_cond_broadcast (&s->cond);
}

/* One more, or one fewer, request being answered. */
static void
count_answering (struct ctlserver *s, int delta)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
  s->answering += (unsigned) delta;
  pthread_cond_broadcast (&s->cond);
}

static void *
client_main (void *arg)
{
  struct client *cl = arg;
  struct ctlserver *s = cl->s;
  struct channel *c = cl->c;

  free (cl);
  /* Terminates: at end of stream, on a channel error, or at shutdown. */
  while (!s->quit) {
    bool eof, counted = false;
    json_t *req = chan_recv_json (c, -1, &eof), *reply;

    if (!req) {
      if (!eof && !s->quit) {
        char why[256];
        snprintf (why, sizeof why, "malformed request%s%s",
                  errno == EPROTO ? ": " : "",
                  errno == EPROTO ? chan_bad_json (c) : "");
        json_t *e = ctl_error_reply ("bad_request", why);
        chan_send_json (c, e);
        json_decref (e);
      }
      break;
    }
    if (s->cfg.handle_chan) {
      reply = s->cfg.handle_chan (req, c, s->cfg.opaque);
      json_decref (req);
      if (!reply)
        continue;
    }
    else {
      /* A request that stops the server (the share's "abort") still
       * gets its reply: ctlserver_stop waits for it. */
      count_answering (s, 1);
      counted = true;
      reply = s->cfg.handle (req, s->cfg.opaque);
      json_decref (req);
      if (!reply)
        reply = ctl_error_reply ("failed", "request failed");
    }
    int r = chan_send_json (c, reply);
    json_decref (reply);
    if (counted)
      count_answering (s, -1);
    if (r == -1)
      break;
  }
  forget_client (s, c);
  chan_close (c);
  return NULL;
}

static void
add_client (struct ctlserver *s, struct channel *c)
{
  struct client *cl = malloc (sizeof *cl);
  pthread_attr_t a;
  pthread_t t;
  int e;

  pthread_mutex_lock (&s->lock);
  if (!cl || s->nclients >= MAX_CLIENTS) {
    pthread_mutex_unlock (&s->lock);
    log_warn ("%s: too many control clients, refusing one", s->path);
    free (cl);
    chan_close (c);
    return;
  }
  for (unsigned i = 0; i < MAX_CLIENTS; ++i)
    if (!s->clients[i]) {
      s->clients[i] = c;
      break;
    }
  s->nclients++;
  pthread_mutex_unlock (&s->lock);
  cl->s = s;
  cl->c = c;
  pthread_attr_init (&a);
  pthread_attr_setdetachstate (&a, PTHREAD_CREATE_DETACHED);
  e = pthread_create (&t, &a, client_main, cl);
  pthread_attr_destroy (&a);
  if (e != 0) {
    errno = e;
    log_error ("%s: cannot start a client thread: %m", s->path);
    free (cl);
    forget_client (s, c);
    chan_close (c);
  }
}

static void *
accept_main (void *arg)
{
  struct ctlserver *s = arg;

  if (s->cfg.thread_start)
    s->cfg.thread_start (s->cfg.opaque);
  /* Terminates: ctlserver_stop sets quit and wakes us.  The poll
   * still ends once a second, for the tick. */
  while (!s->quit) {
    struct pollfd pfd[2] = {
      { .fd = chan_listener_fd (s->listener), .events = POLLIN },
      { .fd = s->wake_fd, .events = POLLIN },
    };
    int r = poll (pfd, 2, 1000);

    if (s->cfg.tick)
      s->cfg.tick (s->cfg.opaque);
    if (r > 0 && (pfd[0].revents & POLLIN) && !s->quit) {
      struct channel *c = chan_accept (s->listener, 0);
      if (c)
        add_client (s, c);
    }
  }
  return NULL;
}

struct ctlserver *
ctlserver_start (const struct ctlserver_config *cfg)
{
  struct ctlserver *s = calloc (1, sizeof *s);
  struct chan_config cc = {
    .service = cfg->service, .version_min = (uint16_t) cfg->version,
    .version_max = (uint16_t) cfg->version, .timeout_ms = 10000,
    .unix_mode = 0600, .psk_file = cfg->psk_file,
  };
  char uri[4200];
  int e;

  if (!s)
    return NULL;
  s->cfg = *cfg;
  s->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wake_fd == -1) {
    log_error ("cannot make the control thread's wake-up: %m");
    free (s);
    return NULL;
  }
  s->path = strdup (cfg->uri ? cfg->uri : cfg->path);
  pthread_mutex_init (&s->lock, NULL);
  pthread_cond_init (&s->cond, NULL);
  if (cfg->uri)
    snprintf (uri, sizeof uri, "%s", cfg->uri);
  else
    uri_unix (cfg->path, uri, sizeof uri);
  s->listener = s->path ? chan_listen (uri, &cc) : NULL;
  if (!s->listener)
    goto error;
  e = pthread_create (&s->thread, NULL, accept_main, s);
  if (e != 0) {
    errno = e;
    log_error ("%s: cannot start the control thread: %m", s->path);
    goto error;
  }
  return s;

 error:
  chan_listener_close (s->listener);
  close (s->wake_fd);
  free (s->path);
  free (s);
  return NULL;
}

void
ctlserver_stop (struct ctlserver *s)
{
  if (!s)
    return;
  s->quit = true;
  if (eventfd_write (s->wake_fd, 1) == -1)
    log_debug ("%s: waking the control thread: %m", s->path);
  pthread_join (s->thread, NULL);
  close (s->wake_fd);
  pthread_mutex_lock (&s->lock);
  /* Replies already on their way go out first, for a while: the
   * client that asked for what stops us must learn it was done. */
  struct timespec until;
  clock_gettime (CLOCK_REALTIME, &until);
  until.tv_sec += STOP_REPLY_MS / 1000;
  /* Terminates: each answer ends, or the time is up. */
  while (s->answering > 0 &&
         pthread_cond_timedwait (&s->cond, &s->lock, &until) == 0)
    ;
  for (unsigned i = 0; i < MAX_CLIENTS; ++i)
    if (s->clients[i])
      chan_shutdown (s->clients[i]);
  pthread_mutex_unlock (&s->lock);
  if (s->cfg.stopping)
    s->cfg.stopping (s->cfg.opaque);
  pthread_mutex_lock (&s->lock);
  /* Terminates: each client thread notices its shut channel. */
  while (s->nclients > 0)
    pthread_cond_wait (&s->cond, &s->lock);
  pthread_mutex_unlock (&s->lock);
  chan_listener_close (s->listener);
  free (s->path);
  free (s);
}
