/* handoffd: this host as another host's stream proxy (proxy.c;
 * handoff migrate --via). */
#ifndef HANDOFF_CTL_PROXY_H
#define HANDOFF_CTL_PROXY_H

#include <jansson.h>

struct channel;

/* RELAY_STREAM (checked by peer_check_message) and what follows on C:
 * the relay runs until the source lets go.  Answers on C itself;
 * returns NULL. */
extern json_t *proxy_relay (json_t *req, struct channel *c);

/* At start: stop the relays a previous handoffd left, remove their
 * directories. */
extern void proxy_recover (void);

#endif /* HANDOFF_CTL_PROXY_H */
