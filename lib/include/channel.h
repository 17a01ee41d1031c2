/* handoff: the framed channel (DESIGN.md §5; wire format in
 * channel-proto.h).
 *
 * A channel is a connected stream carrying length-prefixed frames:
 * over a unix socket (local, protected by file permissions; TLS
 * optional) or over TCP, where TLS with a pre-shared key is mandatory.
 * Every operation has a deadline: connect, TLS handshake, hello, and
 * each whole frame sent or received.
 *
 * Thread model: one thread may send while another receives (GnuTLS
 * allows a record send and a record receive in parallel).  Concurrent
 * senders are serialised by send_lock; concurrent receivers by
 * recv_lock.
 *
 * Errors are logged where they are found, with the peer named, and
 * returned as -1 / NULL with errno set.
 */
#ifndef HANDOFF_CHANNEL_H
#define HANDOFF_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "channel-proto.h"

#define CHAN_DEFAULT_TIMEOUT_MS 10000

struct chan_config {
  enum chan_service service;
  uint16_t version_min;         /* 0 means 1. */
  uint16_t version_max;         /* 0 means version_min. */
  uint32_t max_frame;           /* Largest frame we accept; 0: default. */
  int timeout_ms;               /* 0: default; <0: no limit. */
  const char *psk_file;         /* NULL: no TLS (unix sockets only). */
  const char *psk_identity;     /* Client identity; NULL: the file's first. */
  mode_t unix_mode;             /* Listening socket mode; 0: 0600. */
};

struct channel;
struct chan_listener;

extern struct chan_listener *chan_listen (const char *uri,
                                          const struct chan_config *cfg);
extern int chan_listener_fd (const struct chan_listener *l);
/* The bound TCP port (useful when listening on port 0). */
extern int chan_listener_port (const struct chan_listener *l,
                               uint16_t *port_r);
/* Wait up to TIMEOUT_MS (<0: forever) for a connection, then run the
 * TLS handshake and hello.  A peer that fails those is logged and
 * NULL is returned (errno ECONNABORTED; ETIMEDOUT if nobody came). */
extern struct channel *chan_accept (struct chan_listener *l, int timeout_ms);
extern void chan_listener_close (struct chan_listener *l);

extern struct channel *chan_connect (const char *uri,
                                     const struct chan_config *cfg);
/* Run the handshake on an already connected stream (socketpair, fd
 * passed by a parent).  Takes ownership of FD, even on failure. */
extern struct channel *chan_from_fd (int fd, bool server,
                                     const struct chan_config *cfg);

/* Send one frame. */
extern int chan_send (struct channel *c, const void *buf, size_t len);
/* Receive one frame into a new buffer.  Returns its length, 0 if the
 * peer closed cleanly between frames, -1 on error (mid-frame close,
 * oversize frame, timeout...). */
extern ssize_t chan_recv (struct channel *c, void **buf_r);
/* Same, with this call's own timeout (<0: forever). */
extern ssize_t chan_recv_timeout (struct channel *c, void **buf_r,
                                  int timeout_ms);

extern int chan_send_json (struct channel *c, json_t *msg);
/* Returns a new reference, or NULL: *eof_r tells a clean close from an
 * error (bad frame, not a JSON object). */
extern json_t *chan_recv_json (struct channel *c, int timeout_ms,
                               bool *eof_r);

extern void chan_set_timeout (struct channel *c, int timeout_ms);
extern int chan_fd (const struct channel *c);
extern uint16_t chan_version (const struct channel *c);
/* The peer's PSK identity (TLS) or NULL. */
extern const char *chan_peer_identity (const struct channel *c);
/* The peer's address, for messages. */
extern const char *chan_peer_name (const struct channel *c);
/* Why chan_recv_json last refused a frame that arrived whole (errno
 * EPROTO): "bad JSON: ..." or "not a JSON object". */
extern const char *chan_bad_json (const struct channel *c);
/* Unix sockets: the peer's uid (-1 if unknown). */
extern int chan_peer_uid (const struct channel *c, uid_t *uid_r);
extern bool chan_is_tls (const struct channel *c);
/* Shut the connection down for both directions (wakes a receiver in
 * another thread) without freeing it. */
extern void chan_shutdown (struct channel *c);
extern void chan_close (struct channel *c);

#endif /* HANDOFF_CHANNEL_H */
