/* librxfer: a byte-stream transport with three back ends behind one
 * API (DESIGN.md §3.3): rdma://HOST:PORT (librdmacm, RC queue pairs),
 * tcp://HOST:PORT (TLS with a pre-shared key) and unix:PATH.
 *
 * Network connections (tcp, rdma) start with the handshake of
 * xfer-proto.h (token HMAC both ways, then the stream header); unix:
 * endpoints carry a raw stream, as QEMU's migration socket does.  Calls take a timeout and
 * never block past it.  One thread may send while another receives.
 * Errors are logged where found and returned as -1 with errno.
 */
#ifndef HANDOFF_XFER_H
#define HANDOFF_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct xfer_opts {
  const char *psk_file;         /* tcp://: required (TLS-PSK). */
  const uint8_t *token;         /* rdma://: required; others: optional. */
  size_t token_len;
  int timeout_ms;               /* Connect and handshake (0: 10 s). */
  uint32_t rdma_slot_size;      /* rdma://: bytes per ring slot (0: 256K). */
  uint32_t rdma_slots;          /* rdma://: ring slots (0: 16). */
};

struct xfer_conn;
struct xfer_listener;

struct xfer_stats {
  uint64_t sent;
  uint64_t received;
};

extern struct xfer_listener *xfer_listen (const char *uri,
                                          const struct xfer_opts *opts);
/* The bound port (tcp and rdma listeners on port 0). */
extern int xfer_listener_port (const struct xfer_listener *l,
                               uint16_t *port_r);
/* Wait up to TIMEOUT_MS (<0: forever) for a stream; NULL with errno
 * ETIMEDOUT if none came, ECONNABORTED if a peer failed the handshake
 * (logged; keep accepting). */
extern struct xfer_conn *xfer_accept (struct xfer_listener *l,
                                      int timeout_ms);
extern void xfer_listener_close (struct xfer_listener *l);

extern struct xfer_conn *xfer_connect (const char *uri,
                                       const struct xfer_opts *opts,
                                       uint32_t stream_id, uint32_t flags);

/* Send all N bytes (waiting up to TIMEOUT_MS between progress; <0:
 * forever).  0 or -1. */
extern int xfer_send (struct xfer_conn *c, const void *buf, size_t n,
                      int timeout_ms);
/* Receive up to N bytes: >0, 0 at the peer's end of stream, -1. */
extern ssize_t xfer_recv (struct xfer_conn *c, void *buf, size_t n,
                          int timeout_ms);
/* End of stream in our direction; receiving goes on. */
extern int xfer_shutdown_write (struct xfer_conn *c);
/* Wake any thread blocked on C and make further calls fail. */
extern void xfer_abort (struct xfer_conn *c);
extern void xfer_close (struct xfer_conn *c);

extern uint32_t xfer_stream_id (const struct xfer_conn *c);
extern uint32_t xfer_stream_flags (const struct xfer_conn *c);
extern const char *xfer_peer (const struct xfer_conn *c);
extern const char *xfer_transport_name (const struct xfer_conn *c);
extern void xfer_get_stats (const struct xfer_conn *c, struct xfer_stats *s);

/* Read a token file (whitespace trimmed, XFER_TOKEN_MIN..MAX bytes).
 * Never prints; fills err. */
extern int xfer_load_token (const char *path, uint8_t **token_r,
                            size_t *len_r, char *err, size_t errlen);

#endif /* HANDOFF_XFER_H */
