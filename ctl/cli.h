/* handoff CLI: built-in commands and helper lookup. */
#ifndef HANDOFF_CLI_H
#define HANDOFF_CLI_H

#include <stddef.h>

struct cli_command {
  const char *name;
  int (*fn) (int argc, char **argv);
  const char *summary;
};

extern int cmd_keygen (int argc, char **argv);
extern int cmd_version (int argc, char **argv);
extern int cmd_help (int argc, char **argv);

/* Find helper PROGRAM; 0 and its path in buf, or -1. */
extern int cli_find_helper (const char *program, char *buf, size_t len);

#endif /* HANDOFF_CLI_H */
