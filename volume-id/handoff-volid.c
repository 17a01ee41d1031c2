/* handoff-volid: identify, locate, mount and unmount SAN volumes by
 * disk signature, partition offset and size (handoff volume ...).
 *
 *   handoff volume identify PATH|DEVICE|IMAGE [--partition N] [--json]
 *   handoff volume locate DESCRIPTOR [--scan DEV|IMAGE ...] [--json]
 *   handoff volume mount DESCRIPTOR MOUNTPOINT [--scan ...] [--read-only]
 *   handoff volume unmount MOUNTPOINT [--output FILE] [--json]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-info.h"
#include "cleanup.h"
#include "errors.h"
#include "exitcodes.h"
#include "log.h"
#include "progress.h"
#include "util.h"
#include "volid.h"

#define PROG "handoff volume"
#define MAX_SCAN 256

static bool json_compact;

static void __attribute__ ((noreturn))
usage (FILE *fp, int code)
{
  fprintf (fp,
"Usage:\n"
"  handoff volume identify PATH|DEVICE|IMAGE [--partition N] [--json]\n"
"  handoff volume locate DESCRIPTOR [--scan DEVICE|IMAGE ...] [--json]\n"
"  handoff volume mount DESCRIPTOR MOUNTPOINT [--scan DEVICE|IMAGE ...]\n"
"                       [--read-only]\n"
"  handoff volume unmount MOUNTPOINT [--output FILE] [--json]\n"
"\n"
"A volume is identified by its extents: for each partition it spans, the\n"
"disk signature (MBR disk signature or GPT disk GUID), the partition's\n"
"offset and size.  DESCRIPTOR is a file ('-' for standard input).\n"
"\n"
"Options:\n"
"  -p, --partition N   identify: the partition of an image (default: the\n"
"                      only one holding a filesystem)\n"
"  -s, --scan PATH     locate/mount: look only at these disks or images\n"
"                      (repeat); by default, every block device of the host\n"
"  -r, --read-only     mount: read-only\n"
"  -o, --output FILE   unmount: write the descriptor to FILE too\n"
"  -j, --json          one-line JSON\n"
"  -v, --verbose       more messages\n"
"  -h, --help          show this help\n"
"  -V, --version       print the version\n");
  exit (code);
}

static void
print_json (json_t *j, FILE *fp)
{
  char *s = json_dumps (j, json_compact ? JSON_COMPACT : JSON_INDENT (2));
  if (s) {
    fprintf (fp, "%s\n", s);
    free (s);
  }
}

/* ------------------------------------------------------------------ */
/* identify */

static void
read_ident (const char *disk, struct volid_extent *e)
{
  char name[PATH_MAX], p[PATH_MAX + 64], buf[128];
  const char *slash = strrchr (disk, '/');
  FILE *f;

  if (strncmp (disk, "/dev/", 5) != 0 || !slash)
    return;
  snprintf (name, sizeof name, "%s", slash + 1);
  const char *files[][2] = {
    { "device/serial", e->serial }, { "serial", e->serial },
    { "device/wwid", e->wwn }, { "wwid", e->wwn },
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; ++i) {
    char *dst = (char *) files[i][1];
    if (dst[0])
      continue;
    snprintf (p, sizeof p, "/sys/block/%s/%s", name, files[i][0]);
    f = fopen (p, "re");
    if (!f)
      continue;
    if (fgets (buf, sizeof buf, f)) {
      buf[strcspn (buf, "\n")] = '\0';
      snprintf (dst, 64, "%.63s", buf);
    }
    fclose (f);
  }
}

/* Fill extent E for the partition [offset, +size) of DISK. */
static int
extent_of (const char *disk, uint64_t offset, uint64_t size,
           struct volid_extent *e, char *err, size_t errlen)
{
  struct volid_table t;
  char inner[512];
  int r = volid_read_table (disk, &t, inner, sizeof inner);

  if (r == -1)
    return snprintf (err, errlen, "%s", inner), -1;
  if (r == 1)
    return snprintf (err, errlen, "%s has no partition table: volumes are "
                     "identified by disk signature, offset and size", disk),
      -1;
  for (size_t i = 0; i < t.n; ++i)
    if (t.part[i].offset == offset && t.part[i].size == size) {
      memset (e, 0, sizeof *e);
      snprintf (e->table, sizeof e->table, "%s", t.type);
      snprintf (e->disk_id, sizeof e->disk_id, "%s", t.id);
      e->sector_size = t.sector_size;
      e->partno = t.part[i].partno;
      e->offset = offset;
      e->size = size;
      snprintf (e->partuuid, sizeof e->partuuid, "%s", t.part[i].partuuid);
      read_ident (disk, e);
      return 0;
    }
  snprintf (err, errlen, "the range at offset %" PRIu64 " (%" PRIu64
            " bytes) of %s is not a partition of its %s table", offset, size,
            disk, t.type);
  return -1;
}

static int
fill_fs (struct volid *v, const char *dev, uint64_t offset, uint64_t size,
         char *err, size_t errlen)
{
  struct volid_fs fs;
  int r = volid_probe_fs (dev, offset, size, &fs, err, errlen);

  if (r == 1) {
    snprintf (err, errlen, "%s: no filesystem at offset %" PRIu64, dev,
              offset);
    return -1;
  }
  if (r == -1)
    return -1;
  snprintf (v->fstype, sizeof v->fstype, "%s", fs.type);
  snprintf (v->uuid, sizeof v->uuid, "%s", fs.uuid);
  snprintf (v->label, sizeof v->label, "%s", fs.label);
  if (!v->uuid[0]) {
    snprintf (err, errlen, "%s: the %s filesystem has no UUID to check "
              "against", dev, fs.type);
    return -1;
  }
  return 0;
}

/* Identify the volume on the block devices DEVS (the members of one
 * filesystem). */
static int
identify_devices (char **devs, size_t n, struct volid *v, char *err,
                  size_t errlen)
{
  char disk[PATH_MAX];
  uint64_t off, size;

  memset (v, 0, sizeof *v);
  if (n == 0 || n > VOLID_MAX_EXTENTS) {
    snprintf (err, errlen, "a volume has 1 to %d devices", VOLID_MAX_EXTENTS);
    return -1;
  }
  if (fill_fs (v, devs[0], 0, 0, err, errlen) == -1)
    return -1;
  for (size_t i = 0; i < n; ++i) {
    if (volid_device_location (devs[i], disk, sizeof disk, &off, &size,
                               err, errlen) == -1 ||
        extent_of (disk, off, size, &v->ext[v->n], err, errlen) == -1)
      return -1;
    v->n++;
  }
  return 0;
}

static int
identify (const char *target, unsigned partno, struct volid *v, char *err,
          size_t errlen)
{
  struct stat st;

  if (stat (target, &st) == -1) {
    snprintf (err, errlen, "%s: %s", target, strerror (errno));
    return -1;
  }
  if (S_ISDIR (st.st_mode)) {
    struct volid_mount m;
    struct volid_fs fs;
    char inner[512];
    int r = volid_mount_of (target, &m, err, errlen);

    if (r == -1)
      return -1;
    if (r == 1 || m.source[0] != '/') {
      snprintf (err, errlen, "%s is not on a mounted block device", target);
      return -1;
    }
    /* A multi-device btrfs: every member. */
    if (strcmp (m.fstype, "btrfs") == 0 &&
        volid_probe_fs (m.source, 0, 0, &fs, inner, sizeof inner) == 0) {
      char **devs;
      size_t n;
      if (volid_btrfs_members (fs.uuid, &devs, &n) == 0 && n > 0) {
        int rr = identify_devices (devs, n, v, err, errlen);
        for (size_t i = 0; i < n; ++i)
          free (devs[i]);
        free (devs);
        return rr;
      }
    }
    char *one = m.source;
    return identify_devices (&one, 1, v, err, errlen);
  }
  if (S_ISBLK (st.st_mode)) {
    char *one = (char *) target;
    return identify_devices (&one, 1, v, err, errlen);
  }
  if (!S_ISREG (st.st_mode)) {
    snprintf (err, errlen, "%s: not a directory, block device or image",
              target);
    return -1;
  }

  /* An image: one of its partitions. */
  struct volid_table t;
  char inner[512];
  int r = volid_read_table (target, &t, inner, sizeof inner);
  size_t pick = SIZE_MAX, with_fs = 0;

  if (r != 0) {
    snprintf (err, errlen, "%s", r == 1 ? "the image has no partition table"
              : inner);
    return -1;
  }
  for (size_t i = 0; i < t.n; ++i) {
    struct volid_fs fs;
    if (partno ? t.part[i].partno == partno
        : volid_probe_fs (target, t.part[i].offset, t.part[i].size, &fs,
                          inner, sizeof inner) == 0) {
      pick = i;
      with_fs++;
    }
  }
  if (pick == SIZE_MAX) {
    snprintf (err, errlen, partno ? "%s has no partition %u"
              : "%s has no partition holding a filesystem", target, partno);
    return -1;
  }
  if (with_fs > 1) {
    snprintf (err, errlen, "%s has %zu partitions with filesystems: choose "
              "one with --partition N", target, with_fs);
    return -1;
  }
  memset (v, 0, sizeof *v);
  if (fill_fs (v, target, t.part[pick].offset, t.part[pick].size,
               err, errlen) == -1 ||
      extent_of (target, t.part[pick].offset, t.part[pick].size, &v->ext[0],
                 err, errlen) == -1)
    return -1;
  v->n = 1;
  return 0;
}

/* ------------------------------------------------------------------ */
/* locate */

struct candidate {
  char *path;
  struct disk_key key;
  struct volid_table table;
};

struct found {
  const struct candidate *disk;
  const struct volid_part *part;
  char device[PATH_MAX];        /* Kernel partition device, or "". */
};

static int
load_descriptor (const char *path, struct volid *v, char *err, size_t errlen)
{
  CLEANUP_FREE char *text = NULL;
  size_t len = 0, cap = 0;
  FILE *f = strcmp (path, "-") == 0 ? stdin : fopen (path, "re");
  char inner[512];

  if (!f) {
    snprintf (err, errlen, "%s: %s", path, strerror (errno));
    return -1;
  }
  /* Terminates: fread reaches end of file or the size cap. */
  for (;;) {
    if (len + 4096 > cap) {
      char *nt = realloc (text, cap = cap ? cap * 2 : 8192);
      if (!nt)
        break;
      text = nt;
    }
    size_t n = fread (text + len, 1, cap - len, f);
    len += n;
    if (n == 0 || len > VOLID_MAX_TEXT * 16)
      break;
  }
  if (f != stdin)
    fclose (f);
  if (volid_parse (text ? text : "", len, v, inner, sizeof inner) == -1) {
    snprintf (err, errlen, "%s: %s", path, inner);
    return -1;
  }
  return 0;
}

/* The disks to look at (SCAN, or every disk of the host) that carry a
 * partition table, each once, into CANDS. */
static int
gather_candidates (char **scan, size_t nscan, struct candidate *cands,
                   size_t *ncands, char *err, size_t errlen)
{
  char **host = NULL, inner[512];
  size_t nhost = 0, nc = 0;
  int rv = 0;

  if (nscan == 0) {
    volid_host_disks (&host, &nhost);
    scan = host;
    nscan = nhost;
  }
  for (size_t i = 0; i < nscan && nc < VOLID_MAX_DISKS; ++i) {
    struct candidate *c = &cands[nc];
    bool dup = false;
    int r;

    if (volid_disk_key (scan[i], &c->key) == -1) {
      if (!host) {
        rv = set_error_errno (errno, err, errlen, "%s: %s", scan[i],
                              strerror (errno));
        break;
      }
      continue;
    }
    for (size_t k = 0; k < nc; ++k)
      if (volid_same_disk (&cands[k].key, &c->key))
        dup = true;
    if (dup)
      continue;
    r = volid_read_table (scan[i], &c->table, inner, sizeof inner);
    if (r == -1 && !host) {
      rv = set_error_errno (errno, err, errlen, "%s", inner);
      break;
    }
    if (r != 0) {
      log_debug ("%s: skipped: %s", scan[i], r == 1 ? "no partition table"
                 : inner);
      continue;
    }
    c->path = strdup (scan[i]);
    nc++;
  }
  *ncands = nc;
  for (size_t i = 0; i < nhost; ++i)
    free (host[i]);
  free (host);
  return rv;
}

/* Extent E of V among the NC candidates: exactly one disk with its
 * signature, a partition at its offset of its size, the filesystem
 * described.  Into FOUND[E]; -1 with err and errno otherwise. */
static int
match_extent (const struct volid *v, size_t e, const struct candidate *cands,
              size_t nc, struct found *found, char *err, size_t errlen)
{
  const struct volid_extent *x = &v->ext[e];
  const struct candidate *hit = NULL;
  struct volid_fs fs;
  char inner[512];
  int r;

  for (size_t i = 0; i < nc; ++i) {
    if (strcmp (cands[i].table.type, x->table) != 0 ||
        strcmp (cands[i].table.id, x->disk_id) != 0)
      continue;
    if (hit)
      return set_error_errno (EEXIST, err, errlen, "extent %zu: disk "
                              "signature %s %s is on two disks, %s and %s (a "
                              "cloned disk?): refusing to guess", e, x->table,
                              x->disk_id, hit->path, cands[i].path);
    hit = &cands[i];
  }
  if (!hit)
    return set_error_errno (ENOENT, err, errlen, "extent %zu (%s disk %s, "
                            "partition %u at offset %" PRIu64 "): no disk "
                            "with this signature among the %zu scanned", e,
                            x->table, x->disk_id, x->partno, x->offset, nc);
  found[e].disk = hit;
  found[e].part = NULL;
  for (size_t p = 0; p < hit->table.n; ++p)
    if (hit->table.part[p].offset == x->offset)
      found[e].part = &hit->table.part[p];
  if (!found[e].part)
    return set_error_errno (ESPIPE, err, errlen, "extent %zu: %s has no "
                            "partition at offset %" PRIu64 ": the disk is "
                            "not the one described", e, hit->path,
                            x->offset);
  if (found[e].part->size != x->size)
    return set_error_errno (ESPIPE, err, errlen, "extent %zu: the partition "
                            "at offset %" PRIu64 " of %s is %" PRIu64 " bytes, "
                            "not %" PRIu64, e, x->offset, hit->path,
                            found[e].part->size, x->size);
  found[e].device[0] = '\0';
  volid_find_part_device (hit->path, x->offset, x->size, found[e].device,
                          sizeof found[e].device);
  /* The filesystem must be the one described, on every extent. */
  r = volid_probe_fs (hit->path, x->offset, x->size, &fs, inner,
                      sizeof inner);
  if (r != 0)
    return set_error_errno (EIO, err, errlen, "extent %zu: %s offset %" PRIu64
                            ": %s", e, hit->path, x->offset,
                            r == 1 ? "no filesystem" : inner);
  if (strcmp (fs.type, v->fstype) != 0 || strcmp (fs.uuid, v->uuid) != 0)
    return set_error_errno (EILSEQ, err, errlen, "extent %zu: %s offset %"
                            PRIu64 " holds %s filesystem %s, expected %s %s",
                            e, hit->path, x->offset, fs.type, fs.uuid,
                            v->fstype, v->uuid);
  return 0;
}

/* Find every extent of V among the disks of SCAN (or the host's). */
static int
locate (const struct volid *v, char **scan, size_t nscan,
        struct candidate *cands, size_t *ncands, struct found *found,
        char *err, size_t errlen)
{
  if (gather_candidates (scan, nscan, cands, ncands, err, errlen) == -1)
    return -1;
  for (size_t e = 0; e < v->n; ++e)
    if (match_extent (v, e, cands, *ncands, found, err, errlen) == -1)
      return -1;
  return 0;
}

static void
free_cands (struct candidate *c, size_t n)
{
  for (size_t i = 0; i < n; ++i)
    free (c[i].path);
}

/* locate's answer: the volume (filesystem type, UUID) and where each
 * of its extents is on this host, an object so fields can be added. */
static json_t *
found_json (const struct volid *v, const struct found *found)
{
  json_t *arr = json_array ();

  for (size_t e = 0; e < v->n; ++e)
    /* locate filled every extent, or failed. */
    if (found[e].disk && found[e].part)
      json_array_append_new (arr, json_pack (
        "{s:i, s:s, s:i, s:I, s:I, s:s}",
        "extent", (int) e, "disk", found[e].disk->path,
        "partition", (int) found[e].part->partno,
        "offset", (json_int_t) v->ext[e].offset,
        "size", (json_int_t) v->ext[e].size,
        "device", found[e].device));
  return json_pack ("{s:b, s:s, s:s, s:o}", "ok", 1, "fstype", v->fstype,
                    "uuid", v->uuid, "extents", arr);
}

/* ------------------------------------------------------------------ */
/* mount */

struct mounted_check {
  const struct volid *v;
  const struct found *found;
  char where[4096];
};

static int
mounted_cb (const struct volid_mount *m, void *p)
{
  struct mounted_check *c = p;
  char disk[PATH_MAX], err[256];
  uint64_t off, size;
  struct disk_key k;
  struct volid_fs fs;

  if (m->source[0] != '/')
    return 0;
  if (volid_device_location (m->source, disk, sizeof disk, &off, &size,
                             err, sizeof err) == 0 &&
      volid_disk_key (disk, &k) == 0)
    for (size_t e = 0; e < c->v->n; ++e)
      if (volid_same_disk (&k, &c->found[e].disk->key) &&
          off == c->v->ext[e].offset) {
        snprintf (c->where, sizeof c->where, "%s", m->target);
        return 1;
      }
  if (strcmp (m->fstype, c->v->fstype) == 0 &&
      volid_probe_fs (m->source, 0, 0, &fs, err, sizeof err) == 0 &&
      strcmp (fs.uuid, c->v->uuid) == 0) {
    snprintf (c->where, sizeof c->where, "%s", m->target);
    return 1;
  }
  return 0;
}

static int
do_mount (const struct volid *v, const struct found *found,
          const char *mountpoint, bool readonly, char *err, size_t errlen)
{
  struct mounted_check chk = { .v = v, .found = found };
  char devs[VOLID_MAX_EXTENTS][PATH_MAX];
  int fds[VOLID_MAX_EXTENTS];
  char data[VOLID_MAX_EXTENTS * 40] = "";
  struct stat st;
  size_t n = 0;
  int r = -1;

  if (stat (mountpoint, &st) == -1 || !S_ISDIR (st.st_mode)) {
    snprintf (err, errlen, "%s: %s", mountpoint,
              errno ? strerror (errno) : "not a directory");
    return -1;
  }
  if (volid_each_mount (mounted_cb, &chk) == 1) {
    snprintf (err, errlen, "the volume is already mounted on this host at "
              "%s", chk.where);
    errno = EBUSY;
    return -1;
  }
  for (n = 0; n < v->n; ++n) {
    fds[n] = -1;
    if (found[n].device[0])
      snprintf (devs[n], sizeof devs[n], "%s", found[n].device);
    else if (volid_loop_attach (found[n].disk->path, v->ext[n].offset,
                                v->ext[n].size, readonly, devs[n],
                                sizeof devs[n], &fds[n], err, errlen) == -1)
      goto out;
    if (v->n > 1 && strcmp (v->fstype, "btrfs") == 0) {
      size_t len = strlen (data);
      snprintf (data + len, sizeof data - len, "%sdevice=%s", len ? "," : "",
                devs[n]);
    }
  }
  if (mount (devs[0], mountpoint, v->fstype, readonly ? MS_RDONLY : 0,
             data[0] ? data : NULL) == -1) {
    snprintf (err, errlen, "mount %s on %s (%s): %s", devs[0], mountpoint,
              v->fstype, strerror (errno));
    goto out;
  }
  for (size_t i = 0; i < n; ++i)
    printf ("%s: extent %zu on %s\n", mountpoint, i, devs[i]);
  r = 0;
 out:
  /* Loop devices detach themselves when the mount lets go (or now, if
   * the mount failed). */
  for (size_t i = 0; i < n; ++i)
    if (fds[i] >= 0)
      close (fds[i]);
  return r;
}

/* ------------------------------------------------------------------ */

static int
exit_for (int e)
{
  return e == ENOENT ? RC_NOT_FOUND : RC_ERROR;
}

/* Write back everything on the filesystem holding PATH. */
static int
sync_filesystem (const char *path)
{
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r, e;

  if (fd == -1)
    return -1;
  r = syncfs (fd);
  e = errno;
  close (fd);
  errno = e;
  return r;
}

/* identify PATH|DEVICE|IMAGE: its descriptor on standard output. */
static int
cmd_identify (int argc, char **argv, unsigned partno)
{
  char err[16384];
  struct volid v;
  json_t *j;

  if (argc != 1) {
    fprintf (stderr, "%s identify: expected one PATH, DEVICE or IMAGE\n",
             PROG);
    return RC_ERROR;
  }
  if (identify (argv[0], partno, &v, err, sizeof err) == -1) {
    fprintf (stderr, "%s: %s\n", PROG, err);
    return RC_ERROR;
  }
  j = volid_to_json (&v);
  print_json (j, stdout);
  json_decref (j);
  return RC_OK;
}

/* locate DESCRIPTOR, or mount DESCRIPTOR MOUNTPOINT (CMD). */
static int
cmd_locate (const char *cmd, int argc, char **argv, char **scan, size_t nscan,
            bool readonly)
{
  bool is_mount = cmd[0] == 'm';
  static struct candidate cands[VOLID_MAX_DISKS];
  struct found found[VOLID_MAX_EXTENTS];
  char err[16384];
  size_t nc = 0;
  struct volid v;
  int rc = RC_OK;

  if (argc != (is_mount ? 2 : 1)) {
    fprintf (stderr, "%s %s: expected DESCRIPTOR%s\n", PROG, cmd,
             is_mount ? " and MOUNTPOINT" : "");
    return RC_ERROR;
  }
  if (load_descriptor (argv[0], &v, err, sizeof err) == -1) {
    fprintf (stderr, "%s: %s\n", PROG, err);
    return RC_ERROR;
  }
  memset (found, 0, sizeof found);
  if (locate (&v, scan, nscan, cands, &nc, found, err, sizeof err) == -1) {
    int e = errno;
    fprintf (stderr, "%s: %s\n", PROG, err);
    free_cands (cands, nc);
    return exit_for (e);
  }
  if (!is_mount) {
    json_t *answer = found_json (&v, found);
    if (json_compact)
      print_json (answer, stdout);
    else
      for (size_t e = 0; e < v.n && found[e].disk && found[e].part; ++e) {
        char b[32];
        format_bytes (v.ext[e].size, b, sizeof b);
        printf ("extent %zu: %s partition %u (offset %" PRIu64 ", %s)%s%s\n",
                e, found[e].disk->path, found[e].part->partno,
                v.ext[e].offset, b, found[e].device[0] ? " as " : "",
                found[e].device);
      }
    json_decref (answer);
  }
  else if (do_mount (&v, found, argv[1], readonly, err, sizeof err) == -1) {
    fprintf (stderr, "%s: %s\n", PROG, err);
    rc = RC_ERROR;
  }
  free_cands (cands, nc);
  return rc;
}

/* The descriptor into OUTPUT (if given) and standard output. */
static int
write_descriptor (json_t *j, const char *output)
{
  if (output) {
    FILE *f = fopen (output, "we");
    if (!f) {
      fprintf (stderr, "%s: %s: %s (the volume is unmounted)\n", PROG,
               output, strerror (errno));
      return RC_ERROR;
    }
    print_json (j, f);
    if (fclose (f) != 0) {
      fprintf (stderr, "%s: %s: %s\n", PROG, output, strerror (errno));
      return RC_ERROR;
    }
  }
  print_json (j, stdout);
  return RC_OK;
}

/* unmount MOUNTPOINT: flushed first; its descriptor printed. */
static int
cmd_unmount (int argc, char **argv, const char *output)
{
  char err[16384], path[PATH_MAX];
  struct volid v;
  struct volid_mount m;
  json_t *j;
  int rc;

  if (argc != 1) {
    fprintf (stderr, "%s unmount: expected MOUNTPOINT\n", PROG);
    return RC_ERROR;
  }
  if (!realpath (argv[0], path) ||
      volid_mount_of (path, &m, err, sizeof err) != 0 ||
      strcmp (m.target, path) != 0) {
    fprintf (stderr, "%s: %s is not a mount point\n", PROG, argv[0]);
    return RC_ERROR;
  }
  if (identify (path, 0, &v, err, sizeof err) == -1) {
    fprintf (stderr, "%s: %s\n", PROG, err);
    return RC_ERROR;
  }
  /* Everything written so far reaches the disk before we let go. */
  if (sync_filesystem (path) == -1) {
    fprintf (stderr, "%s: syncfs %s: %s\n", PROG, path, strerror (errno));
    return RC_ERROR;
  }
  if (umount2 (path, 0) == -1) {
    fprintf (stderr, "%s: unmount %s: %s\n", PROG, path, strerror (errno));
    return RC_ERROR;
  }
  j = volid_to_json (&v);
  rc = write_descriptor (j, output);
  json_decref (j);
  return rc;
}

int
main (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "partition", required_argument, NULL, 'p' },
    { "scan", required_argument, NULL, 's' },
    { "read-only", no_argument, NULL, 'r' },
    { "output", required_argument, NULL, 'o' },
    { "json", no_argument, NULL, 'j' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  char *scan[MAX_SCAN];
  size_t nscan = 0;
  unsigned partno = 0;
  bool readonly = false;
  const char *output = NULL, *cmd;
  char err[256];
  uint64_t v64;
  int c;

  log_set_program (PROG);
  while ((c = getopt_long (argc, argv, "p:s:ro:jvhV", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'p':
      if (parse_uint (optarg, 1, 256, &v64, err, sizeof err) == -1) {
        fprintf (stderr, "%s: --partition: %s\n", PROG, err);
        return RC_ERROR;
      }
      partno = (unsigned) v64;
      break;
    case 's':
      if (nscan >= MAX_SCAN) {
        fprintf (stderr, "%s: at most %d --scan\n", PROG, MAX_SCAN);
        return RC_ERROR;
      }
      scan[nscan++] = optarg;
      break;
    case 'r': readonly = true; break;
    case 'o': output = optarg; break;
    case 'j': json_compact = true; break;
    case 'v': log_more_verbose (); break;
    case 'h': usage (stdout, RC_OK);
    case 'V':
      printf ("handoff-volid %s (%s)\n", HANDOFF_VERSION, HANDOFF_GIT_REV);
      return RC_OK;
    default: usage (stderr, RC_ERROR);
    }
  }
  if (optind >= argc) {
    fprintf (stderr, "%s: expected identify, locate, mount or unmount; see "
             "--help\n", PROG);
    return RC_ERROR;
  }
  cmd = argv[optind++];

  if (strcmp (cmd, "identify") == 0)
    return cmd_identify (argc - optind, argv + optind, partno);
  if (strcmp (cmd, "locate") == 0 || strcmp (cmd, "mount") == 0)
    return cmd_locate (cmd, argc - optind, argv + optind, scan, nscan,
                       readonly);
  if (strcmp (cmd, "unmount") == 0)
    return cmd_unmount (argc - optind, argv + optind, output);
  fprintf (stderr, "%s: unknown command '%s' (identify, locate, mount, "
           "unmount)\n", PROG, cmd);
  return RC_ERROR;
}
