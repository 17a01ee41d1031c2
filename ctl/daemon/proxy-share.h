/* handoffd: this host passing another host's directory share on to its
 * destinations (proxy-share.c; handoff migrate --via). */
#ifndef HANDOFF_CTL_PROXY_SHARE_H
#define HANDOFF_CTL_PROXY_SHARE_H

#include <jansson.h>

/* RELAY_STREAM's share (REQ, checked; the addresses are proxy.c's to
 * check): handoff-share forward on ADDR, under the key file IN_PSK,
 * connected to every destination's receiver of REQ's "to" (key files
 * DIR/destJ.psk).  Its address for the source, or NULL (err; what
 * started is for proxy_share_stop). */
extern json_t *proxy_share_start (const char *dir, json_t *req,
                                  const char *addr, const char *in_psk,
                                  char *err, size_t errlen);

/* SHARE (checked by peer_check_message): the call to the pass-on in
 * DIR; TO is RELAY_STREAM's "to".  The answer to send (SHARED or
 * FAILED). */
extern json_t *proxy_share_call (const char *dir, json_t *to, json_t *msg);

/* Stop the pass-on in DIR, if it runs. */
extern void proxy_share_stop (const char *dir);

#endif /* HANDOFF_CTL_PROXY_SHARE_H */
