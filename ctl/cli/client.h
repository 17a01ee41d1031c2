/* handoff CLI: talking to handoffd (client.c) - the local unix socket,
 * or --host over TLS with the pre-shared key. */
#ifndef HANDOFF_CLI_CLIENT_H
#define HANDOFF_CLI_CLIENT_H

#include <stdbool.h>

#include <jansson.h>

struct channel;

extern bool cli_json;                  /* --json: failures as JSON too */
extern const char *cli_cmd;             /* the command, for messages */
extern const char *cli_socket_path;     /* --socket, else $HANDOFF_SOCKET */
extern const char *cli_host_uri;        /* --host, else $HANDOFF_HOST */
extern const char *cli_psk_path;        /* --psk (with --host) */

/* The socket path in use. */
extern const char *cli_socket (void);
/* J as one line of compact JSON on stdout (flushed). */
extern void cli_print_json (json_t *j);
/* Print "handoff CMD: MESSAGE" on stderr and, with --json (cli_json),
 * the object {"ok": false, "code": RC, "error": MESSAGE} on stdout.
 * RC. */
extern int cli_fail (int rc, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
/* getopt (with opterr = 0) met an unknown option or one without its
 * value: one line saying which, and where the options are listed
 * ("handoff CMD --help"; CMD NULL for handoff's own).  RC_ERROR. */
extern int cli_bad_option (const char *cmd, char **argv,
                           const char *optstring);
/* A channel to the daemon, or NULL (printed; *rc the exit code). */
extern struct channel *cli_connect (int *rc);
/* Connect and send REQ (stolen): the channel, for the caller to read
 * the replies from and close; NULL (printed, *rc set) if that failed. */
extern struct channel *cli_send (json_t *req, int *rc);
/* One request (stolen), one reply: the reply if "ok", else NULL (the
 * error printed, *rc set from its code). */
extern json_t *cli_request (json_t *req, int *rc);
/* REPLY, an error, names another handoffd's admin address ("admin":
 * the request is that host's): the CLI's requests go there from now
 * on, as with --host, and true; false if it does not, or the CLI was
 * sent elsewhere once already. */
extern bool cli_redirect (json_t *reply);
/* The exit code for a reply's "code". */
extern int cli_code_rc (const char *code);

#endif /* HANDOFF_CLI_CLIENT_H */
