/* handoff: a JSON request/reply server on a unix socket (the control
 * sockets of the mirror filter, the share mount and the receiver).
 *
 * NOTES ON THE THREAD MODEL: ctlserver_start runs an accept thread that
 * also calls TICK about once a second; each client gets its own thread
 * (so a long request, such as a mirror's "complete", does not hold up
 * "status" from another client) and requests are handled one at a time
 * per client by HANDLE, which may run in several threads at once.
 */
#ifndef HANDOFF_CTLSERVER_H
#define HANDOFF_CTLSERVER_H

#include <jansson.h>

#include "channel-proto.h"

struct ctlserver;

struct channel;

struct ctlserver_config {
  const char *path;             /* Unix socket (mode 0600), or: */
  const char *uri;              /* tcp://ADDR:PORT (TLS with psk_file). */
  const char *psk_file;
  enum chan_service service;
  unsigned version;
  /* A reply for REQ (new reference); NULL is answered as an error. */
  json_t *(*handle) (json_t *req, void *opaque);
  /* Instead of HANDLE: the whole conversation.  Called with the first
   * request; may send and receive more on C; returns the last reply
   * (or NULL to send nothing more). */
  json_t *(*handle_chan) (json_t *req, struct channel *c, void *opaque);
  void (*tick) (void *opaque);  /* Optional. */
  /* Optional: run first in the accept thread (before any client). */
  void (*thread_start) (void *opaque);
  /* Optional: run by ctlserver_stop after the clients' channels are
   * shut, before waiting for their threads: wake whatever a request
   * may be blocked on. */
  void (*stopping) (void *opaque);
  void *opaque;
};

extern struct ctlserver *ctlserver_start (const struct ctlserver_config *c);
/* Stop accepting, shut clients down, wait for their threads. */
extern void ctlserver_stop (struct ctlserver *s);

/* {"ok": false, "error": MSG, "code": CODE} (CODE may be NULL). */
extern json_t *ctl_error_reply (const char *code, const char *msg);

#endif /* HANDOFF_CTLSERVER_H */
