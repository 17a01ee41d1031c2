/* handoffd: the configuration main parsed (the options of handoffd(8)),
 * and what every part of the daemon asks of it: this host's peers, its
 * accelerator, the test hooks.
 *
 * NOTES ON THE THREAD MODEL
 *
 * Two control servers (lib/ctlserver): the CLI's unix socket and the
 * peers' TLS listener; each connection has its own thread.  A migration
 * runs in its own thread on each side (the source's migrate thread, the
 * destination's peer connection thread).  The database has one lock
 * (db.h).  Each VM has a busy flag (vm_claim/vm_release) so that only
 * one operation changes it at a time; reads (status, list) never wait
 * for it.
 */
#ifndef HANDOFF_CTL_CONFIG_H
#define HANDOFF_CTL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"

/* The RAM relays buffer little: QEMU measures its bandwidth by what the
 * relay takes, so a deep buffer makes it stop the guest with megabytes
 * still in flight, which the pause must then wait for. */
#define MIGRATION_RELAY_BUFFER "2M"
/* The most hosts one migration copies a VM to at once. */
#define MAX_DESTS 4

struct hd_peer {
  char *name;
  char *uri;                    /* tcp://ADDR:PORT of its handoffd. */
};

struct hd_config {
  const char *name;             /* This host's name for peers. */
  const char *state_dir;        /* state.db, run/, images/ */
  const char *listen;           /* Peer channel, tcp://ADDR:PORT. */
  const char *control;          /* CLI unix socket. */
  const char *admin;            /* Remote CLI, tcp://ADDR:PORT (TLS). */
  const char *psk;              /* Pre-shared key file. */
  const char *policy;           /* Admission policy file (may not exist). */
  const char *hook_dir;         /* Where event hooks live. */
  const char *qemu;             /* qemu-system-x86_64 */
  const char *accel;            /* "kvm", "tcg" or NULL (detect). */
  const char *filter;           /* nbdkit-handoff-mirror-filter.so */
  const char *share_bin;        /* handoff-share */
  const char *xfer_bin;         /* handoff-xfer */
  const char *nbdkit_preload;   /* LD_PRELOAD for nbdkit (sanitizers). */
  int io_timeout_ms;            /* Peer and data channels. */
  enum transport transport;     /* --transport: the RAM stream's. */
  bool disk_path_nbd;           /* --disk-path nbd: the mirror always. */
  const char *cluster;          /* --cluster etcd://..., or NULL. */
  const char *cluster_ca;       /* --cluster-ca, or NULL */
  const char *cluster_cert;     /* --cluster-cert, or NULL */
  const char *cluster_key;      /* --cluster-key, or NULL */
  const char *metrics;          /* --metrics ADDR:PORT, or NULL */
  const char *metrics_cert;     /* --metrics-cert, or NULL */
  const char *metrics_key;      /* --metrics-key, or NULL */
  const char *cluster_prefix;
  int cluster_ttl_s;
  struct hd_peer *peers;
  size_t npeers;
  char run_dir[4096];           /* STATE/run */
  char images_dir[4096];        /* STATE/images */
  char host_id[65];             /* Published to guests (hostid.h). */
  char host_info[257];
};

extern struct hd_config hd;

/* "kvm" or "tcg": what QEMU will use here, and why. */
extern const char *hd_accel (const char **why);

/* Add a peer from --peer NAME=URI: 0 or -1 with err. */
extern int config_add_peer (const char *arg, char *err, size_t errlen);

/* The URI of peer NAME (or NAME itself if it is a tcp:// URI). */
extern const char *hd_peer_uri (const char *name);
/* The name of the peer at URI, or NULL. */
extern const char *hd_peer_name_for_host (const char *host);
/* Where hd_peer_uri looks after the --peer list: fleet mode's members. */
struct hd_peer_source {
  const char *(*uri) (const char *name);
};
extern void hd_set_peer_source (const struct hd_peer_source *src);

#include "clock.h"

/* Test hooks: if HANDOFF_TEST_CRASH_AT names PHASE, die (SIGKILL) on
 * entering it, as a crash would; if HANDOFF_TEST_DELAY_AT is
 * "PHASE:MS", wait MS there. */
extern void hd_crash_point (const char *phase);

#endif /* HANDOFF_CTL_CONFIG_H */
