/* volume-id: reading partition tables and filesystems with libblkid.
 *
 * libblkid reads the tables (partition table ID = MBR signature or GPT
 * disk GUID; partition starts and sizes); nothing here parses MBR or GPT
 * by hand, except the two bytes that tell "a protective MBR whose GPT
 * is missing" from "no table at all", which libblkid does not report
 * (it hides the protective MBR, correctly, but then says nothing).
 *
 * An image file does not say its sector size.  Tables are read with
 * 512 and with 4096 bytes per sector; a GPT is only found at the right
 * size, and for an MBR the size whose partitions hold filesystems wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blkid.h>

#include "errors.h"
#include "checked-overflow.h"
#include "cleanup.h"
#include "volid.h"

int
volid_disk_size (int fd, uint64_t *size_r, uint32_t *sector_r)
{
  struct stat st;

  if (fstat (fd, &st) == -1)
    return -1;
  if (S_ISBLK (st.st_mode)) {
    int ss = 512;
    if (ioctl (fd, BLKGETSIZE64, size_r) == -1)
      return -1;
    if (ioctl (fd, BLKSSZGET, &ss) == -1)
      ss = 512;
    *sector_r = (uint32_t) ss;
    return 0;
  }
  if (S_ISREG (st.st_mode)) {
    *size_r = (uint64_t) st.st_size;
    *sector_r = 0;                      /* Unknown. */
    return 0;
  }
  errno = ENOTBLK;
  return -1;
}

static int
probe_fs_fd (int fd, uint64_t offset, uint64_t size, struct volid_fs *fs,
             char *err, size_t errlen)
{
  blkid_probe pr = blkid_new_probe ();
  const char *v;
  int r;

  memset (fs, 0, sizeof *fs);
  if (!pr)
    return set_error_errno (errno, err, errlen, "libblkid: out of memory");
  if (blkid_probe_set_device (pr, fd, (blkid_loff_t) offset,
                              (blkid_loff_t) size) == -1) {
    blkid_free_probe (pr);
    return set_error_errno (errno, err, errlen,
                            "libblkid: cannot probe at offset %" PRIu64,
                            offset);
  }
  blkid_probe_enable_partitions (pr, 0);
  blkid_probe_enable_superblocks (pr, 1);
  blkid_probe_set_superblocks_flags (pr, BLKID_SUBLKS_TYPE |
                                     BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL);
  r = blkid_do_safeprobe (pr);
  if (r == 0) {
    if (blkid_probe_lookup_value (pr, "TYPE", &v, NULL) == 0)
      snprintf (fs->type, sizeof fs->type, "%s", v);
    if (blkid_probe_lookup_value (pr, "UUID", &v, NULL) == 0)
      snprintf (fs->uuid, sizeof fs->uuid, "%s", v);
    if (blkid_probe_lookup_value (pr, "LABEL", &v, NULL) == 0)
      snprintf (fs->label, sizeof fs->label, "%s", v);
  }
  blkid_free_probe (pr);
  if (r == -2)
    return set_error_errno (errno, err, errlen,
                            "more than one filesystem signature at offset %"
                            PRIu64, offset);
  if (r < 0)
    return set_error_errno (errno, err, errlen,
                            "cannot read the filesystem at offset %" PRIu64,
                            offset);
  return r == 0 && fs->type[0] ? 0 : 1;
}

int
volid_probe_fs (const char *path, uint64_t offset, uint64_t size,
                struct volid_fs *fs, char *err, size_t errlen)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));
  return probe_fs_fd (fd, offset, size, fs, err, errlen);
}

/* Read the table at sector size SS.  0 found, 1 none, -1 error. */
static int
read_at (int fd, uint32_t ss, uint64_t disk_size, struct volid_table *t,
         char *err, size_t errlen)
{
  blkid_probe pr = blkid_new_probe ();
  blkid_partlist ls;
  blkid_parttable tab;
  const char *s;
  int n;

  memset (t, 0, sizeof *t);
  if (!pr)
    return set_error_errno (errno, err, errlen, "libblkid: out of memory");
  if (blkid_probe_set_device (pr, fd, 0, 0) == -1 ||
      blkid_probe_set_sectorsize (pr, ss) == -1) {
    blkid_free_probe (pr);
    return set_error_errno (errno, err, errlen, "libblkid: cannot probe");
  }
  blkid_probe_enable_superblocks (pr, 0);
  blkid_probe_enable_partitions (pr, 1);
  blkid_probe_set_partitions_flags (pr, BLKID_PARTS_ENTRY_DETAILS);
  ls = blkid_probe_get_partitions (pr);
  if (!ls || !(tab = blkid_partlist_get_table (ls))) {
    blkid_free_probe (pr);
    return 1;
  }
  s = blkid_parttable_get_type (tab);
  snprintf (t->type, sizeof t->type, "%s", s ? s : "");
  s = blkid_parttable_get_id (tab);
  snprintf (t->id, sizeof t->id, "%s", s ? s : "");
  for (char *p = t->id; *p; ++p)
    if (*p >= 'A' && *p <= 'F')
      *p = (char) (*p - 'A' + 'a');
  t->sector_size = ss;
  t->disk_size = disk_size;
  n = blkid_partlist_numof_partitions (ls);
  for (int i = 0; i < n && t->n < VOLID_MAX_PARTS; ++i) {
    blkid_partition par = blkid_partlist_get_partition (ls, i);
    struct volid_part *p = &t->part[t->n];
    blkid_loff_t start = blkid_partition_get_start (par);
    blkid_loff_t size = blkid_partition_get_size (par);
    uint64_t end;

    if (!par || start < 0 || size <= 0)
      continue;
    /* Extended (container) partitions hold no filesystem of their own. */
    if (blkid_partition_is_extended (par))
      continue;
    /* libblkid reports 512-byte units whatever the sector size. */
    p->partno = (uint32_t) blkid_partition_get_partno (par);
    p->offset = (uint64_t) start * 512;
    p->size = (uint64_t) size * 512;
    p->type_code = (uint32_t) blkid_partition_get_type (par);
    s = blkid_partition_get_uuid (par);
    snprintf (p->partuuid, sizeof p->partuuid, "%s", s ? s : "");
    if (ADD_OVERFLOW (p->offset, p->size, &end) || end > disk_size) {
      blkid_free_probe (pr);
      return set_error_errno (errno, err, errlen, "partition %u ends at byte %"
                              PRIu64 ", past the end of the disk (%" PRIu64
                              " bytes): the "
                              "disk is truncated or its table is corrupt",
                              p->partno, p->offset + p->size, disk_size);
    }
    t->n++;
  }
  blkid_free_probe (pr);
  if (t->id[0] == '\0')
    return set_error_errno (errno, err, errlen,
                            "the %s partition table has no disk signature",
                            t->type);
  return 0;
}

/* An MBR whose first entry is type 0xEE protects a GPT. */
static int
has_protective_mbr (int fd, bool *mbr_sig_r)
{
  uint8_t mbr[512];

  *mbr_sig_r = false;
  if (pread (fd, mbr, sizeof mbr, 0) != (ssize_t) sizeof mbr)
    return 0;
  if (mbr[510] != 0x55 || mbr[511] != 0xaa)
    return 0;
  *mbr_sig_r = true;
  for (int i = 0; i < 4; ++i)
    if (mbr[446 + 16 * i + 4] == 0xee)
      return 1;
  return 0;
}

static unsigned
fs_score (int fd, const struct volid_table *t)
{
  unsigned score = 0;

  for (size_t i = 0; i < t->n; ++i) {
    struct volid_fs fs;
    char err[128];
    if (probe_fs_fd (fd, t->part[i].offset, t->part[i].size, &fs, err,
                     sizeof err) == 0)
      score++;
  }
  return score;
}

int
volid_read_table (const char *path, struct volid_table *t, char *err,
                  size_t errlen)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  uint64_t size;
  uint32_t ss;
  struct volid_table alt;
  bool mbr_sig;
  char e1[256] = "", e2[256] = "";
  int r1, r2;

  memset (t, 0, sizeof *t);
  if (fd == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));
  if (volid_disk_size (fd, &size, &ss) == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));

  if (ss) {
    /* A block device knows its sector size. */
    r1 = read_at (fd, ss, size, t, e1, sizeof e1);
  }
  else {
    r1 = read_at (fd, 512, size, t, e1, sizeof e1);
    r2 = read_at (fd, 4096, size, &alt, e2, sizeof e2);
    if (r2 == 0 && (r1 != 0 ||
                    (strcmp (t->type, "gpt") != 0 &&
                     strcmp (alt.type, "gpt") == 0) ||
                    (strcmp (t->type, alt.type) == 0 &&
                     fs_score (fd, &alt) > fs_score (fd, t)))) {
      *t = alt;
      r1 = 0;
    }
    else if (r1 == 1 && r2 == -1) {
      r1 = -1;
      snprintf (e1, sizeof e1, "%s", e2);
    }
  }
  if (r1 == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path, e1);
  if (r1 == 0) {
    for (size_t i = 0; i < t->n; ++i)
      if (strcmp (t->type, "dos") == 0 && t->part[i].type_code == 0xee)
        return set_error_errno (errno, err, errlen,
                                "%s: a protective MBR with no readable "
                                "GPT behind it: the GPT is corrupt", path);
    return 0;
  }
  if (has_protective_mbr (fd, &mbr_sig))
    return set_error_errno (errno, err, errlen,
                            "%s: a protective MBR with no readable GPT "
                            "behind it: the GPT is corrupt or truncated", path);
  if (mbr_sig)
    return set_error_errno (errno, err, errlen,
                            "%s: an MBR signature but no readable "
                            "partition table: the table is corrupt", path);
  return 1;
}
