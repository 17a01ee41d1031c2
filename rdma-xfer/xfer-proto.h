/* rdma-xfer: the handshake every stream connection begins with.
 *
 * Every field is big-endian on the wire.  Values never change once
 * released.  The handshake runs on network streams once the transport
 * is up: after TLS on tcp://, at once on rdma://.  unix: endpoints
 * face QEMU and carry its raw stream.
 *
 *   server -> client  struct xfer_challenge   (a fresh random nonce)
 *   client -> server  struct xfer_response    (its own nonce and
 *                     HMAC-SHA256(token, "handoff-xfer client" ||
 *                                 server nonce || client nonce))
 *   server -> client  struct xfer_verdict     (status, and
 *                     HMAC-SHA256(token, "handoff-xfer server" ||
 *                                 client nonce || server nonce))
 *   client -> server  struct xfer_stream      (which stream this is)
 *
 * The server checks the client's MAC and closes the connection on a
 * mismatch; the client checks the server's, so both prove they hold
 * the token.  The token is handed to both ends out of band (handoffd
 * passes it over its TLS control channel).  Without a token (allowed
 * only on TLS-protected TCP, where the PSK already authenticates) the
 * key is empty and the exchange only checks versions.
 *
 * After the handshake the connection is a plain byte stream in both
 * directions; the client's end of stream ends the stream.
 */
#ifndef HANDOFF_XFER_PROTO_H
#define HANDOFF_XFER_PROTO_H

#include <stdint.h>

#define XFER_MAGIC 0x48584652           /* "HXFR" */
#define XFER_VERSION 1
#define XFER_NONCE_LEN 32
#define XFER_MAC_LEN 32
#define XFER_TOKEN_MIN 16
#define XFER_TOKEN_MAX 512

#define XFER_STATUS_OK 0
#define XFER_STATUS_BAD_MAC 1
#define XFER_STATUS_BAD_VERSION 2

#define XFER_STREAM_RETURN_PATH 1u      /* Client will read replies. */

struct xfer_challenge {
  uint32_t magic;
  uint16_t version;
  uint16_t flags;                       /* Zero. */
  uint8_t nonce[XFER_NONCE_LEN];
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct xfer_challenge) == 40, "xfer_challenge");

struct xfer_response {
  uint32_t magic;
  uint16_t version;
  uint16_t flags;                       /* Zero. */
  uint8_t nonce[XFER_NONCE_LEN];
  uint8_t mac[XFER_MAC_LEN];
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct xfer_response) == 72, "xfer_response");

struct xfer_verdict {
  uint32_t magic;
  uint16_t status;                      /* XFER_STATUS_* */
  uint16_t flags;                       /* Zero. */
  uint8_t mac[XFER_MAC_LEN];
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct xfer_verdict) == 40, "xfer_verdict");

struct xfer_stream {
  uint32_t magic;
  uint32_t stream_id;                   /* 0, 1, ... per source. */
  uint32_t flags;                       /* XFER_STREAM_* */
  uint32_t reserved;                    /* Zero. */
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct xfer_stream) == 16, "xfer_stream");

#endif /* HANDOFF_XFER_PROTO_H */
