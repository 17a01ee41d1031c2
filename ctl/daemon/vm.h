/* handoffd: running a VM on this host (the QEMU driver).
 *
 * A running VM is a set of detached processes, each with a pid file in
 * STATE/run/NAME/: QEMU with its QMP socket (qmp.sock) and serial
 * console (serial.log), its disks on its own file driver; the FUSE
 * share over the VM's directory mounted at dir/ (control share.ctl).
 * During a migration the source adds per disk an nbdkit serving the
 * image through the mirror filter on a unix socket (diskN.sock, control
 * diskN.ctl), put under the disk while QEMU runs (vm-disks.c), and an
 * xfer relay; the destination adds temporary NBD exports, a share
 * receiver and a relay.  With --disk-path nbd, the disks' nbdkit runs
 * with QEMU always.
 *
 * The definition (JSON): {"name", "memory" (MiB), "vcpus",
 * "disks": [{"path", "size"}], "dir" (or null), "kernel", "initrd",
 * "append"}.  Boot files inside "dir" are used through the share.
 */
#ifndef HANDOFF_CTL_VM_H
#define HANDOFF_CTL_VM_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "qmp.h"

/* STATE/run/NAME[/LEAF] into buf. */
extern void vm_run_path (const char *name, const char *leaf, char *buf,
                         size_t len);
/* The last LINES lines of the VM's run-directory log LEAF, one line
 * ("" if there is none): what a helper said before it failed. */
extern void vm_log_tail (const char *name, const char *leaf, int lines,
                         char *buf, size_t len);

/* Start nbdkit with the mirror filter over disk I's image PATH, on
 * run/NAME/diskI.sock (control diskI.ctl).  0 or -1 (err). */
extern int vm_start_disk (const char *name, size_t i, const char *path,
                          char *err, size_t errlen);

/* The blockdev-add options of an NBD node NODE on disk I's nbdkit
 * (run/NAME/diskI.sock). */
extern json_t *vm_disk_nbd_node (const char *name, size_t i,
                                 const char *node);

/* Put the mirror (nbdkit on diskI.sock) under each of the running VM's
 * disks, live: QEMU's node "diskI" reopened over an NBD node "nbdI"
 * instead of its file node "fileI".  Nothing to do for disks already on
 * NBD (--disk-path nbd).  0, or -1 with err: the disks that were
 * switched are switched back. */
extern int vm_disks_interpose (const char *name, json_t *def, char *err,
                               size_t errlen);
/* Take the mirror out again (after a rollback): each disk back on its
 * file node, the NBD nodes deleted, their nbdkit stopped.  Harmless when
 * nothing is interposed, and after a crash half-way. */
extern void vm_disks_direct (const char *name, size_t ndisks);
/* QEMU's block nodes ([{"node", "driver", "file"}], "file" the node's
 * child if it has one), or NULL (err). */
extern json_t *vm_block_nodes (const char *name, char *err, size_t errlen);

/* Start the VM's processes, clearing what a dead run left (helpers
 * running for nobody, stale sockets, a dead share mount).  INCOMING:
 * QEMU waits paused for a migration stream on run/NAME/incoming.sock;
 * DIR_NOW, if not NULL, is where the VM's directory is right now (a
 * share still partial) for boot files, and no share is mounted.
 * Succeeds only once QEMU answers on its monitor.  On failure
 * everything started is stopped again; run/NAME keeps the logs. */
extern int vm_start (const char *name, json_t *def, bool incoming,
                     const char *dir_now, char *err, size_t errlen);

/* Mount the share over the VM's directory (a VM that came in through
 * a migration gets it once the directory is committed). */
extern int vm_mount_share (const char *name, json_t *def, char *err,
                           size_t errlen);

/* Keep the logs of run/NAME in STATE/logs/TAG/ (a failed migration's
 * evidence outlives its run directory). */
extern void vm_save_logs (const char *name, const char *tag);

/* Stop QEMU (quit, then signals) and every helper; remove run/NAME. */
extern void vm_stop (const char *name);
/* The same, but run/NAME (its logs) stays. */
extern void vm_stop_processes (const char *name);
/* Stop only the helpers named by pid files matching PREFIX ("export",
 * "relay", ...). */
extern void vm_stop_helpers (const char *name, const char *prefix);

/* QEMU's run state, or "stopped" (no QEMU). */
extern void vm_run_state (const char *name, char *buf, size_t len);
extern bool vm_qemu_alive (const char *name);
/* A stopped VM's disk servers (nbdkit with the mirror filter) and the
 * share over its directory, without QEMU: what an offline migration
 * copies from.  0, or -1 with err (nothing left running). */
extern int vm_start_storage (const char *name, json_t *def, char *err,
                             size_t errlen);

/* A QMP command on the VM's QEMU (connects on first use, and again
 * after a failure). */
extern json_t *vm_qmp (const char *name, const char *cmd, json_t *args,
                       int timeout_ms, char *err, size_t errlen);
extern double vm_qmp_event_time (const char *name, const char *event);
extern double vm_qmp_wait_event (const char *name, const char *event,
                                 int timeout_ms);
extern void vm_qmp_forget_events (const char *name);
extern void vm_qmp_drop (const char *name);

/* The environment of an nbdkit that loads the mirror filter: its TLS
 * priorities (nbd-tls.c) and the preload it needs, if any
 * (HANDOFF_NBDKIT_PRELOAD); PRELOAD holds the latter's text. */
extern void vm_nbdkit_env (char *env[3], char *preload, size_t len);

/* A control request to a helper's socket (mirror or share):
 * run/NAME/SOCK.  Returns the reply or NULL (err). */
extern json_t *vm_helper_call (const char *name, const char *sock,
                               int service, json_t *req, int timeout_ms,
                               char *err, size_t errlen);
/* The same, to the helper's socket at PATH. */
extern json_t *helper_call (const char *path, int service, json_t *req,
                            int timeout_ms, char *err, size_t errlen);

/* Take the VM for an operation; -1 (err names what holds it) if busy.
 * Reads (status, list) never wait for it. */
extern int vm_claim (const char *vm, const char *what, char *err,
                     size_t errlen);
extern void vm_release (const char *vm);

/* Disk usage of the VM's images and directory (allocated bytes). */
extern unsigned long long vm_allocated_bytes (json_t *def);
/* The same, of its disks alone. */
extern unsigned long long vm_disks_allocated_bytes (json_t *def);

#endif /* HANDOFF_CTL_VM_H */
