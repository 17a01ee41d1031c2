/* handoffd: the migrations this host sends, as the CLI server sees
 * them (migration.c).  A migration runs in a thread of its own; its
 * record (record.h) is what followers read.
 */
#ifndef HANDOFF_CTL_MIGRATION_H
#define HANDOFF_CTL_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct migration;

/* Validate REQ ({"vm", "to", "mode", "max_downtime_ms", "bandwidth",
 * "timeout_s", "shutdown_timeout_ms", "delete_source", "prewarm",
 * "warm_exit"}) and start.
 * NULL with err and the exit code the CLI should use. */
extern struct migration *migration_start (json_t *req, char *err,
                                          size_t errlen, int *rc);
/* The migration of VM, if one runs here (a new reference: record_put). */
extern struct migration *migration_find (const char *vm);
extern int migration_abort (const char *vm, char *err, size_t errlen);
/* Ask VM's migration to cut over (to the hosts of TO, or every warm
 * one): 0 with the migration (a new reference) in *M_R and, in
 * *CURSOR_R, where its events stood; -1 (none runs) or -2 (refused)
 * with err. */
extern int migration_cutover (const char *vm, const char *to,
                              size_t *cursor_r, char *err, size_t errlen,
                              struct migration **m_r);
/* Start no migration any more, and ask every one of this daemon to
 * roll back, saying WHY (a static string, "because ..."): those past
 * the point of no return finish instead. */
extern void migration_abort_all (const char *why);
/* Wait up to TIMEOUT_MS for every migration thread to end: true if
 * none is left. */
extern bool migration_wait_idle (int timeout_ms);
/* Does migration ID run in a thread of this daemon? */
extern bool migration_running (const char *id);
/* The migrations this host sends now: [{vm, phase, to}]. */
extern json_t *migration_list (void);

#endif /* HANDOFF_CTL_MIGRATION_H */
