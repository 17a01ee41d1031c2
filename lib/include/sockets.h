/* handoff: connecting and listening on TCP and unix sockets.
 *
 * Every returned descriptor is close-on-exec.  Listening needs an
 * explicit address: nothing here binds to a wildcard on its own.
 */
#ifndef HANDOFF_SOCKETS_H
#define HANDOFF_SOCKETS_H

#include <stdint.h>
#include <sys/types.h>

#include "clock.h"

/* Connect to HOST:PORT within TIMEOUT_MS (<0: no limit).  Returns a
 * blocking fd, or -1 with errno set and the reason logged. */
extern int sock_connect_tcp (const char *host, uint16_t port, int timeout_ms);
extern int sock_connect_unix (const char *path, int timeout_ms);

/* Listen on HOST:PORT (PORT 0 picks a free port: see sock_local_port). */
extern int sock_listen_tcp (const char *host, uint16_t port, int backlog);
/* Listen on PATH with permissions MODE (e.g. 0600).  A stale socket
 * left by a dead server is replaced; any other file is refused. */
extern int sock_listen_unix (const char *path, mode_t mode, int backlog);

extern int sock_local_port (int fd, uint16_t *port_r);
/* Text form of the peer address ("10.0.0.1:4000", "[::1]:80", "unix"). */
extern int sock_peer_name (int fd, char *buf, size_t len);

/* Wait for FD to become ready for EVENTS until the monotonic DEADLINE
 * (ms, from clock_ms; <0 means none).  Returns 0, or -1 with errno
 * ETIMEDOUT or the poll error. */
extern int sock_wait (int fd, short events, int64_t deadline_ms);

extern int sock_set_nonblock (int fd, int on);

/* Plain I/O on a non-blocking socket, waiting up to DEADLINE.
 * sock_read: >0 bytes, 0 at end of stream, -1 on error. */
extern ssize_t sock_read (int fd, void *buf, size_t n, int64_t deadline);
extern int sock_write_all (int fd, const void *buf, size_t n,
                           int64_t deadline);

#endif /* HANDOFF_SOCKETS_H */
