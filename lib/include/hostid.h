/* The host component ID: which physical host a VM runs on right now.
 *
 * handoffd publishes it to each guest it starts as two QEMU fw_cfg
 * entries (see hostid_fwcfg_args):
 *
 *   opt/org.handoff/host-id    64 hex characters, SHA-256 of the host's
 *                              identity (its handoff name, machine id,
 *                              DMI vendor, product and serial)
 *   opt/org.handoff/host-info  "name=... vendor=... product=...
 *                              serial=..." padded with spaces to
 *                              HOSTID_INFO_LEN bytes
 *
 * Both have a fixed length because a running guest reading an entry
 * after a live migration sees the destination's value cut to the
 * length the entry had when it booted.
 */
#ifndef HANDOFF_CTL_HOSTID_H
#define HANDOFF_CTL_HOSTID_H

#include <stddef.h>

#define HOSTID_FWCFG_ID "opt/org.handoff/host-id"
#define HOSTID_FWCFG_INFO "opt/org.handoff/host-info"
#define HOSTID_HEX_LEN 64
#define HOSTID_INFO_LEN 256
#define HOSTID_MAX 4096

/* Read the ID from SPEC: "fwcfg", "dmi", "file:PATH" or "cmd:COMMAND".
 * 0 with the ID (trimmed, never empty) in id, or -1 with err. */
extern int hostid_read (const char *spec, char *id, size_t idlen, char *err,
                        size_t errlen);

/* The human-readable details published beside the fw_cfg ID, if any
 * (empty string otherwise). */
extern void hostid_fwcfg_info (char *info, size_t len);

/* This host's ID and details for handoffd to publish under the name
 * NAME: id gets HOSTID_HEX_LEN hex characters, info HOSTID_INFO_LEN
 * characters (space-padded). */
extern int hostid_compute (const char *name, char id[HOSTID_HEX_LEN + 1],
                           char info[HOSTID_INFO_LEN + 1]);

#endif /* HANDOFF_CTL_HOSTID_H */
