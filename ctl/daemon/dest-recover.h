/* handoffd: what a restarted destination does with the migrations it
 * was receiving (dest-recover.c).
 *
 * A VM whose record was written here (the resume was decided: past the
 * point of no return) is this host's, running or - its QEMU dead -
 * stopped as "crashed": never deleted.  Otherwise it does not run here;
 * what was received is removed, but if the whole state had arrived
 * only once the source confirms it still holds the VM (phase
 * "dropping" until then).
 */
#ifndef HANDOFF_CTL_DEST_RECOVER_H
#define HANDOFF_CTL_DEST_RECOVER_H

#include <jansson.h>

/* Settle destination journal entry ROW at start-up. */
extern void dest_recover (json_t *row);
/* An entry in phase "dropping": ask its source, up to TIMEOUT_MS,
 * whether it holds the VM; remove the received files if it does.  0
 * settled, -1 to ask again later. */
extern int dest_settle_drop (json_t *row, int timeout_ms);
/* The source confirmed (ROW, WHY): remove what was received, end the
 * entry. */
extern void dest_drop_confirmed (json_t *row, const char *why);

#endif /* HANDOFF_CTL_DEST_RECOVER_H */
