/* handoffd: admission policy at the destination.
 *
 * /etc/handoff/policy.json (or --policy FILE), read at each request so
 * an edit takes effect at once:
 *
 *   {
 *     "allowed_sources": ["hostA", "hostB"],   absent: any peer
 *     "max_memory_mb": 65536,      VM memory this host may hold in all
 *     "reserve_memory_mb": 512,    keep this much MemAvailable free
 *     "max_vcpus": 64,             vCPUs this host may run in all
 *     "check_disk": true,          need free space for the VM's data
 *     "reserve_disk_mb": 1024,     and keep this much free
 *     "boot_dirs": ["/srv/kernels"],  boot files VMs may share: a VM
 *                                  that comes in may name a kernel or
 *                                  initrd here, besides its directory
 *     "volume_roots": ["/srv/san"] where volume mode may mount what a
 *                                  peer hands over (absent: nowhere)
 *     "proxy": true                carry the RAM stream of an allowed
 *                                  source's migration to its
 *                                  destinations (handoff migrate --via;
 *                                  absent: true)
 *   }
 *
 * A missing file means: any source, nothing reserved, disk checked,
 * boot files only in the VM's directory, no volume mode.
 */
#ifndef HANDOFF_CTL_POLICY_H
#define HANDOFF_CTL_POLICY_H

#include <stddef.h>

#include <stdint.h>

#include <jansson.h>

/* May the VM described by NEEDS ({"memory", "vcpus", "disk_bytes"},
 * from SOURCE) come here?  0 (permitted) or -1 with the reason. */
extern int policy_admit (const char *source, json_t *needs, char *reason,
                         size_t len);

/* May SOURCE's migrations use this host as their stream proxy
 * (handoff migrate --via), with DISK_BYTES of disk data to hold while
 * it serves the disks?  0, or -1 with the reason. */
extern int policy_admit_proxy (const char *source, uint64_t disk_bytes,
                               char *reason, size_t len);

/* The directories the policy lists under KEY ("boot_dirs",
 * "volume_roots"): an array (empty if none) or NULL with err. */
extern json_t *policy_dirs (const char *key, char *err, size_t errlen);

/* Check the policy file parses (at start-up); 0 or -1 with err. */
extern int policy_check_file (char *err, size_t errlen);

#endif /* HANDOFF_CTL_POLICY_H */
