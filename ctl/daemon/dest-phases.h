/* handoffd: the destination side's phases (dest-phases.c), and the
 * record of one migration being received.  The conversation that
 * drives them is destination.c.
 */
#ifndef HANDOFF_CTL_DEST_PHASES_H
#define HANDOFF_CTL_DEST_PHASES_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct incoming {
  char id[80];
  char vm[65];
  char source[65];
  char src_ip[64];
  char mode[16];
  json_t *src_def;              /* As the source has it. */
  json_t *def;                  /* Rewritten for this host. */
  json_t *objects;
  json_t *events;
  char images[PATH_MAX + 128];  /* images/NAME */
  int64_t timeout_ms;
  bool made_images;
  bool volume_ready;            /* Volume mode: READY sent (mounted). */
  bool loaded;                  /* LOADED sent: waits for RESUME or ABORT. */
  json_t *cascade;              /* --cascade, with RESUME or COMPLETE. */
};

/* This host's peer address (--listen's host): 0, or -1 if it has none. */
extern int dest_listen_host (char *buf, size_t len);
/* A port nobody listens on at ADDR now (the kernel picks it; another
 * may take it before it is used), or -1. */
extern int dest_free_port (const char *addr);

/* A peer message of TYPE with an optional REASON. */
extern json_t *dest_answer (const char *type, const char *reason);

/* MANAGEMENT_STATE: SUCCESS {endpoints} or INSTANTIATION_ERROR. */
extern json_t *dest_prepare (struct incoming *in, json_t *msg);
/* START_VM: SUCCESS or INSTANTIATION_ERROR.  PREWARM: the source holds
 * the switch-over until it is told to cut over (QEMU's return path and
 * switchover-ack, here too). */
extern json_t *dest_start_vm (struct incoming *in, bool prewarm);
/* MIGRATION_COMPLETE: ACK {resumed_at} or FAILED; *RESUMED_R once the VM
 * runs here. */
extern json_t *dest_complete (struct incoming *in, bool *resumed_r);
/* OFFLINE_COMPLETE: every disk and the directory are here; the VM is
 * recorded here, stopped (*TAKEN_R), and the answer is ACK; else
 * FAILED. */
extern json_t *dest_complete_offline (struct incoming *in, bool *taken_r);
/* MIGRATION_COMPLETE {hold} (one of several destinations): load the
 * stream and keep the VM paused, unrecorded: LOADED {loaded_at} or
 * FAILED.  Only RESUME makes it this host's. */
extern json_t *dest_load (struct incoming *in);
/* RESUME after LOADED: ACK {resumed_at} or FAILED; *RESUMED_R once the
 * VM runs here. */
extern json_t *dest_resume (struct incoming *in, bool *resumed_r);
/* --cascade: the VM runs here now, and goes on from here to the hosts
 * the source named (a migration of this host's, as if asked here). */
extern void dest_cascade (struct incoming *in);
/* After the ACK: what does not touch the downtime.  RUNNING: the VM's
 * QEMU runs (else it died after the VM was taken in: it stays here,
 * stopped). */
extern void dest_settle_in (struct incoming *in, bool running);
/* Remove everything made for the migration (WHY goes to the log and
 * the journal); the logs stay under logs/ID. */
extern void dest_drop (struct incoming *in, const char *why);

#endif /* HANDOFF_CTL_DEST_PHASES_H */
