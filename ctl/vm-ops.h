/* handoffd: the CLI's requests (cli-server.c) and the per-VM busy
 * flag every operation that changes a VM takes.
 *
 * CLI protocol: JSON frames on the unix socket (CHAN_SERVICE_CLI),
 * requests {"op": ...}; replies {"ok": true, ...} or {"ok": false,
 * "error", "code"} where code names the exit status (denied,
 * rolled_back, timeout, unreachable, not_found, verify_failed).
 * "migrate" answers with a stream: {"event": ...} objects, then the
 * reply.
 */
#ifndef HANDOFF_CTL_VM_OPS_H
#define HANDOFF_CTL_VM_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct channel;

extern json_t *cli_handle (json_t *req, struct channel *c, void *opaque);

/* Take the VM for an operation; -1 (err names what holds it) if busy. */
extern int vm_claim (const char *vm, const char *what, char *err,
                     size_t errlen);
extern void vm_release (const char *vm);

/* Reply helpers: {"ok": false, "error": MSG, "code": CODE}. */
extern json_t *cli_error (const char *code, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

#endif /* HANDOFF_CTL_VM_OPS_H */
