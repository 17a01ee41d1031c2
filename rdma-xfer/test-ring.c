/* The rdma:// ring and credit rules, without hardware: a simulated
 * sender and receiver exchange slots and credits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ring.h"

#define SLOTS 4
#define SLOT_SIZE 16

static void
test_stream_through_ring (void **state)
{
  struct ring_rx rx;
  struct ring_tx tx;
  uint8_t ring[SLOTS * SLOT_SIZE];
  uint8_t src[1000], dst[1000];
  size_t sent = 0, got = 0;
  bool eof_sent = false;
  unsigned rounds = 0;

  (void) state;
  for (size_t i = 0; i < sizeof src; ++i)
    src[i] = (uint8_t) (i * 31 + 7);
  ring_rx_init (&rx, SLOTS, SLOT_SIZE);
  ring_tx_init (&tx, SLOTS, SLOTS);
  /* Terminates: every round moves data or credits (asserted). */
  while (!rx.eof) {
    bool moved = false;
    uint32_t r, s;

    /* Sender: write while credits allow, then the end of stream. */
    while (!eof_sent && ring_tx_can_write (&tx)) {
      size_t len = sizeof src - sent > SLOT_SIZE ? SLOT_SIZE
        : sizeof src - sent;
      ring_tx_next (&tx, &r, &s);
      memcpy (ring + r * SLOT_SIZE, src + sent, len);
      assert_int_equal (ring_rx_filled (&rx, (uint32_t) len), 0);
      ring_tx_completed (&tx);
      sent += len;
      eof_sent = len == 0;
      moved = true;
    }
    /* Receiver: read odd-sized pieces, return credits at half, or all
     * when it would otherwise wait. */
    size_t n = ring_rx_consume (&rx, ring, dst + got, 7);
    got += n;
    uint32_t c = ring_rx_take_credits (&rx, SLOTS / 2, n == 0);
    if (c) {
      assert_int_equal (ring_tx_credit (&tx, c), 0);
      moved = true;
    }
    assert_true (moved || n > 0 || rx.eof);
    assert_true (++rounds < 10000);
  }
  assert_int_equal (got, sizeof src);
  assert_memory_equal (src, dst, sizeof src);
}

static void
test_end_of_stream (void **state)
{
  struct ring_rx rx;
  uint8_t ring[SLOTS * SLOT_SIZE] = { 0 }, out[8];

  (void) state;
  ring_rx_init (&rx, SLOTS, SLOT_SIZE);
  memcpy (ring, "abc", 3);
  assert_int_equal (ring_rx_filled (&rx, 3), 0);
  assert_int_equal (ring_rx_filled (&rx, 0), 0);
  /* The data, then (same call) the end of stream; nothing after. */
  assert_int_equal (ring_rx_consume (&rx, ring, out, sizeof out), 3);
  assert_memory_equal (out, "abc", 3);
  assert_true (rx.eof);
  assert_int_equal (ring_rx_consume (&rx, ring, out, sizeof out), 0);
  assert_int_equal (ring_rx_take_credits (&rx, 100, true), 2);
}

static void
test_refusals (void **state)
{
  struct ring_rx rx;
  struct ring_tx tx;
  uint32_t r, s;

  (void) state;
  ring_rx_init (&rx, SLOTS, SLOT_SIZE);
  for (int i = 0; i < SLOTS; ++i)
    assert_int_equal (ring_rx_filled (&rx, SLOT_SIZE), 0);
  /* A fifth slot would overwrite one not yet read. */
  assert_int_equal (ring_rx_filled (&rx, 1), -1);
  ring_rx_init (&rx, SLOTS, SLOT_SIZE);
  assert_int_equal (ring_rx_filled (&rx, SLOT_SIZE + 1), -1);

  ring_tx_init (&tx, SLOTS, SLOTS);
  /* Credits for slots never written are invented. */
  assert_int_equal (ring_tx_credit (&tx, 1), -1);
  assert_int_equal (ring_tx_credit (&tx, 0), -1);
  for (int i = 0; i < SLOTS; ++i) {
    assert_true (ring_tx_can_write (&tx));
    ring_tx_next (&tx, &r, &s);
    ring_tx_completed (&tx);
  }
  assert_false (ring_tx_can_write (&tx));    /* Out of credits. */
  assert_int_equal (ring_tx_credit (&tx, SLOTS + 1), -1);
  assert_int_equal (ring_tx_credit (&tx, 2), 0);
  assert_true (ring_tx_can_write (&tx));
  ring_tx_next (&tx, &r, &s);
  assert_int_equal (r, 0);                   /* Wrapped. */
}

static void
test_staging_limit (void **state)
{
  struct ring_tx tx;
  uint32_t r, s;

  (void) state;
  ring_tx_init (&tx, 8, 2);
  ring_tx_next (&tx, &r, &s);
  ring_tx_next (&tx, &r, &s);
  /* Credits remain, but both staging slots are still being sent. */
  assert_false (ring_tx_can_write (&tx));
  ring_tx_completed (&tx);
  assert_true (ring_tx_can_write (&tx));
  ring_tx_next (&tx, &r, &s);
  assert_int_equal (s, 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_stream_through_ring),
    cmocka_unit_test (test_end_of_stream),
    cmocka_unit_test (test_refusals),
    cmocka_unit_test (test_staging_limit),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
