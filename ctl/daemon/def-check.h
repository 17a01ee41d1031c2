/* handoffd: checks of what a VM is made of, before anything uses it.
 *
 * Pure functions (no daemon state): the CLI socket, the peer protocol
 * and the fuzzers call the same ones.
 *
 * The definition (JSON): {"name", "memory" (MiB), "vcpus",
 * "disks": [{"path", "size"}], "dir" (or null), "kernel", "initrd",
 * "append"}.  Management objects: {"policy": JSON text, "label:KEY":
 * text}.
 */
#ifndef HANDOFF_CTL_DEF_CHECK_H
#define HANDOFF_CTL_DEF_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DEF_MAX_DISKS 8
/* The largest disk: 64 TiB. */
#define DEF_MAX_DISK_BYTES ((uint64_t) 1 << 46)
#define DEF_MAX_VOLUMES 16
#define DEF_MAX_POLICY (64u << 10)

/* A definition as the operator gives it: names, sizes, absolute paths
 * in normal form.  0 or -1 with err. */
extern int vm_def_check (json_t *def, char *err, size_t errlen);

/* A definition a peer sent for a live migration: vm_def_check, and
 * its boot files (kernel, initrd) lie inside its directory (they are
 * rebased into the copy of that directory here) or beneath one of
 * BOOT_DIRS (an array of paths, or NULL: none), the directories this
 * host's policy shares between VMs.  Anything else would put a host
 * file a peer named into the guest's memory. */
extern int def_check_received (json_t *def, json_t *boot_dirs, char *err,
                               size_t errlen);

/* A definition a peer sent with volumes (volume mode): vm_def_check,
 * and every disk, the directory and the boot files lie beneath one of
 * the mount points in VOLUMES ([{"mountpoint", "descriptor"}], each
 * mount point an absolute path in normal form). */
extern int def_check_on_volumes (json_t *def, json_t *volumes, char *err,
                                 size_t errlen);

/* Management objects: known keys, string values (a policy a JSON
 * object whose hooks name programs by file name). */
extern int objects_check (json_t *objects, char *err, size_t errlen);

/* A policy object's text: a JSON object; "hooks", if present, maps
 * event types (or "*") to hook names (name_check_vm's rule: a file in
 * the host's hook directory). */
extern int policy_object_check (const char *text, char *err, size_t errlen);

#endif /* HANDOFF_CTL_DEF_CHECK_H */
