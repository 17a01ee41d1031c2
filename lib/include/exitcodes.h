/* handoff: exit codes shared by every program (documented in
 * handoff(1), EXIT STATUS).  Values never change once released. */
#ifndef HANDOFF_EXITCODES_H
#define HANDOFF_EXITCODES_H

#define RC_OK 0
#define RC_ERROR 1                /* Any error, including bad usage. */
#define RC_INCONSISTENT_OUTPUT 3  /* A scan crossed a migration. */
#define RC_DENIED 4               /* The destination's policy refused. */
#define RC_ROLLED_BACK 5          /* Migration failed; VM still on source. */
#define RC_TIMEOUT 6              /* A step did not finish in time. */
#define RC_UNREACHABLE 7          /* Daemon or peer cannot be reached. */
#define RC_NOT_FOUND 8            /* Unknown VM, volume, socket, ... */
#define RC_VERIFY_FAILED 9        /* Copies differ after completion. */
#define RC_IN_DOUBT 10            /* The outcome waits for a peer's word. */

/* The name a reply's "code" gives exit status RC (the CLI maps it
 * back), or NULL for one that has none. */
static inline const char *
rc_code_name (int rc)
{
  switch (rc) {
  case RC_DENIED: return "denied";
  case RC_ROLLED_BACK: return "rolled_back";
  case RC_TIMEOUT: return "timeout";
  case RC_UNREACHABLE: return "unreachable";
  case RC_NOT_FOUND: return "not_found";
  case RC_VERIFY_FAILED: return "verify_failed";
  case RC_IN_DOUBT: return "in_doubt";
  default: return NULL;
  }
}

#endif /* HANDOFF_EXITCODES_H */
