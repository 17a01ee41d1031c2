/* handoffd: a migration's record - the struct its thread fills in and
 * the list of events (phases, progress samples, the result) any number
 * of CLI connections follow.
 *
 * NOTES ON THE THREAD MODEL: each migration has its own thread
 * (migration.c) that talks to the destination, the VM's QEMU and its
 * helpers.  Others only read its event list or set abort_requested,
 * under m->lock.  The VM is claimed (vm_claim) for the whole run.
 */
#ifndef HANDOFF_CTL_RECORD_H
#define HANDOFF_CTL_RECORD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "config.h"

struct channel;

/* One destination of a migration.  State, as "status" shows it:
 * admitting, copying, loading, running, failed (it refused or broke;
 * REASON says why), lost (it stopped answering), discarded (another
 * destination won). */
struct dest {
  char host[65];
  struct channel *peer;         /* The migration thread's. */
  json_t *endpoints;            /* The migration thread's. */
  char psk[4096];               /* Its key for this migration's data. */
  bool alive;                   /* Still part of the migration. */
  bool admitted;                /* It said PERMITTED. */
  bool told;                    /* Told to drop what it made (or had
                                   nothing to drop). */
  int slot;                     /* Its place among the mirrors'
                                   destinations, or -1. */
  char state[16];               /* lock */
  char reason[512];             /* lock */
  char transport[8];            /* The RAM stream's to it, "rdma" or
                                   "tcp", once it prepared (lock). */
  int relay_index;              /* Its --to in the stream relay, or -1. */
  int via_index;                /* Its place in RELAY_STREAM's "to"
                                   (--via), or -1. */
  bool tcp_beside;              /* Over RDMA, with TCP to fall back on
                                   should RDMA not come up. */
  /* Its own progress, from the last sample (the migration thread's;
   * read under lock by "status"): what is left to send it and the rate
   * it takes it at, and whether every stream has been copied to it
   * once.  Disks differ per destination; files and RAM go to all in
   * one stream. */
  double left;
  double rate;
  bool stored;                  /* Its disks and files are copied. */
  bool copied;                  /* ... and RAM once over. */
  double disk_sent;             /* Disk bytes sent to it so far, */
  double disk_rate;             /* ... and their rate, smoothed. */
  int64_t sampled_at;           /* mono ms of disk_sent */
};

struct migration {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int refs;                     /* lock */
  json_t *events;               /* lock: the list followers read */
  bool finished;                /* lock */
  bool abort_requested;         /* lock */
  const char *abort_why;        /* lock: a static string; NULL: the CLI */
  bool cutover_requested;       /* lock: "handoff cutover" */
  char cutover_to[MAX_DESTS * 65 + 8];  /* lock: its --to, or "" (all) */
  int64_t cutover_at;           /* lock: mono ms it was asked for */
  char phase[32];               /* lock */

  /* Owned by the migration thread. */
  char id[80];
  char vm[65];
  char to[MAX_DESTS * 65 + 8];  /* lock: the winner once decided */
  char mode[16];
  uint64_t max_downtime_ms;
  uint64_t bandwidth;
  uint64_t timeout_s;
  uint64_t shutdown_ms;         /* volume mode: the guest's power-off time */
  bool delete_source;
  bool prewarm;                 /* Hold the destinations warm until a
                                   cutover is asked for. */
  char plan_to[MAX_DESTS * 65 + 8];     /* --to as asked */
  char fallback[MAX_DESTS * 65 + 8];    /* --fallback, or "" */
  char cascade[MAX_DESTS * 65 + 8];     /* --cascade, or "" */
  char via[65];                 /* --via: the stream proxy, or "" */
  struct channel *via_peer;     /* The migration thread's: RELAY_STREAM's
                                   connection while the proxy relays, */
  char via_xfer[160];           /* ... where its relay takes the stream, */
  char via_psk[4096];           /* ... and the file of that leg's key. */
  json_t *via_disks;            /* The proxy's export of each disk, or
                                   NULL: the disks go direct. */
  char via_share[160];          /* The proxy's pass-on of the share, or
                                   "": the share goes direct. */
  pthread_mutex_t via_lock;     /* One call at a time on via_peer once
                                   the disks go through it (the cutover
                                   completes the disks side by side). */
  unsigned attempts;            /* How many attempts in all. */
  unsigned attempt;             /* lock: this one, from 1 */
  char warm_exit[16];           /* copied, downtime or converging */
  enum transport transport;     /* --transport of this migration. */
  const char *transport_ask;    /* What the destinations are asked for
                                   (transport_source_ask). */
  unsigned quorum_pct;          /* --quorum, or 0: any one destination */
  bool hold;                    /* The relay holds QEMU's switch-over
                                   until the exit condition holds:
                                   --prewarm, or several destinations. */
  pid_t relay_pid;
  bool holding;                 /* Warm: the switch-over held, the
                                   deadline suspended. */
  bool released;                /* The hold was let go. */
  int64_t running_at;           /* mono ms the winner said it runs the VM
                                   (several destinations), or 0 */
  int64_t running_wall;         /* the same, wall-clock ms */
  /* The last progress sample: state left to send, the rate it goes
   * and the rate the guest dirties it (bytes/s), and whether every
   * stream has been copied once. */
  double remaining, rate, dirty_rate;
  double sync_downtime_ms;       /* QEMU's, from the last dirty sync */
  uint64_t dirty_syncs;         /* QEMU's dirty-sync-count */
  bool exit_seen;               /* The exit condition held at the last */
  uint64_t exit_sync;           /* ... sample, since this dirty sync. */
  char ram_over[256];           /* What carried RAM: "RDMA", "TCP", or
                                   per destination. */
  json_t *ram_final;            /* QEMU's query-migrate once completed
                                   (the result's "ram"), or NULL */
  json_t *def;
  json_t *objects;
  int64_t t0;                   /* mono ms at start */
  int64_t deadline;             /* mono ms */
  int64_t prepared_at;          /* wall ms: objects changed after go */
  size_t ndisks;
  bool has_dir;
  bool complete_sent;
  double files_sent;            /* The share's bytes copied, last sample */
  int64_t owner_rev;            /* fleet mode: the VM's owner key's revision */
  bool admitted;
  struct dest dests[MAX_DESTS];
  size_t ndests;
};

/* Append EV (stolen) to the list, stamped with the elapsed time. */
extern void record_emit (struct migration *m, json_t *ev);
/* Enter PHASE of migration ID: journal, log, a phase event through
 * EMIT (if any), and the test hooks - in that order, for every mode. */
extern void phase_enter (const char *id, const char *phase, const char *msg,
                         void (*emit) (void *opaque, json_t *ev),
                         void *opaque);
/* Enter PHASE of M (record_set_phase keeps it in the record too). */
extern void record_set_phase (struct migration *m, const char *phase,
                              const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
/* Destination I of M is now in STATE (REASON: why, or NULL); the
 * change is logged, and a failed or lost one leaves the migration. */
extern void record_dest (struct migration *m, size_t i, const char *state,
                         const char *reason);
/* Ask M to cut over (to the hosts of TO, comma-separated, or every
 * warm one if TO is NULL): 0, or -1 with err. */
extern int record_cutover (struct migration *m, const char *to, char *err,
                           size_t errlen);
/* How many events M has so far (a follower starting now). */
extern size_t record_event_count (struct migration *m);
/* Where M stands for a follower joining late: the last event of each
 * kind recorded so far (attempt, phase, progress, and each
 * destination's state), in their order; *CURSOR is set to follow on
 * from there.  A new array. */
extern json_t *record_catch_up (struct migration *m, size_t *cursor);
/* How many destinations are still part of M. */
extern size_t record_dests_alive (const struct migration *m);
/* Has someone asked for an abort? */
extern bool record_aborted (struct migration *m);
/* Wait up to TIMEOUT_MS for a cutover or an abort to be asked for, so
 * that a held migration answers either at once.  false, without
 * waiting, if one was asked for already. */
extern bool record_wait_cutover (struct migration *m, int timeout_ms);
/* The last event: RESULT (stolen) with the migration's names. */
extern void record_finish (struct migration *m, json_t *result);
/* Volume mode's events (volume_emit_fn, OPAQUE the record). */
extern void record_volume_emit (void *opaque, json_t *ev);

/* Follow a migration: the event after *CURSOR (waiting up to
 * TIMEOUT_MS), or NULL.  *DONE once the result has been returned. */
extern json_t *record_next_event (struct migration *m, size_t *cursor,
                                  int timeout_ms, bool *done);
/* M's result event once it has one (a new reference), else NULL. */
extern json_t *record_result (struct migration *m);
/* Drop a reference. */
extern void record_put (struct migration *m);
/* A one-object summary for "status". */
extern json_t *record_summary (struct migration *m);

#endif /* HANDOFF_CTL_RECORD_H */
