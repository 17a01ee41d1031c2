/* The edge of the peer protocol (peer-check.c, def-check.c): what a
 * destination answers is checked before the source acts on it, and a
 * peer's definitions and volumes stay where they belong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "def-check.h"
#include "peer-check.h"

#define KEY "handoff-migration:00112233445566778899aabbccddeeff"

static json_t *
endpoints (const char *disk, const char *share, const char *xfer,
           const char *psk)
{
  return json_pack ("{s:[s], s:s, s:s, s:s}", "disks", disk, "share", share,
                    "xfer", xfer, "psk", psk);
}

static void
expect_endpoints (json_t *ep, bool ok, const char *why)
{
  char err[512] = "";
  int r = peer_check_endpoints (ep, "10.0.0.2", 1, true, err, sizeof err);
  if (ok && r != 0)
    fail_msg ("refused: %s", err);
  if (!ok && (r != -1 || !strstr (err, why)))
    fail_msg ("expected a refusal naming '%s', got %d '%s'", why, r, err);
  json_decref (ep);
}

static void
test_endpoints (void **state)
{
  (void) state;
  expect_endpoints (endpoints ("nbds://10.0.0.2:4000/", "tcp://10.0.0.2:4001",
                               "tcp://10.0.0.2:4002", KEY), true, NULL);
  expect_endpoints (endpoints ("nbds://10.0.0.2:4000/", "tcp://10.0.0.2:4001",
                               "rdma://10.0.0.2:4002", KEY), true, NULL);
  /* Another VM's disk on the source's own host. */
  expect_endpoints (endpoints ("nbd+unix:///?socket=/var/lib/handoff/run/db1/"
                               "disk0.sock", "tcp://10.0.0.2:4001",
                               "tcp://10.0.0.2:4002", KEY), false, "nbds://");
  expect_endpoints (endpoints ("nbds://127.0.0.1:4000/", "tcp://10.0.0.2:4001",
                               "tcp://10.0.0.2:4002", KEY), false,
                    "not on the destination");
  expect_endpoints (endpoints ("nbds://10.0.0.3:4000/", "tcp://10.0.0.2:4001",
                               "tcp://10.0.0.2:4002", KEY), false,
                    "not on the destination");
  expect_endpoints (endpoints ("nbd://10.0.0.2:4000/", "tcp://10.0.0.2:4001",
                               "tcp://10.0.0.2:4002", KEY), false, "nbds://");
  expect_endpoints (endpoints ("nbds://10.0.0.2:4000/?tls-psk-file=/etc/shadow",
                               "tcp://10.0.0.2:4001", "tcp://10.0.0.2:4002",
                               KEY), false, "parameters");
  /* A token file of the source's choosing is the source's business. */
  expect_endpoints (endpoints ("nbds://10.0.0.2:4000/", "tcp://10.0.0.2:4001",
                               "rdma://10.0.0.2:4002?token-file=/etc/shadow",
                               KEY), false, "parameters");
  expect_endpoints (endpoints ("nbds://10.0.0.2:4000/", "unix:/run/x.sock",
                               "tcp://10.0.0.2:4002", KEY), false, "share");
  expect_endpoints (endpoints ("nbds://10.0.0.2:4000/", "tcp://10.0.0.2:4001",
                               "unix:/run/handoffd.sock", KEY), false, "xfer");
  expect_endpoints (endpoints ("nbds://10.0.0.2:4000/", "tcp://10.0.0.2:4001",
                               "tcp://10.0.0.2:4002", "x\ny:00"), false,
                    "migration key");
  expect_endpoints (endpoints ("nbds://10.0.0.2:4000/", "tcp://10.0.0.2:4001",
                               "tcp://10.0.0.2:4002", "../k:0011223344556677"
                               "8899aabbccddeeff"), false, "migration key");
  expect_endpoints (json_pack ("{s:[], s:s, s:s}", "disks", "xfer",
                               "tcp://10.0.0.2:4002", "psk", KEY), false,
                    "do not match");
}

/* A destination's endpoints with its RAM stream over XFER and
 * XFER_TCP beside it. */
static json_t *
with_tcp_too (const char *xfer, const char *xfer_tcp)
{
  json_t *ep = endpoints ("nbds://10.0.0.2:4000/", "tcp://10.0.0.2:4001",
                          xfer, KEY);
  json_object_set_new (ep, "xfer_tcp", json_string (xfer_tcp));
  return ep;
}

/* TCP beside RDMA for the RAM stream: on the destination, plain, and
 * only beside rdma://. */
static void
test_endpoint_xfer_tcp (void **state)
{
  const char *rdma = "rdma://10.0.0.2:4002";

  (void) state;
  expect_endpoints (with_tcp_too (rdma, "tcp://10.0.0.2:4003"), true, NULL);
  expect_endpoints (with_tcp_too ("tcp://10.0.0.2:4002",
                                  "tcp://10.0.0.2:4003"), false,
                    "only for a RAM stream over RDMA");
  expect_endpoints (with_tcp_too (rdma, "tcp://10.0.0.9:4003"), false,
                    "not on the destination");
  expect_endpoints (with_tcp_too (rdma, "rdma://10.0.0.2:4003"), false,
                    "xfer_tcp");
  expect_endpoints (with_tcp_too (rdma, "tcp://10.0.0.2:4003?tls-psk-file="
                                  "/etc/shadow"), false, "parameters");
  json_t *ep = with_tcp_too (rdma, "");
  json_object_set_new (ep, "xfer_tcp", json_integer (4003));
  expect_endpoints (ep, false, "xfer_tcp");
}

/* The proxy's answer to RELAY_STREAM (--via): where the source sends
 * its RAM stream, and the key it sends it under. */
static void
expect_relaying_disks (const char *xfer, const char *key, json_t *disks,
                       size_t ndisks, bool ok, const char *why)
{
  char err[512] = "";
  json_t *a = json_pack ("{s:s, s:s, s:s}", "type", "RELAYING", "xfer", xfer,
                         "key", key);
  if (disks)
    json_object_set_new (a, "disks", disks);
  int r = peer_check_relaying (a, "10.0.0.4", ndisks, false, err, sizeof err);
  if (ok && r != 0)
    fail_msg ("refused: %s", err);
  if (!ok && (r != -1 || !strstr (err, why)))
    fail_msg ("%s: expected a refusal naming '%s', got %d '%s'", xfer, why,
              r, err);
  json_decref (a);
}

static void
expect_relaying (const char *xfer, const char *key, bool ok, const char *why)
{
  expect_relaying_disks (xfer, key, NULL, 0, ok, why);
}

/* With the disks (--via serves them too): one export per disk, on the
 * proxy, with no parameters. */
static void
expect_proxy_disks (json_t *disks, size_t ndisks, bool ok, const char *why)
{
  expect_relaying_disks ("tcp://10.0.0.4:4100", KEY, disks, ndisks, ok, why);
}

static void
test_relaying_disks (void **state)
{
  (void) state;
  expect_proxy_disks (json_pack ("[s, s]", "nbds://10.0.0.4:4101/",
                                 "nbds://10.0.0.4:4102/"), 2, true, NULL);
  expect_proxy_disks (json_pack ("[s]", "nbds://10.0.0.4:4101/"), 2, false,
                      "one disk export per disk");
  expect_proxy_disks (NULL, 1, false, "one disk export per disk");
  expect_proxy_disks (json_pack ("[s]", "nbds://10.0.0.4:4101/"), 0, false,
                      "not asked for");
  expect_proxy_disks (json_pack ("[s]", "nbds://10.0.0.2:4101/"), 1, false,
                      "not on");
  expect_proxy_disks (json_pack ("[s]", "nbd://10.0.0.4:4101/"), 1, false,
                      "nbds://");
  expect_proxy_disks (json_pack ("[s]", "nbds://10.0.0.4:4101/?tls-psk-file="
                                 "/etc/shadow"), 1, false, "parameters");
  expect_proxy_disks (json_pack ("[s]", "nbds://10.0.0.4:4101/?"), 1, false,
                      "parameters");
  expect_proxy_disks (json_pack ("[s]", "nbds://10.0.0.4:4101/#x"), 1, false,
                      "fragments");
  expect_proxy_disks (json_pack ("[s]", "nbd+unix:///?socket=/run/x.sock"), 1,
                      false, "disk 0");
  expect_proxy_disks (json_pack ("[i]", 4101), 1, false, "disk 0");
  expect_proxy_disks (json_pack ("{s:s}", "0", "nbds://10.0.0.4:4101/"), 1,
                      false, "one disk export per disk");
}

/* Each of BAD ({message, what its refusal names}, ended by NULL) is
 * refused by peer_check_message, naming it. */
static void
expect_refusals (const char *const (*bad)[2])
{
  char err[512];

  for (size_t i = 0; bad[i][0]; ++i) {
    json_t *msg = json_loads (bad[i][0], 0, NULL);
    assert_non_null (msg);
    err[0] = '\0';
    if (peer_check_message (msg, err, sizeof err) != -1 ||
        !strstr (err, bad[i][1]))
      fail_msg ("%s: expected a refusal naming '%s', got '%s'", bad[i][0],
                bad[i][1], err);
    json_decref (msg);
  }
}

/* With the directory (--via passes the share on): its pass-on on the
 * proxy, with no parameters, and only when asked for. */
static void
test_relaying_share (void **state)
{
  char err[512];
  json_t *a = json_pack ("{s:s, s:s, s:s, s:s}", "type", "RELAYING", "xfer",
                         "tcp://10.0.0.4:4100", "key", KEY, "share",
                         "tcp://10.0.0.4:4103");

  (void) state;
  assert_int_equal (peer_check_relaying (a, "10.0.0.4", 0, true, err,
                                         sizeof err), 0);
  assert_int_equal (peer_check_relaying (a, "10.0.0.4", 0, false, err,
                                         sizeof err), -1);
  assert_non_null (strstr (err, "not asked for"));
  json_object_set_new (a, "share", json_string ("tcp://10.0.0.2:4103"));
  assert_int_equal (peer_check_relaying (a, "10.0.0.4", 0, true, err,
                                         sizeof err), -1);
  assert_non_null (strstr (err, "not on"));
  json_object_set_new (a, "share", json_string ("tcp://10.0.0.4:4103?"));
  assert_int_equal (peer_check_relaying (a, "10.0.0.4", 0, true, err,
                                         sizeof err), -1);
  assert_non_null (strstr (err, "share"));
  json_object_del (a, "share");
  assert_int_equal (peer_check_relaying (a, "10.0.0.4", 0, true, err,
                                         sizeof err), -1);
  assert_non_null (strstr (err, "share"));
  json_decref (a);
}

/* SHARE, the source's call of the proxy's pass-on, and its answer. */
static void
test_share_calls (void **state)
{
  static const char *const bad[][2] = {
    { "{\"type\":\"SHARE\"}", "op" },
    { "{\"type\":\"SHARE\",\"op\":\"commit\"}", "unknown share call" },
    { "{\"type\":\"SHARE\",\"op\":\"drop\"}", "host" },
    { "{\"type\":\"SHARE\",\"op\":\"drop\",\"host\":\"a/b\"}", "host" },
    { NULL, NULL },
  };
  char err[512];
  json_t *msg;

  (void) state;
  msg = json_pack ("{s:s, s:s}", "type", "SHARE", "op", "status");
  assert_int_equal (peer_check_message (msg, err, sizeof err), 0);
  json_decref (msg);
  msg = json_pack ("{s:s, s:s, s:s}", "type", "SHARE", "op", "drop", "host",
                   "host3");
  assert_int_equal (peer_check_message (msg, err, sizeof err), 0);
  json_decref (msg);
  expect_refusals (bad);
  msg = json_pack ("{s:s, s:{s:s, s:[{s:s}, {s:s}]}}", "type", "SHARED",
                   "reply", "state", "copying", "receivers", "state",
                   "copying", "state", "lost");
  assert_int_equal (peer_check_shared (msg, err, sizeof err), 0);
  json_decref (msg);
  msg = json_pack ("{s:s, s:{s:[{s:s}]}}", "type", "SHARED", "reply",
                   "receivers", "state", "lost");
  assert_int_equal (peer_check_shared (msg, err, sizeof err), -1);
  json_decref (msg);
  msg = json_pack ("{s:s, s:{s:s, s:[{s:b}]}}", "type", "SHARED", "reply",
                   "state", "copying", "receivers", "state", 1);
  assert_int_equal (peer_check_shared (msg, err, sizeof err), -1);
  json_decref (msg);
}

/* MIRROR, the source's call of the proxy's mirror of a disk, and the
 * proxy's answer. */
static void
test_mirror_calls (void **state)
{
  static const char *const good[] = {
    "{\"type\":\"MIRROR\",\"disk\":0,\"op\":\"status\"}",
    "{\"type\":\"MIRROR\",\"disk\":7,\"op\":\"complete\",\"verify\":false,"
    "\"timeout_ms\":30000}",
    "{\"type\":\"MIRROR\",\"disk\":1,\"op\":\"cancel\",\"host\":\"host2\"}",
    NULL,
  };
  static const char *const bad[][2] = {
    { "{\"type\":\"MIRROR\",\"op\":\"status\"}", "disk" },
    { "{\"type\":\"MIRROR\",\"disk\":8,\"op\":\"status\"}", "no disk 8" },
    { "{\"type\":\"MIRROR\",\"disk\":-1,\"op\":\"status\"}", "disk" },
    { "{\"type\":\"MIRROR\",\"disk\":0,\"op\":\"start\"}", "unknown mirror" },
    { "{\"type\":\"MIRROR\",\"disk\":0}", "op" },
    { "{\"type\":\"MIRROR\",\"disk\":0,\"op\":\"cancel\"}", "host" },
    { "{\"type\":\"MIRROR\",\"disk\":0,\"op\":\"cancel\",\"host\":\"../x\"}",
      "host" },
    { "{\"type\":\"MIRROR\",\"disk\":0,\"op\":\"complete\","
      "\"timeout_ms\":99999999999}", "over an hour" },
    { "{\"type\":\"MIRROR\",\"disk\":0,\"op\":\"complete\",\"verify\":1}",
      "verify" },
    { NULL, NULL },
  };
  char err[512];

  (void) state;
  for (const char *const *g = good; *g; ++g) {
    json_t *msg = json_loads (*g, 0, NULL);
    assert_non_null (msg);
    if (peer_check_message (msg, err, sizeof err) != 0)
      fail_msg ("%s refused: %s", *g, err);
    json_decref (msg);
  }
  expect_refusals (bad);
  json_t *a = json_pack ("{s:s, s:{s:s, s:[{s:s}]}}", "type", "MIRRORED",
                         "reply", "state", "ready", "destinations", "state",
                         "ready");
  assert_int_equal (peer_check_mirrored (a, err, sizeof err), 0);
  json_decref (a);
  a = json_pack ("{s:s, s:{s:[{}]}}", "type", "MIRRORED", "reply",
                 "destinations");
  assert_int_equal (peer_check_mirrored (a, err, sizeof err), -1);
  json_decref (a);
  a = json_pack ("{s:s, s:{s:s, s:[{s:i}]}}", "type", "MIRRORED", "reply",
                 "state", "ready", "destinations", "state", 3);
  assert_int_equal (peer_check_mirrored (a, err, sizeof err), -1);
  json_decref (a);
}

static void
test_relaying (void **state)
{
  (void) state;
  expect_relaying ("tcp://10.0.0.4:4100", KEY, true, NULL);
  /* The stream goes to the proxy, and nowhere else. */
  expect_relaying ("tcp://10.0.0.2:4100", KEY, false, "not on");
  expect_relaying ("tcp://127.0.0.1:4100", KEY, false, "not on");
  expect_relaying ("unix:/run/handoffd.sock", KEY, false, "xfer");
  expect_relaying ("rdma://10.0.0.4:4100", KEY, false, "tcp://");
  /* The source adds its own key file: the proxy names none. */
  expect_relaying ("tcp://10.0.0.4:4100?tls-psk-file=/etc/shadow", KEY, false,
                   "parameters");
  /* The key becomes one line of a file of the source's. */
  expect_relaying ("tcp://10.0.0.4:4100", "handoff-relay:0011\n", false,
                   "key");
  expect_relaying ("tcp://10.0.0.4:4100", "x\ny:00112233445566778899aabbcc"
                   "ddeeff", false, "key");
  expect_relaying ("tcp://10.0.0.4:4100", "../k:00112233445566778899aabbccdd"
                   "eeff", false, "key");
  expect_relaying ("tcp://10.0.0.4:4100", "", false, "key");
  json_t *a = json_pack ("{s:s}", "type", "RELAYING");
  char err[512];
  assert_int_equal (peer_check_relaying (a, "10.0.0.4", 0, false, err,
                                         sizeof err),
                    -1);
  json_decref (a);
}

static void
expect_def (const char *text, json_t *boot_dirs, bool ok, const char *why)
{
  char err[512] = "";
  json_t *def = json_loads (text, 0, NULL);
  assert_non_null (def);
  int r = def_check_received (def, boot_dirs, err, sizeof err);
  if (ok && r != 0)
    fail_msg ("refused: %s", err);
  if (!ok && (r != -1 || !strstr (err, why)))
    fail_msg ("%s: expected a refusal naming '%s', got '%s'", text, why, err);
  json_decref (def);
}

static void
test_received_defs (void **state)
{
  json_t *boot = json_pack ("[s]", "/srv/kernels");

  (void) state;
  expect_def ("{\"name\":\"w\",\"memory\":64,\"vcpus\":1,\"disks\":[],"
              "\"dir\":\"/a/w\",\"kernel\":\"/a/w/vmlinux\"}", NULL, true,
              NULL);
  expect_def ("{\"name\":\"w\",\"memory\":64,\"vcpus\":1,\"disks\":[],"
              "\"kernel\":\"/srv/kernels/vmlinuz\"}", boot, true, NULL);
  expect_def ("{\"name\":\"w\",\"memory\":64,\"vcpus\":1,\"disks\":[],"
              "\"dir\":\"/a/w\",\"kernel\":\"/etc/shadow\"}", boot, false,
              "outside");
  expect_def ("{\"name\":\"w\",\"memory\":64,\"vcpus\":1,\"disks\":[],"
              "\"dir\":\"/a/w\",\"initrd\":\"/a/w/../../etc/shadow\"}", NULL,
              false, "normal form");
  expect_def ("{\"name\":\"w\",\"memory\":64,\"vcpus\":1,\"disks\":[],"
              "\"kernel\":\"/srv/kernelsX/vmlinuz\"}", boot, false, "outside");
  expect_def ("{\"name\":\"..\",\"memory\":64,\"vcpus\":1,\"disks\":[]}",
              NULL, false, "VM name");
  json_decref (boot);
}

static void
test_volumes (void **state)
{
  char err[512];
  json_t *def = json_pack ("{s:s, s:i, s:i, s:[{s:s, s:i}], s:s}", "name", "d",
                           "memory", 64, "vcpus", 1, "disks", "path",
                           "/srv/san/d.img", "size", 1, "dir", "/srv/san/d");
  json_t *ok = json_pack ("[{s:s, s:{}}]", "mountpoint", "/srv/san",
                          "descriptor");
  json_t *other = json_pack ("[{s:s, s:{}}]", "mountpoint", "/srv/other",
                             "descriptor");
  json_t *root = json_pack ("[{s:s, s:{}}]", "mountpoint", "/", "descriptor");

  (void) state;
  assert_int_equal (def_check_on_volumes (def, ok, err, sizeof err), 0);
  assert_int_equal (def_check_on_volumes (def, other, err, sizeof err), -1);
  assert_non_null (strstr (err, "not on any of the volumes"));
  assert_int_equal (def_check_on_volumes (def, root, err, sizeof err), -1);
  json_decref (def);
  json_decref (ok);
  json_decref (other);
  json_decref (root);
}

static void
test_objects (void **state)
{
  char err[512];
  json_t *o;

  (void) state;
  o = json_pack ("{s:s, s:s}", "label:tier", "web", "policy",
                 "{\"hooks\": {\"*\": \"on-event\"}}");
  assert_int_equal (objects_check (o, err, sizeof err), 0);
  json_decref (o);
  o = json_pack ("{s:s}", "policy", "{\"hooks\": {\"*\": \"/bin/sh\"}}");
  assert_int_equal (objects_check (o, err, sizeof err), -1);
  assert_non_null (strstr (err, "hook directory"));
  json_decref (o);
  o = json_pack ("{s:s}", "policy", "{\"hooks\": {\"*\": \"..\"}}");
  assert_int_equal (objects_check (o, err, sizeof err), -1);
  json_decref (o);
  o = json_pack ("{s:s}", "secret", "x");
  assert_int_equal (objects_check (o, err, sizeof err), -1);
  json_decref (o);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_endpoints),
    cmocka_unit_test (test_endpoint_xfer_tcp),
    cmocka_unit_test (test_relaying),
    cmocka_unit_test (test_relaying_disks),
    cmocka_unit_test (test_mirror_calls),
    cmocka_unit_test (test_relaying_share),
    cmocka_unit_test (test_share_calls),
    cmocka_unit_test (test_received_defs),
    cmocka_unit_test (test_volumes),
    cmocka_unit_test (test_objects),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
