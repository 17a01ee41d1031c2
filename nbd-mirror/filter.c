/* nbdkit-handoff-mirror-filter: a disk that can mirror itself.
 *
 *   nbdkit --filter=handoff-mirror PLUGIN ... control=SOCKET
 *          [chunk-size=64K] [request-size=512K] [max-inflight=32]
 *          [connections=N] [guest-connections=16] [tls-psk=FILE]
 *          [dest-timeout=30s] [reply-poll=US]
 *
 * With no migration every request passes straight through.  While a
 * mirror runs (started over the control socket, see mirror-proto.h),
 * guest writes, zeroes and trims go through mirror_write_begin/end,
 * and flushes reach the destinations too.  Reads and extents always
 * pass through: the source stays the truth until cutover.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "build-info.h"
#include "control.h"
#include "log.h"
#include "mirror.h"
#include "source.h"
#include "util.h"

static char *control_path;

static void
log_to_nbdkit (enum log_level level, const char *msg)
{
  if (level == LOG_LEVEL_ERROR || level == LOG_LEVEL_WARN)
    nbdkit_error ("%s", msg);
  else
    nbdkit_debug ("%s", msg);
}

static void
mirror_load (void)
{
  log_set_program ("handoff-mirror");
  log_set_level (LOG_LEVEL_INFO);
  log_set_callback (log_to_nbdkit);
  mirror_init ();
  long cpus = sysconf (_SC_NPROCESSORS_ONLN);

  mirror.cfg.chunk_size = 64 * 1024;
  mirror.cfg.request_size = 512 * 1024;
  mirror.cfg.max_inflight = 32;
  /* One connection (and worker) per two cores, 1 to 4: the copy is
   * bounded by memory copies, and more threads than cores only add
   * context switches (measured in bench/mirror.sh). */
  mirror.cfg.connections = cpus >= 8 ? 4 : cpus >= 4 ? (unsigned) cpus / 2 : 1;
  mirror.cfg.pool_size = 16;
  mirror.cfg.dest_timeout_ms = 30000;
  mirror.cfg.reply_poll_us = 50;
}

static void
mirror_unload (void)
{
  free (control_path);
}

static int
parse_pow2 (const char *key, const char *value, uint64_t min, uint64_t max,
            uint32_t *r)
{
  uint64_t v;
  char err[256];

  if (parse_size (value, &v, err, sizeof err) == -1) {
    nbdkit_error ("%s: %s", key, err);
    return -1;
  }
  if (v < min || v > max || (v & (v - 1)) != 0) {
    nbdkit_error ("%s: '%s' must be a power of two between %llu and %llu",
                  key, value, (unsigned long long) min,
                  (unsigned long long) max);
    return -1;
  }
  *r = (uint32_t) v;
  return 0;
}

/* An integer parameter between MIN and MAX; the message names KEY. */
static int
parse_count (const char *key, const char *value, uint64_t min, uint64_t max,
             unsigned *r)
{
  uint64_t v;
  char err[256];

  if (parse_uint (value, min, max, &v, err, sizeof err) == -1) {
    nbdkit_error ("%s: %s", key, err);
    return -1;
  }
  *r = (unsigned) v;
  return 0;
}

/* The filter's parameters carry the prefix "mirror-": plain names such
 * as tls-psk= and connections= belong to plugins (nbdkit-nbd-plugin
 * has both).  The plain names of earlier releases still work, with a
 * warning, for one release. */
static const char *const old_names[] = {
  "control", "chunk-size", "request-size", "max-inflight", "connections",
  "guest-connections", "tls-psk", "reply-poll", "dest-timeout", NULL,
};

static const char *
unprefixed (const char *key)
{
  if (strncmp (key, "mirror-", 7) == 0)
    return key + 7;
  for (const char *const *o = old_names; *o; ++o)
    if (strcmp (key, *o) == 0) {
      fprintf (stderr, "nbdkit: handoff-mirror: warning: %s= is deprecated "
               "and will be removed: use mirror-%s=\n", key, key);
      return key;
    }
  return NULL;
}

static int
mirror_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
               const char *key, const char *value)
{
  char err[256];
  uint64_t v;
  const char *name = key;

  key = unprefixed (name);
  if (!key)
    return next (nxdata, name, value);
  if (strcmp (key, "control") == 0) {
    if (!*value || strlen (value) > 107) {
      nbdkit_error ("%s: socket path must be 1 to 107 bytes", name);
      return -1;
    }
    free (control_path);
    control_path = strdup (value);
    return control_path ? 0 : -1;
  }
  if (strcmp (key, "chunk-size") == 0)
    return parse_pow2 (name, value, 4096, 64 << 20, &mirror.cfg.chunk_size);
  if (strcmp (key, "request-size") == 0)
    return parse_pow2 (name, value, 4096, 32 << 20, &mirror.cfg.request_size);
  if (strcmp (key, "max-inflight") == 0)
    return parse_count (name, value, 1, 1024, &mirror.cfg.max_inflight);
  if (strcmp (key, "connections") == 0)
    return parse_count (name, value, 1, MIRROR_MAX_CONNS,
                        &mirror.cfg.connections);
  if (strcmp (key, "guest-connections") == 0)
    return parse_count (name, value, 1, 64, &mirror.cfg.pool_size);
  if (strcmp (key, "tls-psk") == 0) {
    mirror.cfg.tls_psk = nbdkit_absolute_path (value);
    return mirror.cfg.tls_psk ? 0 : -1;
  }
  if (strcmp (key, "reply-poll") == 0)
    return parse_count (name, value, 0, 100000, &mirror.cfg.reply_poll_us);
  if (strcmp (key, "dest-timeout") == 0) {
    if (parse_duration_ms (value, &v, err, sizeof err) == -1 ||
        v < 100 || v > 3600000) {
      nbdkit_error ("%s: %s", name, v < 100 || v > 3600000
                    ? "must be between 100ms and 1h" : err);
      return -1;
    }
    mirror.cfg.dest_timeout_ms = (int) v;
    return 0;
  }
  return next (nxdata, name, value);
}

static int
mirror_config_complete (nbdkit_next_config_complete *next,
                        nbdkit_backend *nxdata)
{
  if (!control_path) {
    nbdkit_error ("handoff-mirror: mirror-control=SOCKET is required");
    return -1;
  }
  mirror.cfg.control = control_path;
  return next (nxdata);
}

#define mirror_config_help \
  "mirror-control=SOCKET  (required) Control socket for handoff mirror.\n" \
  "mirror-chunk-size=SIZE Copy-tracking granularity (default 64K).\n" \
  "mirror-request-size=SIZE Largest copy write (default 512K).\n" \
  "mirror-max-inflight=N  Copy requests in flight per connection (32).\n" \
  "mirror-connections=N   Copy connections per destination (cores/2, 1-4).\n" \
  "mirror-guest-connections=N Connections for mirrored guest writes (16).\n" \
  "mirror-tls-psk=FILE    Pre-shared key for nbds:// destinations.\n" \
  "mirror-dest-timeout=TIME Fail a destination silent this long (30s).\n" \
  "mirror-reply-poll=US   Poll this many microseconds for a mirrored\n" \
  "                       write's reply before sleeping (50; 0: at once).\n" \
  "(The same names without \"mirror-\" are deprecated aliases.)"

static int
mirror_get_ready (int thread_model)
{
  mirror.ctx_parallel = thread_model == NBDKIT_THREAD_MODEL_PARALLEL;
  return 0;
}

static int
mirror_after_fork (nbdkit_backend *backend)
{
  mirror.backend = backend;
  return control_start (control_path);
}

static void
mirror_cleanup (nbdkit_backend *backend)
{
  (void) backend;
  control_stop ();
  source_close (&mirror);
}

static int
mirror_pwrite (nbdkit_next *next, void *handle, const void *buf,
               uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  struct mirror_req *r;
  int ret;

  (void) handle;
  if (mirror_write_begin (MIRROR_OP_WRITE, buf, count, offset, flags,
                          &r) == -1) {
    *err = errno;
    nbdkit_error ("mirror: cannot track a write: %m");
    return -1;
  }
  ret = next->pwrite (next, buf, count, offset, flags, err);
  mirror_write_end (r, ret == 0);
  return ret;
}

static int
mirror_zero (nbdkit_next *next, void *handle, uint32_t count,
             uint64_t offset, uint32_t flags, int *err)
{
  struct mirror_req *r;
  int ret;

  (void) handle;
  if (mirror_write_begin (MIRROR_OP_ZERO, NULL, count, offset, flags,
                          &r) == -1) {
    *err = errno;
    nbdkit_error ("mirror: cannot track a zero: %m");
    return -1;
  }
  ret = next->zero (next, count, offset, flags, err);
  mirror_write_end (r, ret == 0);
  return ret;
}

/* A trim only advises; its result may differ between disks.  While a
 * mirror runs, trim as "zero, may punch a hole" on both sides so they
 * read back the same; if the plugin cannot zero, trim locally and copy
 * the range again. */
static int
mirror_trim (nbdkit_next *next, void *handle, uint32_t count,
             uint64_t offset, uint32_t flags, int *err)
{
  struct mirror_req *r;
  int ret;

  (void) handle;
  if (mirror_write_begin (MIRROR_OP_ZERO, NULL, count, offset, flags,
                          &r) == -1) {
    *err = errno;
    nbdkit_error ("mirror: cannot track a trim: %m");
    return -1;
  }
  if (!r)
    return next->trim (next, count, offset, flags, err);
  if (next->can_zero (next) > NBDKIT_ZERO_NONE) {
    ret = next->zero (next, count, offset,
                      NBDKIT_FLAG_MAY_TRIM | (flags & NBDKIT_FLAG_FUA), err);
    mirror_write_end (r, ret == 0);
  }
  else {
    ret = next->trim (next, count, offset, flags, err);
    mirror_write_end (r, false);
  }
  return ret;
}

static int
mirror_flush_cb (nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
  int ret;

  (void) handle;
  ret = next->flush (next, flags, err);
  if (ret == 0)
    mirror_flush ();
  return ret;
}

static struct nbdkit_filter filter = {
  .name = "handoff-mirror",
  .longname = "handoff mirror filter",
  /* nbdkit --version shows the nbdkit a filter is built for (nbdkit
   * requires it); handoff's own version is here, in --help. */
  .description = "handoff " HANDOFF_VERSION " (" HANDOFF_GIT_REV "): "
                 "mirrors guest writes to NBD destinations while copying",
  .load = mirror_load,
  .unload = mirror_unload,
  .config = mirror_config,
  .config_complete = mirror_config_complete,
  .config_help = mirror_config_help,
  .get_ready = mirror_get_ready,
  .after_fork = mirror_after_fork,
  .cleanup = mirror_cleanup,
  .pwrite = mirror_pwrite,
  .zero = mirror_zero,
  .trim = mirror_trim,
  .flush = mirror_flush_cb,
};

NBDKIT_REGISTER_FILTER (filter)
