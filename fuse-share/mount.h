/* fuse-share: the mount's FUSE operations (mount.c) and the hooks its
 * main program provides. */
#ifndef HANDOFF_SHARE_MOUNT_H
#define HANDOFF_SHARE_MOUNT_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

extern const struct fuse_operations share_ops;

/* Called from FUSE's init and destroy: start and stop the control
 * socket. */
extern void share_mount_started (void);
extern void share_mount_stopping (void);

#endif /* HANDOFF_SHARE_MOUNT_H */
