/* handoffd: the counters and histograms of --metrics.  See metrics.h.
 *
 * Everything here counts from this daemon's start, as Prometheus
 * expects of a counter (a restart is a reset it knows how to read).
 * One lock; every update is a few additions.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

#define MAX_OUTCOMES 16

/* Upper bounds of the histograms' buckets, in seconds (+Inf implied). */
static const double duration_bounds[] = {
  1, 2, 5, 10, 30, 60, 120, 300, 600, 1800,
};
static const double downtime_bounds[] = {
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};
#define NDUR (sizeof duration_bounds / sizeof duration_bounds[0])
#define NDOWN (sizeof downtime_bounds / sizeof downtime_bounds[0])

struct histogram {
  const double *bounds;
  size_t n;
  unsigned long long buckets[16];       /* Not cumulative; +Inf last. */
  unsigned long long count;
  double sum;
};

struct outcome {
  char role[16];
  char outcome[24];
  unsigned long long n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct outcome outcomes[MAX_OUTCOMES] = {      /* lock */
  /* The usual ones are there from the start, at 0: a rate over a
   * series that appears only at its first event misses that event. */
  { "source", "done", 0 }, { "source", "rolled_back", 0 },
  { "source", "refused", 0 }, { "destination", "done", 0 },
  { "destination", "aborted", 0 },
};
static struct histogram duration_source = {           /* lock */
  .bounds = duration_bounds, .n = NDUR,
};
static struct histogram duration_destination = {      /* lock */
  .bounds = duration_bounds, .n = NDUR,
};
static struct histogram downtime = {                  /* lock */
  .bounds = downtime_bounds, .n = NDOWN,
};
/* Fleet mode: how long etcd took to answer each refresh of this
 * host's lease, the refreshes no member answered, and the fences. */
static struct histogram lease_refresh = {             /* lock */
  .bounds = downtime_bounds, .n = NDOWN,
};
static unsigned long long lease_refresh_failures;     /* lock */
static unsigned long long fences;                     /* lock */
static double bytes[3];                               /* lock */
static const char *const stream_names[3] = { "disk", "files", "ram" };

static void
observe (struct histogram *h, double v)
{
  size_t i = 0;

  while (i < h->n && v > h->bounds[i])
    i++;
  h->buckets[i]++;
  h->count++;
  h->sum += v;
}

void
metrics_migration_ended (const char *role, const char *outcome,
                         double seconds)
{
  struct outcome *slot = NULL;

  pthread_mutex_lock (&lock);
  for (size_t i = 0; i < MAX_OUTCOMES && !slot; ++i)
    if (!outcomes[i].role[0] ||
        (strcmp (outcomes[i].role, role) == 0 &&
         strcmp (outcomes[i].outcome, outcome) == 0))
      slot = &outcomes[i];
  if (slot) {
    if (!slot->role[0]) {
      snprintf (slot->role, sizeof slot->role, "%s", role);
      snprintf (slot->outcome, sizeof slot->outcome, "%s", outcome);
    }
    slot->n++;
  }
  if (seconds >= 0)
    observe (strcmp (role, "source") == 0 ? &duration_source
             : &duration_destination, seconds);
  pthread_mutex_unlock (&lock);
}

void
metrics_downtime (double seconds)
{
  pthread_mutex_lock (&lock);
  observe (&downtime, seconds);
  pthread_mutex_unlock (&lock);
}

void
metrics_bytes (enum metrics_stream stream, double n)
{
  if (n <= 0 || (unsigned) stream >= 3)
    return;
  pthread_mutex_lock (&lock);
  bytes[stream] += n;
  pthread_mutex_unlock (&lock);
}

void
metrics_lease_refresh (double seconds)
{
  pthread_mutex_lock (&lock);
  if (seconds < 0)
    lease_refresh_failures++;
  else
    observe (&lease_refresh, seconds);
  pthread_mutex_unlock (&lock);
}

void
metrics_fenced (void)
{
  pthread_mutex_lock (&lock);
  fences++;
  pthread_mutex_unlock (&lock);
}

static void
render_histogram (FILE *f, const char *name, const char *labels,
                  const struct histogram *h)
{
  unsigned long long cum = 0;

  for (size_t i = 0; i < h->n; ++i) {
    cum += h->buckets[i];
    fprintf (f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
             labels[0] ? "," : "", h->bounds[i], cum);
  }
  fprintf (f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
           labels[0] ? "," : "", h->count);
  fprintf (f, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
           labels[0] ? "}" : "", h->sum);
  fprintf (f, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
           labels[0] ? "}" : "", h->count);
}

void
metrics_render (FILE *f)
{
  pthread_mutex_lock (&lock);
  fputs ("# HELP handoff_migrations_total Migrations this host took part in "
         "that ended, by role and outcome.\n"
         "# TYPE handoff_migrations_total counter\n", f);
  for (size_t i = 0; i < MAX_OUTCOMES && outcomes[i].role[0]; ++i)
    fprintf (f, "handoff_migrations_total{role=\"%s\",outcome=\"%s\"} %llu\n",
             outcomes[i].role, outcomes[i].outcome, outcomes[i].n);
  fputs ("# HELP handoff_migration_duration_seconds From a migration's start "
         "to its end on this host, by role.\n"
         "# TYPE handoff_migration_duration_seconds histogram\n", f);
  render_histogram (f, "handoff_migration_duration_seconds",
                    "role=\"source\"", &duration_source);
  render_histogram (f, "handoff_migration_duration_seconds",
                    "role=\"destination\"", &duration_destination);
  fputs ("# HELP handoff_migration_downtime_seconds A live migration's "
         "blackout: paused here to resumed on the destination.\n"
         "# TYPE handoff_migration_downtime_seconds histogram\n", f);
  render_histogram (f, "handoff_migration_downtime_seconds", "", &downtime);
  fputs ("# HELP handoff_migration_bytes_total Bytes the migrations this "
         "host sent carried, by stream.\n"
         "# TYPE handoff_migration_bytes_total counter\n", f);
  for (size_t i = 0; i < 3; ++i)
    fprintf (f, "handoff_migration_bytes_total{stream=\"%s\"} %.0f\n",
             stream_names[i], bytes[i]);
  fputs ("# HELP handoff_cluster_lease_refresh_seconds How long etcd took "
         "to answer each refresh of this host's lease.\n"
         "# TYPE handoff_cluster_lease_refresh_seconds histogram\n", f);
  render_histogram (f, "handoff_cluster_lease_refresh_seconds", "",
                    &lease_refresh);
  fprintf (f, "# HELP handoff_cluster_lease_refresh_failures_total Refreshes "
           "of this host's lease no etcd member answered in time.\n"
           "# TYPE handoff_cluster_lease_refresh_failures_total counter\n"
           "handoff_cluster_lease_refresh_failures_total %llu\n"
           "# HELP handoff_cluster_fences_total Times this host paused its "
           "VMs because its lease could end.\n"
           "# TYPE handoff_cluster_fences_total counter\n"
           "handoff_cluster_fences_total %llu\n",
           lease_refresh_failures, fences);
  pthread_mutex_unlock (&lock);
}
