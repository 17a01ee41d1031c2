/* volume-id: descriptor codec.  See descriptor.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "checked-overflow.h"
#include "descriptor.h"

static bool
all_hex (const char *s, size_t n)
{
  for (size_t i = 0; i < n; ++i)
    if (!isxdigit ((unsigned char) s[i]))
      return false;
  return true;
}

int
volid_check_disk_id (const char *table, const char *id, char *err,
                     size_t errlen)
{
  size_t n = strlen (id);

  if (strcmp (table, "dos") == 0) {
    if (n != 8 || !all_hex (id, 8))
      return set_error (err, errlen, "'disk_id' of a dos table must be 8 hex "
                        "digits, not '%.40s'", id);
    return 0;
  }
  if (strcmp (table, "gpt") == 0) {
    static const int dash[] = { 8, 13, 18, 23 };
    if (n != 36)
      return set_error (err, errlen, "'disk_id' of a gpt table must be a GUID "
                        "(36 characters), not '%.40s'", id);
    for (size_t i = 0, d = 0; i < 36; ++i) {
      if (d < 4 && (int) i == dash[d]) {
        if (id[i] != '-')
          return set_error (err, errlen, "'disk_id' '%s' is not a GUID", id);
        d++;
      }
      else if (!isxdigit ((unsigned char) id[i]))
        return set_error (err, errlen, "'disk_id' '%s' is not a GUID (non-hex "
                          "digit)", id);
    }
    return 0;
  }
  return set_error (err, errlen,
                    "'table' must be \"gpt\" or \"dos\", not '%.16s'", table);
}

/* Copy string field KEY of O into BUF (size LEN), checking its
 * characters with OK (NULL: printable). */
static int
get_str (json_t *o, const char *key, bool required, char *buf, size_t len,
         int (*ok) (int), const char *where, char *err, size_t errlen)
{
  json_t *v = json_object_get (o, key);
  const char *s;
  size_t n;

  if (!v) {
    if (required)
      return set_error (err, errlen, "%sfield '%s' is missing", where, key);
    buf[0] = '\0';
    return 0;
  }
  if (!json_is_string (v))
    return set_error (err, errlen, "%sfield '%s' must be a string", where, key);
  s = json_string_value (v);
  n = json_string_length (v);
  if (n != strlen (s))
    return set_error (err, errlen, "%sfield '%s' contains a NUL byte", where,
                      key);
  if (n >= len)
    return set_error (err, errlen, "%sfield '%s' is longer than %zu bytes",
                      where, key, len - 1);
  for (size_t i = 0; i < n; ++i) {
    int c = (unsigned char) s[i];
    if (ok ? !ok (c) : (c < 0x20 || c == 0x7f))
      return set_error (err, errlen, "%sfield '%s' has a bad character", where,
                        key);
  }
  memcpy (buf, s, n + 1);
  return 0;
}

static int
get_u64 (json_t *o, const char *key, uint64_t *r, const char *where,
         char *err, size_t errlen)
{
  json_t *v = json_object_get (o, key);

  *r = 0;
  if (!v)
    return set_error (err, errlen, "%sfield '%s' is missing", where, key);
  if (!json_is_integer (v))
    return set_error (err, errlen, "%sfield '%s' must be an integer", where,
                      key);
  if (json_integer_value (v) < 0)
    return set_error (err, errlen, "%sfield '%s' must not be negative", where,
                      key);
  *r = (uint64_t) json_integer_value (v);
  return 0;
}

static int
fstype_char (int c)
{
  return isalnum (c) || c == '_' || c == '-';
}

static int
uuid_char (int c)
{
  return isxdigit (c) || c == '-';
}

static int
id_char (int c)
{
  return isxdigit (c) || c == '-';
}

static int
only_known (json_t *o, const char *const *known, const char *where,
            char *err, size_t errlen)
{
  const char *key;
  json_t *v;

  json_object_foreach (o, key, v) {
    bool found = false;
    (void) v;
    for (size_t i = 0; known[i]; ++i)
      if (strcmp (key, known[i]) == 0)
        found = true;
    if (!found)
      return set_error (err, errlen, "%sunknown field '%.40s'", where, key);
  }
  return 0;
}

static int
parse_extent (json_t *o, size_t idx, struct volid_extent *e, char *err,
              size_t errlen)
{
  static const char *const known[] = {
    "table", "disk_id", "sector_size", "partition", "offset", "size",
    "partuuid", "serial", "wwn", NULL,
  };
  char where[32];
  uint64_t v, end;

  snprintf (where, sizeof where, "extent %zu: ", idx);
  if (!json_is_object (o))
    return set_error (err, errlen, "%smust be an object", where);
  if (only_known (o, known, where, err, errlen) == -1 ||
      get_str (o, "table", true, e->table, sizeof e->table, NULL, where,
               err, errlen) == -1 ||
      get_str (o, "disk_id", true, e->disk_id, sizeof e->disk_id, id_char,
               where, err, errlen) == -1 ||
      get_str (o, "partuuid", false, e->partuuid, sizeof e->partuuid,
               uuid_char, where, err, errlen) == -1 ||
      get_str (o, "serial", false, e->serial, sizeof e->serial, NULL, where,
               err, errlen) == -1 ||
      get_str (o, "wwn", false, e->wwn, sizeof e->wwn, NULL, where,
               err, errlen) == -1)
    return -1;
  for (char *p = e->disk_id; *p; ++p)
    *p = (char) tolower ((unsigned char) *p);
  char inner[256];
  if (volid_check_disk_id (e->table, e->disk_id, inner, sizeof inner) == -1)
    return set_error (err, errlen, "%s%s", where, inner);
  if (get_u64 (o, "sector_size", &v, where, err, errlen) == -1)
    return -1;
  if (v != 512 && v != 4096)
    return set_error (err, errlen, "%sfield 'sector_size' must be 512 or 4096",
                      where);
  e->sector_size = (uint32_t) v;
  if (get_u64 (o, "partition", &v, where, err, errlen) == -1)
    return -1;
  if (v < 1 || v > 256)
    return set_error (err, errlen, "%sfield 'partition' must be 1 to 256",
                      where);
  e->partno = (uint32_t) v;
  if (get_u64 (o, "offset", &e->offset, where, err, errlen) == -1 ||
      get_u64 (o, "size", &e->size, where, err, errlen) == -1)
    return -1;
  if (e->offset % e->sector_size != 0)
    return set_error (err, errlen, "%sfield 'offset' is not a multiple of the "
                      "sector size", where);
  if (e->size == 0)
    return set_error (err, errlen, "%sfield 'size' must not be zero", where);
  if (ADD_OVERFLOW (e->offset, e->size, &end) || end > (UINT64_C (1) << 62))
    return set_error (err, errlen, "%sfields 'offset' + 'size' overflow",
                      where);
  return 0;
}

int
volid_parse_json (json_t *j, struct volid *v, char *err, size_t errlen)
{
  static const char *const known[] = {
    "format", "fstype", "uuid", "label", "extents", NULL,
  };
  char format[32];
  json_t *arr, *e;
  size_t i;

  memset (v, 0, sizeof *v);
  if (!json_is_object (j))
    return set_error (err, errlen, "a descriptor must be a JSON object");
  if (only_known (j, known, "", err, errlen) == -1 ||
      get_str (j, "format", true, format, sizeof format, NULL, "", err,
               errlen) == -1)
    return -1;
  if (strcmp (format, VOLID_FORMAT) != 0)
    return set_error (err, errlen, "field 'format' is '%s', expected '%s'",
                      format, VOLID_FORMAT);
  if (get_str (j, "fstype", true, v->fstype, sizeof v->fstype, fstype_char,
               "", err, errlen) == -1 ||
      get_str (j, "uuid", true, v->uuid, sizeof v->uuid, uuid_char, "",
               err, errlen) == -1 ||
      get_str (j, "label", false, v->label, sizeof v->label, NULL, "",
               err, errlen) == -1)
    return -1;
  if (v->fstype[0] == '\0')
    return set_error (err, errlen, "field 'fstype' is empty");
  if (v->uuid[0] == '\0')
    return set_error (err, errlen, "field 'uuid' is empty");
  arr = json_object_get (j, "extents");
  if (!arr)
    return set_error (err, errlen, "field 'extents' is missing");
  if (!json_is_array (arr))
    return set_error (err, errlen, "field 'extents' must be an array");
  if (json_array_size (arr) == 0 || json_array_size (arr) > VOLID_MAX_EXTENTS)
    return set_error (err, errlen, "field 'extents' must hold 1 to %d extents, "
                      "not %zu", VOLID_MAX_EXTENTS, json_array_size (arr));
  json_array_foreach (arr, i, e) {
    if (parse_extent (e, i, &v->ext[i], err, errlen) == -1)
      return -1;
    for (size_t k = 0; k < i; ++k)
      if (strcmp (v->ext[k].disk_id, v->ext[i].disk_id) == 0 &&
          v->ext[k].offset == v->ext[i].offset)
        return set_error (err, errlen, "extent %zu: same disk and offset as "
                          "extent %zu", i, k);
    v->n = i + 1;
  }
  return 0;
}

int
volid_parse (const char *text, size_t len, struct volid *v, char *err,
             size_t errlen)
{
  json_error_t je;
  json_t *j;
  int r;

  memset (v, 0, sizeof *v);
  if (len > VOLID_MAX_TEXT * 16)
    return set_error (err, errlen, "descriptor is too large (%zu bytes)", len);
  j = json_loadb (text, len, JSON_REJECT_DUPLICATES, &je);
  if (!j)
    return set_error (err, errlen, "descriptor is not valid JSON: %s (line %d)",
                      je.text, je.line);
  r = volid_parse_json (j, v, err, errlen);
  json_decref (j);
  return r;
}

json_t *
volid_to_json (const struct volid *v)
{
  json_t *arr = json_array ();

  for (size_t i = 0; i < v->n; ++i) {
    const struct volid_extent *e = &v->ext[i];
    json_t *o = json_pack ("{s:s, s:s, s:i, s:i, s:I, s:I}",
                           "table", e->table, "disk_id", e->disk_id,
                           "sector_size", (int) e->sector_size,
                           "partition", (int) e->partno,
                           "offset", (json_int_t) e->offset,
                           "size", (json_int_t) e->size);
    if (e->partuuid[0])
      json_object_set_new (o, "partuuid", json_string (e->partuuid));
    if (e->serial[0])
      json_object_set_new (o, "serial", json_string (e->serial));
    if (e->wwn[0])
      json_object_set_new (o, "wwn", json_string (e->wwn));
    json_array_append_new (arr, o);
  }
  json_t *j = json_pack ("{s:s, s:s, s:s, s:o}", "format", VOLID_FORMAT,
                         "fstype", v->fstype, "uuid", v->uuid,
                         "extents", arr);
  if (v->label[0])
    json_object_set_new (j, "label", json_string (v->label));
  return j;
}
