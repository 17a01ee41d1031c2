/* handoffd: fleet mode's placement (--to auto[:N], evacuate): which
 * live members take a VM.
 *
 * A member's entry says how much memory it has free for VMs, as of its
 * last refresh (every quarter of the TTL).  Several migrations placed
 * from here within that time (an evacuation, or a script that starts
 * ten) would all read the same figures and pick the same host.  So
 * each placement holds the VM's memory against the hosts it picked
 * until its migration ends and the destination has had time to count
 * the VM in its own entry: half a TTL after the end, two refreshes.
 * Only this host's placements are held; another host's show up in the
 * entries a refresh later, and a destination short of room refuses at
 * admission anyway (policy.c): placement is a choice, not a guarantee.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"

#define MAX_HOLDS 64
#define MAX_CANDIDATES 64

struct hold {
  char vm[65];
  char host[65];
  json_int_t mib;
  int64_t until;                /* mono ms; 0: its migration still runs */
};

static pthread_mutex_t holds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hold holds[MAX_HOLDS];    /* holds_lock; vm "" is free */

/* MiB this host's placements hold on HOST now; expired holds freed. */
static json_int_t
held_on (const char *host)
{
  int64_t now = clock_ms ();
  json_int_t sum = 0;

  pthread_mutex_lock (&holds_lock);
  for (size_t i = 0; i < MAX_HOLDS; ++i) {
    struct hold *h = &holds[i];
    if (h->vm[0] && h->until && h->until <= now)
      h->vm[0] = '\0';
    if (h->vm[0] && strcmp (h->host, host) == 0)
      sum += h->mib;
  }
  pthread_mutex_unlock (&holds_lock);
  return sum;
}

/* Hold MIB of VM's on HOST (a full table: the oldest ended hold goes,
 * or none is kept: placement is then as good as the entries). */
static void
hold (const char *vm, const char *host, json_int_t mib)
{
  struct hold *slot = NULL;

  pthread_mutex_lock (&holds_lock);
  /* A free slot, else the ended hold that ends first. */
  for (size_t i = 0; i < MAX_HOLDS; ++i) {
    struct hold *h = &holds[i];
    if (!h->vm[0]) {
      slot = h;
      break;
    }
    if (h->until && (!slot || h->until < slot->until))
      slot = h;
  }
  if (slot) {
    snprintf (slot->vm, sizeof slot->vm, "%s", vm);
    snprintf (slot->host, sizeof slot->host, "%s", host);
    slot->mib = mib;
    slot->until = 0;
  }
  pthread_mutex_unlock (&holds_lock);
}

void
cluster_place_done (const char *vm)
{
  /* Two refreshes of the destination's entry from now. */
  int64_t until = clock_ms () + (int64_t) cluster_ttl_s () * 1000 / 2 + 1;

  if (!vm)
    return;
  pthread_mutex_lock (&holds_lock);
  for (size_t i = 0; i < MAX_HOLDS; ++i)
    if (holds[i].vm[0] && !holds[i].until && strcmp (holds[i].vm, vm) == 0)
      holds[i].until = until;
  pthread_mutex_unlock (&holds_lock);
}

static json_int_t
int_of (json_t *o, const char *key)
{
  return json_integer_value (json_object_get (o, key));
}

/* Sort order of placement: more room first, then RDMA, then fewer
 * VMs, then the name (the same entries always give the same choice). */
static int
by_room (const void *a, const void *b)
{
  json_t *x = *(json_t *const *) a, *y = *(json_t *const *) b;
  json_int_t mx = int_of (x, "room"), my = int_of (y, "room");
  bool rx = json_is_true (json_object_get (x, "rdma"));
  bool ry = json_is_true (json_object_get (y, "rdma"));

  if (mx != my)
    return mx > my ? -1 : 1;
  if (rx != ry)
    return (int) ry - (int) rx;
  if (int_of (x, "vms") != int_of (y, "vms"))
    return int_of (x, "vms") < int_of (y, "vms") ? -1 : 1;
  return strcmp (json_string_value (json_object_get (x, "name")),
                 json_string_value (json_object_get (y, "name")));
}

/* The members that could take NEED MiB: into FIT (at most MAX), each
 * with its "room" set; how many. */
static size_t
candidates (json_t *hosts, json_int_t need, json_t **fit, size_t max)
{
  json_t *h;
  size_t i, n = 0;

  json_array_foreach (hosts, i, h) {
    const char *name = json_string_value (json_object_get (h, "name"));
    if (!name || strcmp (name, hd.name) == 0 ||
        json_is_true (json_object_get (h, "draining")))
      continue;
    json_int_t room = int_of (h, "memory_free_mib") - held_on (name);
    /* A member without a peer address takes no VM; nor one whose name
     * the peer table would not accept. */
    if (room >= need && json_object_get (h, "uri") &&
        cluster_peer_uri (name) && n < max) {
      json_object_set_new (h, "room", json_integer (room));
      fit[n++] = h;
    }
  }
  return n;
}

int
cluster_place (const char *vm, unsigned n, char *buf, size_t len, char *err,
               size_t errlen)
{
  json_t *hosts, *fit[MAX_CANDIDATES], *row;
  json_int_t need;
  size_t i, nfit, used = 0;

  if (!cluster_enabled ())
    return set_error (err, errlen, "--to auto needs fleet mode "
                      "(handoffd --cluster)");
  row = db_vm_get (vm);
  if (!row)
    return set_error (err, errlen, "no VM named '%s' here", vm);
  need = int_of (json_object_get (row, "def"), "memory");
  json_decref (row);
  hosts = cluster_hosts (err, errlen);
  if (!hosts)
    return -1;
  nfit = candidates (hosts, need, fit, MAX_CANDIDATES);
  qsort (fit, nfit, sizeof (json_t *), by_room);
  if (nfit < n) {
    json_decref (hosts);
    return set_error (err, errlen, "--to auto:%u: %zu live member%s besides "
                      "this host (none draining) ha%s %lld MiB free for %s",
                      n, nfit, nfit == 1 ? "" : "s", nfit == 1 ? "s" : "ve",
                      (long long) need, vm);
  }
  buf[0] = '\0';
  for (i = 0; i < n; ++i) {
    const char *name = json_string_value (json_object_get (fit[i], "name"));
    int w = snprintf (buf + used, len - used, "%s%s", i ? "," : "", name);
    if (w < 0 || (size_t) w >= len - used) {
      json_decref (hosts);
      return set_error (err, errlen, "--to auto:%u: the list is too long", n);
    }
    used += (size_t) w;
  }
  /* Every destination holds a copy until a winner is decided. */
  for (i = 0; i < n; ++i)
    hold (vm, json_string_value (json_object_get (fit[i], "name")), need);
  json_decref (hosts);
  return 0;
}
