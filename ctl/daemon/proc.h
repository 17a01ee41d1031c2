/* handoffd: the processes a VM needs (QEMU, nbdkit, handoff-share,
 * handoff-xfer), started detached so that they outlive a daemon that
 * crashes or restarts: the daemon finds them again by their pid files.
 */
#ifndef HANDOFF_CTL_PROC_H
#define HANDOFF_CTL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Start ARGV (NULL-terminated) in its own session, stdin /dev/null,
 * stdout and stderr appended to LOG, with ENV entries ("K=V", may be
 * NULL) added; write its pid to PIDFILE.  Its parent is a small keeper
 * process that waits for it (so it is never orphaned, whatever
 * happens to the daemon).  Fails if the program cannot be executed.
 * Returns the pid or -1 (err says why). */
extern pid_t proc_spawn (char *const argv[], char *const env[],
                         const char *log, const char *pidfile,
                         char *err, size_t errlen);

/* proc_spawn, with the descriptors KEEP[0..NKEEP) given to the
 * program as 4, 5, ... (at most PROC_MAX_KEEP_FDS). */
#define PROC_MAX_KEEP_FDS 4
extern pid_t proc_spawn_fds (char *const argv[], char *const env[],
                             const char *log, const char *pidfile,
                             const int *keep, size_t nkeep, char *err,
                             size_t errlen);

/* The live process named in PIDFILE whose command line contains
 * MATCH (a guard against a recycled pid), or 0. */
extern pid_t proc_alive (const char *pidfile, const char *match);

/* Terminate the process of PIDFILE (SIGTERM, then SIGKILL after
 * GRACE_MS) and remove the file.  Returns 0 if it is gone. */
extern int proc_stop (const char *pidfile, const char *match, int grace_ms);

/* Wait up to TIMEOUT_MS for a socket PID makes at PATH to accept
 * connections, giving up early if PID dies.  0 or -1.  Listening, not
 * just there: a socket file exists from bind(), and a connection
 * before listen() is refused. */
extern int proc_wait_socket (const char *path, pid_t pid, int timeout_ms);
/* The same for a TCP port of this network namespace. */
extern int proc_wait_port (int port, pid_t pid, int timeout_ms);

/* The same for a listener no socket table shows (rdma://): until
 * PID's log FILE says NEEDLE. */
extern int proc_wait_log (const char *file, const char *needle, pid_t pid,
                          int timeout_ms);

/* Wait up to TIMEOUT_MS for PID to exit (not our child). */
extern int proc_wait_gone (pid_t pid, int timeout_ms);

/* Run ARGV to completion, capturing up to OUTLEN-1 bytes of its
 * combined output in OUT (may be NULL).  Returns the exit status, or
 * -1 if it could not run or was killed. */
extern int proc_run (char *const argv[], char *out, size_t outlen,
                     int timeout_ms);

/* The last LINES lines of FILE in buf (for error messages). */
extern void proc_log_tail (const char *file, int lines, char *buf,
                           size_t len);

#endif /* HANDOFF_CTL_PROC_H */
