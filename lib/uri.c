/* handoff: URI parser.  See uri.h for the accepted forms. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "cleanup.h"
#include "uri.h"

static const struct {
  const char *prefix;
  enum uri_scheme scheme;
} schemes[] = {
  /* Longest prefixes first: "nbds+unix://" before "nbds://". */
  { "nbds+unix://", URI_SCHEME_NBDS_UNIX },
  { "nbd+unix://", URI_SCHEME_NBD_UNIX },
  { "nbds://", URI_SCHEME_NBDS },
  { "nbd://", URI_SCHEME_NBD },
  { "tcp://", URI_SCHEME_TCP },
  { "rdma://", URI_SCHEME_RDMA },
  { "unix:", URI_SCHEME_UNIX },
};

const char *
uri_unix (const char *path, char *buf, size_t len)
{
  snprintf (buf, len, "unix:%s", path);
  return buf;
}

const char *
uri_scheme_name (enum uri_scheme scheme)
{
  switch (scheme) {
  case URI_SCHEME_NBD: return "nbd";
  case URI_SCHEME_NBDS: return "nbds";
  case URI_SCHEME_NBD_UNIX: return "nbd+unix";
  case URI_SCHEME_NBDS_UNIX: return "nbds+unix";
  case URI_SCHEME_TCP: return "tcp";
  case URI_SCHEME_RDMA: return "rdma";
  case URI_SCHEME_UNIX: return "unix";
  }
  return "unknown";
}

bool
uri_is_nbd (const struct uri *u)
{
  return u->scheme == URI_SCHEME_NBD || u->scheme == URI_SCHEME_NBDS ||
    u->scheme == URI_SCHEME_NBD_UNIX || u->scheme == URI_SCHEME_NBDS_UNIX;
}

bool
uri_uses_tls (const struct uri *u)
{
  return u->scheme == URI_SCHEME_NBDS || u->scheme == URI_SCHEME_NBDS_UNIX;
}

bool
uri_is_unix (const struct uri *u)
{
  return u->scheme == URI_SCHEME_NBD_UNIX ||
    u->scheme == URI_SCHEME_NBDS_UNIX || u->scheme == URI_SCHEME_UNIX;
}

void
uri_free (struct uri *u)
{
  free (u->text);
  free (u->host);
  free (u->socket);
  free (u->export_name);
  free (u->tls_psk_file);
  free (u->token_file);
  free (u->tls_username);
  memset (u, 0, sizeof *u);
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode [s, s+len) into a new string.  Refuses %00 and broken
 * escapes, so the result never hides a NUL. */
static char *
pct_decode (const char *s, size_t len, const char *what,
            char *err, size_t errlen)
{
  char *out = malloc (len + 1);
  size_t j = 0;

  if (!out) {
    set_error (err, errlen, "%s: out of memory", what);
    return NULL;
  }
  for (size_t i = 0; i < len; ++i) {
    if (s[i] == '%') {
      int hi, lo;
      if (len - i < 3 || (hi = hexval (s[i+1])) < 0 ||
          (lo = hexval (s[i+2])) < 0) {
        free (out);
        set_error (err, errlen, "%s: bad percent escape", what);
        return NULL;
      }
      if (hi == 0 && lo == 0) {
        free (out);
        set_error (err, errlen, "%s: %%00 is not allowed", what);
        return NULL;
      }
      out[j++] = (char) (hi * 16 + lo);
      i += 2;
    }
    else
      out[j++] = s[i];
  }
  out[j] = '\0';
  return out;
}

static bool
valid_hostname (const char *h, size_t len)
{
  if (len == 0 || len > 253)
    return false;
  for (size_t i = 0; i < len; ++i) {
    unsigned char c = (unsigned char) h[i];
    if (!(isalnum (c) || c == '-' || c == '.' || c == '_'))
      return false;
  }
  return true;
}

static bool
valid_ipv6 (const char *h, size_t len)
{
  size_t colons = 0;

  if (len < 2 || len > 45)
    return false;
  for (size_t i = 0; i < len; ++i) {
    unsigned char c = (unsigned char) h[i];
    if (c == ':')
      colons++;
    else if (!(isxdigit (c) || c == '.'))
      return false;
  }
  return colons >= 2;
}

/* Parse a decimal port (1..65535). */
static int
parse_port (const char *s, size_t len, bool allow_zero, uint16_t *port_r,
            char *err, size_t errlen)
{
  unsigned long v = 0;

  if (len == 0)
    return set_error (err, errlen, "port is empty");
  if (len > 5)
    return set_error (err, errlen, "port '%.*s' is out of range (1-65535)",
                      (int) len, s);
  for (size_t i = 0; i < len; ++i) {
    if (!isdigit ((unsigned char) s[i]))
      return set_error (err, errlen, "port '%.*s' is not a number", (int) len,
                        s);
    v = v * 10 + (unsigned long) (s[i] - '0');
  }
  if ((v < 1 && !allow_zero) || v > 65535)
    return set_error (err, errlen, "port '%.*s' is out of range (1-65535)",
                      (int) len, s);
  *port_r = (uint16_t) v;
  return 0;
}

/* Parse "[USER@]HOST[:PORT]" (the authority).  USER only for NBD. */
static int
parse_authority (const char *a, size_t len, struct uri *u, bool port_required,
                 bool allow_user, bool allow_zero, char *err, size_t errlen)
{
  const char *at = memchr (a, '@', len);
  const char *host, *port = NULL;
  size_t hostlen, portlen = 0;

  if (at) {
    if (!allow_user)
      return set_error (err, errlen, "user name is not allowed in %s URIs",
                        uri_scheme_name (u->scheme));
    u->tls_username = pct_decode (a, (size_t) (at - a), "user name",
                                  err, errlen);
    if (!u->tls_username)
      return -1;
    if (u->tls_username[0] == '\0')
      return set_error (err, errlen, "user name is empty");
    len -= (size_t) (at - a) + 1;
    a = at + 1;
  }

  if (len > 0 && a[0] == '[') {
    const char *close = memchr (a, ']', len);
    if (!close)
      return set_error (err, errlen, "IPv6 address is missing ']'");
    host = a + 1;
    hostlen = (size_t) (close - host);
    if (!valid_ipv6 (host, hostlen))
      return set_error (err, errlen, "'%.*s' is not an IPv6 address",
                        (int) hostlen, host);
    u->ipv6 = true;
    const char *rest = close + 1;
    size_t restlen = len - (size_t) (rest - a);
    if (restlen > 0) {
      if (rest[0] != ':')
        return set_error (err, errlen, "unexpected text after IPv6 address");
      port = rest + 1;
      portlen = restlen - 1;
    }
  }
  else {
    const char *colon = memchr (a, ':', len);
    host = a;
    hostlen = colon ? (size_t) (colon - a) : len;
    if (colon) {
      port = colon + 1;
      portlen = len - hostlen - 1;
      if (memchr (port, ':', portlen))
        return set_error (err, errlen,
                          "IPv6 addresses must be in brackets: [%.*s]",
                          (int) len, a);
    }
    if (hostlen == 0)
      return set_error (err, errlen, "host is empty");
    if (!valid_hostname (host, hostlen))
      return set_error (err, errlen, "'%.*s' is not a valid host name",
                        (int) hostlen, host);
  }

  u->host = strndup (host, hostlen);
  if (!u->host)
    return set_error (err, errlen, "out of memory");
  if (port) {
    if (parse_port (port, portlen, allow_zero, &u->port, err, errlen) == -1)
      return -1;
  }
  else if (port_required)
    return set_error (err, errlen, "%s URIs need a port: %s://HOST:PORT",
                      uri_scheme_name (u->scheme), uri_scheme_name (u->scheme));
  else
    u->port = URI_NBD_DEFAULT_PORT;
  return 0;
}

/* Parse the query of an NBD URI: key=value pairs joined by '&'. */
static int
parse_query (const char *q, struct uri *u, char *err, size_t errlen)
{
  /* Terminates: p advances past each '&' or reaches the end. */
  for (const char *p = q; *p; ) {
    const char *amp = strchr (p, '&');
    size_t len = amp ? (size_t) (amp - p) : strlen (p);
    const char *eq = memchr (p, '=', len);
    char **field;
    const char *name;

    if (!eq)
      return set_error (err, errlen, "query parameter '%.*s' has no value",
                        (int) len, p);
    size_t klen = (size_t) (eq - p);
    if (klen == 6 && strncmp (p, "socket", 6) == 0)
      field = &u->socket, name = "socket";
    else if (klen == 12 && strncmp (p, "tls-psk-file", 12) == 0)
      field = &u->tls_psk_file, name = "tls-psk-file";
    else if (klen == 12 && strncmp (p, "tls-username", 12) == 0)
      field = &u->tls_username, name = "tls-username";
    else if (klen == 10 && strncmp (p, "token-file", 10) == 0)
      field = &u->token_file, name = "token-file";
    else
      return set_error (err, errlen, "unknown query parameter '%.*s'",
                        (int) klen, p);
    if (*field)
      return set_error (err, errlen, "query parameter '%s' given twice", name);
    *field = pct_decode (eq + 1, len - klen - 1, name, err, errlen);
    if (!*field)
      return -1;
    if ((*field)[0] == '\0')
      return set_error (err, errlen, "query parameter '%s' is empty", name);
    p += len;
    if (*p == '&')
      p++;
  }
  return 0;
}

static int
check_socket_path (const char *path, char *err, size_t errlen)
{
  size_t n = strlen (path);

  if (n == 0)
    return set_error (err, errlen, "unix socket path is empty");
  if (n > URI_UNIX_PATH_MAX)
    return set_error (err, errlen,
                      "unix socket path is %zu bytes, longer than %d", n,
                      URI_UNIX_PATH_MAX);
  return 0;
}

static int
parse_nbd (const char *rest, struct uri *u, char *err, size_t errlen)
{
  const char *slash, *qmark;
  size_t alen;
  bool is_unix = u->scheme == URI_SCHEME_NBD_UNIX ||
    u->scheme == URI_SCHEME_NBDS_UNIX;

  qmark = strchr (rest, '?');
  slash = strchr (rest, '/');
  if (slash && qmark && slash > qmark)
    slash = NULL;
  alen = slash ? (size_t) (slash - rest)
    : qmark ? (size_t) (qmark - rest) : strlen (rest);
  if (memchr (rest, '#', strlen (rest)))
    return set_error (err, errlen, "fragments ('#') are not allowed");

  if (is_unix) {
    /* Only a user name may precede the path. */
    if (alen > 0) {
      const char *at = memchr (rest, '@', alen);
      if (!at || at != rest + alen - 1)
        return set_error (err, errlen,
                          "nbd+unix URIs have no host: "
                          "nbd+unix:///EXPORT?socket=PATH");
      if (u->scheme != URI_SCHEME_NBDS_UNIX)
        return set_error (err, errlen, "user name is only used with nbds+unix");
      u->tls_username = pct_decode (rest, alen - 1, "user name", err, errlen);
      if (!u->tls_username)
        return -1;
    }
  }
  else if (parse_authority (rest, alen, u, false,
                            u->scheme == URI_SCHEME_NBDS, false,
                            err, errlen) == -1)
    return -1;

  /* Export name: path after the first '/', up to '?'. */
  if (slash) {
    const char *e = slash + 1;
    size_t elen = qmark ? (size_t) (qmark - e) : strlen (e);
    if (elen > 4096)
      return set_error (err, errlen, "export name is too long");
    u->export_name = pct_decode (e, elen, "export name", err, errlen);
  }
  else
    u->export_name = strdup ("");
  if (!u->export_name)
    return -1;

  if (qmark && parse_query (qmark + 1, u, err, errlen) == -1)
    return -1;

  if (is_unix) {
    if (!u->socket)
      return set_error (err, errlen, "%s URI needs ?socket=PATH",
                        uri_scheme_name (u->scheme));
    if (check_socket_path (u->socket, err, errlen) == -1)
      return -1;
  }
  else if (u->socket)
    return set_error (err, errlen, "socket= is only valid with nbd+unix URIs");

  if (u->tls_psk_file && !uri_uses_tls (u))
    return set_error (err, errlen, "tls-psk-file= needs an nbds URI");
  if (u->token_file)
    return set_error (err, errlen, "token-file= is only valid with rdma URIs");
  return 0;
}

static int
parse (const char *s, struct uri *u, bool listen, char *err, size_t errlen)
{
  size_t slen;
  const char *rest = NULL, *q;

  memset (u, 0, sizeof *u);
  if (!s)
    return set_error (err, errlen, "no URI given");
  slen = strlen (s);
  if (slen == 0)
    return set_error (err, errlen, "URI is empty");
  if (slen > URI_MAX_LEN)
    return set_error (err, errlen, "URI is longer than %d bytes", URI_MAX_LEN);
  for (size_t i = 0; i < slen; ++i) {
    unsigned char c = (unsigned char) s[i];
    if (c <= ' ' || c >= 0x7f)
      return set_error (err, errlen,
                        "URI contains a space or control character");
  }

  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; ++i) {
    size_t n = strlen (schemes[i].prefix);
    if (strncmp (s, schemes[i].prefix, n) == 0) {
      u->scheme = schemes[i].scheme;
      rest = s + n;
      break;
    }
  }
  if (!rest) {
    const char *colon = strchr (s, ':');
    if (colon)
      set_error (err, errlen,
                 "unknown scheme '%.*s' (expected nbd, nbds, nbd+unix, "
                 "nbds+unix, tcp, rdma or unix)", (int) (colon - s), s);
    else
      set_error (err, errlen,
                 "'%s' has no scheme (for example tcp://HOST:PORT)", s);
    return -1;
  }

  u->text = strdup (s);
  if (!u->text) {
    set_error (err, errlen, "out of memory");
    goto error;
  }

  switch (u->scheme) {
  case URI_SCHEME_NBD:
  case URI_SCHEME_NBDS:
  case URI_SCHEME_NBD_UNIX:
  case URI_SCHEME_NBDS_UNIX:
    if (parse_nbd (rest, u, err, errlen) == -1)
      goto error;
    break;

  case URI_SCHEME_TCP:
  case URI_SCHEME_RDMA:
    q = strchr (rest, '?');
    if (!listen && q && !memchr (rest, '/', (size_t) (q - rest)) &&
        !strchr (rest, '#')) {
      /* A stream to one of several destinations may name the key for
       * it: tcp://HOST:PORT?tls-psk-file=FILE (and a token, for a
       * listener that asks for one beside TLS: the TCP half of an RDMA
       * relay) or rdma://HOST:PORT?token-file=FILE, and nothing else. */
      bool tcp = u->scheme == URI_SCHEME_TCP;
      if (parse_authority (rest, (size_t) (q - rest), u, true, false, listen,
                           err, errlen) == -1 ||
          parse_query (q + 1, u, err, errlen) == -1)
        goto error;
      if (u->socket || u->tls_username ||
          (tcp ? !u->tls_psk_file : !u->token_file || u->tls_psk_file)) {
        set_error (err, errlen, tcp ? "tcp URIs take only ?tls-psk-file=FILE"
                   "[&token-file=FILE]" : "rdma URIs take only "
                   "?token-file=FILE");
        goto error;
      }
    }
    else if (strpbrk (rest, "/?#")) {
      /* Allow one trailing slash, nothing else. */
      size_t n = strlen (rest);
      if (!(n > 0 && rest[n-1] == '/' && !strpbrk (rest, "?#") &&
            strchr (rest, '/') == rest + n - 1)) {
        set_error (err, errlen, "%s URIs take no path or query",
                   uri_scheme_name (u->scheme));
        goto error;
      }
      if (parse_authority (rest, n - 1, u, true, false, listen,
                           err, errlen) == -1)
        goto error;
    }
    else if (parse_authority (rest, strlen (rest), u, true, false, listen,
                              err, errlen) == -1)
      goto error;
    break;

  case URI_SCHEME_UNIX:
    /* Accept unix:PATH and unix://PATH (QEMU writes the former). */
    if (strncmp (rest, "//", 2) == 0)
      rest += 2;
    if (check_socket_path (rest, err, errlen) == -1)
      goto error;
    u->socket = strdup (rest);
    if (!u->socket) {
      set_error (err, errlen, "out of memory");
      goto error;
    }
    break;
  }
  return 0;

 error:
  uri_free (u);
  errno = EINVAL;
  return -1;
}

int
uri_parse (const char *s, struct uri *u, char *err, size_t errlen)
{
  return parse (s, u, false, err, errlen);
}

int
uri_parse_listen (const char *s, struct uri *u, char *err, size_t errlen)
{
  return parse (s, u, true, err, errlen);
}
