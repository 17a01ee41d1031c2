/* volume-id: internals shared by handoff-volid's files. */
#ifndef HANDOFF_VOLID_H
#define HANDOFF_VOLID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "descriptor.h"

#define VOLID_MAX_PARTS 256
#define VOLID_MAX_DISKS 512

struct volid_part {
  uint32_t partno;
  uint64_t offset, size;        /* Bytes. */
  uint32_t type_code;           /* MBR type (0 for GPT). */
  char partuuid[40];
};

struct volid_table {
  char type[8];                 /* "gpt" or "dos". */
  char id[40];                  /* Lower case. */
  uint32_t sector_size;
  uint64_t disk_size;
  size_t n;
  struct volid_part part[VOLID_MAX_PARTS];
};

struct volid_fs {
  char type[32], uuid[64], label[128];
};

/* probe.c */
extern int volid_disk_size (int fd, uint64_t *size_r, uint32_t *sector_r);
/* 0 read, 1 no partition table, -1 error (corrupt, truncated, I/O). */
extern int volid_read_table (const char *path, struct volid_table *t,
                             char *err, size_t errlen);
/* 0 found, 1 no filesystem, -1 error. */
extern int volid_probe_fs (const char *path, uint64_t offset, uint64_t size,
                           struct volid_fs *fs, char *err, size_t errlen);

/* blockdev.c: where things are on this host. */

/* Identity of a disk, whatever it is called: a file's inode, or a block
 * device's number (a whole-disk loop device counts as its file). */
struct disk_key {
  dev_t dev;
  ino_t ino;
  dev_t rdev;
};

extern int volid_disk_key (const char *path, struct disk_key *k);
extern bool volid_same_disk (const struct disk_key *a,
                             const struct disk_key *b);

/* The disks of this host, as /dev paths (loop devices with a backing
 * file included).  Caller frees each and the array. */
extern int volid_host_disks (char ***paths_r, size_t *n_r);

/* Where a block device's data lives: DISK (a /dev path or an image
 * file) and the byte range in it. */
extern int volid_device_location (const char *dev, char *disk, size_t len,
                                  uint64_t *offset_r, uint64_t *size_r,
                                  char *err, size_t errlen);

/* A kernel partition device of DISK covering exactly [offset, +size),
 * if the kernel made one. */
extern int volid_find_part_device (const char *disk, uint64_t offset,
                                   uint64_t size, char *dev, size_t len);

struct volid_mount {
  char source[256];             /* Device. */
  char target[4096];            /* Mount point. */
  char fstype[32];
  dev_t dev;                    /* st_dev of files in it. */
};

/* The mount a path is in (0), or 1 if none was found. */
extern int volid_mount_of (const char *path, struct volid_mount *m,
                           char *err, size_t errlen);
/* Call FN on every mount of this mount namespace; stop if it returns
 * non-zero (and return that). */
extern int volid_each_mount (int (*fn) (const struct volid_mount *m,
                                        void *arg), void *arg);
/* Member devices of a mounted btrfs (by filesystem UUID), as /dev
 * paths.  Caller frees. */
extern int volid_btrfs_members (const char *fsuuid, char ***devs_r,
                                size_t *n_r);

/* Attach BACKING[offset, +size) to a free loop device (autoclear: it
 * detaches when the last user closes it).  Keeps it open in *fd_r. */
extern int volid_loop_attach (const char *backing, uint64_t offset,
                              uint64_t size, bool readonly, char *dev,
                              size_t len, int *fd_r, char *err,
                              size_t errlen);
/* Is loop device DEV still bound to a file? */
extern bool volid_loop_bound (const char *dev);

#endif /* HANDOFF_VOLID_H */
