/* share-client: speak the share protocol by hand, to send bad requests
 * to a receiver on purpose (tests only).
 *
 *   share-client URI PSK-FILE SCENARIO
 *
 * Prints one line per request: "TYPE PATH -> err=N text" or
 * "TYPE -> connection closed".  Scenarios: escape, handles, sequence,
 * oversize.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "log.h"
#include "share-proto.h"

static struct channel *c;
static uint64_t seq;

static int
send_req (struct share_req *r, bool raw_seq)
{
  static uint8_t buf[SHARE_MAX_FRAME];
  void *reply = NULL;
  uint64_t rseq;
  int e;
  char text[SHARE_MAX_REPLY_TEXT + 1];
  size_t n;
  ssize_t got;

  if (!raw_seq)
    r->seq = ++seq;
  n = share_encode (r, buf, sizeof buf);
  printf ("%s %s%s%s -> ", share_type_name (r->type), r->path ? r->path : "",
          r->path2 ? " " : "", r->path2 ? r->path2 : "");
  if (n == 0 || chan_send (c, buf, n) == -1 ||
      (got = chan_recv (c, &reply)) <= 0) {
    printf ("connection closed\n");
    fflush (stdout);
    return -1;
  }
  if (share_decode_reply (reply, (size_t) got, &rseq, &e, text,
                          sizeof text) == -1) {
    printf ("bad reply\n");
    free (reply);
    return -1;
  }
  free (reply);
  printf ("err=%d %s\n", e, text);
  fflush (stdout);
  return e;
}

int
main (int argc, char **argv)
{
  struct chan_config cfg = {
    .service = CHAN_SERVICE_SHARE, .version_min = SHARE_PROTO_VERSION,
    .version_max = SHARE_PROTO_VERSION, .max_frame = SHARE_MAX_FRAME,
    .timeout_ms = 10000,
  };
  const char *scenario;

  if (argc != 4) {
    fprintf (stderr, "usage: share-client URI PSK-FILE SCENARIO\n");
    return 1;
  }
  log_set_program ("share-client");
  cfg.psk_file = argv[2];
  scenario = argv[3];
  c = chan_connect (argv[1], &cfg);
  if (!c) {
    printf ("connect refused\n");
    return 2;
  }

  if (strcmp (scenario, "escape") == 0) {
    /* A symlink out of the root may be made (it is data) but never
     * used as a way out. */
    struct share_req reqs[] = {
      { .type = SHARE_SYMLINK, .path = "out", .path2 = getenv ("OUTSIDE") },
      { .type = SHARE_MKDIR, .path = "out/sub", .a = 0755 },
      { .type = SHARE_CREATE, .path = "out/file", .a = 0644, .handle = 1 },
      { .type = SHARE_OPEN, .path = "out", .handle = 2 },
      { .type = SHARE_UNLINK, .path = "out/victim" },
      { .type = SHARE_CHMOD, .path = "out", .a = 0777 },
      { .type = SHARE_RENAME, .path = "out", .path2 = "moved" },
      { .type = SHARE_RENAME, .path = "moved", .path2 = "out2" },
      { .type = SHARE_MKDIR, .path = "d", .a = 0755 },
      { .type = SHARE_SYMLINK, .path = "d/up", .path2 = ".." },
      { .type = SHARE_CREATE, .path = "d/up/up/escaped", .a = 0644 },
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; ++i)
      if (send_req (&reqs[i], false) < 0)
        return 1;
    /* Undecodable: an absolute path ends the session. */
    struct share_req abs = { .type = SHARE_MKDIR, .path = "/etc/evil",
                             .a = 0755 };
    send_req (&abs, false);
  }
  else if (strcmp (scenario, "handles") == 0) {
    struct share_req reqs[] = {
      { .type = SHARE_WRITE, .handle = 42, .data = (const uint8_t *) "x",
        .data_len = 1 },
      { .type = SHARE_CLOSE, .handle = 43 },
      { .type = SHARE_CREATE, .path = "f", .a = 0644, .handle = 5 },
      { .type = SHARE_CREATE, .path = "g", .a = 0644, .handle = 5 },
      { .type = SHARE_FALLOCATE, .handle = 5, .c = 0x08, .b = 4096 },
      { .type = SHARE_FALLOCATE, .handle = 5, .a = INT64_MAX, .b = 2 },
      { .type = SHARE_FALLOCATE, .handle = 5, .b = 8192 },
      { .type = SHARE_WRITE, .handle = 5, .a = UINT64_MAX - 2,
        .data = (const uint8_t *) "xyz", .data_len = 3 },
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; ++i)
      if (send_req (&reqs[i], false) < 0)
        return 1;
  }
  else if (strcmp (scenario, "commit-unverified") == 0) {
    /* A commit must match what was verified. */
    struct share_req reqs[] = {
      { .type = SHARE_MKDIR, .path = "a", .a = 0755 },
      { .type = SHARE_COMMIT, .a = 1 },
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; ++i)
      if (send_req (&reqs[i], false) < 0)
        return 1;
  }
  else if (strcmp (scenario, "commit-extra") == 0) {
    /* ... and the destination must hold nothing more. */
    struct share_verify v = { .kind = htobe32 (SHARE_KIND_DIR),
                              .mode = htobe32 (0755) };
    struct share_req reqs[] = {
      { .type = SHARE_MKDIR, .path = "a", .a = 0755 },
      { .type = SHARE_CHMOD, .path = "a", .a = 0755 },
      { .type = SHARE_VERIFY, .path = "a", .data = (const uint8_t *) &v,
        .data_len = sizeof v },
      { .type = SHARE_MKDIR, .path = "extra", .a = 0755 },
      { .type = SHARE_COMMIT, .a = 1 },
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; ++i)
      if (send_req (&reqs[i], false) < 0)
        return 1;
  }
  else if (strcmp (scenario, "sequence") == 0) {
    struct share_req ok = { .type = SHARE_MKDIR, .path = "a", .a = 0755 };
    struct share_req skip = { .type = SHARE_MKDIR, .path = "b", .a = 0755,
                              .seq = 5 };
    send_req (&ok, false);
    send_req (&skip, true);
  }
  else if (strcmp (scenario, "oversize") == 0) {
    /* A WRITE carrying more than a message may: refused, session ends. */
    size_t dl = SHARE_MAX_DATA + 4096;
    size_t n = sizeof (struct share_msg) + dl;
    uint8_t *big = calloc (1, n);
    struct share_msg m = {
      .type = htobe16 (SHARE_WRITE), .seq = htobe64 (1),
      .handle = htobe64 (1), .data_len = htobe32 ((uint32_t) dl),
    };
    void *reply = NULL;
    memcpy (big, &m, sizeof m);
    printf ("oversize WRITE -> %s", chan_send (c, big, n) == -1
            ? "refused locally\n" : "sent; ");
    printf ("%s\n", chan_recv (c, &reply) <= 0 ? "connection closed"
            : "a reply");
    free (reply);
    free (big);
  }
  chan_close (c);
  return 0;
}
