/* Key file parsing and generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "psk.h"

#define KEY32 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void
test_parse_good (void **state)
{
  const char *text = "# comment\nalice:" KEY32 "\r\n\nbob:"
    "0123456789ABCDEF0123456789abcdef\n";
  struct psk_table t;
  char err[256];

  (void) state;
  assert_int_equal (psk_parse (text, strlen (text), &t, err, sizeof err), 0);
  assert_int_equal (t.n, 2);
  assert_string_equal (psk_lookup (&t, NULL)->identity, "alice");
  assert_int_equal (psk_lookup (&t, "alice")->key_len, 32);
  assert_int_equal (psk_lookup (&t, "bob")->key[0], 0x01);
  assert_null (psk_lookup (&t, "carol"));
  psk_table_free (&t);
}

static void
test_parse_bad (void **state)
{
  static const struct { const char *text, *reason; } bad[] = {
    { "", "no keys" },
    { "# only a comment\n", "no keys" },
    { "alice", "expected USERNAME:HEXKEY" },
    { ":" KEY32, "username is empty" },
    { "al ice:" KEY32, "bad character" },
    { "alice:" KEY32 "0", "odd number" },
    { "alice:0011", "at least 16" },
    { "alice:" "zz112233445566778899aabbccddeeff", "not hexadecimal" },
    { "a:" KEY32 "\na:" KEY32, "appears twice" },
  };
  struct psk_table t;
  char err[256];

  (void) state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    err[0] = '\0';
    if (psk_parse (bad[i].text, strlen (bad[i].text), &t, err,
                   sizeof err) != -1)
      fail_msg ("accepted: %s", bad[i].text);
    if (!strstr (err, bad[i].reason))
      fail_msg ("'%s': error '%s' lacks '%s'", bad[i].text, err,
                bad[i].reason);
  }
  /* A NUL inside a line. */
  char withnul[] = "alice:" KEY32;
  withnul[3] = '\0';
  assert_int_equal (psk_parse (withnul, sizeof withnul - 1, &t, err,
                               sizeof err), -1);
}

static void
test_keygen (void **state)
{
  char dir[] = "/tmp/test-psk.XXXXXX";
  char path[256];
  struct psk_table t;
  struct stat st;
  char err[256];

  (void) state;
  assert_non_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/k.psk", dir);
  assert_int_equal (psk_keygen (path, "hostA", 0, err, sizeof err), 0);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_mode & 0777, 0600);
  assert_int_equal (psk_load (path, &t, err, sizeof err), 0);
  assert_string_equal (t.entries[0].identity, "hostA");
  assert_int_equal (t.entries[0].key_len, PSK_KEY_BYTES);
  psk_table_free (&t);
  /* No silent overwrite. */
  assert_int_equal (psk_keygen (path, NULL, 0, err, sizeof err), -1);
  assert_non_null (strstr (err, "already exists"));
  assert_int_equal (psk_keygen (path, NULL, 1, err, sizeof err), 0);
  assert_int_equal (psk_keygen (path, "bad name", 1, err, sizeof err), -1);
  unlink (path);
  assert_int_equal (psk_load (path, &t, err, sizeof err), -1);
  assert_non_null (strstr (err, "No such file"));
  assert_int_equal (psk_load (dir, &t, err, sizeof err), -1);
  rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_good),
    cmocka_unit_test (test_parse_bad),
    cmocka_unit_test (test_keygen),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
