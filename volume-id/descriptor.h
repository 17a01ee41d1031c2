/* volume-id: the volume descriptor (DESIGN.md §3.4).
 *
 * A volume is identified server-neutrally by its extents: for each
 * partition it spans, the disk's partition table signature (the MBR's
 * 32-bit disk signature or the GPT disk GUID), the partition's starting
 * offset in bytes and its size.  The filesystem type, UUID and label
 * are a cross-check.  As JSON:
 *
 *   { "format": "handoff-volume/1",
 *     "fstype": "ext4", "uuid": "...", "label": "...",
 *     "extents": [ { "table": "gpt" | "dos",
 *                    "disk_id": "<GUID>" | "<8 hex digits>",
 *                    "sector_size": 512 | 4096,
 *                    "partition": N, "offset": BYTES, "size": BYTES,
 *                    "partuuid": "...", "serial": "...", "wwn": "..." },
 *                  ... ] }
 *
 * partuuid, serial and wwn are optional and informative.  The parser is
 * strict: unknown fields, wrong types, a wrong format version, values
 * out of range, overflowing extents and duplicates are refused, with
 * the field named.  It never prints.
 */
#ifndef HANDOFF_VOLID_DESCRIPTOR_H
#define HANDOFF_VOLID_DESCRIPTOR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define VOLID_FORMAT "handoff-volume/1"
#define VOLID_MAX_EXTENTS 64
#define VOLID_MAX_TEXT 4096           /* Whole descriptor is far smaller. */

struct volid_extent {
  char table[8];                /* "gpt" or "dos". */
  char disk_id[40];             /* Lower case. */
  uint32_t sector_size;
  uint32_t partno;
  uint64_t offset;
  uint64_t size;
  char partuuid[40];
  char serial[64];
  char wwn[64];
};

struct volid {
  char fstype[32];
  char uuid[64];
  char label[128];
  size_t n;
  struct volid_extent ext[VOLID_MAX_EXTENTS];
};

extern int volid_parse (const char *text, size_t len, struct volid *v,
                        char *err, size_t errlen);
extern int volid_parse_json (json_t *j, struct volid *v,
                             char *err, size_t errlen);
extern json_t *volid_to_json (const struct volid *v);
/* Checks a disk id's form for its table type. */
extern int volid_check_disk_id (const char *table, const char *id,
                                char *err, size_t errlen);

#endif /* HANDOFF_VOLID_DESCRIPTOR_H */
