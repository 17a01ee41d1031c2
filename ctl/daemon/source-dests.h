/* handoffd: a migration's destinations (source-dests.c). */
#ifndef HANDOFF_CTL_SOURCE_DESTS_H
#define HANDOFF_CTL_SOURCE_DESTS_H

#include <stddef.h>

#include <jansson.h>

#include "record.h"

/* Destination I of M if it is still part of the migration, else NULL. */
extern struct dest *source_alive_dest (struct migration *m, size_t i);

/* Destination I broke (WHY) and is now STATE (failed, or lost if it
 * stopped answering).  With one destination that ends the migration:
 * -1, err and *RC = CODE; the rollback tells it to drop what it made.
 * With several it leaves alone: it is told now (unless it only
 * refused) and the others go on: -1 only when it was the last. */
extern int source_drop_dest (struct migration *m, size_t i,
                             const char *state, const char *why, int code,
                             int *rc, char *err, size_t errlen);

/* Send MSG (stolen: MIGRATION_COMPLETE or RESUME) to destination W and
 * wait for its ACK; the answer lost, ask W on a new connection whether
 * it resumed.  The ACK (or that STATUS), or NULL (err). */
extern json_t *source_resume (struct migration *m, struct dest *w,
                              json_t *msg, char *err, size_t errlen);

/* The management state of the blackout to destination D: the held
 * events EVS and the objects OBJS changed since the start.  0, or -1
 * (err). */
extern int source_send_state (struct dest *d, json_t *evs, json_t *objs,
                              char *err, size_t errlen);

/* The switch-over with several destinations: each is sent the
 * management state (EVS, OBJS), loads the VM and keeps it paused, each
 * on its own (one gone silent holds up no other); the first to report it loaded is journalled as the
 * winner, then told to resume it; the others drop what they received.
 * 0 with the winner's ACK in *ACK_R (M->to names it); -1 (err, *RC):
 * none loaded (the VM may resume here) or, with M->complete_sent, the
 * winner's answer is in doubt. */
extern int source_complete_race (struct migration *m, json_t *evs,
                                 json_t *objs, json_t **ack_r, int *rc,
                                 char *err, size_t errlen);

#endif /* HANDOFF_CTL_SOURCE_DESTS_H */
