/* rdma-xfer: the slot ring and credit accounting of the rdma://
 * back end, without any verbs, so it can be tested alone.
 *
 * The receiver owns SLOTS slots.  The sender may have at most as many
 * slots written-but-unconsumed as it holds credits; the receiver
 * returns credits as it consumes slots.  A zero-length slot is the end
 * of the stream.  Every input from the peer (a filled slot's length, a
 * credit count) is checked: a peer that overruns the ring or invents
 * credits is a protocol error.
 *
 * No locking: the caller holds its lock around every call.
 */
#ifndef HANDOFF_XFER_RING_H
#define HANDOFF_XFER_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_MAX_SLOTS 256

struct ring_rx {
  uint32_t slots, slot_size;
  uint64_t head;                /* Slots filled by the peer. */
  uint64_t tail;                /* Slots consumed. */
  uint32_t len[RING_MAX_SLOTS];
  size_t off;                   /* Consumed bytes of slot 'tail'. */
  bool eof;
  uint32_t owed;                /* Credits not yet returned. */
};

struct ring_tx {
  uint32_t remote_slots;        /* The peer's ring. */
  uint32_t staging;             /* Our staging slots. */
  uint64_t seq;                 /* Slots written. */
  uint64_t done;                /* Writes completed locally. */
  uint64_t credits;             /* Total slots the peer allows. */
};

extern void ring_rx_init (struct ring_rx *r, uint32_t slots,
                          uint32_t slot_size);
/* The peer filled the next slot with LEN bytes: -1 if that overruns
 * the ring or the slot. */
extern int ring_rx_filled (struct ring_rx *r, uint32_t len);
/* Copy up to N bytes out of filled slots starting at the consume
 * position; slots fully read are freed (owed credits grow).  Stops at
 * the end of stream.  Returns bytes copied. */
extern size_t ring_rx_consume (struct ring_rx *r, const uint8_t *ring,
                               uint8_t *out, size_t n);
extern bool ring_rx_empty (const struct ring_rx *r);
/* Credits worth sending now: all owed if at least THRESHOLD are, or if
 * FORCE and any are.  Resets owed. */
extern uint32_t ring_rx_take_credits (struct ring_rx *r, uint32_t threshold,
                                      bool force);

extern void ring_tx_init (struct ring_tx *t, uint32_t remote_slots,
                          uint32_t staging);
/* May the next slot be written (a credit and a staging slot free)? */
extern bool ring_tx_can_write (const struct ring_tx *t);
/* The slot index in the peer's ring and in our staging for the next
 * write; then account it. */
extern void ring_tx_next (struct ring_tx *t, uint32_t *remote_r,
                          uint32_t *staging_r);
extern void ring_tx_completed (struct ring_tx *t);
/* N credits arrived: -1 if the peer returns more than it could owe. */
extern int ring_tx_credit (struct ring_tx *t, uint32_t n);

#endif /* HANDOFF_XFER_RING_H */
