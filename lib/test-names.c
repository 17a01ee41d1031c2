/* The checks of names.h: every kind accepts what the product makes and
 * refuses "..", ".", "../x", absolute paths, empty and long strings,
 * control characters and invalid UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"

static char long_str[5000];

typedef int (*check_fn) (const char *s, char *err, size_t errlen);

static void
expect (check_fn f, const char *s, bool ok)
{
  char err[512] = "";
  int r = f (s, err, sizeof err);
  if (ok && r != 0)
    fail_msg ("'%s' refused: %s", s, err);
  if (!ok && r != -1)
    fail_msg ("'%.40s' accepted", s);
  if (!ok && !err[0])
    fail_msg ("'%.40s' refused without a reason", s);
  /* The reason itself is printable, whatever the input. */
  for (const char *c = err; *c; ++c)
    assert_true ((unsigned char) *c >= 0x20 && *c != 0x7f);
}

static int
check_id (const char *s, char *err, size_t errlen)
{
  return name_check_id ("migration id", s, NAME_ID_MAX, err, errlen);
}

static int
check_path (const char *s, char *err, size_t errlen)
{
  return path_check_abs ("disk", s, err, errlen);
}

static int
check_leaf (const char *s, char *err, size_t errlen)
{
  return path_check_leaf ("file", s, err, errlen);
}

static int
check_text (const char *s, char *err, size_t errlen)
{
  return name_check_text ("label value", s, NAME_TEXT_MAX, err, errlen);
}

/* What every name kind refuses. */
static const char *const hostile[] = {
  "", ".", "..", "../x", "../../victim/x", "/etc/shadow", "a/b", "a b",
  "a\nb", "\x1b[31m", "\xff\xfe", "caf\xc3", "-rf", long_str,
};

static void
test_names (void **state)
{
  static const check_fn kinds[] = {
    name_check_vm, name_check_host, check_id, name_check_event_type,
    name_check_label_key, name_check_object_key,
  };
  (void) state;
  memset (long_str, 'a', sizeof long_str - 1);
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k)
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; ++i) {
      /* Label keys may hold '/'. */
      if ((kinds[k] == name_check_label_key) && strcmp (hostile[i], "a/b") == 0)
        continue;
      expect (kinds[k], hostile[i], false);
    }
  expect (name_check_vm, "web1", true);
  expect (name_check_vm, "db_2.prod-eu", true);
  expect (name_check_vm, "_x", true);
  expect (name_check_vm, ".hidden", false);
  expect (name_check_host, "host2", true);
  expect (check_id, "web1-host1-1764107000000-a1b2c3d4e5f6", true);
  expect (name_check_event_type, "migrated", true);
  expect (name_check_event_type, "backup:done", true);
  expect (name_check_event_type, "a=b", false);
  expect (name_check_label_key, "app.kubernetes.io/name", true);
  expect (name_check_object_key, "policy", true);
  expect (name_check_object_key, "label:tier", true);
  expect (name_check_object_key, "label:", false);
  expect (name_check_object_key, "hooks", false);
}

static void
test_paths (void **state)
{
  (void) state;
  memset (long_str, 'a', sizeof long_str - 1);
  long_str[0] = '/';
  expect (check_path, "/srv/web1.img", true);
  expect (check_path, "/", true);
  expect (check_path, "/var/lib/handoff/images/web1/disk0-web1.img", true);
  for (const char *const *p = (const char *const[]) {
         "", "relative", "../x", "/a/../b", "/a/..", "/a/./b", "/a//b",
         "/a/", "/a,b", "/a\nb", "/a\x01", "/caf\xc3", long_str, NULL };
       *p; ++p)
    expect (check_path, *p, false);
  expect (check_leaf, "disk0-web1.img", true);
  for (const char *const *p = (const char *const[]) {
         "", ".", "..", "a/b", "a,b", "a\tb", NULL }; *p; ++p)
    expect (check_leaf, *p, false);
  assert_true (path_is_beneath ("/a/b", "/a"));
  assert_true (path_is_beneath ("/a/b/c", "/a"));
  assert_true (path_is_beneath ("/a", "/"));
  assert_false (path_is_beneath ("/a", "/a"));
  assert_false (path_is_beneath ("/ab", "/a"));
  assert_false (path_is_beneath ("/a/", "/a"));
  assert_false (path_is_beneath ("/", "/"));
}

static void
test_text (void **state)
{
  char buf[64];
  char s[] = "ok \x1b[2J \xff end\n";

  (void) state;
  expect (check_text, "plain text, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82",
          true);
  expect (check_text, "tab\there", false);
  expect (check_text, "\xc0\xaf", false);          /* Overlong '/'. */
  expect (check_text, "\xed\xa0\x80", false);      /* A surrogate. */
  expect (check_text, "\xf4\x90\x80\x80", false);  /* Past U+10FFFF. */
  text_sanitize (s);
  assert_string_equal (s, "ok ?[2J ? end?");
  assert_string_equal (name_quote ("a\nb\\", buf, sizeof buf),
                       "a\\x0ab\\x5c");
  memset (long_str, 'x', sizeof long_str - 1);
  name_quote (long_str, buf, 16);
  assert_int_equal (strlen (buf), 15);
  assert_string_equal (buf + 12, "...");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_paths),
    cmocka_unit_test (test_text),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
