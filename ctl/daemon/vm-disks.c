/* handoffd: the mirror under a running VM's disks only while it
 * migrates.  See vm.h.
 *
 * A VM runs on its images through QEMU's own file driver: each disk is
 * a raw node "diskI" (what the guest's device uses) over a file node
 * "fileI".  A migration serves each image with nbdkit and the mirror
 * filter, adds an NBD node "nbdI" connected to it and reopens "diskI"
 * over "nbdI" (blockdev-reopen drains the disk's requests and switches
 * between two of them: the guest sees a pause of a few ms, no error).
 * A rollback reopens "diskI" over "fileI" again.  Everyday I/O then
 * pays nothing for the mirror; only a migration does.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "errors.h"
#include "log.h"
#include "vm.h"

#define MAX_NODE 32
/* A write-back this quick leaves the reopen's own flush little to do. */
#define WRITE_BACK_QUICK_MS 5
#define WRITE_BACK_PASSES 4

json_t *
vm_block_nodes (const char *name, char *err, size_t errlen)
{
  json_t *r = vm_qmp (name, "query-named-block-nodes",
                      json_pack ("{s:b}", "flat", 1), 10000, err, errlen);
  json_t *out, *n;
  size_t i;

  if (!r)
    return NULL;
  out = json_array ();
  json_array_foreach (r, i, n) {
    const char *node = json_string_value (json_object_get (n, "node-name"));
    const char *drv = json_string_value (json_object_get (n, "drv"));
    const char *file = json_string_value (json_object_get (n, "file"));
    if (node && drv)
      json_array_append_new (out, json_pack ("{s:s, s:s, s:s}", "node", node,
                                             "driver", drv, "file",
                                             file ? file : ""));
  }
  json_decref (r);
  return out;
}

/* NODES' entry for node NAME, or NULL. */
static json_t *
node_get (json_t *nodes, const char *name)
{
  json_t *n;
  size_t i;

  json_array_foreach (nodes, i, n)
    if (strcmp (json_string_value (json_object_get (n, "node")), name) == 0)
      return n;
  return NULL;
}

static const char *
node_str (json_t *nodes, const char *node, const char *key)
{
  return json_string_value (json_object_get (node_get (nodes, node), key));
}

/* Disk I's file node "fileI" is itself an NBD node (--disk-path nbd, or
 * a VM started so): the mirror is under it always.  False also when
 * QEMU has no such node (*DRV_R NULL). */
static bool
mirror_always (json_t *nodes, size_t i, const char **drv_r)
{
  char fnode[MAX_NODE];

  snprintf (fnode, sizeof fnode, "file%zu", i);
  *drv_r = node_str (nodes, fnode, "driver");
  return *drv_r && strcmp (*drv_r, "nbd") == 0;
}

/* Write the image's dirty pages back before a reopen.  QEMU flushes a
 * node it reopens, inside the drained section: all the guest's writes
 * not yet on the disk would be written back while its I/O stands
 * still (hundreds of ms under load, bench/interpose.sh).  Flushed here
 * first, from another descriptor while the guest goes on, the reopen's
 * flush finds only what came in the last few ms. */
static void
write_back (const char *vm, const char *path)
{
  int fd = path ? open (path, O_RDONLY | O_CLOEXEC) : -1;

  if (fd == -1) {
    log_warn ("VM %s: writing %s back before the switch: %m (the switch "
              "does it, the guest waiting)", vm, path ? path : "its image");
    return;
  }
  /* Again while a pass is slow: each writes back what the guest wrote
   * during the one before, less each time.  Terminates: a few passes. */
  for (int pass = 0; pass < WRITE_BACK_PASSES; ++pass) {
    int64_t t0 = clock_ms ();
    if (fdatasync (fd) == -1) {
      log_warn ("VM %s: writing %s back before the switch: %m", vm, path);
      break;
    }
    int64_t took = clock_ms () - t0;
    log_debug ("VM %s: %s written back in %" PRId64 " ms", vm, path, took);
    if (took <= WRITE_BACK_QUICK_MS)
      break;
  }
  close (fd);
}

/* Reopen raw node "diskI" over CHILD. */
static int
reopen_over (const char *name, size_t i, const char *child, char *err,
             size_t errlen)
{
  char dnode[MAX_NODE];

  snprintf (dnode, sizeof dnode, "disk%zu", i);
  json_t *r = vm_qmp (name, "blockdev-reopen",
                      json_pack ("{s:[{s:s, s:s, s:s}]}", "options",
                                 "driver", "raw", "node-name", dnode,
                                 "file", child), 30000, err, errlen);
  json_decref (r);
  return r ? 0 : -1;
}

static void
delete_node (const char *name, const char *node)
{
  char err[256];
  json_t *r = vm_qmp (name, "blockdev-del",
                      json_pack ("{s:s}", "node-name", node), 10000, err,
                      sizeof err);
  if (!r)
    log_warn ("VM %s: removing block node %s: %s", name, node, err);
  json_decref (r);
}

/* Disk I over the mirror: nbdkit, an NBD node on its socket, the
 * reopen. */
static int
interpose_one (const char *name, size_t i, const char *path, char *err,
               size_t errlen)
{
  char nnode[MAX_NODE], e[512];
  int64_t t0;

  if (vm_start_disk (name, i, path, err, errlen) == -1)
    return -1;
  snprintf (nnode, sizeof nnode, "nbd%zu", i);
  t0 = clock_ms ();
  json_t *r = vm_qmp (name, "blockdev-add", vm_disk_nbd_node (name, i, nnode),
                      30000, e, sizeof e);
  if (!r)
    return set_error (err, errlen, "disk %zu: connecting QEMU to the "
                      "mirror: %s", i, e);
  json_decref (r);
  int64_t t1 = clock_ms ();
  write_back (name, path);
  int64_t t2 = clock_ms ();
  if (reopen_over (name, i, nnode, e, sizeof e) == -1) {
    delete_node (name, nnode);
    return set_error (err, errlen, "disk %zu: moving it onto the mirror: %s",
                      i, e);
  }
  log_info ("VM %s: disk %zu now goes through the mirror (NBD node added "
            "in %" PRId64 " ms, written back in %" PRId64 " ms, switched in %"
            PRId64 " ms)", name, i, t1 - t0, t2 - t1, clock_ms () - t2);
  return 0;
}

int
vm_disks_interpose (const char *name, json_t *def, char *err, size_t errlen)
{
  json_t *disks = json_object_get (def, "disks"), *d;
  size_t i, ndisks = json_array_size (disks);
  char e[512];

  json_t *nodes = vm_block_nodes (name, e, sizeof e);
  if (!nodes)
    return set_error (err, errlen, "QEMU's block nodes: %s", e);
  /* Left by a run of the daemon that died half-way: start again. */
  for (i = 0; i < ndisks; ++i) {
    char nnode[MAX_NODE];
    snprintf (nnode, sizeof nnode, "nbd%zu", i);
    if (node_get (nodes, nnode)) {
      json_decref (nodes);
      vm_disks_direct (name, ndisks);
      nodes = vm_block_nodes (name, e, sizeof e);
      if (!nodes)
        return set_error (err, errlen, "QEMU's block nodes: %s", e);
      break;
    }
  }
  json_array_foreach (disks, i, d) {
    const char *drv;
    if (mirror_always (nodes, i, &drv))
      continue;
    if (!drv) {
      set_error (err, errlen, "disk %zu: QEMU has no node file%zu", i, i);
      break;
    }
    if (interpose_one (name, i, json_string_value (json_object_get (d,
                                                                  "path")),
                       err, errlen) == -1)
      break;
  }
  json_decref (nodes);
  if (i == ndisks)
    return 0;
  vm_disks_direct (name, ndisks);
  return -1;
}

void
vm_disks_direct (const char *name, size_t ndisks)
{
  char err[512];
  bool all_back = true, any = false;
  json_t *nodes = vm_block_nodes (name, err, sizeof err);

  if (!nodes)
    return;                     /* No QEMU: nothing runs over a node. */
  for (size_t i = 0; i < ndisks; ++i) {
    char fnode[MAX_NODE], nnode[MAX_NODE];
    const char *drv;
    snprintf (fnode, sizeof fnode, "file%zu", i);
    snprintf (nnode, sizeof nnode, "nbd%zu", i);
    if (mirror_always (nodes, i, &drv) || !drv)
      continue;                 /* Nothing was put under it. */
    any = true;
    if (!node_get (nodes, nnode))
      continue;
    write_back (name, node_str (nodes, fnode, "file"));
    int64_t t0 = clock_ms ();
    if (reopen_over (name, i, fnode, err, sizeof err) == -1) {
      /* The guest stays on the mirror, which keeps serving it. */
      log_error ("VM %s: disk %zu stays on the mirror: %s", name, i, err);
      all_back = false;
      continue;
    }
    delete_node (name, nnode);
    log_info ("VM %s: disk %zu back on its file (switched in %" PRId64
              " ms)", name, i, clock_ms () - t0);
  }
  json_decref (nodes);
  if (any && all_back)
    vm_stop_helpers (name, "disk");
}
