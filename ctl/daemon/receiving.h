/* handoffd: which VMs are being received here (receiving.c): one
 * conversation per VM at a time. */
#ifndef HANDOFF_CTL_RECEIVING_H
#define HANDOFF_CTL_RECEIVING_H

#include <stdbool.h>

/* Is VM being received here? */
extern bool receiving_active (const char *vm);
/* Mark VM as being received: 0, or -1 if it already is (or too many
 * are). */
extern int receiving_claim (const char *vm);
extern void receiving_release (const char *vm);

#endif /* HANDOFF_CTL_RECEIVING_H */
