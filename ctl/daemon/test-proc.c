/* Starting helper processes (proc.c): a socket - Unix or TCP - counts
 * as ready only once it listens.  A server that binds, pauses, then
 * listens refuses connections in between (its socket file already
 * exists): the wait must not end there, and must not take the
 * server's one connection. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "cleanup.h"
#include "proc.h"

static char dir[] = "/tmp/test-proc.XXXXXX";
/* Servers started, killed at the end whatever happened. */
static pid_t servers[8];
static size_t nservers;

/* Binds PATH (a Unix socket, or "tcp:FILE": a TCP port of 127.0.0.1
 * written to FILE), sleeps, listens, accepts one connection, says
 * "ok". */
static const char server[] =
  "import socket, sys, time\n"
  "if sys.argv[1].startswith('tcp:'):\n"
  "    s = socket.socket(socket.AF_INET)\n"
  "    s.bind(('127.0.0.1', 0))\n"
  "    open(sys.argv[1][4:] + '.tmp', 'w').write(str(s.getsockname()[1]))\n"
  "    import os; os.rename(sys.argv[1][4:] + '.tmp', sys.argv[1][4:])\n"
  "else:\n"
  "    s = socket.socket(socket.AF_UNIX)\n"
  "    s.bind(sys.argv[1])\n"
  "time.sleep(float(sys.argv[2]))\n"
  "if sys.argv[3] == 'die': sys.exit(1)\n"
  "s.listen(1)\n"
  "c, _ = s.accept()\n"
  "c.sendall(b'ok')\n"
  "c.close()\n";

static pid_t
start_server (const char *sock, const char *pause, const char *how)
{
  char log[256], err[256] = "";
  char *argv[] = { (char *) "python3", (char *) "-c", (char *) server,
                   (char *) sock, (char *) pause, (char *) how, NULL };
  pid_t p;

  snprintf (log, sizeof log, "%s/server.log", dir);
  p = proc_spawn (argv, NULL, log, NULL, err, sizeof err);
  if (p < 0)
    fail_msg ("proc_spawn: %s", err);
  if (nservers < sizeof servers / sizeof servers[0])
    servers[nservers++] = p;
  return p;
}

static int
connect_to (const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  snprintf (sun.sun_path, sizeof sun.sun_path, "%s", path);
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1) {
    close (fd);
    return -1;
  }
  return fd;
}

static void
test_waits_for_listen (void **state)
{
  char sock[256], buf[3] = "";
  struct stat st;
  (void) state;

  snprintf (sock, sizeof sock, "%s/late.sock", dir);
  pid_t p = start_server (sock, "1.5", "listen");
  /* The socket file appears at bind, well before the listen... */
  for (int i = 0; i < 100 && stat (sock, &st) == -1; ++i)
    usleep (10000);
  assert_int_equal (stat (sock, &st), 0);
  CLEANUP_CLOSE int early = connect_to (sock);
  assert_int_equal (early, -1);
  /* ...and the wait ends only once it listens: the connection after
   * it is the server's one accepted connection. */
  assert_int_equal (proc_wait_socket (sock, p, 20000), 0);
  CLEANUP_CLOSE int fd = connect_to (sock);
  assert_true (fd >= 0);
  assert_int_equal (read (fd, buf, 2), 2);
  assert_string_equal (buf, "ok");
  unlink (sock);
}

static int
connect_tcp (int port)
{
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_port = htons ((uint16_t) port),
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  assert_true (fd >= 0);
  if (connect (fd, (struct sockaddr *) &sin, sizeof sin) == -1) {
    close (fd);
    return -1;
  }
  return fd;
}

static void
test_waits_for_tcp_listen (void **state)
{
  char file[256], arg[300], buf[16] = "";
  int port = 0;
  (void) state;

  snprintf (file, sizeof file, "%s/port", dir);
  snprintf (arg, sizeof arg, "tcp:%s", file);
  pid_t p = start_server (arg, "1.5", "listen");
  for (int i = 0; i < 300 && port == 0; ++i) {
    FILE *f = fopen (file, "r");
    if (f) {
      if (fgets (buf, sizeof buf, f))
        port = (int) strtol (buf, NULL, 10);
      fclose (f);
    }
    if (port == 0)
      usleep (10000);
  }
  assert_true (port > 0);
  /* Bound, not listening: refused... */
  CLEANUP_CLOSE int early = connect_tcp (port);
  assert_int_equal (early, -1);
  /* ...until the wait ends, and the one connection is ours. */
  assert_int_equal (proc_wait_port (port, p, 20000), 0);
  CLEANUP_CLOSE int fd = connect_tcp (port);
  assert_true (fd >= 0);
  memset (buf, 0, sizeof buf);
  assert_int_equal (read (fd, buf, 2), 2);
  assert_string_equal (buf, "ok");
  unlink (file);
}

static void
test_gives_up_when_the_process_dies (void **state)
{
  char sock[256];
  (void) state;

  snprintf (sock, sizeof sock, "%s/dead.sock", dir);
  pid_t p = start_server (sock, "0.2", "die");
  /* Well before the deadline: the process is gone. */
  assert_int_equal (proc_wait_socket (sock, p, 60000), -1);
  unlink (sock);
}

static void
test_a_plain_file_is_not_a_socket (void **state)
{
  char path[256];
  (void) state;

  snprintf (path, sizeof path, "%s/plain", dir);
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  fclose (f);
  assert_int_equal (proc_wait_socket (path, getpid (), 300), -1);
  unlink (path);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_waits_for_listen),
    cmocka_unit_test (test_waits_for_tcp_listen),
    cmocka_unit_test (test_gives_up_when_the_process_dies),
    cmocka_unit_test (test_a_plain_file_is_not_a_socket),
  };
  int r;

  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  r = cmocka_run_group_tests (tests, NULL, NULL);
  for (size_t i = 0; i < nservers; ++i)
    kill (servers[i], SIGKILL);
  char log[256];
  snprintf (log, sizeof log, "%s/server.log", dir);
  unlink (log);
  rmdir (dir);
  return r;
}
