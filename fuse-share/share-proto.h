/* fuse-share: the share protocol (source mount -> receiver).
 *
 * Transport: the framed channel of lib/ (channel-proto.h), service
 * CHAN_SERVICE_SHARE, version SHARE_PROTO_VERSION, over TCP with TLS
 * and a pre-shared key.  Each frame is one message:
 *
 *   struct share_msg (big-endian) | path | path2 | data
 *
 * with path_len, path2_len and data_len giving the sizes.  Every
 * request carries a sequence number, 1 for the first and one more for
 * each next: the receiver applies requests strictly in that order (an
 * out-of-sequence request ends the session) and answers each with one
 * struct share_reply, in the same order.  Because every operation the
 * source makes - a copied chunk, a mirrored write, a rename - goes down
 * this one ordered stream, the receiver ends up doing them in the order
 * the source did.
 *
 * Files are addressed by path (relative to the share root, never
 * absolute, never with "." or ".." components) for namespace
 * operations, and by a handle the source chooses (OPEN / CREATE bind a
 * handle to a path; CLOSE releases it) for data, so a file renamed or
 * unlinked while open keeps receiving its writes, as on the source.
 *
 * Field use per type (unused fields are zero):
 *   MKDIR      path, a = mode
 *   CREATE     path, handle (0: none), a = mode, b = size
 *              (a new regular file; with a handle it stays open)
 *   OPEN       path, handle                       (existing file)
 *   CLOSE      handle
 *   WRITE      handle, a = offset, data
 *   TRUNCATE   handle, a = size
 *   UNLINK     path
 *   RMDIR      path
 *   RENAME     path (from), path2 (to), c = renameat2 flags
 *   SYMLINK    path (the link), path2 (its target, never followed)
 *   LINK       path (existing), path2 (new name)
 *   CHMOD      path, a = mode
 *   CHOWN      path, a = uid, b = gid
 *   UTIMENS    path, a = atime (ns since the epoch), b = mtime (ns)
 *   FSYNC      handle (0: every open file, then the filesystem)
 *   VERIFY     path, data = struct share_verify; the receiver compares
 *              and answers EILSEQ with the reason in the reply text;
 *              c = SHARE_VERIFY_WARM: only learn the file's digest
 *              (before the commit, while the files still change)
 *   COMMIT     a = entries verified; c = the root's mode (0: keep),
 *              b = its mtime (ns).  Refused (EILSEQ) unless exactly
 *              A entries were verified and the destination holds
 *              exactly A; then the share stops being partial
 *   ABORT      delete everything received
 *   FALLOCATE  handle, c = mode (0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE,
 *              ZERO_RANGE[|KEEP_SIZE]), a = offset, b = length
 */
#ifndef HANDOFF_SHARE_PROTO_H
#define HANDOFF_SHARE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define SHARE_PROTO_VERSION 1
#define SHARE_MAX_PATH 4096
#define SHARE_MAX_NAME 255
#define SHARE_MAX_DATA (1u << 20)
#define SHARE_MAX_FRAME (64 + 2 * SHARE_MAX_PATH + SHARE_MAX_DATA)
#define SHARE_MAX_HANDLES 65536
#define SHARE_MAX_REPLY_TEXT 1024

/* The fallocate modes the share carries: those that keep every byte
 * where it is (COLLAPSE_RANGE and INSERT_RANGE move data and are
 * refused by the mount). */
#define SHARE_FALLOC_KEEP_SIZE 0x01     /* FALLOC_FL_KEEP_SIZE */
#define SHARE_FALLOC_PUNCH_HOLE 0x02    /* FALLOC_FL_PUNCH_HOLE */
#define SHARE_FALLOC_ZERO_RANGE 0x10    /* FALLOC_FL_ZERO_RANGE */
static inline int
share_fallocate_mode_ok (uint32_t mode)
{
  return mode == 0 || mode == SHARE_FALLOC_KEEP_SIZE ||
    mode == (SHARE_FALLOC_PUNCH_HOLE | SHARE_FALLOC_KEEP_SIZE) ||
    mode == SHARE_FALLOC_ZERO_RANGE ||
    mode == (SHARE_FALLOC_ZERO_RANGE | SHARE_FALLOC_KEEP_SIZE);
}

enum share_type {
  SHARE_MKDIR = 1,
  SHARE_CREATE = 2,
  SHARE_OPEN = 3,
  SHARE_CLOSE = 4,
  SHARE_WRITE = 5,
  SHARE_TRUNCATE = 6,
  SHARE_UNLINK = 7,
  SHARE_RMDIR = 8,
  SHARE_RENAME = 9,
  SHARE_SYMLINK = 10,
  SHARE_LINK = 11,
  SHARE_CHMOD = 12,
  SHARE_CHOWN = 13,
  SHARE_UTIMENS = 14,
  SHARE_FSYNC = 15,
  SHARE_VERIFY = 16,
  SHARE_COMMIT = 17,
  SHARE_ABORT = 18,
  SHARE_FALLOCATE = 19,
  SHARE_TYPE_MAX = 19,
};

struct share_msg {
  uint16_t type;                /* enum share_type */
  uint16_t flags;               /* Zero. */
  uint32_t c;
  uint64_t seq;
  uint64_t handle;
  uint64_t a;
  uint64_t b;
  uint16_t path_len;
  uint16_t path2_len;
  uint32_t data_len;
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct share_msg) == 48, "share_msg is 48 bytes");

struct share_reply {
  uint64_t seq;
  int32_t err;                  /* 0 or a positive errno. */
  uint32_t text_len;            /* Then the reason, for errors. */
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct share_reply) == 16, "share_reply is 16 bytes");

#define SHARE_VERIFY_WARM 1

/* What VERIFY expects to find. */
enum share_kind { SHARE_KIND_FILE = 1, SHARE_KIND_DIR = 2, SHARE_KIND_LINK = 3 };

struct share_verify {
  uint32_t kind;                /* enum share_kind */
  uint32_t mode;                /* Permission bits. */
  uint64_t size;                /* Files: bytes. */
  int64_t mtime_ns;             /* Files and links. */
  uint8_t sha256[32];           /* Files: content; links: the target. */
} __attribute__ ((__packed__));
_Static_assert (sizeof (struct share_verify) == 56, "share_verify");

/* Decoded message: pointers into the frame buffer. */
struct share_req {
  enum share_type type;
  uint32_t c;
  uint64_t seq, handle, a, b;
  const char *path;             /* NUL-terminated copies, or NULL. */
  const char *path2;
  const uint8_t *data;
  uint32_t data_len;
};

extern const char *share_type_name (unsigned type);
/* Encode into BUF (size LEN); returns the frame length, or 0 if it
 * does not fit. */
extern size_t share_encode (const struct share_req *r, uint8_t *buf,
                            size_t len);
/* Decode a frame.  Checks sizes, the type, the fields the type uses and
 * every path (share_check_path).  PATHBUF (2 * (SHARE_MAX_PATH + 1))
 * receives the NUL-terminated paths.  Never prints. */
extern int share_decode (const uint8_t *buf, size_t len, struct share_req *r,
                         char *pathbuf, char *err, size_t errlen);
/* A path relative to the share root: not empty, not absolute, no ".",
 * ".." or empty components, no NUL, at most SHARE_MAX_PATH bytes with
 * components of at most SHARE_MAX_NAME. */
extern int share_check_path (const char *path, size_t len,
                             char *err, size_t errlen);
extern size_t share_encode_reply (uint64_t seq, int err, const char *text,
                                  uint8_t *buf, size_t len);
extern int share_decode_reply (const uint8_t *buf, size_t len,
                               uint64_t *seq_r, int *err_r,
                               char *text, size_t textlen);

#endif /* HANDOFF_SHARE_PROTO_H */
