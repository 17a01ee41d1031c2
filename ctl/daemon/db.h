/* handoffd: the state database (SQLite, STATE/state.db).
 *
 * Tables:
 *   vms      (name, def JSON, state, updated)    the VMs this host owns
 *            state: stopped | running | incoming | moving |
 *            crashed (its QEMU died while it ran; 'start' boots it) |
 *            in_doubt (a volume handoff waits for the destination)
 *   objects  (vm, key, value, updated)           management objects:
 *            "policy" (JSON), "label:K" (text)
 *   events   (id, uid, vm, type, payload, posted, state, result)
 *            state: queued | delivering | delivered | failed
 *   journal  (id, vm, role, peer, phase, detail JSON, started, updated,
 *            result)                             one row per migration
 *   steps    (mid, at, phase, note)              every step of each
 *
 * Every function takes the database lock itself; db_begin/db_commit
 * group several calls into one transaction (the lock is held from
 * begin to commit or rollback, by the same thread).
 */
#ifndef HANDOFF_CTL_DB_H
#define HANDOFF_CTL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

extern int db_open (const char *path, char *err, size_t errlen);
extern void db_close (void);

extern void db_begin (void);
extern int db_commit (void);
extern void db_rollback (void);

/* VMs.  db_vm_get returns a new reference {name, def, state} or NULL. */
extern json_t *db_vm_get (const char *name);
extern json_t *db_vm_list (void);       /* Array of the same. */
extern int db_vm_put (const char *name, json_t *def, const char *state);
extern int db_vm_set_state (const char *name, const char *state);
extern int db_vm_delete (const char *name);     /* With its objects. */

/* Management objects. */
extern json_t *db_objects_get (const char *vm);         /* {key: value} */
extern json_t *db_objects_since (const char *vm, int64_t since_ms);
extern int db_object_put (const char *vm, const char *key, const char *value);
extern int db_objects_replace (const char *vm, json_t *objects);

/* Events, in posting order. */
extern int db_event_add (const char *uid, const char *vm, const char *type,
                         const char *payload, int64_t posted,
                         const char *state);
extern json_t *db_events (const char *vm, const char *state);
extern int db_event_set_state (const char *uid, const char *state,
                               const char *result);
extern int db_events_delete (const char *vm);

/* The migration journal. */
extern int db_journal_start (const char *id, const char *vm, const char *role,
                             const char *peer, json_t *detail);
extern int db_journal_phase (const char *id, const char *phase,
                             const char *note);
/* As db_journal_phase, and the peer becomes PEER in the same
 * transaction (the destination that won among several). */
extern int db_journal_phase_peer (const char *id, const char *phase,
                                  const char *peer, const char *note);
extern int db_journal_detail (const char *id, json_t *detail);
extern int db_journal_end (const char *id, const char *result,
                           const char *note);
/* Unfinished migrations: array of {id, vm, role, peer, phase, detail}. */
extern json_t *db_journal_open (void);
extern json_t *db_journal_get (const char *id);
/* The latest migration of VM here, either role, or NULL. */
extern json_t *db_journal_last (const char *vm);
extern json_t *db_journal_steps (const char *id);

/* A journal row's fields, borrowed from the row (valid while it is);
 * text the row lacks reads "". */
struct journal_row {
  const char *id, *vm, *role, *peer, *phase, *result;
  json_t *detail;               /* NULL if the row's detail is damaged */
  bool source;                  /* this host was the source */
  bool volume;                  /* a volume migration (detail.mode) */
};
extern struct journal_row journal_row_read (json_t *row);

#endif /* HANDOFF_CTL_DB_H */
