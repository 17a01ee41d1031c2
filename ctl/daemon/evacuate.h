/* handoffd: evacuate (evacuate.c) - every VM of this host moved off
 * it, to hosts fleet mode's placement picks; and the end of the drain
 * that keeps it empty. */
#ifndef HANDOFF_CTL_EVACUATE_H
#define HANDOFF_CTL_EVACUATE_H

#include <jansson.h>

#define EVACUATE_DEFAULT_PARALLEL 2
#define EVACUATE_MAX_PARALLEL 8

struct channel;

/* The "evacuate" op (request_check passed REQ): each VM's fate is sent
 * on C as it is known; the reply lists what moved and what did not. */
extern json_t *evacuate_run (json_t *req, struct channel *c);
/* The "undrain" op: this host takes VMs again. */
extern json_t *evacuate_undrain (json_t *req);

#endif /* HANDOFF_CTL_EVACUATE_H */
