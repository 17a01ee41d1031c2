/* rdma-xfer: the relay that carries QEMU's migration stream. */
#ifndef HANDOFF_XFER_RELAY_H
#define HANDOFF_XFER_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "xfer.h"

#define RELAY_MAX_TO 16
#define RELAY_MAX_LISTEN 2

enum relay_lagging { RELAY_LAG_WAIT, RELAY_LAG_DROP };

struct relay_config {
  /* Where streams arrive: one URI, or two (RDMA and TCP beside it, so
   * that a source that cannot set RDMA up still reaches us). */
  const char *listen[RELAY_MAX_LISTEN];
  size_t nlisten;
  const char *to[RELAY_MAX_TO];
  /* --or: where to carry a stream when to[i] cannot be connected to
   * (NULL: nowhere else). */
  const char *or_to[RELAY_MAX_TO];
  size_t nto;
  struct xfer_opts opts;
  size_t buffer;                /* Ring bytes per stream. */
  enum relay_lagging lagging;
  bool json;                    /* Statistics as JSON lines. */
  unsigned streams;             /* Exit after this many (0: never). */
  int accept_timeout_ms;        /* Give up if no stream comes (-1). */
  int io_timeout_ms;            /* A peer silent this long fails (-1). */
  /* Carry every destination's return path back, merged, and hold
   * QEMU's switch-over until SIGUSR1 (a pre-warmed migration): the
   * destinations' SWITCHOVER_ACK is passed on only then. */
  bool hold_switchover;
  /* With hold_switchover: pass the first SWITCHOVER_ACK on at once (a
   * relay that fans out for another, where the source's own relay
   * holds it: handoff migrate --via). */
  bool pass_switchover;
};

/* Run until the configured number of streams has finished, or a
 * signal (SIGINT/SIGTERM).  0 if every stream reached every
 * destination that was not dropped, else -1. */
extern int relay_run (const struct relay_config *cfg);

#endif /* HANDOFF_XFER_RELAY_H */
