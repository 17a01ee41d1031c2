/* handoff: frame reader and hello codec (no I/O, no printing).
 *
 * The reader collects exactly one frame at a time.  The caller asks
 * where the next bytes go (frame_reader_want), reads at most that many
 * into it, and reports them (frame_reader_got).  Because it never asks
 * for more than the current frame needs, no byte of the next frame is
 * consumed, and the stream can change hands between frames.
 */
#ifndef HANDOFF_FRAME_H
#define HANDOFF_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "channel-proto.h"

struct frame_reader {
  uint32_t max_frame;           /* Largest payload accepted. */
  uint8_t hdr[CHAN_FRAME_HEADER_LEN];
  uint32_t hdr_got;             /* Header bytes received so far. */
  uint8_t *buf;                 /* Payload, owned until taken. */
  uint32_t len;                 /* Payload length (once header is in). */
  uint32_t got;                 /* Payload bytes received so far. */
};

enum frame_status {
  FRAME_ERROR = -1,
  FRAME_MORE = 0,
  FRAME_COMPLETE = 1,
};

extern void frame_reader_init (struct frame_reader *fr, uint32_t max_frame);
extern void frame_reader_reset (struct frame_reader *fr);
/* True between the first byte of a frame and its completion. */
extern int frame_reader_mid_frame (const struct frame_reader *fr);
extern void frame_reader_want (struct frame_reader *fr,
                               void **ptr_r, size_t *n_r);
extern enum frame_status frame_reader_got (struct frame_reader *fr, size_t n,
                                           char *err, size_t errlen);
/* Copying variant for callers holding bytes already (tests, fuzzers).
 * Consumes as much of DATA as belongs to the current frame. */
extern enum frame_status frame_reader_feed (struct frame_reader *fr,
                                            const void *data, size_t len,
                                            size_t *used_r,
                                            char *err, size_t errlen);
/* Hand the completed payload to the caller (free it). */
extern uint8_t *frame_reader_take (struct frame_reader *fr, uint32_t *len_r);

/* Encode a frame header for a payload of LEN bytes. */
extern void frame_header_encode (uint32_t len,
                                 uint8_t out[CHAN_FRAME_HEADER_LEN]);

struct chan_hello_info {
  uint16_t service;
  uint16_t version_min;
  uint16_t version_max;
  uint32_t max_frame;
};

extern void chan_hello_encode (const struct chan_hello_info *h,
                               uint8_t out[CHAN_HELLO_LEN]);
extern int chan_hello_decode (const void *buf, size_t len,
                              struct chan_hello_info *h_r,
                              char *err, size_t errlen);
/* Check the peer's hello against ours; on success store the version
 * both speak. */
extern int chan_hello_negotiate (const struct chan_hello_info *local,
                                 const struct chan_hello_info *remote,
                                 uint16_t *version_r,
                                 char *err, size_t errlen);

#endif /* HANDOFF_FRAME_H */
