/* handoffd: this host serving another host's disks to its destinations
 * (proxy-disks.c; handoff migrate --via). */
#ifndef HANDOFF_CTL_PROXY_DISKS_H
#define HANDOFF_CTL_PROXY_DISKS_H

#include <jansson.h>

/* RELAY_STREAM's disks (REQ, checked; the addresses are this host's
 * to check, proxy.c): a scratch image per disk in DIR, served on ADDR
 * with TLS under the key file IN_PSK through the mirror filter, which
 * mirrors it to every destination of REQ's "to" (key files
 * DIR/destJ.psk).  The exports' URIs, or NULL (err; what started is
 * for proxy_disks_stop). */
extern json_t *proxy_disks_start (const char *dir, json_t *req,
                                  const char *addr, const char *in_psk,
                                  char *err, size_t errlen);

/* MIRROR (checked by peer_check_message): the call to disk's mirror in
 * DIR; TO is RELAY_STREAM's "to", NDISKS how many disks it serves.
 * The answer to send (MIRRORED or FAILED). */
extern json_t *proxy_disks_call (const char *dir, json_t *to, size_t ndisks,
                                 json_t *msg);

/* Stop whatever serves disks in DIR (the scratch images go with DIR). */
extern void proxy_disks_stop (const char *dir);

#endif /* HANDOFF_CTL_PROXY_DISKS_H */
