/* handoff-xfer: carry a migration stream, or a file, between hosts.
 *
 *   handoff-xfer relay --listen URI --to URI [--to URI...] [options]
 *   handoff-xfer send FILE --to URI [--size SIZE] [options]
 *   handoff-xfer recv --listen URI FILE [options]
 */
#include <errno.h>
#include <endian.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "build-info.h"
#include "cleanup.h"
#include "exitcodes.h"
#include "log.h"
#include "psk.h"
#include "probe.h"
#include "progress.h"
#include "relay.h"
#include "sockets.h"
#include "staged-file.h"
#include "util.h"
#include "xfer.h"

#define PROG "handoff-xfer"
#define FILE_CHUNK (1u << 20)

static void __attribute__ ((noreturn))
usage (FILE *fp, int code)
{
  fprintf (fp,
"Usage:\n"
"  handoff-xfer relay --listen URI [--listen URI] --to URI [--or URI]\n"
"                     [--to URI [--or URI] ...] [OPTIONS]\n"
"  handoff-xfer send FILE --to URI [OPTIONS]\n"
"  handoff-xfer recv --listen URI FILE [OPTIONS]\n"
"  handoff-xfer probe ADDRESS [--json]\n"
"\n"
"URIs: rdma://HOST:PORT, tcp://HOST:PORT (TLS with --psk), unix:PATH\n"
"(a raw stream, as QEMU's migration socket).  A --to of a relay may\n"
"carry its own key: tcp://HOST:PORT?tls-psk-file=FILE or\n"
"rdma://HOST:PORT?token-file=FILE.  'probe' says whether an active RDMA\n"
"port serves ADDRESS (what rdma:// there would use).\n"
"\n"
"Options:\n"
"  -l, --listen URI      where streams arrive (relay: twice, e.g. rdma://\n"
"                        and tcp:// beside it)\n"
"  -t, --to URI          where to carry them (relay: repeat to fan out)\n"
"      --or URI          relay: where to carry them when the --to before\n"
"                        cannot be reached (e.g. tcp:// after rdma://)\n"
"      --psk FILE        pre-shared key for tcp:// (TLS)\n"
"      --token-file FILE shared token proving the peer (required for rdma://)\n"
"  -b, --buffer SIZE     relay: ring buffer per stream (default 64M)\n"
"      --lagging MODE    relay: wait (slow the source, default) or drop a\n"
"                        destination that falls a whole buffer behind\n"
"      --hold-switchover relay: carry every destination's return path\n"
"                        back, merged, and hold QEMU's switch-over\n"
"                        (switchover-ack) until SIGUSR1\n"
"      --pass-switchover relay: merge the return paths the same way, but\n"
"                        pass the first SWITCHOVER_ACK on at once (a\n"
"                        fan-out for a source whose relay holds it)\n"
"  -n, --streams N       relay: exit after N streams; recv: always 1\n"
"      --accept-timeout TIME  give up if no stream arrives in TIME\n"
"      --timeout TIME    fail a peer that stops taking data (default 60s)\n"
"      --slot-size SIZE  rdma://: bytes per ring slot (default 256K)\n"
"      --slots N         rdma://: ring slots (default 16)\n"
"      --size SIZE       send: stop after SIZE bytes (e.g. of /dev/zero)\n"
"  -j, --json            relay: statistics every second as JSON lines;\n"
"                        send/recv: a JSON summary\n"
"  -v, --verbose         more messages\n"
"  -h, --help            show this help\n"
"  -V, --version         print the version\n");
  exit (code);
}

/* After the last byte the receiver answers with the byte count it got
 * (8 bytes, big-endian), so "send" succeeds only if all arrived. */
static int
do_send (const char *path, const char *to, const struct xfer_opts *opts,
         int timeout_ms, bool json, uint64_t limit)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  CLEANUP_FREE uint8_t *buf = NULL;
  struct xfer_conn *c;
  uint64_t total = 0, ack_be;
  int64_t t0 = clock_ms ();
  ssize_t n = 0;
  size_t got = 0;

  if (fd == -1) {
    fprintf (stderr, "%s: %s: %s\n", PROG, path, strerror (errno));
    return RC_ERROR;
  }
  buf = malloc (FILE_CHUNK);
  if (!buf)
    return RC_ERROR;
  c = xfer_connect (to, opts, 0, 0);
  if (!c)
    /* EINVAL: the URI or the key it needs is wrong, a usage error. */
    return errno == EINVAL ? RC_ERROR : RC_UNREACHABLE;
  /* Terminates: read reports end of file or an error, or LIMIT bytes
   * (when set) have gone. */
  while ((limit == 0 || total < limit) &&
         (n = read (fd, buf, limit && limit - total < FILE_CHUNK
                    ? (size_t) (limit - total) : FILE_CHUNK)) > 0) {
    if (xfer_send (c, buf, (size_t) n, timeout_ms) == -1) {
      fprintf (stderr, "%s: sending to %s: %s\n", PROG, to, strerror (errno));
      xfer_close (c);
      return RC_ERROR;
    }
    total += (uint64_t) n;
  }
  if (limit && total < limit) {
    fprintf (stderr, "%s: %s: only %" PRIu64 " bytes\n", PROG, path, total);
    n = -1;
    errno = EIO;
  }
  if (n < 0) {
    fprintf (stderr, "%s: %s: %s\n", PROG, path, strerror (errno));
    xfer_abort (c);
    xfer_close (c);
    return RC_ERROR;
  }
  xfer_shutdown_write (c);
  while (got < sizeof ack_be) {
    n = xfer_recv (c, (uint8_t *) &ack_be + got, sizeof ack_be - got,
                   timeout_ms);
    if (n <= 0) {
      fprintf (stderr, "%s: %s did not confirm the transfer\n", PROG, to);
      xfer_close (c);
      return RC_ERROR;
    }
    got += (size_t) n;
  }
  xfer_close (c);
  if (be64toh (ack_be) != total) {
    fprintf (stderr, "%s: %s received %" PRIu64 " of %" PRIu64 " bytes\n",
             PROG, to, be64toh (ack_be), total);
    return RC_ERROR;
  }
  double secs = (double) (clock_ms () - t0) / 1000.0;
  if (json)
    printf ("{\"event\":\"sent\",\"bytes\":%" PRIu64 ",\"seconds\":%.3f,"
            "\"rate\":%.0f}\n", total, secs, secs > 0 ? total / secs : 0);
  else {
    char b[32], r[32];
    format_bytes (total, b, sizeof b);
    format_rate (secs > 0 ? total / secs : 0, r, sizeof r);
    fprintf (stderr, "%s: sent %s in %.2f s (%s)\n", PROG, b, secs, r);
  }
  return RC_OK;
}

/* Where a received stream goes.  A regular file (or a new one) is
 * written under a temporary name and put in place only once the whole
 * stream is in and synced, so a failed receive leaves it as it was;
 * "-", devices and FIFOs are written directly. */
struct recv_out {
  struct staged_file sf;
  bool staged;
  int fd;
};

/* Prints why it fails. */
static int
recv_out_open (struct recv_out *o, const char *path)
{
  struct stat st;

  o->staged = false;
  o->sf.fd = -1;
  if (strcmp (path, "-") == 0)
    o->fd = dup (STDOUT_FILENO);
  else if (stat (path, &st) == 0 && !S_ISREG (st.st_mode))
    o->fd = open (path, O_WRONLY | O_CLOEXEC);
  else if (staged_file_open (&o->sf, path) == 0) {
    o->staged = true;
    o->fd = o->sf.fd;
  }
  else {
    fprintf (stderr, "%s: %s: cannot create the temporary file beside it: "
             "%s\n", PROG, path, strerror (errno));
    return -1;
  }
  if (o->fd == -1) {
    fprintf (stderr, "%s: %s: %s\n", PROG, path, strerror (errno));
    return -1;
  }
  return 0;
}

/* Returns 0 once the data is durable where it belongs. */
static int
recv_out_commit (struct recv_out *o, const char *path)
{
  if (o->staged) {
    o->staged = false;
    o->fd = -1;
    return staged_file_commit (&o->sf);
  }
  if (strcmp (path, "-") != 0 && fsync (o->fd) == -1 && errno != EINVAL)
    return -1;
  return 0;
}

static void
recv_out_close (struct recv_out *o)
{
  if (o->staged)
    staged_file_abort (&o->sf);
  else if (o->fd >= 0)
    close (o->fd);
  o->staged = false;
  o->fd = -1;
}

static int
do_recv (const char *listen, const char *path, const struct xfer_opts *opts,
         int accept_timeout_ms, int timeout_ms, bool json)
{
  CLEANUP_FREE uint8_t *buf = NULL;
  struct recv_out out;
  struct xfer_listener *l;
  struct xfer_conn *c = NULL;
  uint64_t total = 0, ack;
  int64_t t0, deadline = accept_timeout_ms < 0 ? -1
    : clock_ms () + accept_timeout_ms;
  ssize_t n;
  int rc = RC_ERROR;

  if (recv_out_open (&out, path) == -1)
    return RC_ERROR;
  buf = malloc (FILE_CHUNK);
  l = xfer_listen (listen, opts);
  if (!buf || !l) {
    xfer_listener_close (l);
    goto out;
  }
  /* With -v: a caller may wait for this line instead of guessing. */
  log_info ("listening on %s", listen);
  /* A peer failing the handshake is refused; keep waiting for ours. */
  while (!c) {
    int left = deadline < 0 ? 1000 : (int) (deadline - clock_ms ());
    if (deadline >= 0 && left <= 0) {
      fprintf (stderr, "%s: no sender arrived on %s\n", PROG, listen);
      xfer_listener_close (l);
      rc = RC_TIMEOUT;
      goto out;
    }
    c = xfer_accept (l, left > 1000 ? 1000 : left);
  }
  xfer_listener_close (l);
  t0 = clock_ms ();
  /* Terminates: at the sender's end of stream or an error. */
  while ((n = xfer_recv (c, buf, FILE_CHUNK, timeout_ms)) > 0) {
    const uint8_t *p = buf;
    size_t left = (size_t) n;
    while (left > 0) {
      ssize_t w = write (out.fd, p, left);
      if (w < 0) {
        fprintf (stderr, "%s: %s: %s\n", PROG, path, strerror (errno));
        goto out;
      }
      p += w;
      left -= (size_t) w;
    }
    total += (uint64_t) n;
  }
  if (n < 0) {
    fprintf (stderr, "%s: receiving from %s: %s\n", PROG, xfer_peer (c),
             strerror (errno));
    goto out;
  }
  /* The sender hears of success only once the data is stored. */
  if (recv_out_commit (&out, path) == -1) {
    fprintf (stderr, "%s: %s: %s\n", PROG, path, strerror (errno));
    goto out;
  }
  ack = htobe64 (total);
  if (xfer_send (c, &ack, sizeof ack, timeout_ms) == -1)
    goto out;
  xfer_shutdown_write (c);
  rc = RC_OK;
  double secs = (double) (clock_ms () - t0) / 1000.0;
  if (json)
    /* The summary is output, as send's is: stdout. */
    printf ("{\"event\":\"received\",\"bytes\":%" PRIu64 ",\"seconds\":%.3f,"
            "\"rate\":%.0f}\n", total, secs, secs > 0 ? total / secs : 0);
  else {
    char b[32];
    format_bytes (total, b, sizeof b);
    fprintf (stderr, "%s: received %s in %.2f s\n", PROG, b, secs);
  }
 out:
  recv_out_close (&out);
  xfer_close (c);
  return rc;
}

enum { OPT_PSK = 256, OPT_OR, OPT_TOKEN, OPT_LAG, OPT_ACCEPT_TIMEOUT,
       OPT_TIMEOUT, OPT_SLOT_SIZE, OPT_SLOTS, OPT_SIZE, OPT_HOLD,
       OPT_PASS };

/* The options that take a value to check: into CFG (and *SIZE_LIMIT).
 * 0, or -1 (printed). */
static int
value_option (int c, const char *optarg, struct relay_config *cfg,
              uint64_t *size_limit_r)
{
  uint64_t v = 0;
  char err[512];

  switch (c) {
  case 'b':
    if (parse_size (optarg, &v, err, sizeof err) == -1 ||
        v < (1 << 20) || v > (UINT64_C (4) << 30)) {
      fprintf (stderr, "%s: --buffer: %s\n", PROG,
               v < (1 << 20) || v > (UINT64_C (4) << 30)
               ? "must be between 1M and 4G" : err);
      return -1;
    }
    cfg->buffer = (size_t) v;
    break;
  case OPT_LAG:
    if (strcmp (optarg, "wait") == 0)
      cfg->lagging = RELAY_LAG_WAIT;
    else if (strcmp (optarg, "drop") == 0)
      cfg->lagging = RELAY_LAG_DROP;
    else {
      fprintf (stderr, "%s: --lagging: '%s': expected wait or drop\n",
               PROG, optarg);
      return -1;
    }
    break;
  case 'n':
    if (parse_uint (optarg, 1, 1024, &v, err, sizeof err) == -1) {
      fprintf (stderr, "%s: --streams: %s\n", PROG, err);
      return -1;
    }
    cfg->streams = (unsigned) v;
    break;
  case OPT_ACCEPT_TIMEOUT:
  case OPT_TIMEOUT:
    if (parse_duration_ms (optarg, &v, err, sizeof err) == -1 ||
        v > 86400000) {
      fprintf (stderr, "%s: --%s: %s\n", PROG,
               c == OPT_TIMEOUT ? "timeout" : "accept-timeout",
               v > 86400000 ? "at most 24h" : err);
      return -1;
    }
    if (c == OPT_TIMEOUT)
      cfg->io_timeout_ms = (int) v;
    else
      cfg->accept_timeout_ms = (int) v;
    break;
  case OPT_SLOT_SIZE:
    if (parse_size (optarg, &v, err, sizeof err) == -1 ||
        v < 4096 || v > (16 << 20)) {
      fprintf (stderr, "%s: --slot-size: must be between 4K and 16M\n",
               PROG);
      return -1;
    }
    cfg->opts.rdma_slot_size = (uint32_t) v;
    break;
  case OPT_SLOTS:
    if (parse_uint (optarg, 2, 256, &v, err, sizeof err) == -1) {
      fprintf (stderr, "%s: --slots: %s\n", PROG, err);
      return -1;
    }
    cfg->opts.rdma_slots = (uint32_t) v;
    break;
  case OPT_SIZE:
    if (parse_size (optarg, size_limit_r, err, sizeof err) == -1 ||
        *size_limit_r == 0) {
      fprintf (stderr, "%s: --size: %s\n", PROG,
               *size_limit_r == 0 ? "must not be zero" : err);
      return -1;
    }
    break;
  }
  return 0;
}

/* Which RDMA device, if any, serves ADDR: always 0 once asked. */
static int
do_probe (const char *addr, bool json)
{
  struct xfer_rdma_probe p;

  xfer_rdma_probe (addr, &p);
  if (json) {
    json_t *o = json_pack ("{s:s, s:b}", "address", addr, "rdma", p.usable);
    if (o && p.device[0]) {
      json_object_set_new (o, "device", json_string (p.device));
      json_object_set_new (o, "port", json_integer (p.port));
    }
    if (o && !p.usable)
      json_object_set_new (o, "reason", json_string (p.why));
    if (!o || json_dumpf (o, stdout, JSON_COMPACT) == -1)
      return RC_ERROR;
    json_decref (o);
    putchar ('\n');
  }
  else if (p.usable)
    printf ("%s: RDMA device %s port %u\n", addr, p.device, p.port);
  else
    printf ("%s: no RDMA: %s\n", addr, p.why);
  return fflush (stdout) == 0 ? RC_OK : RC_ERROR;
}

/* relay, send, recv or probe, with the options parsed into CFG. */
static int
run_command (const char *cmd, int argc, char **argv,
             struct relay_config *cfg, uint64_t size_limit)
{
  /* A key file that cannot be read is a usage error, said before any
   * connection is tried (else it looks like an unreachable peer). */
  if (cfg->opts.psk_file) {
    struct psk_table t;
    char err[512];
    if (psk_load (cfg->opts.psk_file, &t, err, sizeof err) == -1) {
      fprintf (stderr, "%s: --psk: %s\n", PROG, err);
      return RC_ERROR;
    }
    psk_table_free (&t);
  }
  if (strcmp (cmd, "relay") == 0) {
    if (argc != 0 || cfg->nlisten == 0 || cfg->nto == 0) {
      fprintf (stderr, "%s relay: needs --listen URI and at least one "
               "--to URI, and no other arguments\n", PROG);
      return RC_ERROR;
    }
    return relay_run (cfg) == 0 ? RC_OK : RC_ERROR;
  }
  if (strcmp (cmd, "send") == 0) {
    if (argc != 1 || cfg->nto != 1 || cfg->nlisten || cfg->or_to[0]) {
      fprintf (stderr, "%s send: needs FILE and exactly one --to URI (no --or)\n",
               PROG);
      return RC_ERROR;
    }
    return do_send (argv[0], cfg->to[0], &cfg->opts, cfg->io_timeout_ms,
                    cfg->json, size_limit);
  }
  if (strcmp (cmd, "recv") == 0) {
    if (argc != 1 || cfg->nlisten != 1 || cfg->nto != 0) {
      fprintf (stderr, "%s recv: needs one --listen URI and FILE\n", PROG);
      return RC_ERROR;
    }
    return do_recv (cfg->listen[0], argv[0], &cfg->opts,
                    cfg->accept_timeout_ms, cfg->io_timeout_ms, cfg->json);
  }
  if (strcmp (cmd, "probe") == 0) {
    if (argc != 1 || cfg->nlisten || cfg->nto != 0) {
      fprintf (stderr, "%s probe: needs one ADDRESS and no --listen or "
               "--to\n", PROG);
      return RC_ERROR;
    }
    return do_probe (argv[0], cfg->json);
  }
  fprintf (stderr, "%s: unknown command '%s' (relay, send, recv, probe)\n",
           PROG, cmd);
  return RC_ERROR;
}

int
main (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "listen", required_argument, NULL, 'l' },
    { "to", required_argument, NULL, 't' },
    { "or", required_argument, NULL, OPT_OR },
    { "psk", required_argument, NULL, OPT_PSK },
    { "token-file", required_argument, NULL, OPT_TOKEN },
    { "buffer", required_argument, NULL, 'b' },
    { "lagging", required_argument, NULL, OPT_LAG },
    { "hold-switchover", no_argument, NULL, OPT_HOLD },
    { "pass-switchover", no_argument, NULL, OPT_PASS },
    { "streams", required_argument, NULL, 'n' },
    { "accept-timeout", required_argument, NULL, OPT_ACCEPT_TIMEOUT },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "slot-size", required_argument, NULL, OPT_SLOT_SIZE },
    { "slots", required_argument, NULL, OPT_SLOTS },
    { "size", required_argument, NULL, OPT_SIZE },
    { "json", no_argument, NULL, 'j' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  struct relay_config cfg = {
    .buffer = 64 << 20, .lagging = RELAY_LAG_WAIT,
    .accept_timeout_ms = -1, .io_timeout_ms = 60000,
  };
  CLEANUP_FREE uint8_t *token = NULL;
  uint64_t size_limit = 0;
  char err[512];
  const char *cmd;
  int c;

  log_set_program (PROG);
  log_set_level (LOG_LEVEL_WARN);
  signal (SIGPIPE, SIG_IGN);
  while ((c = getopt_long (argc, argv, "l:t:b:n:jvhV", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'l':
      if (cfg.nlisten >= RELAY_MAX_LISTEN) {
        fprintf (stderr, "%s: at most %d --listen\n", PROG, RELAY_MAX_LISTEN);
        return RC_ERROR;
      }
      cfg.listen[cfg.nlisten++] = optarg;
      break;
    case 't':
      if (cfg.nto >= RELAY_MAX_TO) {
        fprintf (stderr, "%s: at most %d --to\n", PROG, RELAY_MAX_TO);
        return RC_ERROR;
      }
      cfg.to[cfg.nto++] = optarg;
      break;
    case OPT_OR:
      if (cfg.nto == 0 || cfg.or_to[cfg.nto - 1]) {
        fprintf (stderr, "%s: --or follows a --to, at most once each\n",
                 PROG);
        return RC_ERROR;
      }
      cfg.or_to[cfg.nto - 1] = optarg;
      break;
    case OPT_PSK: cfg.opts.psk_file = optarg; break;
    case OPT_TOKEN:
      free (token);
      token = NULL;
      if (xfer_load_token (optarg, &token, &cfg.opts.token_len, err,
                           sizeof err) == -1) {
        fprintf (stderr, "%s: --token-file: %s\n", PROG, err);
        return RC_ERROR;
      }
      cfg.opts.token = token;
      break;
    case 'b': case 'n': case OPT_LAG: case OPT_ACCEPT_TIMEOUT:
    case OPT_TIMEOUT: case OPT_SLOT_SIZE: case OPT_SLOTS: case OPT_SIZE:
      if (value_option (c, optarg, &cfg, &size_limit) == -1)
        return RC_ERROR;
      break;
    case OPT_HOLD: cfg.hold_switchover = true; break;
    case OPT_PASS:
      cfg.hold_switchover = cfg.pass_switchover = true;
      break;
    case 'j': cfg.json = true; break;
    case 'v': log_more_verbose (); break;
    case 'h': usage (stdout, RC_OK);
    case 'V':
      printf ("handoff-xfer %s (%s)\n", HANDOFF_VERSION, HANDOFF_GIT_REV);
      return RC_OK;
    default: usage (stderr, RC_ERROR);
    }
  }
  if (optind >= argc) {
    fprintf (stderr, "%s: expected relay, send or recv; see --help\n", PROG);
    return RC_ERROR;
  }
  cmd = argv[optind++];
  return run_command (cmd, argc - optind, argv + optind, &cfg, size_limit);
}
