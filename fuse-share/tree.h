/* fuse-share: one depth-first walk of the source tree, shared by the
 * session's first scan and the commit's passes over what was copied.
 */
#ifndef HANDOFF_SHARE_TREE_H
#define HANDOFF_SHARE_TREE_H

#include <sys/stat.h>

#include "share-proto.h"

/* Called for each entry, with its path relative to the root.  Return
 * -1 to stop the walk (tree_walk then returns -1 too). */
typedef int (*tree_visit) (const char *path, const struct stat *st,
                           void *opaque);

struct tree_walk {
  int rootfd;                 /* the tree's root, a directory */
  tree_visit enter;           /* before a directory's contents, or NULL */
  tree_visit leave;           /* after them, or NULL */
  void *opaque;
  /* The directory that could not be opened when the walk failed on
   * one, with errno saved beside it. */
  char failed[SHARE_MAX_PATH + 1];
  int failed_errno;
};

/* Walk everything beneath REL ("" for the root) without following
 * symbolic links.  Every entry gets ENTER and then LEAVE; a
 * directory's contents come between the two.  Entries whose path would
 * not fit a share request, or that vanish while walked, are passed
 * over: the mirror of the change that removed them follows.  Returns 0,
 * or -1 if a visit asked to stop or a directory could not be opened
 * (w->failed says which). */
extern int tree_walk (struct tree_walk *w, const char *rel);

#endif /* HANDOFF_SHARE_TREE_H */
