/* handoffd: the CLI socket's requests (server.c).
 *
 * CLI protocol: JSON frames on the unix socket (CHAN_SERVICE_CLI),
 * requests {"op": ...}; replies {"ok": true, ...} or {"ok": false,
 * "error", "code"} where code names the exit status (denied,
 * rolled_back, timeout, unreachable, not_found, verify_failed,
 * in_doubt).  "migrate" answers with a stream: {"event": ...} objects,
 * then the reply.  The admin channel (--admin, TLS-PSK) takes the same
 * requests.
 */
#ifndef HANDOFF_CTL_SERVER_H
#define HANDOFF_CTL_SERVER_H

#include <jansson.h>

struct channel;

/* One request (ctlserver's handle_chan; OPAQUE set on the admin
 * channel). */
extern json_t *server_handle (json_t *req, struct channel *c, void *opaque);

#endif /* HANDOFF_CTL_SERVER_H */
