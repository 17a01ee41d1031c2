/* handoff: socket helpers.  See sockets.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "sockets.h"

int
sock_wait (int fd, short events, int64_t deadline_ms)
{
  struct pollfd pfd = { .fd = fd, .events = events };

  /* Terminates: each pass either returns or the deadline approaches;
   * a deadline already passed still gets one non-blocking look. */
  for (;;) {
    int timeout = -1;
    if (deadline_ms >= 0) {
      int64_t left = deadline_ms - clock_ms ();
      timeout = left <= 0 ? 0 : left > 1000000 ? 1000000 : (int) left;
    }
    int r = poll (&pfd, 1, timeout);
    if (r > 0)
      return 0;
    if (r == 0 && timeout == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    if (r == -1 && errno != EINTR)
      return -1;
  }
}

int
sock_set_nonblock (int fd, int on)
{
  int fl = fcntl (fd, F_GETFL);

  if (fl == -1)
    return -1;
  fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
  return fcntl (fd, F_SETFL, fl);
}

/* Finish a non-blocking connect within the deadline. */
static int
connect_wait (int fd, const struct sockaddr *sa, socklen_t salen,
              int64_t deadline)
{
  int err = 0;
  socklen_t errlen = sizeof err;

  if (sock_set_nonblock (fd, 1) == -1)
    return -1;
  if (connect (fd, sa, salen) == 0)
    goto done;
  if (errno != EINPROGRESS && errno != EAGAIN)
    return -1;
  if (sock_wait (fd, POLLOUT, deadline) == -1)
    return -1;
  if (getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &errlen) == -1)
    return -1;
  if (err) {
    errno = err;
    return -1;
  }
 done:
  return sock_set_nonblock (fd, 0);
}

int
sock_connect_tcp (const char *host, uint16_t port, int timeout_ms)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_NUMERICSERV,
  };
  struct addrinfo *res = NULL;
  char portstr[16];
  int64_t deadline = deadline_after (timeout_ms);
  int saved = 0, r;

  snprintf (portstr, sizeof portstr, "%u", port);
  r = getaddrinfo (host, portstr, &hints, &res);
  if (r != 0) {
    log_error ("connect: %s:%u: %s", host, port, gai_strerror (r));
    errno = EHOSTUNREACH;
    return -1;
  }
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int fd = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
                     a->ai_protocol);
    if (fd == -1) {
      saved = errno;
      continue;
    }
    if (connect_wait (fd, a->ai_addr, a->ai_addrlen, deadline) == 0) {
      int one = 1;
      setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      freeaddrinfo (res);
      return fd;
    }
    saved = errno;
    close (fd);
  }
  freeaddrinfo (res);
  errno = saved ? saved : ECONNREFUSED;
  log_error ("connect: %s:%u: %m", host, port);
  return -1;
}

static int
fill_sun (struct sockaddr_un *sun, const char *path)
{
  memset (sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (strlen (path) >= sizeof sun->sun_path) {
    errno = ENAMETOOLONG;
    log_error ("unix socket %s: path longer than %zu bytes", path,
               sizeof sun->sun_path - 1);
    return -1;
  }
  strcpy (sun->sun_path, path);
  return 0;
}

int
sock_connect_unix (const char *path, int timeout_ms)
{
  struct sockaddr_un sun;
  CLEANUP_CLOSE int fd = -1;

  if (fill_sun (&sun, path) == -1)
    return -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    log_error ("socket: %m");
    return -1;
  }
  if (connect_wait (fd, (struct sockaddr *) &sun, sizeof sun,
                    deadline_after (timeout_ms)) == -1) {
    log_error ("connect: %s: %m", path);
    return -1;
  }
  return TAKE_FD (fd);
}

int
sock_listen_tcp (const char *host, uint16_t port, int backlog)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_NUMERICSERV,
  };
  struct addrinfo *res = NULL;
  char portstr[16];
  int r, saved = 0;

  if (!host || !*host) {
    log_error ("listen: an explicit address is required");
    errno = EINVAL;
    return -1;
  }
  snprintf (portstr, sizeof portstr, "%u", port);
  r = getaddrinfo (host, portstr, &hints, &res);
  if (r != 0) {
    log_error ("listen: %s:%u: %s", host, port, gai_strerror (r));
    errno = EADDRNOTAVAIL;
    return -1;
  }
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    int one = 1;
    int fd = socket (a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
                     a->ai_protocol);
    if (fd == -1) {
      saved = errno;
      continue;
    }
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* A daemon started at boot may be told to listen on an address its
     * network has not configured yet: bind anyway, it works once the
     * address comes up. */
    setsockopt (fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
    if (a->ai_family == AF_INET6)
      setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind (fd, a->ai_addr, a->ai_addrlen) == 0 &&
        listen (fd, backlog) == 0) {
      freeaddrinfo (res);
      return fd;
    }
    saved = errno;
    close (fd);
  }
  freeaddrinfo (res);
  errno = saved ? saved : EADDRNOTAVAIL;
  log_error ("listen: %s:%u: %m", host, port);
  return -1;
}

/* A socket file nobody accepts on is stale (its server died). */
static int
is_stale_socket (const char *path)
{
  struct sockaddr_un sun;
  struct stat st;
  CLEANUP_CLOSE int fd = -1;

  if (lstat (path, &st) == -1)
    return errno == ENOENT ? 1 : -1;
  if (!S_ISSOCK (st.st_mode))
    return 0;
  if (fill_sun (&sun, path) == -1)
    return -1;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return -1;
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == 0)
    return 0;
  return errno == ECONNREFUSED ? 1 : 0;
}

int
sock_listen_unix (const char *path, mode_t mode, int backlog)
{
  struct sockaddr_un sun;
  CLEANUP_CLOSE int fd = -1;
  int stale;

  if (fill_sun (&sun, path) == -1)
    return -1;
  stale = is_stale_socket (path);
  if (stale == 0) {
    errno = EADDRINUSE;
    log_error ("listen: %s: exists and is not a stale socket", path);
    return -1;
  }
  if (stale == 1)
    unlink (path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    log_error ("socket: %m");
    return -1;
  }
  /* Create the socket file with the final permissions from the start,
   * so there is no window where others could connect. */
  mode_t old = umask (~mode & 0777);
  int r = bind (fd, (struct sockaddr *) &sun, sizeof sun);
  umask (old);
  if (r == -1) {
    log_error ("bind: %s: %m", path);
    return -1;
  }
  if (listen (fd, backlog) == -1) {
    log_error ("listen: %s: %m", path);
    unlink (path);
    return -1;
  }
  return TAKE_FD (fd);
}

int
sock_local_port (int fd, uint16_t *port_r)
{
  struct sockaddr_storage ss = { 0 };
  socklen_t len = sizeof ss;

  if (getsockname (fd, (struct sockaddr *) &ss, &len) == -1)
    return -1;
  if (ss.ss_family == AF_INET)
    *port_r = ntohs (((struct sockaddr_in *) &ss)->sin_port);
  else if (ss.ss_family == AF_INET6)
    *port_r = ntohs (((struct sockaddr_in6 *) &ss)->sin6_port);
  else {
    errno = EAFNOSUPPORT;
    return -1;
  }
  return 0;
}

int
sock_peer_name (int fd, char *buf, size_t len)
{
  struct sockaddr_storage ss = { 0 };
  socklen_t sl = sizeof ss;
  char addr[INET6_ADDRSTRLEN];

  if (getpeername (fd, (struct sockaddr *) &ss, &sl) == -1)
    return -1;
  switch (ss.ss_family) {
  case AF_INET: {
    struct sockaddr_in *s = (struct sockaddr_in *) &ss;
    inet_ntop (AF_INET, &s->sin_addr, addr, sizeof addr);
    snprintf (buf, len, "%s:%u", addr, ntohs (s->sin_port));
    break;
  }
  case AF_INET6: {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *) &ss;
    inet_ntop (AF_INET6, &s->sin6_addr, addr, sizeof addr);
    snprintf (buf, len, "[%s]:%u", addr, ntohs (s->sin6_port));
    break;
  }
  case AF_UNIX:
    snprintf (buf, len, "unix");
    break;
  default:
    snprintf (buf, len, "unknown");
  }
  return 0;
}

ssize_t
sock_read (int fd, void *buf, size_t n, int64_t deadline)
{
  for (;;) {
    ssize_t r = recv (fd, buf, n, 0);
    if (r >= 0)
      return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (sock_wait (fd, POLLIN, deadline) == -1)
        return -1;
      continue;
    }
    if (errno != EINTR)
      return -1;
  }
}

int
sock_write_all (int fd, const void *buf, size_t n, int64_t deadline)
{
  const char *p = buf;

  while (n > 0) {
    ssize_t r = send (fd, p, n, MSG_NOSIGNAL);
    if (r == -1) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (sock_wait (fd, POLLOUT, deadline) == -1)
          return -1;
        continue;
      }
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    n -= (size_t) r;
  }
  return 0;
}
