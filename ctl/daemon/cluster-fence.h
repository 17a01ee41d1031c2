/* handoffd: fleet mode's fence (cluster-fence.c). */
#ifndef HANDOFF_CTL_CLUSTER_FENCE_H
#define HANDOFF_CTL_CLUSTER_FENCE_H

/* After cluster_start: the thread that watches the lease's bound (does
 * nothing outside a cluster).  -1 if it cannot start. */
extern int cluster_fence_start (void);
extern void cluster_fence_stop (void);

#endif /* HANDOFF_CTL_CLUSTER_FENCE_H */
