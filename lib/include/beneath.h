/* handoff: staying beneath a directory.
 *
 * Files a peer names (a VM's boot files, the share receiver's paths)
 * are opened with open_beneath, and every recursive delete (run
 * directories, received images, partial shares, a VM's files on
 * --delete-source) goes through remove_beneath, so that a name that
 * slipped past a check can never reach outside the directory it
 * belongs to.
 */
#ifndef HANDOFF_BENEATH_H
#define HANDOFF_BENEATH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* openat2 (DIRFD, PATH) with RESOLVE_BENEATH and RESOLVE_NO_MAGICLINKS
 * (symlinks that stay beneath DIRFD are followed), plus the RESOLVE_*
 * bits of EXTRA (RESOLVE_NO_SYMLINKS: none at all); FLAGS get
 * O_CLOEXEC.  A descriptor or -1 (errno; EXDEV or ELOOP for a way
 * out). */
extern int open_beneath (int dirfd, const char *path, int flags, mode_t mode,
                         uint64_t extra);

/* Remove PATH - a file, a symlink or a directory with everything in
 * it - which must lie strictly beneath ROOT.  PATH starts with ROOT +
 * "/", or is relative to ROOT.  It is resolved from ROOT with openat2
 * (RESOLVE_BENEATH): a ".." component, an absolute path elsewhere or a
 * symlink leading out is refused; inside, symlinks are removed, never
 * followed, and a file system mounted below stops the removal (named
 * in err).  A PATH that does not exist is removed already: 0.  Returns
 * 0 or -1 with errno and err set. */
extern int remove_beneath (const char *root, const char *path, char *err,
                           size_t errlen);

#endif /* HANDOFF_BENEATH_H */
