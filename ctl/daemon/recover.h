/* handoffd: start-up recovery from the journal, and the thread that
 * keeps settling what waits for a peer (recover.c). */
#ifndef HANDOFF_CTL_RECOVER_H
#define HANDOFF_CTL_RECOVER_H

/* Resolve what a previous run left: unfinished migrations (so that each
 * VM runs on exactly one host) and VMs whose QEMU died; then start the
 * thread that settles migrations in doubt for the daemon's life. */
extern void recover_all (void);

#endif /* HANDOFF_CTL_RECOVER_H */
