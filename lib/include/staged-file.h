/* handoff: a file written under a temporary name beside its path and
 * put in place only once complete, so that a failed write leaves the
 * path as it was (absent, or the previous file). */
#ifndef HANDOFF_STAGED_FILE_H
#define HANDOFF_STAGED_FILE_H

struct staged_file {
  char *path;                   /* Where it goes. */
  char *tmp;                    /* Where it is written meanwhile. */
  int fd;                       /* Open on tmp, for writing. */
};

/* Create the temporary file (mode 0600).  -1 with errno on failure. */
extern int staged_file_open (struct staged_file *sf, const char *path);
/* Sync the data, rename it over the path and sync the directory, so
 * that the file survives a crash once this returns 0.  On failure (-1,
 * errno) the temporary file is gone, and the path untouched unless only
 * the directory's sync failed.  Either way SF is released. */
extern int staged_file_commit (struct staged_file *sf);
/* Drop the temporary file; the path is untouched.  Safe after commit
 * (then it only frees) and on a zeroed struct with fd -1. */
extern void staged_file_abort (struct staged_file *sf);

#endif /* HANDOFF_STAGED_FILE_H */
