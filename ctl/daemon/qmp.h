/* handoffd: a QMP client (QEMU's JSON machine protocol on a unix
 * socket).
 *
 * One connection per VM, shared by the threads that drive it: each call
 * takes the connection's lock.  Events that arrive while waiting for a
 * reply are kept (the last 64) with their QEMU timestamps, so the
 * migration can ask when the guest was stopped or resumed.
 */
#ifndef HANDOFF_CTL_QMP_H
#define HANDOFF_CTL_QMP_H

#include <stddef.h>

#include <jansson.h>

struct qmp;

/* Connect and negotiate capabilities; retries until TIMEOUT_MS while
 * the socket is not there yet (QEMU starting). */
extern struct qmp *qmp_connect (const char *path, int timeout_ms,
                                char *err, size_t errlen);
extern void qmp_close (struct qmp *q);

/* Execute CMD with ARGS (stolen; may be NULL).  Returns the "return"
 * value (a new reference) or NULL with QEMU's error, or the transport
 * failure, in err. */
extern json_t *qmp_exec (struct qmp *q, const char *cmd, json_t *args,
                         int timeout_ms, char *err, size_t errlen);

/* The wall-clock time (seconds, with microseconds) of the last event
 * NAME seen since qmp_forget_events, or 0 if none. */
extern double qmp_event_time (struct qmp *q, const char *name);
/* Read pending events for up to TIMEOUT_MS, until one named NAME
 * arrives (then its time) or not (0). */
extern double qmp_wait_event (struct qmp *q, const char *name,
                              int timeout_ms);
extern void qmp_forget_events (struct qmp *q);

/* The VM's run state ("running", "paused", "postmigrate", ...) into
 * buf; -1 if QEMU does not answer. */
extern int qmp_run_state (struct qmp *q, char *buf, size_t len);

#endif /* HANDOFF_CTL_QMP_H */
