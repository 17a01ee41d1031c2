/* The framed channel against real sockets: unix and TLS-PSK over TCP
 * round trips, wrong keys, oversize/truncated frames, closes and
 * timeouts.  Raw peers are driven through a socketpair. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "channel.h"
#include "frame.h"
#include "log.h"
#include "psk.h"
#include "sockets.h"

static char tmpdir[] = "/tmp/test-channel.XXXXXX";
static char psk_a[256], psk_b[256], psk_c[256];

static const struct chan_config base_cfg = {
  .service = CHAN_SERVICE_TEST, .version_min = 1, .version_max = 1,
  .timeout_ms = 5000,
};

struct server_args {
  struct chan_listener *l;
  int frames;                   /* Echo this many frames. */
  char identity[64];
  int accepted;
};

static void *
echo_server (void *p)
{
  struct server_args *a = p;
  struct channel *c = chan_accept (a->l, 5000);

  if (!c)
    return NULL;
  a->accepted = 1;
  if (chan_peer_identity (c))
    snprintf (a->identity, sizeof a->identity, "%s", chan_peer_identity (c));
  for (int i = 0; i < a->frames; ++i) {
    void *buf;
    ssize_t n = chan_recv (c, &buf);
    if (n <= 0)
      break;
    chan_send (c, buf, (size_t) n);
    free (buf);
  }
  chan_close (c);
  return NULL;
}

static void
round_trip (struct channel *c)
{
  size_t big = 900 * 1024;
  uint8_t *data = malloc (big);
  void *back;

  for (size_t i = 0; i < big; ++i)
    data[i] = (uint8_t) (i * 7 + 3);
  assert_int_equal (chan_send (c, "x", 1), 0);
  assert_int_equal (chan_recv (c, &back), 1);
  assert_memory_equal (back, "x", 1);
  free (back);
  assert_int_equal (chan_send (c, data, big), 0);
  assert_int_equal (chan_recv (c, &back), (ssize_t) big);
  assert_memory_equal (back, data, big);
  free (back);
  free (data);

  json_t *j = json_pack ("{s:s, s:i}", "op", "ping", "n", 42);
  bool eof;
  assert_int_equal (chan_send_json (c, j), 0);
  json_decref (j);
  j = chan_recv_json (c, 5000, &eof);
  assert_non_null (j);
  assert_int_equal (json_integer_value (json_object_get (j, "n")), 42);
  json_decref (j);
}

static void
test_unix_round_trip (void **state)
{
  char path[300], uri[320];
  struct server_args a = { .frames = 3 };
  pthread_t t;

  (void) state;
  snprintf (path, sizeof path, "%s/ctl.sock", tmpdir);
  snprintf (uri, sizeof uri, "unix:%s", path);
  a.l = chan_listen (uri, &base_cfg);
  assert_non_null (a.l);
  pthread_create (&t, NULL, echo_server, &a);
  struct channel *c = chan_connect (uri, &base_cfg);
  assert_non_null (c);
  assert_false (chan_is_tls (c));
  assert_int_equal (chan_version (c), 1);
  uid_t uid;
  assert_int_equal (chan_peer_uid (c, &uid), 0);
  assert_int_equal (uid, getuid ());
  round_trip (c);
  chan_close (c);
  pthread_join (t, NULL);
  chan_listener_close (a.l);
  assert_int_equal (access (path, F_OK), -1);
}

static void
test_tls_round_trip (void **state)
{
  struct chan_config cfg = base_cfg;
  struct server_args a = { .frames = 3 };
  uint16_t port;
  char uri[64];
  pthread_t t;

  (void) state;
  cfg.psk_file = psk_a;
  a.l = chan_listen ("tcp://127.0.0.1:0", &cfg);
  assert_non_null (a.l);
  assert_int_equal (chan_listener_port (a.l, &port), 0);
  snprintf (uri, sizeof uri, "tcp://127.0.0.1:%u", port);
  pthread_create (&t, NULL, echo_server, &a);
  struct channel *c = chan_connect (uri, &cfg);
  assert_non_null (c);
  assert_true (chan_is_tls (c));
  round_trip (c);
  chan_close (c);
  pthread_join (t, NULL);
  assert_string_equal (a.identity, "alice");
  chan_listener_close (a.l);
}

static void
refused (const char *client_psk, const char *identity)
{
  struct chan_config scfg = base_cfg, ccfg = base_cfg;
  struct server_args a = { .frames = 1 };
  uint16_t port;
  char uri[64];
  pthread_t t;

  scfg.psk_file = psk_a;
  ccfg.psk_file = client_psk;
  ccfg.psk_identity = identity;
  a.l = chan_listen ("tcp://127.0.0.1:0", &scfg);
  assert_non_null (a.l);
  chan_listener_port (a.l, &port);
  snprintf (uri, sizeof uri, "tcp://127.0.0.1:%u", port);
  pthread_create (&t, NULL, echo_server, &a);
  struct channel *c = chan_connect (uri, &ccfg);
  assert_null (c);
  pthread_join (t, NULL);
  assert_int_equal (a.accepted, 0);
  chan_listener_close (a.l);
}

static void
test_wrong_key (void **state)
{
  (void) state;
  refused (psk_b, NULL);        /* Same identity, other key. */
  refused (psk_c, NULL);        /* Unknown identity. */
}

static void
test_tcp_needs_psk (void **state)
{
  (void) state;
  assert_null (chan_listen ("tcp://127.0.0.1:0", &base_cfg));
  assert_null (chan_connect ("tcp://127.0.0.1:1", &base_cfg));
  assert_null (chan_listen ("nbd://127.0.0.1", &base_cfg));
  assert_null (chan_connect ("garbage", &base_cfg));
}

/* A channel on one end of a socketpair whose other end we drive by
 * hand.  Our hello is written first so the handshake never blocks. */
static struct channel *
raw_pair (int *raw_r, uint32_t max_frame, int timeout_ms, uint16_t service)
{
  int sv[2];
  struct chan_hello_info h = { .service = service, .version_min = 1,
                               .version_max = 1, .max_frame = 1024 };
  uint8_t frame[4 + CHAN_HELLO_LEN];
  struct chan_config cfg = base_cfg;

  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  frame_header_encode (CHAN_HELLO_LEN, frame);
  chan_hello_encode (&h, frame + 4);
  assert_int_equal (write (sv[1], frame, sizeof frame), (ssize_t) sizeof frame);
  cfg.max_frame = max_frame;
  cfg.timeout_ms = timeout_ms;
  struct channel *c = chan_from_fd (sv[0], true, &cfg);
  /* Drain the channel's own hello. */
  uint8_t junk[sizeof frame];
  if (c)
    assert_int_equal (read (sv[1], junk, sizeof junk), (ssize_t) sizeof junk);
  *raw_r = sv[1];
  return c;
}

static void
test_oversize_frame (void **state)
{
  int raw;
  struct channel *c = raw_pair (&raw, 1024, 2000, CHAN_SERVICE_TEST);
  uint8_t hdr[4];
  void *buf;
  char big[2048] = { 0 };

  (void) state;
  assert_non_null (c);
  frame_header_encode (2048, hdr);
  assert_int_equal (write (raw, hdr, 4), 4);
  assert_int_equal (chan_recv (c, &buf), -1);
  assert_int_equal (errno, EPROTO);
  /* The connection is closed: the raw side sees end of stream. */
  assert_int_equal (read (raw, big, sizeof big), 0);
  /* And the channel stays failed. */
  assert_int_equal (chan_send (c, "x", 1), -1);
  chan_close (c);
  close (raw);

  /* Sending more than the peer announced is refused locally. */
  c = raw_pair (&raw, 0, 2000, CHAN_SERVICE_TEST);
  assert_non_null (c);
  assert_int_equal (chan_send (c, big, sizeof big), -1);
  assert_int_equal (errno, EMSGSIZE);
  chan_close (c);
  close (raw);
}

static void
test_truncated_and_close (void **state)
{
  int raw;
  struct channel *c = raw_pair (&raw, 0, 2000, CHAN_SERVICE_TEST);
  uint8_t msg[4 + 50];
  void *buf;

  (void) state;
  frame_header_encode (100, msg);
  memset (msg + 4, 'a', 50);
  assert_int_equal (write (raw, msg, sizeof msg), (ssize_t) sizeof msg);
  close (raw);
  assert_int_equal (chan_recv (c, &buf), -1);
  assert_int_equal (errno, ECONNRESET);
  chan_close (c);

  /* A close between frames is a clean end of stream. */
  c = raw_pair (&raw, 0, 2000, CHAN_SERVICE_TEST);
  close (raw);
  assert_int_equal (chan_recv (c, &buf), 0);
  bool eof;
  assert_null (chan_recv_json (c, 1000, &eof));
  chan_close (c);

  /* Not JSON, and JSON that is not an object. */
  c = raw_pair (&raw, 0, 2000, CHAN_SERVICE_TEST);
  frame_header_encode (3, msg);
  memcpy (msg + 4, "{x}", 3);
  assert_int_equal (write (raw, msg, 7), 7);
  assert_null (chan_recv_json (c, 1000, &eof));
  assert_false (eof);
  frame_header_encode (2, msg);
  memcpy (msg + 4, "[]", 2);
  assert_int_equal (write (raw, msg, 6), 6);
  assert_null (chan_recv_json (c, 1000, &eof));
  chan_close (c);
  close (raw);
}

static void
test_timeouts (void **state)
{
  int raw;
  struct channel *c = raw_pair (&raw, 0, 300, CHAN_SERVICE_TEST);
  void *buf;
  int64_t t0;

  (void) state;
  t0 = clock_ms ();
  assert_int_equal (chan_recv (c, &buf), -1);
  assert_int_equal (errno, ETIMEDOUT);
  assert_true (clock_ms () - t0 >= 250);
  assert_true (clock_ms () - t0 < 3000);
  chan_close (c);
  close (raw);

  /* Waiting forever for a frame to start, but a frame that stalls
   * half-way still fails after the channel's timeout. */
  c = raw_pair (&raw, 0, 300, CHAN_SERVICE_TEST);
  uint8_t hdr[4];
  frame_header_encode (10, hdr);
  assert_int_equal (write (raw, hdr, 4), 4);
  t0 = clock_ms ();
  assert_int_equal (chan_recv_timeout (c, &buf, -1), -1);
  assert_int_equal (errno, ETIMEDOUT);
  assert_true (clock_ms () - t0 < 3000);
  chan_close (c);
  close (raw);

  /* A peer that never says hello. */
  int sv[2];
  struct chan_config cfg = base_cfg;
  cfg.timeout_ms = 300;
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  t0 = clock_ms ();
  assert_null (chan_from_fd (sv[0], false, &cfg));
  assert_true (clock_ms () - t0 < 3000);
  close (sv[1]);
}

static void
test_bad_hello (void **state)
{
  int sv[2];
  const char *http = "GET / HTTP/1.0\r\n\r\n";

  (void) state;
  assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal (write (sv[1], http, strlen (http)),
                    (ssize_t) strlen (http));
  assert_null (chan_from_fd (sv[0], true, &base_cfg));
  close (sv[1]);

  /* Right framing, wrong service. */
  int raw;
  assert_null (raw_pair (&raw, 0, 1000, CHAN_SERVICE_CTL));
  close (raw);
}

int
main (void)
{
  char err[256];
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_unix_round_trip),
    cmocka_unit_test (test_tls_round_trip),
    cmocka_unit_test (test_wrong_key),
    cmocka_unit_test (test_tcp_needs_psk),
    cmocka_unit_test (test_oversize_frame),
    cmocka_unit_test (test_truncated_and_close),
    cmocka_unit_test (test_timeouts),
    cmocka_unit_test (test_bad_hello),
  };
  int r;

  log_set_program ("test-channel");
  if (getenv ("TEST_VERBOSE"))
    log_set_level (LOG_LEVEL_DEBUG);
  if (!mkdtemp (tmpdir))
    return 1;
  snprintf (psk_a, sizeof psk_a, "%s/a.psk", tmpdir);
  snprintf (psk_b, sizeof psk_b, "%s/b.psk", tmpdir);
  snprintf (psk_c, sizeof psk_c, "%s/c.psk", tmpdir);
  if (psk_keygen (psk_a, "alice", 0, err, sizeof err) == -1 ||
      psk_keygen (psk_b, "alice", 0, err, sizeof err) == -1 ||
      psk_keygen (psk_c, "mallory", 0, err, sizeof err) == -1) {
    fprintf (stderr, "%s\n", err);
    return 1;
  }
  r = cmocka_run_group_tests (tests, NULL, NULL);
  unlink (psk_a);
  unlink (psk_b);
  unlink (psk_c);
  rmdir (tmpdir);
  return r;
}
