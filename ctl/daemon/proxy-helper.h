/* handoffd: what the stream proxy's disks and share both need
 * (proxy-helper.c): a helper started on a free port, a destination
 * found by its host. */
#ifndef HANDOFF_CTL_PROXY_HELPER_H
#define HANDOFF_CTL_PROXY_HELPER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct proxy_helper {
  char *const *argv;            /* Its argument PORTARG holds the port, */
  char *portarg;                /* written here: "PORT", or */
  size_t portlen;
  bool uri;                     /* "tcp://ADDR:PORT". */
  char *const *env;
  const char *addr;             /* Where it listens. */
  const char *ctl;              /* Its control socket. */
  const char *pid, *log;        /* Its pid file and log. */
  const char *match;            /* Its name, to stop it by pid file. */
  const char *what;             /* What it is, for errors. */
};

/* Start H listening on a free port of H->addr with its control socket:
 * the port, or -1 (err; its log's last lines say why). */
extern int proxy_spawn (const struct proxy_helper *h, char *err,
                        size_t errlen);

/* The place of HOST in TO (RELAY_STREAM's "to"), or -1. */
extern int proxy_dest_index (json_t *to, const char *host);

#endif /* HANDOFF_CTL_PROXY_HELPER_H */
