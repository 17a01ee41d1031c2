/* handoffd: what --metrics serves (metrics.c keeps the counts,
 * metrics-http.c serves them with the gauges read at each scrape).
 * The counts start at 0 with the daemon. */
#ifndef HANDOFF_CTL_METRICS_H
#define HANDOFF_CTL_METRICS_H

#include <stddef.h>
#include <stdio.h>

enum metrics_stream { METRICS_DISK, METRICS_FILES, METRICS_RAM };

/* A migration ended on this host in ROLE (source, destination) with
 * OUTCOME (the journal's result), SECONDS after it began (<0: unknown). */
extern void metrics_migration_ended (const char *role, const char *outcome,
                                     double seconds);
/* A live migration's measured blackout. */
extern void metrics_downtime (double seconds);
/* N more bytes a migration from here carried on STREAM. */
extern void metrics_bytes (enum metrics_stream stream, double n);
/* Fleet mode: a refresh of this host's lease that etcd answered in
 * SECONDS, or (<0) that no member answered. */
extern void metrics_lease_refresh (double seconds);
/* Fleet mode: the fence fell (this host paused its VMs). */
extern void metrics_fenced (void);
/* The counters and histograms, in Prometheus' text format, to F. */
extern void metrics_render (FILE *f);

/* --metrics ADDR (metrics-http.c): serve /metrics there; HTTPS with
 * CERT and KEY (PEM files; both or neither), which an address other
 * than loopback requires.  -1 with err. */
extern int metrics_serve (const char *addr, const char *cert,
                          const char *key, char *err, size_t errlen);
extern void metrics_stop (void);

#endif /* HANDOFF_CTL_METRICS_H */
