/* handoff: progress output.  See progress.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "progress.h"

void
format_bytes (uint64_t n, char *buf, size_t len)
{
  static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB",
                                       "PiB", "EiB" };
  double v = (double) n;
  size_t u = 0;

  while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024;
    u++;
  }
  if (u == 0)
    snprintf (buf, len, "%llu B", (unsigned long long) n);
  else
    snprintf (buf, len, "%.1f %s", v, units[u]);
}

void
format_rate (double bps, char *buf, size_t len)
{
  char b[32];

  if (!(bps >= 0) || isinf (bps))
    bps = 0;
  format_bytes ((uint64_t) bps, b, sizeof b);
  snprintf (buf, len, "%s/s", b);
}

void
format_eta (double s, char *buf, size_t len)
{
  if (!(s >= 0) || isinf (s) || s > 359999) {
    snprintf (buf, len, "--:--");
    return;
  }
  unsigned t = (unsigned) (s + 0.5);
  if (t >= 3600)
    snprintf (buf, len, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf (buf, len, "%u:%02u", t / 60, t % 60);
}

void
format_bar (double fraction, int width, char *buf, size_t len)
{
  int fill;

  if (width < 1 || (size_t) width + 3 > len) {
    if (len)
      buf[0] = '\0';
    return;
  }
  if (!(fraction >= 0))
    fraction = 0;
  if (fraction > 1)
    fraction = 1;
  fill = (int) (fraction * width + 0.5);
  buf[0] = '[';
  for (int i = 0; i < width; ++i)
    buf[1 + i] = i < fill ? '#' : '.';
  buf[width + 1] = ']';
  buf[width + 2] = '\0';
}

/* The width of the terminal FD, or 0. */
static int
terminal_columns (int fd)
{
  struct winsize ws;

  if (ioctl (fd, TIOCGWINSZ, &ws) == -1 || ws.ws_col == 0)
    return 0;
  return ws.ws_col;
}

void
progress_line (FILE *fp, const char *label, uint64_t done, uint64_t total,
               double rate, bool final)
{
  bool tty = isatty (fileno (fp));
  double frac = total ? (double) done / (double) total : 1.0;
  char bar[64], d[32], t[32], r[32], eta[32], tail[160];
  int cols = tty ? terminal_columns (fileno (fp)) : 0;
  int width = 30;

  format_bytes (done, d, sizeof d);
  format_bytes (total, t, sizeof t);
  format_rate (rate, r, sizeof r);
  format_eta (rate > 0 && total >= done ? (double) (total - done) / rate : -1,
              eta, sizeof eta);
  snprintf (tail, sizeof tail, " %3d%%  %s / %s  %s  ETA %s",
            (int) (frac * 100 + 0.0001), d, t, r, eta);
  if (cols > 0) {
    /* The bar takes what the label and the figures leave of the
     * line (less one column: a full line would wrap on some
     * terminals); none below 5 columns. */
    int label_w = (int) strlen (label) < 8 ? 8 : (int) strlen (label);
    width = cols - 1 - label_w - 1 - (int) strlen (tail) - 2;
    if (width > 30)
      width = 30;
  }
  if (width >= 5)
    format_bar (frac, width, bar, sizeof bar);
  else
    bar[0] = '\0';
  fprintf (fp, "%s%-8s %s%s%s", tty ? "\r" : "", label, bar, tail,
           tty && !final ? "\033[K" : "\n");
  fflush (fp);
}
