/* handoffd: fleet mode (--cluster): this host's membership and the
 * ownership of its VMs, kept in etcd (cluster.c).
 *
 * Without --cluster every function here answers as a lone host would:
 * every VM is this host's to run, and there are no cluster peers.
 *
 * Keys, under the prefix (--cluster-prefix, default /handoff):
 *   PREFIX/hosts/NAME  this host, under its lease: a JSON object with
 *                      its peer URI, capacity and whether it drains;
 *                      "memory_free_mib" is what VMs may still use: the
 *                      least of MemAvailable and MemTotal less the
 *                      memory of the VMs defined here and not stopped;
 *                      it disappears when the lease does
 *   PREFIX/vms/VM      the name of the one host that may run VM; not
 *                      under any lease: ownership outlives a daemon's
 *                      restart, and only a migration's cutover (or the
 *                      VM's removal) changes it
 */
#ifndef HANDOFF_CTL_CLUSTER_H
#define HANDOFF_CTL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Join: a lease, this host's key, the thread that keeps both fresh.
 * -1 with err if etcd cannot be reached. */
extern int cluster_start (const char *urls, const char *prefix, int ttl_s,
                          char *err, size_t errlen);
/* Leave: the lease is revoked, so this host drops out of the member
 * list at once.  Its VMs stay its own. */
extern void cluster_stop (void);
extern bool cluster_enabled (void);

/* Before VM starts here: it is this host's, or nobody's and now this
 * host's.  -1 with err if another host owns it or etcd cannot say. */
extern int cluster_claim_vm (const char *vm, char *err, size_t errlen);
/* Before a migration of VM away: as cluster_claim_vm, and the revision
 * the cutover's transaction compares (0 without --cluster). */
extern int cluster_owner_check (const char *vm, int64_t *rev_r, char *err,
                                size_t errlen);
/* The cutover: VM's owner becomes TO, in one transaction that holds
 * only if nothing changed it since REV.  -1 with err if it did not
 * happen or its outcome is unknown: then nothing may resume the VM
 * until cluster_may_resume says so. */
extern int cluster_move_vm (const char *vm, const char *to, int64_t rev,
                            char *err, size_t errlen);
/* A rollback, VM's migration to TO (NULL: none) undone: true if this
 * host may resume VM, taking its ownership back from TO when the
 * cutover's transaction had moved it (TO never ran it: the caller
 * knows).  False with err if another host owns it or etcd cannot say. */
extern bool cluster_may_resume (const char *vm, const char *to, char *err,
                                size_t errlen);
/* The destination, told to resume VM (which the source made its own):
 * false with err if this host's lease is not live. */
extern bool cluster_may_take (const char *vm, char *err, size_t errlen);
/* VM is gone from this host for good (undefined): its key goes too, if
 * it is still this host's. */
extern void cluster_release_vm (const char *vm);

/* This host's lease is live (not fenced, the margin to spare). */
extern bool cluster_lease_live (void);

/* VM's owner as the cluster says now (malloc'd; NULL: nobody's). */
extern int cluster_owner (const char *vm, char **owner_r, char *err,
                          size_t errlen);

/* For the fence (cluster-fence.c): the mono ms at which it falls (the
 * lease's bound less a margin); the bound itself; whether it fell; the
 * VMs it paused. */
extern int64_t cluster_fence_due (void);
extern int64_t cluster_lease_end (void);
extern void cluster_set_fenced (bool fenced);
extern void cluster_fenced_add (const char *vm);
extern json_t *cluster_fenced_take (void);

/* Placement (--to auto:N; cluster-place.c): the N live members other
 * than this host, none of them draining, with the most room for VM's
 * memory (their free memory less what this host's recent placements
 * hold there), most RDMA-able first among equals; as a comma-separated
 * list into BUF.  -1 with err if fewer than N fit, or outside a
 * cluster.  The VM's memory is held on the hosts picked until
 * cluster_place_done (VM) and two of their refreshes after. */
extern int cluster_place (const char *vm, unsigned n, char *buf, size_t len,
                          char *err, size_t errlen);
extern void cluster_place_done (const char *vm);

/* Draining (evacuate): placement passes this host over and it admits
 * no incoming VM.  Set and published at once: -1 with err if the
 * publication failed (the host drains all the same). */
extern int cluster_set_draining (bool on, char *err, size_t errlen);
extern bool cluster_draining (void);
extern int cluster_ttl_s (void);

/* The live members: an array of their host objects. */
extern json_t *cluster_hosts (char *err, size_t errlen);
/* A member's peer URI by name (NULL if none): what --peer gives
 * without --cluster. */
extern const char *cluster_peer_uri (const char *name);

#endif /* HANDOFF_CTL_CLUSTER_H */
