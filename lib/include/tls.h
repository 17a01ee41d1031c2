/* handoff: TLS with a pre-shared key over a connected socket.
 *
 * The socket must be non-blocking; every call takes a monotonic
 * deadline (ms, from clock_ms; <0: none) and waits with poll(), so
 * nothing blocks past it.  Key exchange is (EC)DHE-PSK only.  Errors
 * are logged with the peer's name and returned as -1 with errno.
 *
 * One thread may read while another writes (GnuTLS allows a record
 * send and a record receive in parallel); callers serialise readers and
 * writers among themselves.
 */
#ifndef HANDOFF_TLS_H
#define HANDOFF_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tls_session;

/* Server: accept any identity in PSK_FILE.  Client: present IDENTITY
 * (NULL: the file's first).  PEER names the other end in messages. */
extern struct tls_session *tls_new (int fd, bool server, const char *psk_file,
                                    const char *identity, const char *peer);
extern int tls_handshake (struct tls_session *s, int64_t deadline);
/* >0 bytes read, 0 at the peer's close_notify, -1 on error (a peer
 * that closed without close_notify is an error: its stream may be cut
 * short). */
extern ssize_t tls_read (struct tls_session *s, void *buf, size_t n,
                         int64_t deadline);
extern int tls_write_all (struct tls_session *s, const void *buf, size_t n,
                          int64_t deadline);
/* Bytes already decrypted and waiting to be read. */
extern size_t tls_pending (struct tls_session *s);
extern const char *tls_peer_identity (const struct tls_session *s);
/* Send close_notify (best effort, never waits). */
extern void tls_bye (struct tls_session *s);
extern void tls_free (struct tls_session *s);

#endif /* HANDOFF_TLS_H */
