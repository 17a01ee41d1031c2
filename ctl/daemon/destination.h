/* handoffd: the destination side of a migration (destination.c): the
 * peer server's handler. */
#ifndef HANDOFF_CTL_DESTINATION_H
#define HANDOFF_CTL_DESTINATION_H

#include <jansson.h>

struct channel;

/* One peer connection's request: a migration to receive, or a question
 * about an earlier one (ctlserver's handle_chan). */
extern json_t *destination_handle (json_t *req, struct channel *c,
                                   void *opaque);

#endif /* HANDOFF_CTL_DESTINATION_H */
