/* fuse-share: the mount's FUSE operations (mount.c), and the hooks its
 * main program hands to fuse_new as the user data. */
#ifndef HANDOFF_SHARE_MOUNT_H
#define HANDOFF_SHARE_MOUNT_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

extern const struct fuse_operations share_ops;

/* Called from FUSE's init and destroy (the control socket starts and
 * stops with the mount): pass a pointer to one as fuse_new's user
 * data. */
struct share_mount_hooks {
  void (*started) (void);
  void (*stopping) (void);
};

#endif /* HANDOFF_SHARE_MOUNT_H */
