/* handoffd: the edge of the CLI socket and the admin channel
 * (server.c has the ops).
 *
 * Every request is checked here, by its op, before any op acts on it:
 * the op is known; each field has its type, size and range; VM, host
 * and event names pass names.h; a VM definition passes def-check.h;
 * migrate's options are consistent.  What needs this host's state
 * (does the VM exist, is a host a known peer, is the VM running) is
 * left to the op.  A pure function: the fuzzer calls it too.
 */
#ifndef HANDOFF_CTL_REQUEST_CHECK_H
#define HANDOFF_CTL_REQUEST_CHECK_H

#include <stddef.h>

#include <jansson.h>

/* Bounds of "migrate" (the CLI documents them). */
#define MIGRATE_MAX_RETRIES 10
#define MIGRATE_MAX_DOWNTIME_MS 600000
#define MIGRATE_MIN_TIMEOUT_S 5
#define MIGRATE_MAX_TIMEOUT_S 86400
#define MIGRATE_MAX_SHUTDOWN_MS 600000

/* Bounds of "stop": how long a guest may take to power off after the
 * ACPI power button. */
#define STOP_DEFAULT_TIMEOUT_MS 60000
#define STOP_MAX_TIMEOUT_MS 600000

/* 0 if REQ is a well-formed request of a known op; -1 with err (the
 * "bad_request" answer's reason) otherwise. */
extern int request_check (json_t *req, char *err, size_t errlen);

/* A list of destination hosts, "HOST[,HOST...]": 1 to MAX_DESTS
 * names, each a host name, none twice.  WHAT names the option. */
extern int request_check_hosts (const char *what, const char *list,
                                char *err, size_t errlen);

#endif /* HANDOFF_CTL_REQUEST_CHECK_H */
