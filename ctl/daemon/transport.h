/* handoffd: which transport carries a migration's RAM stream -
 * rdma:// between hosts that both have RDMA, tcp:// (TLS-PSK)
 * otherwise (transport.c).  Disks and files always go over TCP (NBD
 * and the share protocol).
 */
#ifndef HANDOFF_CTL_TRANSPORT_H
#define HANDOFF_CTL_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

enum transport {
  TRANSPORT_AUTO,               /* RDMA when both ends can, else TCP. */
  TRANSPORT_RDMA,               /* RDMA or no migration. */
  TRANSPORT_TCP,
};

/* "auto", "rdma" or "tcp" into *T: 0, or -1 with err.  Inline, and
 * free of the daemon's state, so that the checks of requests and peer
 * messages (linked alone into the fuzzers) share it. */
static inline int
transport_parse (const char *s, enum transport *t, char *err, size_t errlen)
{
  if (strcmp (s, "auto") == 0)
    *t = TRANSPORT_AUTO;
  else if (strcmp (s, "rdma") == 0)
    *t = TRANSPORT_RDMA;
  else if (strcmp (s, "tcp") == 0)
    *t = TRANSPORT_TCP;
  else {
    snprintf (err, errlen, "transport must be auto, rdma or tcp");
    return -1;
  }
  return 0;
}
extern const char *transport_name (enum transport t);

/* Find (once, at start) whether an active RDMA port serves this host's
 * peer address, asking handoff-xfer's probe, and log it. */
extern void transport_probe (void);
/* After transport_probe: can this host carry rdma:// streams?  If not,
 * why not, in WHY. */
extern bool transport_rdma_here (char *why, size_t whylen);

/* For 'handoff host': {"transport": --transport, "usable": bool,
 * "device": "rxe0 port 1" (if found), "reason" (if not usable)}. */
extern json_t *transport_describe (void);

/* The source: what to ask the destinations for, from what the
 * migration wants (WANT): "tcp", "rdma" or "auto" (RDMA if you can),
 * in *ASK.  -1 with err if WANT is RDMA and this host has none, or
 * this daemon takes RDMA only and cannot use it. */
extern int transport_source_ask (enum transport want, const char **ask,
                                 char *err, size_t errlen);
/* The destination: whether to take the stream over RDMA (*RDMA), for
 * the source's ASK (NULL from a source that predates transports: TCP).
 * -1 with err when the two cannot agree. */
extern int transport_dest_choose (const char *ask, bool *rdma, char *err,
                                  size_t errlen);

#endif /* HANDOFF_CTL_TRANSPORT_H */
