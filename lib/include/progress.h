/* handoff: human progress output (bars, rates, ETAs, sizes). */
#ifndef HANDOFF_PROGRESS_H
#define HANDOFF_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "1.5 GiB", "512 B". */
extern void format_bytes (uint64_t n, char *buf, size_t len);
/* "120.3 MiB/s". */
extern void format_rate (double bytes_per_s, char *buf, size_t len);
/* "1:05:03", "2:07", "0:04"; "--:--" when unknown (<0). */
extern void format_eta (double seconds, char *buf, size_t len);
/* "[#####.....]" WIDTH characters between the brackets. */
extern void format_bar (double fraction, int width, char *buf, size_t len);

/* One status line: "LABEL [####....]  42%  1.2 GiB/2.0 GiB  300 MiB/s
 * ETA 0:03".  On a terminal it rewrites itself (\r); elsewhere each
 * call prints a line. */
extern void progress_line (FILE *fp, const char *label, uint64_t done,
                           uint64_t total, double rate, bool final);

#endif /* HANDOFF_PROGRESS_H */
