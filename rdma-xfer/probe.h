/* librxfer: can this host carry streams over RDMA from an address
 * (probe.c)?
 */
#ifndef HANDOFF_XFER_PROBE_H
#define HANDOFF_XFER_PROBE_H

#include <stdbool.h>
#include <stddef.h>

struct xfer_rdma_probe {
  bool usable;                  /* An active RDMA port serves ADDR. */
  char device[64];              /* Its device (rxe0, mlx5_0), if any. */
  unsigned port;                /* Its port number, if any. */
  char why[256];                /* Why not, when not usable. */
};

/* Ask librdmacm which RDMA device, if any, serves numeric address
 * ADDR (IPv4 or IPv6): binding an RDMA CM id to it resolves the device
 * whose network interface holds it.  Fills *P; never fails otherwise. */
extern void xfer_rdma_probe (const char *addr, struct xfer_rdma_probe *p);

#endif /* HANDOFF_XFER_PROBE_H */
