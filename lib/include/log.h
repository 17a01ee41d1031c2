/* handoff: logging.
 *
 * One sink per process, chosen once at start-up: stderr (human),
 * syslog, JSON lines on stderr, or a callback (the nbdkit filter routes
 * messages to nbdkit_error / nbdkit_debug).  Messages read
 * "prog: context: what: reason".  Every function preserves errno and
 * accepts %m.  The level test sits in the macro so a dropped debug
 * message costs one comparison.
 */
#ifndef HANDOFF_LOG_H
#define HANDOFF_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
  LOG_LEVEL_ERROR = 0,
  LOG_LEVEL_WARN = 1,
  LOG_LEVEL_INFO = 2,
  LOG_LEVEL_DEBUG = 3,
};

enum log_sink {
  LOG_SINK_STDERR,
  LOG_SINK_SYSLOG,
  LOG_SINK_JSON,
  LOG_SINK_CALLBACK,
};

typedef void (*log_callback) (enum log_level level, const char *msg);

extern enum log_level log_level_current;

/* Name printed before every message ("handoff", "handoffd", ...). */
extern void log_set_program (const char *name);
extern const char *log_program (void);
extern void log_set_level (enum log_level level);
/* Raise verbosity by one level (each -v). */
extern void log_more_verbose (void);
extern int log_set_sink (enum log_sink sink);
extern void log_set_callback (log_callback cb);
/* Parse "error|warn|info|debug"; returns -1 if unknown. */
extern int log_level_from_name (const char *name, enum log_level *level_r);
extern const char *log_level_name (enum log_level level);

extern void log_msg (enum log_level level, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
extern void log_vmsg (enum log_level level, const char *fmt, va_list ap)
  __attribute__ ((format (printf, 2, 0)));

/* The text of the last error logged by the calling thread ("" if none
 * since log_clear_last_error). */
extern const char *log_last_error (void);
extern void log_clear_last_error (void);

#define log_error(fmt, ...) log_msg (LOG_LEVEL_ERROR, fmt, ##__VA_ARGS__)
#define log_warn(fmt, ...)                                              \
  do {                                                                  \
    if (log_level_current >= LOG_LEVEL_WARN)                            \
      log_msg (LOG_LEVEL_WARN, fmt, ##__VA_ARGS__);                     \
  } while (0)
#define log_info(fmt, ...)                                              \
  do {                                                                  \
    if (log_level_current >= LOG_LEVEL_INFO)                            \
      log_msg (LOG_LEVEL_INFO, fmt, ##__VA_ARGS__);                     \
  } while (0)
#define log_debug(fmt, ...)                                             \
  do {                                                                  \
    if (log_level_current >= LOG_LEVEL_DEBUG)                           \
      log_msg (LOG_LEVEL_DEBUG, fmt, ##__VA_ARGS__);                    \
  } while (0)

#endif /* HANDOFF_LOG_H */
