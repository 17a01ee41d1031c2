/* librxfer internals: the transport ops table and the objects the
 * back ends fill in (in the manner of redis's ConnectionType). */
#ifndef HANDOFF_XFER_INTERNAL_H
#define HANDOFF_XFER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "uri.h"
#include "xfer.h"

struct xfer_transport {
  const char *name;
  int (*listen) (struct xfer_listener *l, const struct uri *u);
  int (*listener_port) (const struct xfer_listener *l, uint16_t *port_r);
  /* Wait until wait_deadline for one connection, then set it up
   * (transport level only: TLS, RDMA resources) against a deadline of
   * its own, xfer_setup_deadline(): a peer that arrives just before
   * the wait ends must not have its handshake cut short. */
  int (*accept) (struct xfer_listener *l, struct xfer_conn *c,
                 int64_t wait_deadline);
  void (*listener_close) (struct xfer_listener *l);
  int (*connect) (struct xfer_conn *c, const struct uri *u,
                  int64_t deadline);
  int (*send) (struct xfer_conn *c, const void *buf, size_t n,
               int64_t deadline);
  ssize_t (*recv) (struct xfer_conn *c, void *buf, size_t n,
                   int64_t deadline);
  int (*shutdown_write) (struct xfer_conn *c);
  void (*abort) (struct xfer_conn *c);
  void (*close) (struct xfer_conn *c);
};

struct xfer_listener {
  const struct xfer_transport *t;
  struct xfer_opts opts;        /* token points at our own copy. */
  uint8_t *token;
  char *psk_file;
  char uri[300];
  void *priv;                   /* The back end's. */
};

struct xfer_conn {
  const struct xfer_transport *t;
  struct xfer_opts opts;        /* token points at our own copy. */
  uint8_t *token;
  char *psk_file;
  char peer[320];
  uint32_t stream_id;
  uint32_t flags;
  atomic_uint_fast64_t sent;
  atomic_uint_fast64_t received;
  atomic_bool aborted;
  void *priv;                   /* The back end's. */
};

/* When the set-up of a connection that has just arrived must end. */
static inline int64_t
xfer_setup_deadline (const struct xfer_conn *c)
{
  return deadline_after (c->opts.timeout_ms);
}

extern const struct xfer_transport xfer_transport_tcp;
extern const struct xfer_transport xfer_transport_unix;
extern const struct xfer_transport xfer_transport_rdma;

#endif /* HANDOFF_XFER_INTERNAL_H */
