/* rdma-xfer: slot ring and credit accounting.  See ring.h. */
#include <string.h>

#include "ring.h"

void
ring_rx_init (struct ring_rx *r, uint32_t slots, uint32_t slot_size)
{
  memset (r, 0, sizeof *r);
  r->slots = slots > RING_MAX_SLOTS ? RING_MAX_SLOTS : slots;
  r->slot_size = slot_size;
}

int
ring_rx_filled (struct ring_rx *r, uint32_t len)
{
  if (r->head - r->tail >= r->slots || len > r->slot_size)
    return -1;
  r->len[r->head % r->slots] = len;
  r->head++;
  return 0;
}

bool
ring_rx_empty (const struct ring_rx *r)
{
  return r->head == r->tail;
}

size_t
ring_rx_consume (struct ring_rx *r, const uint8_t *ring, uint8_t *out,
                 size_t n)
{
  size_t got = 0;

  /* Terminates: each pass consumes a slot or part of one, or stops. */
  while (got < n && !r->eof && r->head != r->tail) {
    uint32_t slot = (uint32_t) (r->tail % r->slots);
    uint32_t len = r->len[slot];
    size_t take;

    if (len == 0) {
      r->eof = true;
      r->tail++;
      r->owed++;
      break;
    }
    take = len - r->off;
    if (take > n - got)
      take = n - got;
    memcpy (out + got, ring + (size_t) slot * r->slot_size + r->off, take);
    got += take;
    r->off += take;
    if (r->off == len) {
      r->off = 0;
      r->tail++;
      r->owed++;
    }
  }
  return got;
}

uint32_t
ring_rx_take_credits (struct ring_rx *r, uint32_t threshold, bool force)
{
  uint32_t n = r->owed;

  if (n == 0 || (n < threshold && !force))
    return 0;
  r->owed = 0;
  return n;
}

void
ring_tx_init (struct ring_tx *t, uint32_t remote_slots, uint32_t staging)
{
  memset (t, 0, sizeof *t);
  t->remote_slots = remote_slots;
  t->staging = staging;
  t->credits = remote_slots;
}

bool
ring_tx_can_write (const struct ring_tx *t)
{
  return t->seq < t->credits && t->seq - t->done < t->staging;
}

void
ring_tx_next (struct ring_tx *t, uint32_t *remote_r, uint32_t *staging_r)
{
  *remote_r = (uint32_t) (t->seq % t->remote_slots);
  *staging_r = (uint32_t) (t->seq % t->staging);
  t->seq++;
}

void
ring_tx_completed (struct ring_tx *t)
{
  if (t->done < t->seq)
    t->done++;
}

int
ring_tx_credit (struct ring_tx *t, uint32_t n)
{
  /* The peer can only free slots we wrote: credits never run ahead of
   * what we sent plus the ring's size. */
  if (n == 0 || t->credits + n > t->seq + t->remote_slots)
    return -1;
  t->credits += n;
  return 0;
}
