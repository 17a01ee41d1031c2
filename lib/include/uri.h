/* handoff: URIs naming NBD servers, stream endpoints and sockets.
 *
 *   nbd://HOST[:PORT][/EXPORT]          NBD over TCP (default port 10809)
 *   nbds://[USER@]HOST[:PORT][/EXPORT]  NBD over TCP with TLS
 *   nbd+unix:///[EXPORT]?socket=PATH    NBD over a unix socket
 *   nbds+unix://[USER@]/[EXPORT]?socket=PATH
 *   tcp://HOST:PORT                     stream / channel over TCP
 *   rdma://HOST:PORT                    stream over RDMA (rdma_cm)
 *   unix:PATH                           stream / channel over a unix socket
 *
 * HOST is a name, an IPv4 address or a bracketed IPv6 literal.  NBD
 * URIs accept the query parameters socket=, tls-psk-file= and
 * tls-username=; values and the export name are percent-decoded.
 * The parser never prints: it fills the caller's err buffer.
 */
#ifndef HANDOFF_URI_H
#define HANDOFF_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define URI_MAX_LEN 4096
#define URI_NBD_DEFAULT_PORT 10809
/* sizeof (struct sockaddr_un) .sun_path minus the terminating NUL. */
#define URI_UNIX_PATH_MAX 107

enum uri_scheme {
  URI_SCHEME_NBD,
  URI_SCHEME_NBDS,
  URI_SCHEME_NBD_UNIX,
  URI_SCHEME_NBDS_UNIX,
  URI_SCHEME_TCP,
  URI_SCHEME_RDMA,
  URI_SCHEME_UNIX,
};

struct uri {
  enum uri_scheme scheme;
  char *text;           /* The URI as given. */
  char *host;           /* Without brackets; NULL for unix schemes. */
  uint16_t port;        /* 0 for unix schemes. */
  bool ipv6;            /* host was a bracketed IPv6 literal. */
  char *socket;         /* unix socket path, or NULL. */
  char *export_name;    /* NBD export name ("" if none), else NULL. */
  char *tls_psk_file;   /* ?tls-psk-file=, or NULL. */
  char *tls_username;   /* USER@ or ?tls-username=, or NULL. */
  char *token_file;     /* rdma: ?token-file=, or NULL. */
};

/* Parse S into *U.  On error returns -1, leaves *U empty (safe to
 * uri_free) and writes a one-line reason into err. */
extern int uri_parse (const char *s, struct uri *u, char *err, size_t errlen);
/* As uri_parse, but for an address to listen on: a tcp/rdma port of 0
 * (pick a free port) is allowed. */
extern int uri_parse_listen (const char *s, struct uri *u,
                             char *err, size_t errlen);
extern void uri_free (struct uri *u);

extern const char *uri_scheme_name (enum uri_scheme scheme);
/* "unix:PATH" into BUF (LEN bytes); returns BUF. */
extern const char *uri_unix (const char *path, char *buf, size_t len);
extern bool uri_is_nbd (const struct uri *u);
extern bool uri_uses_tls (const struct uri *u);
extern bool uri_is_unix (const struct uri *u);

#endif /* HANDOFF_URI_H */
