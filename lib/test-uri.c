/* Table tests of the URI parser: valid forms and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* The tables below leave trailing fields zero on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "uri.h"

struct good {
  const char *text;
  enum uri_scheme scheme;
  const char *host;
  unsigned port;
  const char *socket;
  const char *export_name;
  const char *psk;
  const char *user;
  const char *token;
};

static const struct good goods[] = {
  { "nbd://example.com", URI_SCHEME_NBD, "example.com", 10809, NULL, "" },
  { "nbd://10.0.0.1:10810/disk0", URI_SCHEME_NBD, "10.0.0.1", 10810, NULL,
    "disk0" },
  { "nbd://[::1]:4000/", URI_SCHEME_NBD, "::1", 4000, NULL, "" },
  { "nbd://[fe80::1]/x%20y", URI_SCHEME_NBD, "fe80::1", 10809, NULL, "x y" },
  { "nbds://alice@host/e?tls-psk-file=/etc/k.psk", URI_SCHEME_NBDS, "host",
    10809, NULL, "e", "/etc/k.psk", "alice" },
  { "nbds://host:1/?tls-username=bob", URI_SCHEME_NBDS, "host", 1, NULL, "",
    NULL, "bob" },
  { "nbd+unix:///?socket=/tmp/s.sock", URI_SCHEME_NBD_UNIX, NULL, 0,
    "/tmp/s.sock", "" },
  { "nbd+unix:///exp?socket=/run/a%2Cb", URI_SCHEME_NBD_UNIX, NULL, 0,
    "/run/a,b", "exp" },
  { "nbd+unix://?socket=rel.sock", URI_SCHEME_NBD_UNIX, NULL, 0, "rel.sock",
    "" },
  { "nbds+unix://u@/?socket=/s&tls-psk-file=k", URI_SCHEME_NBDS_UNIX, NULL, 0,
    "/s", "", "k", "u" },
  { "tcp://127.0.0.1:5000", URI_SCHEME_TCP, "127.0.0.1", 5000 },
  { "tcp://host-b.example:65535/", URI_SCHEME_TCP, "host-b.example", 65535 },
  { "tcp://[2001:db8::7]:22", URI_SCHEME_TCP, "2001:db8::7", 22 },
  { "rdma://10.1.2.3:4444", URI_SCHEME_RDMA, "10.1.2.3", 4444 },
  { "tcp://10.0.0.2:7000?tls-psk-file=/run/k%20b.psk", URI_SCHEME_TCP,
    "10.0.0.2", 7000, NULL, NULL, "/run/k b.psk" },
  { "tcp://10.0.0.2:7002?tls-psk-file=/run/m.psk&token-file=/run/m.psk",
    URI_SCHEME_TCP, "10.0.0.2", 7002, NULL, NULL, "/run/m.psk", NULL,
    "/run/m.psk" },
  { "rdma://10.0.0.3:7001?token-file=/run/mig.psk", URI_SCHEME_RDMA,
    "10.0.0.3", 7001, NULL, NULL, NULL, NULL, "/run/mig.psk" },
  { "unix:/run/handoff/ctl.sock", URI_SCHEME_UNIX, NULL, 0,
    "/run/handoff/ctl.sock" },
  { "unix:relative.sock", URI_SCHEME_UNIX, NULL, 0, "relative.sock" },
  { "unix:///abs", URI_SCHEME_UNIX, NULL, 0, "/abs" },
};

struct bad {
  const char *text;
  const char *reason;           /* Substring expected in the error. */
};

static const struct bad bads[] = {
  { "", "empty" },
  { "example.com:80", "scheme" },
  { "http://x", "unknown scheme 'http'" },
  { "NBD://x", "unknown scheme" },
  { "tcp://host", "need a port" },
  { "tcp://:80", "host is empty" },
  { "tcp://host:0", "out of range" },
  { "tcp://host:65536", "out of range" },
  { "tcp://host:999999", "out of range" },
  { "tcp://host:-1", "not a number" },
  { "tcp://host:8x", "not a number" },
  { "tcp://host:", "port is empty" },
  { "tcp://::1:80", "brackets" },
  { "tcp://[::1:80", "missing ']'" },
  { "tcp://[zz::1]:80", "not an IPv6 address" },
  { "tcp://[::1]x", "unexpected text" },
  { "tcp://ho st:1", "space" },
  { "tcp://h/path:1", "no path" },
  { "tcp://h:1?x=y", "unknown query parameter 'x'" },
  { "tcp://h:1?socket=/s", "take only ?tls-psk-file" },
  { "tcp://h:1?tls-psk-file=", "is empty" },
  { "tcp://h:1/?tls-psk-file=k", "no path" },
  { "tcp://h:1?tls-psk-file=/k#x", "no path" },
  { "rdma://h:1?tls-psk-file=k", "take only ?token-file" },
  { "rdma://h:1?token-file=", "is empty" },
  { "rdma://h:1?token-file=a&token-file=b", "given twice" },
  { "rdma://h:1/?token-file=k", "no path" },
  { "tcp://h:1?token-file=k", "take only ?tls-psk-file" },
  { "nbds://h/?token-file=k", "only valid with rdma" },
  { "tcp://u@h:1", "user name is not allowed" },
  { "rdma://h", "need a port" },
  { "tcp://h!:1", "not a valid host" },
  { "nbd://", "host is empty" },
  { "nbd://h:70000", "out of range" },
  { "nbd://h/%zz", "bad percent escape" },
  { "nbd://h/%4", "bad percent escape" },
  { "nbd://h/a%00b", "%00" },
  { "nbd://h?socket=/x", "only valid with nbd+unix" },
  { "nbd://h?foo=bar", "unknown query parameter 'foo'" },
  { "nbd://h?socket", "has no value" },
  { "nbd://h/x#frag", "fragments" },
  { "nbd://u@h", "user name is not allowed" },
  { "nbd://h?tls-psk-file=k", "needs an nbds URI" },
  { "nbd+unix:///", "needs ?socket" },
  { "nbd+unix://host/?socket=/s", "no host" },
  { "nbd+unix:///?socket=", "is empty" },
  { "nbd+unix:///?socket=/a&socket=/b", "given twice" },
  { "nbd+unix:///?socket=/"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "longer than" },
  { "unix:", "path is empty" },
  { "nbds://@h", "user name is empty" },
};

static void
test_good (void **state)
{
  (void) state;
  for (size_t i = 0; i < sizeof goods / sizeof goods[0]; ++i) {
    const struct good *g = &goods[i];
    struct uri u;
    char err[256] = "";

    if (uri_parse (g->text, &u, err, sizeof err) != 0)
      fail_msg ("%s: unexpected error: %s", g->text, err);
    assert_int_equal (u.scheme, g->scheme);
    assert_string_equal (u.text, g->text);
    if (g->host)
      assert_string_equal (u.host, g->host);
    else
      assert_null (u.host);
    assert_int_equal (u.port, g->port);
    if (g->socket)
      assert_string_equal (u.socket, g->socket);
    else
      assert_null (u.socket);
    if (g->export_name)
      assert_string_equal (u.export_name, g->export_name);
    if (g->psk)
      assert_string_equal (u.tls_psk_file, g->psk);
    if (g->user)
      assert_string_equal (u.tls_username, g->user);
    if (g->token)
      assert_string_equal (u.token_file, g->token);
    else
      assert_null (u.token_file);
    uri_free (&u);
  }
}

static void
test_bad (void **state)
{
  (void) state;
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; ++i) {
    const struct bad *b = &bads[i];
    struct uri u;
    char err[256] = "";

    if (uri_parse (b->text, &u, err, sizeof err) == 0)
      fail_msg ("'%s' was accepted", b->text);
    if (!strstr (err, b->reason))
      fail_msg ("'%s': error '%s' does not mention '%s'", b->text, err,
                b->reason);
    /* A failed parse leaves nothing to free, but freeing is safe. */
    assert_null (u.text);
    uri_free (&u);
  }
}

static void
test_too_long (void **state)
{
  char buf[URI_MAX_LEN + 16];
  struct uri u;
  char err[256];

  (void) state;
  memset (buf, 'a', sizeof buf);
  memcpy (buf, "tcp://", 6);
  buf[sizeof buf - 1] = '\0';
  assert_int_equal (uri_parse (buf, &u, err, sizeof err), -1);
  assert_non_null (strstr (err, "longer than"));
  assert_int_equal (uri_parse (NULL, &u, err, sizeof err), -1);
}

static void
test_predicates (void **state)
{
  struct uri u;
  char err[256];

  (void) state;
  assert_int_equal (uri_parse ("nbds+unix:///?socket=/s", &u, err,
                               sizeof err), 0);
  assert_true (uri_is_nbd (&u));
  assert_true (uri_uses_tls (&u));
  assert_true (uri_is_unix (&u));
  uri_free (&u);
  assert_int_equal (uri_parse ("rdma://h:1", &u, err, sizeof err), 0);
  assert_false (uri_is_nbd (&u));
  assert_false (uri_is_unix (&u));
  assert_string_equal (uri_scheme_name (u.scheme), "rdma");
  uri_free (&u);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_good),
    cmocka_unit_test (test_bad),
    cmocka_unit_test (test_too_long),
    cmocka_unit_test (test_predicates),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
