/* nbd-mirror: the session's state and its rules (state.c).  Every
 * function takes the session (or a destination of it) and needs its
 * lock held where the name ends in _locked. */
#ifndef HANDOFF_MIRROR_STATE_H
#define HANDOFF_MIRROR_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mirror.h"

extern const char *const mirror_state_names[];
extern const char *const dest_state_names[];

/* Is D still taking part (connecting, copying or ready)? */
extern bool dest_active_locked (const struct dest *d);
/* Wake D's workers ("look again"). */
extern void dest_wake (struct dest *d);
/* D leaves the mirror (failed or cancelled): guest writes waiting for
 * its replies stop waiting (dest_pool_wait). */
extern void dest_leave_locked (struct dest *d, enum dest_state state);
/* D failed: its state, the reason, the waiters woken, and the session
 * ended if no destination is left. */
extern void dest_fail_locked (struct dest *d, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Is a session copying or ready? */
extern bool session_running_locked (struct mirror *m);
/* Does the session end here (no destination left)? */
extern void session_check_locked (struct mirror *m);
/* Why the session failed, destination by destination. */
extern const char *session_failure_summary_locked (struct mirror *m,
                                                   char *buf, size_t len);
/* The destinations as status reports them (new reference). */
extern json_t *session_dests_json_locked (struct mirror *m, size_t *active_r,
                                          size_t *ready_r,
                                          uint64_t *min_copied_r,
                                          uint64_t *dirtied_r,
                                          uint64_t *inflight_r);

#endif /* HANDOFF_MIRROR_STATE_H */
