/* volume-id: block devices, loop devices and mounts on this host, read
 * from sysfs and /proc/self/mountinfo. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "errors.h"
#include "cleanup.h"
#include "volid.h"

/* Read a one-line sysfs file, trailing newline removed. */
static int
sysfs_read (const char *path, char *buf, size_t len)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd == -1)
    return -1;
  n = read (fd, buf, len - 1);
  if (n < 0)
    return -1;
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    buf[--n] = '\0';
  return 0;
}

static int
sysfs_u64 (const char *path, uint64_t *v)
{
  char buf[64];

  if (sysfs_read (path, buf, sizeof buf) == -1)
    return -1;
  *v = strtoull (buf, NULL, 10);
  return 0;
}

/* The sysfs name of a block device node ("loop3", "sda2"). */
static int
block_name (const char *dev, char *name, size_t len)
{
  struct stat st;
  char link[PATH_MAX], target[PATH_MAX];
  ssize_t n;
  const char *slash;

  if (stat (dev, &st) == -1 || !S_ISBLK (st.st_mode))
    return -1;
  snprintf (link, sizeof link, "/sys/dev/block/%u:%u", major (st.st_rdev),
            minor (st.st_rdev));
  n = readlink (link, target, sizeof target - 1);
  if (n < 0)
    return -1;
  target[n] = '\0';
  slash = strrchr (target, '/');
  if (snprintf (name, len, "%s", slash ? slash + 1 : target) >= (int) len) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 0;
}

/* For a loop device: its backing file, offset and size limit. */
static int
loop_info (const char *name, char *backing, size_t len, uint64_t *offset,
           uint64_t *sizelimit)
{
  char p[PATH_MAX];

  snprintf (p, sizeof p, "/sys/block/%s/loop/backing_file", name);
  if (sysfs_read (p, backing, len) == -1 || backing[0] == '\0')
    return -1;
  snprintf (p, sizeof p, "/sys/block/%s/loop/offset", name);
  if (sysfs_u64 (p, offset) == -1)
    *offset = 0;
  snprintf (p, sizeof p, "/sys/block/%s/loop/sizelimit", name);
  if (sysfs_u64 (p, sizelimit) == -1)
    *sizelimit = 0;
  return 0;
}

int
volid_disk_key (const char *path, struct disk_key *k)
{
  struct stat st;
  char name[64], backing[PATH_MAX];
  uint64_t off, lim;

  memset (k, 0, sizeof *k);
  if (stat (path, &st) == -1)
    return -1;
  if (S_ISREG (st.st_mode)) {
    k->dev = st.st_dev;
    k->ino = st.st_ino;
    return 0;
  }
  if (!S_ISBLK (st.st_mode)) {
    errno = ENOTBLK;
    return -1;
  }
  /* A loop device showing a whole file is that file. */
  if (block_name (path, name, sizeof name) == 0 &&
      strncmp (name, "loop", 4) == 0 &&
      loop_info (name, backing, sizeof backing, &off, &lim) == 0 &&
      off == 0 && lim == 0 && stat (backing, &st) == 0 &&
      S_ISREG (st.st_mode)) {
    k->dev = st.st_dev;
    k->ino = st.st_ino;
    return 0;
  }
  k->rdev = st.st_rdev;
  return 0;
}

bool
volid_same_disk (const struct disk_key *a, const struct disk_key *b)
{
  if (a->rdev || b->rdev)
    return a->rdev == b->rdev;
  return a->dev == b->dev && a->ino == b->ino;
}

int
volid_host_disks (char ***paths_r, size_t *n_r)
{
  DIR *d = opendir ("/sys/block");
  struct dirent *de;
  char **v = NULL;
  size_t n = 0;

  *paths_r = NULL;
  *n_r = 0;
  if (!d)
    return -1;
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL && n < VOLID_MAX_DISKS) {
    char p[PATH_MAX], backing[PATH_MAX];
    uint64_t size = 0, off, lim;

    if (de->d_name[0] == '.' || strncmp (de->d_name, "ram", 3) == 0 ||
        strncmp (de->d_name, "zram", 4) == 0 ||
        strncmp (de->d_name, "sr", 2) == 0 ||
        strncmp (de->d_name, "fd", 2) == 0)
      continue;
    snprintf (p, sizeof p, "/sys/block/%s/size", de->d_name);
    if (sysfs_u64 (p, &size) == -1 || size == 0)
      continue;
    if (strncmp (de->d_name, "loop", 4) == 0 &&
        loop_info (de->d_name, backing, sizeof backing, &off, &lim) == -1)
      continue;
    snprintf (p, sizeof p, "/dev/%s", de->d_name);
    if (access (p, F_OK) == -1)
      continue;
    char **nv = realloc (v, (n + 1) * sizeof *nv);
    if (!nv)
      break;
    v = nv;
    v[n] = strdup (p);
    if (v[n])
      n++;
  }
  closedir (d);
  *paths_r = v;
  *n_r = n;
  return 0;
}

int
volid_device_location (const char *dev, char *disk, size_t len,
                       uint64_t *offset_r, uint64_t *size_r,
                       char *err, size_t errlen)
{
  char name[64], p[PATH_MAX], target[PATH_MAX];
  uint64_t start, sectors, off, lim;

  if (block_name (dev, name, sizeof name) == -1)
    return set_error_errno (errno, err, errlen, "%s: not a block device", dev);

  /* A kernel partition: its parent disk and its range. */
  snprintf (p, sizeof p, "/sys/class/block/%s/partition", name);
  if (access (p, F_OK) == 0) {
    ssize_t n;
    char *slash;

    snprintf (p, sizeof p, "/sys/class/block/%s/start", name);
    if (sysfs_u64 (p, &start) == -1)
      return set_error_errno (errno, err, errlen, "%s: cannot read its start",
                              dev);
    snprintf (p, sizeof p, "/sys/class/block/%s/size", name);
    if (sysfs_u64 (p, &sectors) == -1)
      return set_error_errno (errno, err, errlen, "%s: cannot read its size",
                              dev);
    snprintf (p, sizeof p, "/sys/class/block/%s", name);
    n = readlink (p, target, sizeof target - 1);
    if (n < 0)
      return set_error_errno (errno, err, errlen, "%s: %s", p,
                              strerror (errno));
    target[n] = '\0';
    /* .../block/DISK/PART: the disk is the next-to-last component. */
    slash = strrchr (target, '/');
    if (!slash)
      return set_error_errno (errno, err, errlen,
                              "%s: unexpected sysfs link %s", p, target);
    *slash = '\0';
    slash = strrchr (target, '/');
    snprintf (disk, len, "/dev/%s", slash ? slash + 1 : target);
    *offset_r = start * 512;          /* sysfs counts 512-byte units. */
    *size_r = sectors * 512;
    return 0;
  }

  /* A loop device: its file, at its offset. */
  if (strncmp (name, "loop", 4) == 0 &&
      loop_info (name, target, sizeof target, &off, &lim) == 0) {
    struct stat st;

    snprintf (p, sizeof p, "/sys/block/%s/size", name);
    if (sysfs_u64 (p, &sectors) == -1)
      return set_error_errno (errno, err, errlen, "%s: cannot read its size",
                              dev);
    snprintf (disk, len, "%s", target);
    *offset_r = off;
    *size_r = sectors * 512;
    /* A loop over a whole-disk loop: keep going down to the file. */
    if (stat (target, &st) == 0 && S_ISBLK (st.st_mode)) {
      uint64_t o2 = UINT64_MAX, s2 = 0;
      char d2[PATH_MAX];
      if (volid_device_location (target, d2, sizeof d2, &o2, &s2, err,
                                 errlen) == 0 && o2 == 0) {
        snprintf (disk, len, "%s", d2);
      }
    }
    return 0;
  }

  /* A whole disk. */
  snprintf (disk, len, "%s", dev);
  snprintf (p, sizeof p, "/sys/block/%s/size", name);
  if (sysfs_u64 (p, &sectors) == -1)
    return set_error_errno (errno, err, errlen, "%s: cannot read its size",
                            dev);
  *offset_r = 0;
  *size_r = sectors * 512;
  return 0;
}

int
volid_find_part_device (const char *disk, uint64_t offset, uint64_t size,
                        char *dev, size_t len)
{
  char name[64], p[PATH_MAX];
  DIR *d;
  struct dirent *de;
  int found = -1;

  if (block_name (disk, name, sizeof name) == -1)
    return -1;
  snprintf (p, sizeof p, "/sys/block/%s", name);
  d = opendir (p);
  if (!d)
    return -1;
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL) {
    uint64_t start, sectors;
    if (strncmp (de->d_name, name, strlen (name)) != 0)
      continue;
    snprintf (p, sizeof p, "/sys/block/%s/%s/start", name, de->d_name);
    if (sysfs_u64 (p, &start) == -1)
      continue;
    snprintf (p, sizeof p, "/sys/block/%s/%s/size", name, de->d_name);
    if (sysfs_u64 (p, &sectors) == -1)
      continue;
    if (start * 512 == offset && sectors * 512 == size) {
      snprintf (dev, len, "/dev/%s", de->d_name);
      if (access (dev, F_OK) == 0) {
        found = 0;
        break;
      }
    }
  }
  closedir (d);
  return found;
}

/* mountinfo escapes spaces and such as \ooo. */
static void
unescape (char *s)
{
  char *o = s;

  for (char *p = s; *p; ) {
    if (p[0] == '\\' && isdigit ((unsigned char) p[1]) &&
        isdigit ((unsigned char) p[2]) && isdigit ((unsigned char) p[3])) {
      *o++ = (char) ((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
      p += 4;
    }
    else
      *o++ = *p++;
  }
  *o = '\0';
}

int
volid_each_mount (int (*fn) (const struct volid_mount *m, void *arg),
                  void *arg)
{
  CLEANUP_FCLOSE FILE *f = fopen ("/proc/self/mountinfo", "re");
  CLEANUP_FREE char *line = NULL;
  size_t cap = 0;

  if (!f)
    return -1;
  /* Terminates: getline reaches the end of the file. */
  while (getline (&line, &cap, f) > 0) {
    struct volid_mount m;
    unsigned maj, min;
    char mnt[4096], fstype[32], src[256];
    const char *dash = strstr (line, " - ");

    memset (&m, 0, sizeof m);
    /* The kernel writes these fields: plain decimals, never out of
     * range, so sscanf's silence on overflow does not matter. */
    if (!dash ||
        // NOLINTNEXTLINE(cert-err34-c)
        sscanf (line, "%*s %*s %u:%u %*s %4095s", &maj, &min, mnt) != 3 ||
        sscanf (dash + 3, "%31s %255s", fstype, src) != 2)
      continue;
    unescape (mnt);
    unescape (src);
    snprintf (m.source, sizeof m.source, "%s", src);
    snprintf (m.target, sizeof m.target, "%s", mnt);
    snprintf (m.fstype, sizeof m.fstype, "%s", fstype);
    m.dev = makedev (maj, min);
    int r = fn (&m, arg);
    if (r)
      return r;
  }
  return 0;
}

struct mount_of_arg {
  char path[4096];
  struct volid_mount *out;
  size_t best;
};

static int
mount_of_cb (const struct volid_mount *m, void *p)
{
  struct mount_of_arg *a = p;
  size_t n = strlen (m->target);

  /* The longest mount point that is a prefix of the path; the last
   * such line wins, since a later mount stacks on an earlier one.
   * (st_dev cannot be compared: a btrfs subvolume has its own.) */
  if (strncmp (a->path, m->target, n) == 0 &&
      (a->path[n] == '/' || a->path[n] == '\0' || n == 1) && n + 1 >= a->best) {
    *a->out = *m;
    a->best = n + 1;
  }
  return 0;
}

int
volid_mount_of (const char *path, struct volid_mount *m, char *err,
                size_t errlen)
{
  struct mount_of_arg a = { .out = m };

  memset (m, 0, sizeof *m);
  if (!realpath (path, a.path))
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));
  volid_each_mount (mount_of_cb, &a);
  return a.best ? 0 : 1;
}

int
volid_btrfs_members (const char *fsuuid, char ***devs_r, size_t *n_r)
{
  char p[PATH_MAX];
  DIR *d;
  struct dirent *de;
  char **v = NULL;
  size_t n = 0;

  *devs_r = NULL;
  *n_r = 0;
  snprintf (p, sizeof p, "/sys/fs/btrfs/%s/devices", fsuuid);
  d = opendir (p);
  if (!d)
    return -1;
  /* Terminates: readdir reaches the end of the directory. */
  while ((de = readdir (d)) != NULL) {
    if (de->d_name[0] == '.')
      continue;
    char **nv = realloc (v, (n + 1) * sizeof *nv);
    if (!nv)
      break;
    v = nv;
    if (asprintf (&v[n], "/dev/%s", de->d_name) > 0)
      n++;
  }
  closedir (d);
  *devs_r = v;
  *n_r = n;
  return 0;
}

int
volid_loop_attach (const char *backing, uint64_t offset, uint64_t size,
                   bool readonly, char *dev, size_t len, int *fd_r,
                   char *err, size_t errlen)
{
  CLEANUP_CLOSE int ctl = open ("/dev/loop-control", O_RDWR | O_CLOEXEC);
  CLEANUP_CLOSE int bfd = -1;

  *fd_r = -1;
  if (ctl == -1)
    return set_error_errno (errno, err, errlen, "/dev/loop-control: %s",
                            strerror (errno));
  bfd = open (backing, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (bfd == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", backing,
                            strerror (errno));

  /* Another process may take the free device first: try again. */
  for (int attempt = 0; attempt < 20; ++attempt) {
    struct loop_config cfg;
    int nr = ioctl (ctl, LOOP_CTL_GET_FREE);
    int lfd;

    if (nr < 0)
      return set_error_errno (errno, err, errlen, "no free loop device: %s",
                              strerror (errno));
    snprintf (dev, len, "/dev/loop%d", nr);
    lfd = open (dev, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (lfd == -1)
      return set_error_errno (errno, err, errlen, "%s: %s", dev,
                              strerror (errno));
    memset (&cfg, 0, sizeof cfg);
    cfg.fd = (uint32_t) bfd;
    cfg.info.lo_offset = offset;
    cfg.info.lo_sizelimit = size;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (readonly ? LO_FLAGS_READ_ONLY
                                              : 0);
    snprintf ((char *) cfg.info.lo_file_name, sizeof cfg.info.lo_file_name,
              "%s", backing);
    if (ioctl (lfd, LOOP_CONFIGURE, &cfg) == 0) {
      *fd_r = lfd;
      return 0;
    }
    int e = errno;
    close (lfd);
    if (e != EBUSY)
      return set_error_errno (errno, err, errlen, "%s: attach %s: %s", dev,
                              backing, strerror (e));
  }
  return set_error_errno (errno, err, errlen,
                          "could not get a free loop device");
}

bool
volid_loop_bound (const char *dev)
{
  char name[64], backing[PATH_MAX];
  uint64_t off, lim;

  return block_name (dev, name, sizeof name) == 0 &&
    loop_info (name, backing, sizeof backing, &off, &lim) == 0;
}
