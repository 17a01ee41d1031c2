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
extern int cmd_define (int argc, char **argv);
extern int cmd_undefine (int argc, char **argv);
extern int cmd_start (int argc, char **argv);
extern int cmd_stop (int argc, char **argv);
extern int cmd_list (int argc, char **argv);
extern int cmd_status (int argc, char **argv);
extern int cmd_event (int argc, char **argv);
extern int cmd_abort (int argc, char **argv);
extern int cmd_host (int argc, char **argv);
extern int cmd_migrate (int argc, char **argv);
extern int cmd_label (int argc, char **argv);
extern int cmd_hostid (int argc, char **argv);
extern int cmd_peers (int argc, char **argv);
extern int cmd_scan (int argc, char **argv);

/* The local handoffd (cli-daemon.c). */
struct channel;
extern const char *cli_socket_path;     /* --socket, else $HANDOFF_SOCKET */
extern const char *cli_host_uri;        /* --host, else $HANDOFF_HOST */
extern const char *cli_psk_path;        /* --psk (with --host) */
extern const char *cli_socket (void);
extern struct channel *cli_connect (int *rc);
/* One request, one reply: the reply if "ok", else NULL (the error
 * printed, *rc set from its code). */
#include <jansson.h>
extern json_t *cli_request (json_t *req, int *rc);
extern int cli_code_rc (const char *code);

/* Find helper PROGRAM; 0 and its path in buf, or -1. */
extern int cli_find_helper (const char *program, char *buf, size_t len);

#endif /* HANDOFF_CLI_H */
