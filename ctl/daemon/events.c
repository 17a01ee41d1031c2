/* handoffd: management events.  See events.h. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "events.h"
#include "log.h"
#include "names.h"
#include "proc.h"

enum hold { HOLD_NONE, HOLD_QUEUE, HOLD_FROZEN };

struct held {
  char vm[65];
  enum hold hold;
  char moved_to[65];            /* After a migration away. */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct held held[64];    /* lock */

static struct held *
find_locked (const char *vm, bool create)
{
  struct held *free_slot = NULL;

  for (size_t i = 0; i < 64; ++i) {
    if (held[i].vm[0] && strcmp (held[i].vm, vm) == 0)
      return &held[i];
    if (!held[i].vm[0] && !free_slot)
      free_slot = &held[i];
  }
  if (create && free_slot) {
    memset (free_slot, 0, sizeof *free_slot);
    snprintf (free_slot->vm, sizeof free_slot->vm, "%s", vm);
    return free_slot;
  }
  return NULL;
}

static void
new_uid (char *buf, size_t len)
{
  unsigned char r[8];
  if (getrandom (r, sizeof r, 0) != (ssize_t) sizeof r)
    memset (r, 0, sizeof r);
  snprintf (buf, len, "%s-%lld-%02x%02x%02x%02x%02x%02x%02x%02x", hd.name,
            (long long) wall_ms (), r[0], r[1], r[2], r[3], r[4], r[5], r[6],
            r[7]);
}

/* The program of hook NAME: a file in the host's hook directory,
 * owned by this daemon's user and writable by nobody else.  Policies
 * travel with their VMs from host to host, so the name a policy gives
 * must not be able to pick any program of this host. */
static int
hook_program (const char *name, char *path, size_t len, char *err,
              size_t errlen)
{
  struct stat st;

  if (name_check_id ("hook", name, NAME_HOOK_MAX, err, errlen) == -1)
    return -1;
  snprintf (path, len, "%s/%s", hd.hook_dir, name);
  if (stat (path, &st) == -1) {
    snprintf (err, errlen, "hook %s: %s", path, strerror (errno));
    return -1;
  }
  if (!S_ISREG (st.st_mode) || st.st_uid != geteuid () ||
      (st.st_mode & (S_IWGRP | S_IWOTH))) {
    snprintf (err, errlen, "hook %s: not a regular file owned by uid %d "
              "and writable only by it", path, (int) geteuid ());
    return -1;
  }
  return 0;
}

/* Run the VM's hook for EV (an events row). */
static void
deliver (const char *vm, json_t *ev)
{
  const char *uid = json_string_value (json_object_get (ev, "uid"));
  const char *type = json_string_value (json_object_get (ev, "type"));
  json_t *objs = db_objects_get (vm);
  json_t *pol = json_loads (json_string_value (json_object_get (objs,
                                                                "policy"))
                            ? json_string_value (json_object_get (objs,
                                                                  "policy"))
                            : "{}", 0, NULL);
  json_t *hooks = json_object_get (pol, "hooks");
  const char *hook = json_string_value (json_object_get (hooks, type));
  char result[512] = "no hook";

  char program[PATH_MAX + 128], why[PATH_MAX + 256];

  if (!hook)
    hook = json_string_value (json_object_get (hooks, "*"));
  db_event_set_state (uid, "delivering", NULL);
  if (hook && hook_program (hook, program, sizeof program, why,
                            sizeof why) == -1) {
    log_error ("VM %s: event %s: %s", vm, type, why);
    snprintf (result, sizeof result, "%.500s", why);
    hook = NULL;
  }
  else if (hook) {
    char *payload = json_dumps (json_object_get (ev, "payload"),
                                JSON_COMPACT | JSON_ENCODE_ANY);
    char e_vm[128], e_type[128], e_id[192], e_time[64], e_host[128];
    char *e_payload = NULL;
    char out[384];
    int rc;
    if (asprintf (&e_payload, "HANDOFF_EVENT_PAYLOAD=%s",
                  payload ? payload : "null") < 0)
      e_payload = NULL;
    snprintf (e_vm, sizeof e_vm, "HANDOFF_VM=%s", vm);
    snprintf (e_type, sizeof e_type, "HANDOFF_EVENT=%s", type);
    snprintf (e_id, sizeof e_id, "HANDOFF_EVENT_ID=%s", uid);
    snprintf (e_time, sizeof e_time, "HANDOFF_EVENT_TIME=%" JSON_INTEGER_FORMAT,
              json_integer_value (json_object_get (ev, "posted")));
    snprintf (e_host, sizeof e_host, "HANDOFF_HOST=%s", hd.name);
    char *argv[] = {
      (char *) "env", e_vm, e_type, e_id, e_time, e_host,
      e_payload ? e_payload : (char *) "HANDOFF_EVENT_PAYLOAD=null",
      program, NULL,
    };
    rc = proc_run (argv, out, sizeof out, 60000);
    snprintf (result, sizeof result, "hook %s: %s%d%s%.300s", hook,
              rc < 0 ? "killed" : "exit ", rc < 0 ? 0 : rc,
              out[0] ? ": " : "", out);
    free (payload);
    free (e_payload);
  }
  db_event_set_state (uid, "delivered", result);
  log_info ("VM %s: event %s (%s) delivered: %s", vm, type, uid, result);
  json_decref (pol);
  json_decref (objs);
}

int
events_post (const char *vm, const char *type, json_t *payload,
             bool *queued_r, json_t **reply_r, char *err, size_t errlen)
{
  char uid[160], *text;
  struct held *h;
  json_t *row;
  int64_t now;
  bool queue;

  *reply_r = NULL;
  pthread_mutex_lock (&lock);
  /* Terminates: events_release wakes us. */
  while ((h = find_locked (vm, false)) && h->hold == HOLD_FROZEN)
    pthread_cond_wait (&cond, &lock);
  if (h && h->moved_to[0]) {
    snprintf (err, errlen, "VM %s has moved to %s", vm, h->moved_to);
    pthread_mutex_unlock (&lock);
    return -1;
  }
  row = db_vm_get (vm);
  if (!row) {
    snprintf (err, errlen, "no VM named '%s' here", vm);
    pthread_mutex_unlock (&lock);
    return -1;
  }
  json_decref (row);
  queue = h && h->hold == HOLD_QUEUE;
  new_uid (uid, sizeof uid);
  now = wall_ms ();
  text = json_dumps (payload ? payload : json_null (),
                     JSON_COMPACT | JSON_ENCODE_ANY);
  if (!text || db_event_add (uid, vm, type, text, now, "queued") == -1) {
    snprintf (err, errlen, "cannot store the event");
    free (text);
    pthread_mutex_unlock (&lock);
    return -1;
  }
  free (text);
  pthread_mutex_unlock (&lock);

  *queued_r = queue;
  /* Earlier events first: deliver everything queued, in order. */
  if (!queue)
    events_deliver_queued (vm);
  json_t *all = db_events (vm, NULL), *ev;
  size_t i;
  json_array_foreach (all, i, ev)
    if (strcmp (json_string_value (json_object_get (ev, "uid")), uid) == 0)
      *reply_r = json_incref (ev);
  json_decref (all);
  return 0;
}

void
events_hold (const char *vm)
{
  pthread_mutex_lock (&lock);
  struct held *h = find_locked (vm, true);
  if (h) {
    h->hold = HOLD_QUEUE;
    h->moved_to[0] = '\0';
  }
  pthread_mutex_unlock (&lock);
}

json_t *
events_freeze (const char *vm)
{
  pthread_mutex_lock (&lock);
  struct held *h = find_locked (vm, true);
  if (h)
    h->hold = HOLD_FROZEN;
  pthread_mutex_unlock (&lock);
  return db_events (vm, "queued");
}

void
events_release (const char *vm, const char *moved_to)
{
  pthread_mutex_lock (&lock);
  struct held *h = find_locked (vm, true);
  if (moved_to) {
    db_events_delete (vm);
    if (h) {
      h->hold = HOLD_NONE;
      snprintf (h->moved_to, sizeof h->moved_to, "%s", moved_to);
    }
  }
  else if (h)
    memset (h, 0, sizeof *h);
  pthread_cond_broadcast (&cond);
  pthread_mutex_unlock (&lock);
  if (!moved_to)
    events_deliver_queued (vm);
}

int
events_store_incoming (const char *vm, json_t *events)
{
  json_t *ev;
  size_t i;

  json_array_foreach (events, i, ev) {
    const char *uid = json_string_value (json_object_get (ev, "uid"));
    const char *type = json_string_value (json_object_get (ev, "type"));
    json_t *posted = json_object_get (ev, "posted");
    char *text;
    if (!uid || !type || !json_is_integer (posted) || strlen (uid) > 150 ||
        strlen (type) > 64)
      return -1;
    text = json_dumps (json_object_get (ev, "payload"),
                       JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text || db_event_add (uid, vm, type, text,
                               (int64_t) json_integer_value (posted),
                               "queued") == -1) {
      free (text);
      return -1;
    }
    free (text);
  }
  /* A VM that comes back to a host it left: its posts are welcome. */
  pthread_mutex_lock (&lock);
  struct held *h = find_locked (vm, false);
  if (h)
    memset (h, 0, sizeof *h);
  pthread_mutex_unlock (&lock);
  return 0;
}

/* One delivery at a time, so that two posts never run one event
 * twice and events run in posting order. */
static pthread_mutex_t deliver_lock = PTHREAD_MUTEX_INITIALIZER;

void
events_deliver_queued (const char *vm)
{
  pthread_mutex_lock (&deliver_lock);
  json_t *evs = db_events (vm, "queued"), *ev;
  size_t i;

  json_array_foreach (evs, i, ev)
    deliver (vm, ev);
  json_decref (evs);
  pthread_mutex_unlock (&deliver_lock);
}


/* The "migrated" event, after the held ones: the VM's hooks learn it
 * runs on another host (its host component ID changed). */
void
events_post_migrated (const char *vm, const char *from, const char *id)
{
  char err[256];
  bool queued;
  json_t *reply = NULL;
  json_t *payload = json_pack ("{s:s, s:s, s:s, s:s}", "from",
                               from && from[0] ? from : "unknown", "to",
                               hd.name, "migration", id, "host_id",
                               hd.host_id);

  if (events_post (vm, "migrated", payload, &queued, &reply, err,
                   sizeof err) == -1)
    log_warn ("VM %s: cannot post its 'migrated' event: %s", vm, err);
  json_decref (payload);
  json_decref (reply);
}
