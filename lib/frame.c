/* handoff: frame reader and hello codec.  See frame.h. */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "frame.h"

void
frame_reader_init (struct frame_reader *fr, uint32_t max_frame)
{
  memset (fr, 0, sizeof *fr);
  if (max_frame == 0 || max_frame > CHAN_MAX_FRAME_LIMIT)
    max_frame = CHAN_MAX_FRAME_LIMIT;
  fr->max_frame = max_frame;
}

void
frame_reader_reset (struct frame_reader *fr)
{
  free (fr->buf);
  fr->buf = NULL;
  fr->hdr_got = 0;
  fr->len = 0;
  fr->got = 0;
}

int
frame_reader_mid_frame (const struct frame_reader *fr)
{
  return fr->hdr_got > 0;
}

void
frame_reader_want (struct frame_reader *fr, void **ptr_r, size_t *n_r)
{
  if (fr->hdr_got < CHAN_FRAME_HEADER_LEN) {
    *ptr_r = fr->hdr + fr->hdr_got;
    *n_r = CHAN_FRAME_HEADER_LEN - fr->hdr_got;
  }
  else {
    *ptr_r = fr->buf + fr->got;
    *n_r = fr->len - fr->got;
  }
}

enum frame_status
frame_reader_got (struct frame_reader *fr, size_t n, char *err, size_t errlen)
{
  if (fr->hdr_got < CHAN_FRAME_HEADER_LEN) {
    if (n > CHAN_FRAME_HEADER_LEN - fr->hdr_got)
      return set_error_errno (EPROTO, err, errlen,
                              "frame reader: %zu bytes overran the header", n);
    fr->hdr_got += (uint32_t) n;
    if (fr->hdr_got < CHAN_FRAME_HEADER_LEN)
      return FRAME_MORE;

    uint32_t be;
    memcpy (&be, fr->hdr, sizeof be);
    fr->len = be32toh (be);
    if (fr->len == 0)
      return set_error_errno (EPROTO, err, errlen, "empty frame");
    if (fr->len > fr->max_frame)
      return set_error_errno (EPROTO, err, errlen,
                              "frame of %u bytes exceeds the limit of %u",
                              fr->len, fr->max_frame);
    fr->buf = malloc (fr->len);
    if (!fr->buf)
      return set_error_errno (EPROTO, err, errlen,
                              "frame of %u bytes: out of memory", fr->len);
    fr->got = 0;
    return FRAME_MORE;
  }

  if (n > fr->len - fr->got)
    return set_error_errno (EPROTO, err, errlen,
                            "frame reader: %zu bytes overran the payload", n);
  fr->got += (uint32_t) n;
  return fr->got == fr->len ? FRAME_COMPLETE : FRAME_MORE;
}

enum frame_status
frame_reader_feed (struct frame_reader *fr, const void *data, size_t len,
                   size_t *used_r, char *err, size_t errlen)
{
  const uint8_t *p = data;
  size_t used = 0;
  enum frame_status st = FRAME_MORE;

  /* Terminates: each pass consumes at least one byte or stops. */
  while (used < len) {
    void *dst;
    size_t want;

    frame_reader_want (fr, &dst, &want);
    if (want > len - used)
      want = len - used;
    memcpy (dst, p + used, want);
    used += want;
    st = frame_reader_got (fr, want, err, errlen);
    if (st != FRAME_MORE)
      break;
  }
  *used_r = used;
  return st;
}

uint8_t *
frame_reader_take (struct frame_reader *fr, uint32_t *len_r)
{
  uint8_t *buf = fr->buf;

  *len_r = fr->len;
  fr->buf = NULL;
  fr->hdr_got = 0;
  fr->len = 0;
  fr->got = 0;
  return buf;
}

void
frame_header_encode (uint32_t len, uint8_t out[CHAN_FRAME_HEADER_LEN])
{
  uint32_t be = htobe32 (len);
  memcpy (out, &be, sizeof be);
}

void
chan_hello_encode (const struct chan_hello_info *h, uint8_t out[CHAN_HELLO_LEN])
{
  struct chan_hello w = {
    .magic = htobe32 (CHAN_MAGIC),
    .service = htobe16 (h->service),
    .version_min = htobe16 (h->version_min),
    .version_max = htobe16 (h->version_max),
    .flags = 0,
    .max_frame = htobe32 (h->max_frame),
  };
  memcpy (out, &w, sizeof w);
}

int
chan_hello_decode (const void *buf, size_t len, struct chan_hello_info *h_r,
                   char *err, size_t errlen)
{
  struct chan_hello w;

  if (len != sizeof w)
    return set_error_errno (EPROTO, err, errlen,
                            "hello is %zu bytes, expected %zu", len, sizeof w);
  memcpy (&w, buf, sizeof w);
  if (be32toh (w.magic) != CHAN_MAGIC)
    return set_error_errno (EPROTO, err, errlen,
                            "bad magic 0x%08x: not a handoff peer",
                            be32toh (w.magic));
  if (w.flags != 0)
    return set_error_errno (EPROTO, err, errlen, "unknown hello flags 0x%04x",
                            be16toh (w.flags));
  h_r->service = be16toh (w.service);
  h_r->version_min = be16toh (w.version_min);
  h_r->version_max = be16toh (w.version_max);
  h_r->max_frame = be32toh (w.max_frame);
  if (h_r->version_min == 0 || h_r->version_min > h_r->version_max)
    return set_error_errno (EPROTO, err, errlen, "bad version range %u..%u",
                            h_r->version_min, h_r->version_max);
  if (h_r->max_frame < CHAN_HELLO_LEN || h_r->max_frame > CHAN_MAX_FRAME_LIMIT)
    return set_error_errno (EPROTO, err, errlen, "bad max_frame %u",
                            h_r->max_frame);
  return 0;
}

int
chan_hello_negotiate (const struct chan_hello_info *local,
                      const struct chan_hello_info *remote,
                      uint16_t *version_r, char *err, size_t errlen)
{
  uint16_t lo, hi;

  if (local->service != remote->service)
    return set_error_errno (EPROTO, err, errlen,
                            "peer speaks service %u, expected %u",
                            remote->service, local->service);
  lo = local->version_min > remote->version_min
    ? local->version_min : remote->version_min;
  hi = local->version_max < remote->version_max
    ? local->version_max : remote->version_max;
  if (lo > hi)
    return set_error_errno (EPROTO, err, errlen,
                            "no common version: peer speaks %u..%u, "
                            "we speak %u..%u",
                            remote->version_min, remote->version_max,
                            local->version_min, local->version_max);
  *version_r = hi;
  return 0;
}
