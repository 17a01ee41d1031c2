/* The volume descriptor parser: round trip and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "descriptor.h"

#define GPT "95990efc-112a-5644-966a-c90707b1be82"
#define EXT(table, id, off, size) \
  "{\"table\":\"" table "\",\"disk_id\":\"" id "\",\"sector_size\":512," \
  "\"partition\":1,\"offset\":" off ",\"size\":" size "}"
#define DESC(extents) \
  "{\"format\":\"handoff-volume/1\",\"fstype\":\"ext4\"," \
  "\"uuid\":\"3d229d3f-460a-44f5-96d0-65b0f771e350\",\"extents\":[" extents "]}"

static void
test_round_trip (void **state)
{
  const char *text = DESC (EXT ("gpt", GPT, "1048576", "104857600") ","
                           EXT ("dos", "1234ABCD", "2097152", "4096"));
  struct volid v, w;
  char err[256];
  json_t *j;
  char *s;

  (void) state;
  assert_int_equal (volid_parse (text, strlen (text), &v, err, sizeof err),
                    0);
  assert_int_equal (v.n, 2);
  assert_string_equal (v.ext[1].disk_id, "1234abcd");   /* Lower case. */
  assert_int_equal (v.ext[0].offset, 1048576);
  j = volid_to_json (&v);
  s = json_dumps (j, JSON_COMPACT);
  json_decref (j);
  assert_int_equal (volid_parse (s, strlen (s), &w, err, sizeof err), 0);
  free (s);
  assert_memory_equal (&v, &w, sizeof v);
}

static void
test_refusals (void **state)
{
  static const struct { const char *text, *why; } bad[] = {
    { "not json", "not valid JSON" },
    { "[]", "must be a JSON object" },
    { "{\"format\":\"handoff-volume/2\",\"fstype\":\"ext4\",\"uuid\":\"ab\","
      "\"extents\":[]}", "field 'format' is 'handoff-volume/2'" },
    { DESC (EXT ("gpt", GPT, "-512", "4096")), "'offset' must not be negative" },
    { DESC (EXT ("gpt", GPT, "512", "0")), "'size' must not be zero" },
    { DESC (EXT ("gpt", GPT, "513", "4096")), "not a multiple of the sector" },
    { DESC (EXT ("gpt", GPT, "4611686018427387904", "4096")), "overflow" },
    { DESC (EXT ("gpt", GPT, "9223372036854775296", "9223372036854775807")),
      "overflow" },
    { DESC (EXT ("gpt", GPT, "99999999999999999999", "1")), "not valid JSON" },
    { DESC (EXT ("gpt", "95990efc-112a-5644-966a-c90707b1be8z", "0", "1")),
      "bad character" },
    { DESC (EXT ("gpt", "95990efc112a5644966ac90707b1be82aaaa", "0", "1")),
      "not a GUID" },
    { DESC (EXT ("dos", "1234", "0", "1")), "8 hex digits" },
    { DESC (EXT ("dos", "1234abcx", "0", "1")), "bad character" },
    { DESC (EXT ("mbr", "1234abcd", "0", "1")), "must be \"gpt\" or \"dos\"" },
    { DESC (EXT ("gpt", GPT, "0", "1") "," EXT ("gpt", GPT, "0", "2")),
      "same disk and offset" },
    { DESC (""), "1 to 64 extents" },
    { "{\"format\":\"handoff-volume/1\",\"fstype\":\"ext4\",\"uuid\":\"ab\","
      "\"extents\":[], \"extra\":1}", "unknown field 'extra'" },
    { "{\"format\":\"handoff-volume/1\",\"fstype\":\"ext 4\",\"uuid\":\"ab\","
      "\"extents\":[]}", "'fstype' has a bad character" },
    { "{\"format\":\"handoff-volume/1\",\"fstype\":\"ext4\",\"uuid\":7,"
      "\"extents\":[]}", "'uuid' must be a string" },
    { "{\"format\":\"handoff-volume/1\",\"fstype\":\"ext4\",\"uuid\":\"ab\","
      "\"extents\":{}}", "'extents' must be an array" },
    { "{\"format\":\"handoff-volume/1\",\"fstype\":\"ext4\",\"uuid\":\"ab\","
      "\"extents\":[7]}", "must be an object" },
    { "{\"format\":\"handoff-volume/1\",\"fstype\":\"ext4\","
      "\"extents\":[]}", "field 'uuid' is missing" },
  };
  struct volid v;
  char err[256];

  (void) state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    err[0] = '\0';
    if (volid_parse (bad[i].text, strlen (bad[i].text), &v, err,
                     sizeof err) != -1)
      fail_msg ("accepted: %s", bad[i].text);
    if (!strstr (err, bad[i].why))
      fail_msg ("'%s': error '%s' lacks '%s'", bad[i].text, err, bad[i].why);
  }
}

static void
test_too_many_extents (void **state)
{
  char text[65536];
  size_t n;
  struct volid v;
  char err[256];

  (void) state;
  n = (size_t) snprintf (text, sizeof text, "{\"format\":\"handoff-volume/1\","
                         "\"fstype\":\"ext4\",\"uuid\":\"ab\",\"extents\":[");
  for (int i = 0; i < 65; ++i)
    n += (size_t) snprintf (text + n, sizeof text - n, "%s{\"table\":\"dos\","
                            "\"disk_id\":\"1234abcd\",\"sector_size\":512,"
                            "\"partition\":1,\"offset\":%d,\"size\":512}",
                            i ? "," : "", i * 512);
  snprintf (text + n, sizeof text - n, "]}");
  assert_int_equal (volid_parse (text, strlen (text), &v, err, sizeof err),
                    -1);
  assert_non_null (strstr (err, "1 to 64 extents, not 65"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_round_trip),
    cmocka_unit_test (test_refusals),
    cmocka_unit_test (test_too_many_extents),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
