/* librxfer: the RDMA capability of an address (probe.h).
 *
 * Why librdmacm's bind rather than listing devices: an RDMA device is
 * only useful for a migration if it serves the address the peers use.
 * rdma_bind_addr to that address finds exactly that device (for RoCE,
 * the one whose GID table holds the interface's address), and fails
 * when none does - the same lookup a later rdma_listen makes.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "probe.h"

void
xfer_rdma_probe (const char *addr, struct xfer_rdma_probe *p)
{
  struct rdma_event_channel *ch = NULL;
  struct rdma_cm_id *id = NULL;
  struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
  struct addrinfo *ai = NULL;
  struct ibv_port_attr attr;
  int r;

  memset (p, 0, sizeof *p);
  r = getaddrinfo (addr, NULL, &hints, &ai);
  if (r != 0) {
    snprintf (p->why, sizeof p->why, "%s is not a numeric address: %s", addr,
              gai_strerror (r));
    return;
  }
  ch = rdma_create_event_channel ();
  if (!ch) {
    snprintf (p->why, sizeof p->why, "no RDMA on this host (%s)",
              errno == ENOENT || errno == ENODEV
              ? "no /dev/infiniband/rdma_cm" : strerror (errno));
    goto out;
  }
  if (rdma_create_id (ch, &id, NULL, RDMA_PS_TCP) != 0) {
    snprintf (p->why, sizeof p->why, "rdma_create_id: %s", strerror (errno));
    goto out;
  }
  if (rdma_bind_addr (id, ai->ai_addr) != 0 || !id->verbs) {
    snprintf (p->why, sizeof p->why, "no RDMA device serves %s (%s)", addr,
              id->verbs ? strerror (errno) : "its interface has none");
    goto out;
  }
  snprintf (p->device, sizeof p->device, "%s",
            ibv_get_device_name (id->verbs->device));
  p->port = id->port_num;
  if (ibv_query_port (id->verbs, id->port_num, &attr) != 0) {
    snprintf (p->why, sizeof p->why, "%s port %u: %s", p->device, p->port,
              strerror (errno));
    goto out;
  }
  if (attr.state != IBV_PORT_ACTIVE) {
    snprintf (p->why, sizeof p->why, "%s port %u is %s", p->device, p->port,
              ibv_port_state_str (attr.state));
    goto out;
  }
  p->usable = true;

 out:
  if (id)
    rdma_destroy_id (id);
  if (ch)
    rdma_destroy_event_channel (ch);
  freeaddrinfo (ai);
}
