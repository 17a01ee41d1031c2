/* handoffd: the source's view of its streams (source-streams.h): the
 * helpers' control sockets, a progress sample of every stream, and
 * which destinations each disk's mirror still reaches.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "channel-proto.h"
#include "clock.h"
#include "exitcodes.h"
#include "record.h"
#include "source-dests.h"
#include "source-helpers.h"
#include "source-mirror.h"
#include "source-share.h"
#include "source-streams.h"
#include "vm.h"

static double
num (json_t *o, const char *key)
{
  return json_number_value (json_object_get (o, key));
}

/* What one progress sample adds up. */
struct sample {
  json_t *streams;              /* One object per stream. */
  double remaining, rate, dirty;        /* Over every stream. */
  bool storage_ready;           /* Disks and files, to every destination. */
  /* Per destination: its disks. */
  double left[MAX_DESTS], sent[MAX_DESTS];
  bool stored[MAX_DESTS];
  /* What reaches every destination in one stream: files and RAM. */
  double shared_left, shared_rate;
  bool shared_stored, ram_copied;
};

/* Add disk stream PER_SLOT (a mirror's "destinations") to each alive
 * destination's part of S. */
static void
sample_disk_dests (struct migration *m, json_t *per_slot, struct sample *s)
{
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = source_alive_dest (m, i);
    json_t *r = d && d->slot >= 0
      ? json_array_get (per_slot, (size_t) d->slot) : NULL;
    const char *state = json_string_value (json_object_get (r, "state"));

    if (!d)
      continue;
    if (!state) {
      s->stored[i] = false;
      continue;
    }
    s->left[i] += num (r, "remaining") + num (r, "dirtied");
    s->sent[i] += num (r, "sent");
    if (strcmp (state, "ready") != 0 && strcmp (state, "completed") != 0)
      s->stored[i] = false;
  }
}

/* Disk I's mirror into S: 0, or -1 (err) if it failed. */
static int
sample_disk (struct migration *m, size_t i, struct sample *s, int *rc,
             char *err, size_t errlen)
{
  char name[32];
  json_t *st = source_mirror_call (m, i, json_pack ("{s:s}", "op", "status"),
                                   5000, err, errlen);
  const char *state = st ? json_string_value (json_object_get (st, "state"))
    : NULL;

  snprintf (name, sizeof name, "disk%zu", i);
  if (!st || !state || strcmp (state, "failed") == 0 ||
      strcmp (state, "cancelled") == 0) {
    if (st)
      snprintf (err, errlen, "%s: %s", name,
                json_string_value (json_object_get (st, "error")));
    json_decref (st);
    return -1;
  }
  if (source_check_mirror_dests (m, i, st, rc, err, errlen) == -1) {
    json_decref (st);
    return -1;
  }
  if (strcmp (state, "ready") != 0)
    s->storage_ready = false;
  sample_disk_dests (m, json_object_get (st, "destinations"), s);
  json_array_append_new (s->streams, json_pack (
    "{s:s, s:s, s:f, s:f, s:f}", "name", name, "state", state,
    "done", num (st, "copied"), "total", num (st, "size"),
    "rate", num (st, "copy_rate")));
  s->remaining += num (st, "remaining") + num (st, "dirtied");
  s->rate += num (st, "copy_rate");
  s->dirty += num (st, "write_rate");
  json_decref (st);
  return 0;
}

/* The share into S: 0, or -1 (err) if it failed. */
static int
sample_share (struct migration *m, struct sample *s, int *rc, char *err,
              size_t errlen)
{
  json_t *st = source_share_call (m, json_pack ("{s:s}", "op", "status"),
                                  5000, err, errlen);
  const char *state = st ? json_string_value (json_object_get (st, "state"))
    : NULL;
  int rv = 0;

  if (!st || !state || strcmp (state, "failed") == 0 ||
      strcmp (state, "aborted") == 0) {
    if (st)
      snprintf (err, errlen, "files: %s",
                json_string_value (json_object_get (st, "error")));
    rv = -1;
  }
  else if (source_check_share_dests (m, st, rc, err, errlen) == -1)
    rv = -1;
  else {
    double el = num (st, "elapsed");
    if (strcmp (state, "ready") != 0)
      s->storage_ready = s->shared_stored = false;
    s->shared_rate = el > 0 ? num (st, "bytes_copied") / el : 0.0;
    m->files_sent = num (st, "bytes_copied");
    json_array_append_new (s->streams, json_pack (
      "{s:s, s:s, s:f, s:f, s:f}", "name", "files", "state", state,
      "done", num (st, "bytes_copied"), "total", num (st, "bytes"),
      "rate", s->shared_rate));
    s->shared_left = num (st, "bytes") - num (st, "bytes_copied");
    s->remaining += s->shared_left;
  }
  json_decref (st);
  return rv;
}

/* QEMU's query-migrate RAM into S; QEMU's predicted downtime, or -1. */
static double
sample_ram (struct migration *m, json_t *ram, struct sample *s)
{
  json_t *r = json_object_get (ram, "ram");
  double total = num (r, "total"), done = num (r, "transferred");
  double bps = num (r, "mbps") * 1e6 / 8;
  double page = num (r, "page-size") > 0 ? num (r, "page-size") : 4096;

  json_array_append_new (s->streams, json_pack (
    "{s:s, s:s, s:f, s:f, s:f}", "name", "ram", "state",
    json_string_value (json_object_get (ram, "status")),
    "done", done, "total", total > done ? total : done, "rate", bps));
  s->remaining += num (r, "remaining");
  s->rate += bps;
  s->dirty += num (r, "dirty-pages-rate") * page;
  /* The relay tees one stream: every destination is where QEMU is
   * (one that falls behind is dropped). */
  s->shared_left += num (r, "remaining");
  s->shared_rate += bps;
  /* Past QEMU's first pass over RAM. */
  s->ram_copied = num (r, "dirty-sync-count") >= 2;
  m->dirty_syncs = (uint64_t) num (r, "dirty-sync-count");
  if (!json_object_get (ram, "expected-downtime"))
    return -1;
  return m->sync_downtime_ms = num (ram, "expected-downtime");
}

/* Each alive destination's own progress (struct dest), from S. */
static void
dest_progress (struct migration *m, const struct sample *s)
{
  int64_t now = clock_ms ();

  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = source_alive_dest (m, i);
    if (!d)
      continue;
    double dt = (double) (now - d->sampled_at) / 1000.0;
    double disk_rate = d->sampled_at && dt > 0
      ? (s->sent[i] - d->disk_sent) / dt : 0;
    /* Smoothed as the mirror smooths its own: one slow second must
     * not swing the decision. */
    d->disk_rate = d->sampled_at ? 0.5 * d->disk_rate + 0.5 * disk_rate
      : disk_rate;
    pthread_mutex_lock (&m->lock);
    d->left = s->left[i] + s->shared_left;
    d->rate = d->disk_rate + s->shared_rate;
    d->stored = s->stored[i] && s->shared_stored;
    d->copied = d->stored && s->ram_copied;
    pthread_mutex_unlock (&m->lock);
    d->disk_sent = s->sent[i];
    d->sampled_at = now;
  }
}

/* One progress sample: every stream, and the remaining state R and
 * rates B (transfer) and W (dirtying) of DESIGN.md §4.  Returns -1
 * (err) if a stream failed. */
int
source_sample (struct migration *m, json_t *ram, bool *storage_ready, int *rc,
               char *err, size_t errlen)
{
  struct sample s = { .streams = json_array (), .storage_ready = true,
                      .shared_stored = true };
  int rv = 0;

  for (size_t i = 0; i < m->ndests; ++i)
    s.stored[i] = true;
  for (size_t i = 0; i < m->ndisks && rv == 0; ++i)
    rv = sample_disk (m, i, &s, rc, err, errlen);
  if (rv == 0 && m->has_dir)
    rv = sample_share (m, &s, rc, err, errlen);
  double predicted = -1;
  m->sync_downtime_ms = -1;
  if (ram)
    predicted = sample_ram (m, ram, &s);
  if (s.rate > 0) {
    double est = s.remaining / s.rate * 1000.0;
    if (predicted < 0 || est > predicted)
      predicted = est;
  }
  /* The whole migration's ETA, to the cutover: what is left of every
   * stream (all of RAM while it has not started) at the rate the
   * streams make headway against the guest's writes; -1 while nothing
   * moves or nothing converges. */
  double left = s.remaining, eta = -1;
  if (!ram && strcmp (m->mode, "offline") != 0)
    left += (double) json_integer_value (json_object_get (m->def, "memory"))
      * 1048576.0;
  if (s.rate > s.dirty)
    eta = left / (s.rate - s.dirty);
  m->remaining = s.remaining;
  m->rate = s.rate;
  m->dirty_rate = s.dirty;
  *storage_ready = s.storage_ready;
  if (rv == 0)
    dest_progress (m, &s);
  record_emit (m, json_pack ("{s:s, s:s, s:o, s:f, s:f, s:f, s:f, s:f}",
                      "event", "progress", "phase", m->phase,
                      "streams", s.streams, "remaining", s.remaining,
                      "rate", s.rate, "dirty_rate", s.dirty,
                      "predicted_downtime_ms", predicted, "eta_s", eta));
  return rv;
}

/* The share of the VM's directory, to every destination still in the
 * migration at once, each with its own key, in slot order (so the
 * share's receivers[] line up with the mirrors' destinations[]). */
int
source_share_start (struct migration *m, uint64_t copy_cap, int *rc,
                    char *err, size_t errlen)
{
  json_t *to = json_array (), *psk = json_array ();

  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = source_alive_dest (m, i);
    if (!d)
      continue;
    json_array_append (to, json_object_get (d->endpoints, "share"));
    json_array_append_new (psk, json_string (d->psk));
  }
  json_t *r = source_share_call (m, json_pack ("{s:s, s:o, s:o, s:I}",
                                               "op", "start", "to", to,
                                               "psk", psk, "copy_rate_limit",
                                               (json_int_t) copy_cap),
                                 /* Connecting (an I/O timeout at most
                                  * for one that cannot be reached),
                                  * then the scan of the tree. */
                                 hd.io_timeout_ms * 2 + 5000, err, errlen);
  if (!r)
    return -1;
  /* One that could not be reached is out from the start. */
  int rv = source_check_share_dests (m, r, rc, err, errlen);
  json_decref (r);
  return rv;
}

/* A stream's per-destination report PER_SLOT (an array in slot order)
 * names a destination in one of the states BAD: with several, that one
 * is lost ("WHAT: its error") and the others go on.  -1 (err, *RC)
 * when it was the last. */
static int
drop_reported_dests (struct migration *m, json_t *per_slot,
                     const char *const *bad, const char *what, int *rc,
                     char *err, size_t errlen)
{
  if (m->ndests == 1)
    return 0;
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = source_alive_dest (m, i);
    if (!d || d->slot < 0)
      continue;
    json_t *r = json_array_get (per_slot, (size_t) d->slot);
    const char *state = json_string_value (json_object_get (r, "state"));
    for (const char *const *b = bad; state && *b; ++b) {
      if (strcmp (state, *b) != 0)
        continue;
      char why[1024];
      snprintf (why, sizeof why, "%s: %s", what,
                json_string_value (json_object_get (r, "error")));
      if (source_drop_dest (m, i, "lost", why, RC_ROLLED_BACK, rc, err,
                            errlen) == -1)
        return -1;
      break;
    }
  }
  return 0;
}

/* The share reports destination D's receiver lost (one of several: it
 * goes on with the others): D is lost. */
int
source_check_share_dests (struct migration *m, json_t *st, int *rc,
                          char *err, size_t errlen)
{
  static const char *const bad[] = { "lost", NULL };

  return drop_reported_dests (m, json_object_get (st, "receivers"), bad,
                              "files", rc, err, errlen);
}

/* The mirrors of every disk report destination D's copy failed (one of
 * several: the mirror goes on with the others): D is lost. */
int
source_check_mirror_dests (struct migration *m, size_t disk, json_t *st,
                           int *rc, char *err, size_t errlen)
{
  static const char *const bad[] = { "failed", "cancelled", NULL };
  char what[32];

  snprintf (what, sizeof what, "disk%zu", disk);
  return drop_reported_dests (m, json_object_get (st, "destinations"), bad,
                              what, rc, err, errlen);
}

/* The relay QEMU's stream goes through: to the destination, or teed
 * to each of several (each with its own key; one that falls a whole
 * buffer behind is dropped rather than slowing the others). */
