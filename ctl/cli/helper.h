/* handoff CLI: git-style helper programs (helper.c): "handoff mirror"
 * runs handoff-mirror, found in $HANDOFF_LIBEXECDIR, ../libexec beside
 * the binary, or the installed libexec directory. */
#ifndef HANDOFF_CLI_HELPER_H
#define HANDOFF_CLI_HELPER_H

#include <stddef.h>

/* Find helper PROGRAM; 0 and its path in buf, or -1. */
extern int cli_find_helper (const char *program, char *buf, size_t len);

#endif /* HANDOFF_CLI_HELPER_H */
