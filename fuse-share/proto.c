/* fuse-share: share protocol codec.  See share-proto.h. */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "names.h"
#include "share-proto.h"

static const char *const names[] = {
  [SHARE_MKDIR] = "MKDIR", [SHARE_CREATE] = "CREATE", [SHARE_OPEN] = "OPEN",
  [SHARE_CLOSE] = "CLOSE", [SHARE_WRITE] = "WRITE",
  [SHARE_TRUNCATE] = "TRUNCATE", [SHARE_UNLINK] = "UNLINK",
  [SHARE_RMDIR] = "RMDIR", [SHARE_RENAME] = "RENAME",
  [SHARE_SYMLINK] = "SYMLINK", [SHARE_LINK] = "LINK", [SHARE_CHMOD] = "CHMOD",
  [SHARE_CHOWN] = "CHOWN", [SHARE_UTIMENS] = "UTIMENS",
  [SHARE_FSYNC] = "FSYNC", [SHARE_VERIFY] = "VERIFY",
  [SHARE_COMMIT] = "COMMIT", [SHARE_ABORT] = "ABORT",
  [SHARE_FALLOCATE] = "FALLOCATE",
};

const char *
share_type_name (unsigned type)
{
  if (type >= 1 && type <= SHARE_TYPE_MAX)
    return names[type];
  return "UNKNOWN";
}

int
share_check_path (const char *path, size_t len, char *err, size_t errlen)
{
  if (len == 0)
    return set_error_errno (EPROTO, err, errlen, "empty path");
  if (len > SHARE_MAX_PATH)
    return set_error_errno (EPROTO, err, errlen, "path longer than %d bytes",
                            SHARE_MAX_PATH);
  if (memchr (path, '\0', len))
    return set_error_errno (EPROTO, err, errlen, "path contains a NUL byte");
  if (path[0] == '/')
    return set_error_errno (EPROTO, err, errlen, "absolute path '%.*s'",
                            (int) (len > 100 ? 100 : len), path);
  switch (path_parts_check (path, len, SHARE_MAX_NAME, false)) {
  case PATH_PART_OK:
    return 0;
  case PATH_PART_EMPTY:
    return set_error_errno (EPROTO, err, errlen,
                            "empty path component in '%.*s'",
                            (int) (len > 100 ? 100 : len), path);
  case PATH_PART_LONG:
    return set_error_errno (EPROTO, err, errlen,
                            "path component longer than %d bytes",
                            SHARE_MAX_NAME);
  case PATH_PART_DOT:
    break;
  }
  return set_error_errno (EPROTO, err, errlen, "'.' or '..' in path '%.*s'",
                          (int) (len > 100 ? 100 : len), path);
}

/* Which fields each type needs: path, path2, data, handle (1: needed,
 * 2: optional). */
static const struct {
  unsigned char path, path2, data, handle;
} uses[] = {
  [SHARE_MKDIR] = { 1, 0, 0, 0 }, [SHARE_CREATE] = { 1, 0, 0, 2 },
  [SHARE_OPEN] = { 1, 0, 0, 1 }, [SHARE_CLOSE] = { 0, 0, 0, 1 },
  [SHARE_WRITE] = { 0, 0, 1, 1 }, [SHARE_TRUNCATE] = { 0, 0, 0, 1 },
  [SHARE_UNLINK] = { 1, 0, 0, 0 }, [SHARE_RMDIR] = { 1, 0, 0, 0 },
  [SHARE_RENAME] = { 1, 1, 0, 0 }, [SHARE_SYMLINK] = { 1, 1, 0, 0 },
  [SHARE_LINK] = { 1, 1, 0, 0 }, [SHARE_CHMOD] = { 1, 0, 0, 0 },
  [SHARE_CHOWN] = { 1, 0, 0, 0 }, [SHARE_UTIMENS] = { 1, 0, 0, 0 },
  [SHARE_FSYNC] = { 0, 0, 0, 2 }, [SHARE_VERIFY] = { 1, 0, 1, 0 },
  [SHARE_COMMIT] = { 0, 0, 0, 0 }, [SHARE_ABORT] = { 0, 0, 0, 0 },
  [SHARE_FALLOCATE] = { 0, 0, 0, 1 },
};

size_t
share_encode (const struct share_req *r, uint8_t *buf, size_t len)
{
  size_t pl = r->path ? strlen (r->path) : 0;
  size_t p2 = r->path2 ? strlen (r->path2) : 0;
  size_t total = sizeof (struct share_msg) + pl + p2 + r->data_len;
  struct share_msg m = {
    .type = htobe16 ((uint16_t) r->type),
    .c = htobe32 (r->c),
    .seq = htobe64 (r->seq),
    .handle = htobe64 (r->handle),
    .a = htobe64 (r->a),
    .b = htobe64 (r->b),
    .path_len = htobe16 ((uint16_t) pl),
    .path2_len = htobe16 ((uint16_t) p2),
    .data_len = htobe32 (r->data_len),
  };

  if (pl > SHARE_MAX_PATH || p2 > SHARE_MAX_PATH ||
      r->data_len > SHARE_MAX_DATA || total > len)
    return 0;
  memcpy (buf, &m, sizeof m);
  if (pl)
    memcpy (buf + sizeof m, r->path, pl);
  if (p2)
    memcpy (buf + sizeof m + pl, r->path2, p2);
  if (r->data_len)
    memcpy (buf + sizeof m + pl + p2, r->data, r->data_len);
  return total;
}

int
share_decode (const uint8_t *buf, size_t len, struct share_req *r,
              char *pathbuf, char *err, size_t errlen)
{
  struct share_msg m;
  size_t pl, p2, dl;
  unsigned type;

  memset (r, 0, sizeof *r);
  if (len < sizeof m)
    return set_error_errno (EPROTO, err, errlen,
                            "message of %zu bytes is shorter than its "
                            "header", len);
  memcpy (&m, buf, sizeof m);
  type = be16toh (m.type);
  if (type < 1 || type > SHARE_TYPE_MAX)
    return set_error_errno (EPROTO, err, errlen, "unknown message type %u",
                            type);
  if (m.flags != 0)
    return set_error_errno (EPROTO, err, errlen, "%s: unknown flags",
                            names[type]);
  pl = be16toh (m.path_len);
  p2 = be16toh (m.path2_len);
  dl = be32toh (m.data_len);
  if (pl > SHARE_MAX_PATH || p2 > SHARE_MAX_PATH || dl > SHARE_MAX_DATA)
    return set_error_errno (EPROTO, err, errlen, "%s: field too long",
                            names[type]);
  if (sizeof m + pl + p2 + dl != len)
    return set_error_errno (EPROTO, err, errlen,
                            "%s: sizes add up to %zu, the frame is %zu",
                            names[type], sizeof m + pl + p2 + dl, len);
  if (!!pl != uses[type].path || !!p2 != uses[type].path2 ||
      (!uses[type].data && dl))
    return set_error_errno (EPROTO, err, errlen,
                            "%s: wrong fields for this type", names[type]);
  r->type = (enum share_type) type;
  r->c = be32toh (m.c);
  r->seq = be64toh (m.seq);
  r->handle = be64toh (m.handle);
  r->a = be64toh (m.a);
  r->b = be64toh (m.b);
  /* handle: 1 required, 2 optional (0: none), 0 unused. */
  if ((uses[type].handle == 1 && r->handle == 0) ||
      r->handle > SHARE_MAX_HANDLES || (!uses[type].handle && r->handle))
    return set_error_errno (EPROTO, err, errlen,
                            "%s: handle %llu is out of range", names[type],
                            (unsigned long long) r->handle);
  if (r->seq == 0)
    return set_error_errno (EPROTO, err, errlen, "%s: sequence number 0",
                            names[type]);
  if (pl) {
    char inner[200];
    if (share_check_path ((const char *) buf + sizeof m, pl, inner,
                          sizeof inner) == -1)
      return set_error_errno (EPROTO, err, errlen, "%s: %s", names[type],
                              inner);
    memcpy (pathbuf, buf + sizeof m, pl);
    pathbuf[pl] = '\0';
    r->path = pathbuf;
  }
  if (p2) {
    char *dst = pathbuf + SHARE_MAX_PATH + 1;
    /* A symlink's target is data, not a path we resolve: any bytes
     * but NUL. */
    if (type == SHARE_SYMLINK) {
      if (memchr (buf + sizeof m + pl, '\0', p2))
        return set_error_errno (EPROTO, err, errlen,
                                "SYMLINK: target contains a NUL byte");
    }
    else {
      char inner[200];
      if (share_check_path ((const char *) buf + sizeof m + pl, p2, inner,
                            sizeof inner) == -1)
        return set_error_errno (EPROTO, err, errlen, "%s: %s", names[type],
                                inner);
    }
    memcpy (dst, buf + sizeof m + pl, p2);
    dst[p2] = '\0';
    r->path2 = dst;
  }
  if (dl) {
    r->data = buf + sizeof m + pl + p2;
    r->data_len = (uint32_t) dl;
  }
  if (type == SHARE_VERIFY && dl != sizeof (struct share_verify))
    return set_error_errno (EPROTO, err, errlen,
                            "VERIFY: expected %zu bytes of data, got %zu",
                            sizeof (struct share_verify), dl);
  if (type == SHARE_WRITE && dl == 0)
    return set_error_errno (EPROTO, err, errlen, "WRITE: no data");
  return 0;
}

size_t
share_encode_reply (uint64_t seq, int e, const char *text, uint8_t *buf,
                    size_t len)
{
  size_t tl = text ? strnlen (text, SHARE_MAX_REPLY_TEXT) : 0;
  struct share_reply r = {
    .seq = htobe64 (seq), .err = (int32_t) htobe32 ((uint32_t) e),
    .text_len = htobe32 ((uint32_t) tl),
  };

  if (sizeof r + tl > len)
    return 0;
  memcpy (buf, &r, sizeof r);
  if (tl)
    memcpy (buf + sizeof r, text, tl);
  return sizeof r + tl;
}

int
share_decode_reply (const uint8_t *buf, size_t len, uint64_t *seq_r,
                    int *err_r, char *text, size_t textlen)
{
  struct share_reply r;
  size_t tl;

  if (len < sizeof r) {
    errno = EPROTO;
    return -1;
  }
  memcpy (&r, buf, sizeof r);
  tl = be32toh (r.text_len);
  if (tl > SHARE_MAX_REPLY_TEXT || sizeof r + tl != len) {
    errno = EPROTO;
    return -1;
  }
  *seq_r = be64toh (r.seq);
  *err_r = (int) be32toh ((uint32_t) r.err);
  if (*err_r < 0 || *err_r > 4095) {
    errno = EPROTO;
    return -1;
  }
  if (textlen) {
    size_t n = tl < textlen - 1 ? tl : textlen - 1;
    memcpy (text, buf + sizeof r, n);
    text[n] = '\0';
  }
  return 0;
}
