/* handoffd: volumes through handoff-volid (volume-id/): identify,
 * mount, unmount.  The volume handoff's both sides use these. */
#ifndef HANDOFF_CTL_VOLUME_OPS_H
#define HANDOFF_CTL_VOLUME_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The mount point holding PATH (walking up while the device stays). */
extern int volume_mount_point_of (const char *path, char *buf, size_t len);

/* The descriptor of the volume mounted at MOUNTPOINT (a new reference),
 * or NULL with err. */
extern json_t *volume_identify (const char *mountpoint, char *err,
                                size_t errlen);

/* Mount VOL ({descriptor, mountpoint}) for VM (the descriptor is kept in
 * run/VM/volume.json): 0 or -1 with err. */
extern int volume_mount (const char *vm, json_t *vol, char *err,
                         size_t errlen);

/* Flush and unmount VOL: 0, or -1 with err (still mounted). */
extern int volume_unmount (json_t *vol, char *err, size_t errlen);

/* Unmount every volume of VOLUMES that is mounted; 0 once none is, or
 * -1 with err naming one that stays. */
extern int volume_unmount_all (json_t *volumes, char *err, size_t errlen);

/* Is a file system mounted at PATH (this mount namespace)? */
extern bool volume_is_mounted (const char *path);

#endif /* HANDOFF_CTL_VOLUME_OPS_H */
