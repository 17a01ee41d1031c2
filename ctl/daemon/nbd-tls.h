/* handoffd: the TLS cipher of the disks' NBD connections (nbd-tls.c).
 */
#ifndef HANDOFF_CTL_NBD_TLS_H
#define HANDOFF_CTL_NBD_TLS_H

/* Decide, once at start, what the nbdkit servers and clients this
 * daemon spawns get in their environment so that their TLS sessions
 * use AES-GCM, and write the GnuTLS configuration that says so into
 * STATE_DIR (not run/, which holds only what VMs leave behind).  Logs
 * its choice; never fails the daemon. */
extern void nbd_tls_init (const char *state_dir);

/* "GNUTLS_SYSTEM_PRIORITY_FILE=..." for an nbdkit's environment, or
 * NULL when nothing is to be added. */
extern const char *nbd_tls_env (void);

#endif /* HANDOFF_CTL_NBD_TLS_H */
