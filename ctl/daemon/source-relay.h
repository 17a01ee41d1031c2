/* handoffd: the source's stream relay and what carried the RAM stream
 * (source-relay.c).
 */
#ifndef HANDOFF_CTL_SOURCE_RELAY_H
#define HANDOFF_CTL_SOURCE_RELAY_H

#include <stddef.h>

#include "record.h"

/* Start the relay QEMU migrates into (its socket is the VM's
 * mig.sock), carrying to every alive destination, each over what it
 * offered (and over TCP where RDMA to it does not come up, when it
 * offered both).  With --via, carrying once to the proxy's relay,
 * which carries to every destination (RELAY_STREAM, peer.h).  0, or -1
 * (err). */
extern int source_start_relay (struct migration *m, char *err, size_t errlen);

/* --via: RELAY_STREAM to the proxy, on a connection of its own that
 * stays open while the proxy relays (source_end_via closes it), with
 * every alive destination's stream address and key.  Where the
 * proxy's relay takes the stream into m->via_xfer, the file of that
 * leg's key into m->via_psk.  0, or -1 (err: it refused, or answered
 * nothing usable). */
extern int source_ask_proxy (struct migration *m, char *err, size_t errlen);
/* --via: whether the proxy still answers (a keepalive): 0, or -1
 * (err).  0 when no proxy relays. */
extern int source_ping_via (struct migration *m, char *err, size_t errlen);
/* --via: let the proxy go (END, the connection closed).  Nothing when
 * no proxy relays. */
extern void source_end_via (struct migration *m);

/* m->ram_over from each alive destination's transport: "RDMA", "TCP",
 * or per destination when they differ. */
extern void source_describe_ram_over (struct migration *m);

/* Take note, once per destination, of a stream the relay carried over
 * TCP because RDMA to it did not come up: its transport, m->ram_over,
 * the journal and the progress say so.  Cheap when nothing can fall
 * back. */
extern void source_note_ram_fallback (struct migration *m);

#endif /* HANDOFF_CTL_SOURCE_RELAY_H */
