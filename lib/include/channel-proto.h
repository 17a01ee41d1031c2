/* handoff: the framed channel's wire format (DESIGN.md §5).
 *
 * Every field is big-endian on the wire: encode with htobeNN, decode
 * with memcpy + beNNtoh.  Values never change once released.
 *
 * A channel is a byte stream (a unix socket, or TCP wrapped in TLS with
 * a pre-shared key) carrying frames:
 *
 *   +-----------------+---------------------------+
 *   | length (u32 BE) | payload (length bytes)    |
 *   +-----------------+---------------------------+
 *
 * 1 <= length <= the receiver's max_frame.  An empty frame, or one
 * larger than the receiver announced, is a protocol error: the
 * receiver closes the connection.
 *
 * The first frame each way is a struct chan_hello.  Both sides send
 * theirs at once, then read the peer's; they must agree on the magic
 * and the service, and share a version.  The negotiated version is the
 * highest both support.  After the hello, frames carry JSON (control,
 * CLI, mirror control) or the binary messages of the service's own
 * protocol header (share).
 */
#ifndef HANDOFF_CHANNEL_PROTO_H
#define HANDOFF_CHANNEL_PROTO_H

#include <stdint.h>

#define CHAN_FRAME_HEADER_LEN 4

#define CHAN_MAGIC 0x484e4446           /* "HNDF" */
#define CHAN_HELLO_LEN 16

/* Frame size limits.  The default suits JSON control messages; a
 * service may raise it up to CHAN_MAX_FRAME_LIMIT. */
#define CHAN_MAX_FRAME_DEFAULT (1u << 20)
#define CHAN_MAX_FRAME_LIMIT (64u << 20)

/* Which protocol rides on the channel.  A client that dials the wrong
 * kind of server fails at the hello instead of misparsing frames. */
enum chan_service {
  CHAN_SERVICE_CTL = 1,         /* handoffd <-> handoffd */
  CHAN_SERVICE_CLI = 2,         /* handoff CLI -> local handoffd */
  CHAN_SERVICE_MIRROR = 3,      /* CLI/handoffd -> nbd-mirror control */
  CHAN_SERVICE_SHARE = 4,       /* fuse-share source -> receiver */
  CHAN_SERVICE_SHARE_CTL = 5,   /* CLI/handoffd -> fuse-share control */
  CHAN_SERVICE_XFER = 6,        /* rdma-xfer control */
  CHAN_SERVICE_TEST = 99,       /* unit tests */
};

struct chan_hello {
  uint32_t magic;               /* CHAN_MAGIC */
  uint16_t service;             /* enum chan_service */
  uint16_t version_min;         /* Lowest service version spoken. */
  uint16_t version_max;         /* Highest service version spoken. */
  uint16_t flags;               /* Reserved, must be zero. */
  uint32_t max_frame;           /* Largest frame this side accepts. */
} __attribute__ ((__packed__));

_Static_assert (sizeof (struct chan_hello) == CHAN_HELLO_LEN,
                "chan_hello is 16 bytes on the wire");

#endif /* HANDOFF_CHANNEL_PROTO_H */
