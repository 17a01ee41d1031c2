/* handoffd: the source's stream relay, which carries QEMU's RAM stream
 * to every destination (or once, to the proxy that does: --via), and
 * what carried it: RDMA, or TCP where RDMA did not come up
 * (source-relay.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "config.h"
#include "errors.h"
#include "log.h"
#include "peer.h"
#include "peer-check.h"
#include "proc.h"
#include "psk.h"
#include "record.h"
#include "source-dests.h"
#include "source-relay.h"
#include "uri.h"
#include "vm.h"

int
source_ask_proxy (struct migration *m, char *err, size_t errlen)
{
  char *xfer = m->via_xfer, *psk = m->via_psk;
  size_t xferlen = sizeof m->via_xfer, psklen = sizeof m->via_psk;
  json_t *to = json_array (), *a;
  struct uri u;
  char e2[PATH_MAX + 512];
  int r = -1;

  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = source_alive_dest (m, i);
    if (!d)
      continue;
    d->relay_index = -1;
    d->via_index = -1;
    d->tcp_beside = false;
    if (strcmp (d->host, m->via) == 0) {
      json_decref (to);
      return set_error (err, errlen, "--via names %s, a destination", m->via);
    }
    json_t *e = json_pack ("{s:s, s:O, s:O}", "host", d->host, "xfer",
                           json_object_get (d->endpoints, "xfer"), "key",
                           json_object_get (d->endpoints, "psk"));
    const char *x = json_string_value (json_object_get (d->endpoints,
                                                        "xfer"));
    json_t *alt = json_object_get (d->endpoints, "xfer_tcp");
    if (alt && x && strncmp (x, "rdma://", 7) == 0 && m->transport_ask &&
        strcmp (m->transport_ask, "auto") == 0)
      json_object_set (e, "xfer_tcp", alt);
    /* Its disks' exports and its share receiver: the proxy's mirror
     * and pass-on send them on. */
    if (m->ndisks > 0)
      json_object_set (e, "disks", json_object_get (d->endpoints, "disks"));
    if (m->has_dir)
      json_object_set (e, "share", json_object_get (d->endpoints, "share"));
    d->via_index = (int) json_array_size (to);
    json_array_append_new (to, e);
  }
  m->via_peer = peer_connect (m->via, e2, sizeof e2);
  if (!m->via_peer) {
    json_decref (to);
    return set_error (err, errlen, "the stream proxy %s: %s", m->via, e2);
  }
  json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:b, s:o}", "type",
                           "RELAY_STREAM", "id", m->id, "vm", m->vm,
                           "source", hd.name, "hold", m->hold, "to", to);
  if (m->ndisks > 0) {
    json_t *sizes = json_array ();
    for (size_t k = 0; k < m->ndisks; ++k)
      json_array_append (sizes, json_object_get (json_array_get (
        json_object_get (m->def, "disks"), k), "size"));
    json_object_set_new (req, "disks", sizes);
    /* What the proxy's scratch images will hold: its policy checks the
     * room. */
    json_object_set_new (req, "disk_bytes", json_integer (
      (json_int_t) vm_disks_allocated_bytes (m->def)));
  }
  /* Its exports start with the relay: twice the time for the answer. */
  a = peer_call (m->via_peer, req, hd.io_timeout_ms * 4, e2, sizeof e2);
  if (!a || peer_expect (a, "RELAYING", e2, sizeof e2) == -1)
    goto out;
  /* Only the proxy's own address may come back. */
  if (!hd_peer_uri (m->via)) {
    snprintf (e2, sizeof e2, "no longer a known peer");
    goto out;
  }
  if (uri_parse (hd_peer_uri (m->via), &u, e2, sizeof e2) == -1)
    goto out;
  r = peer_check_relaying (a, u.host, m->ndisks, m->has_dir, e2, sizeof e2);
  uri_free (&u);
  if (r == -1)
    goto out;
  json_decref (m->via_disks);
  m->via_disks = m->ndisks > 0 ? json_incref (json_object_get (a, "disks"))
    : NULL;
  snprintf (m->via_share, sizeof m->via_share, "%s",
            m->has_dir ? json_string_value (json_object_get (a, "share"))
            : "");
  snprintf (xfer, xferlen, "%s",
            json_string_value (json_object_get (a, "xfer")));
  vm_run_path (m->vm, "via.psk", psk, psklen);
  r = psk_write_line (psk, json_string_value (json_object_get (a, "key")),
                      e2, sizeof e2);
 out:
  json_decref (a);
  if (r == -1) {
    /* It refused, or relays nothing this migration can use. */
    chan_close (m->via_peer);
    m->via_peer = NULL;
    set_error (err, errlen, "the stream proxy %s: %s", m->via, e2);
  }
  return r;
}

void
source_end_via (struct migration *m)
{
  char err[256];

  if (!m->via_peer)
    return;
  /* Best effort: the proxy also lets go when the connection closes. */
  pthread_mutex_lock (&m->via_lock);
  peer_ask (m->via_peer, peer_msg ("END"), "ENDED", 2000, err, sizeof err);
  chan_close (m->via_peer);
  m->via_peer = NULL;
  json_decref (m->via_disks);
  m->via_disks = NULL;
  m->via_share[0] = '\0';
  pthread_mutex_unlock (&m->via_lock);
}

int
source_ping_via (struct migration *m, char *err, size_t errlen)
{
  char e2[512];

  if (!m->via_peer)
    return 0;
  pthread_mutex_lock (&m->via_lock);
  int r = peer_ask (m->via_peer, peer_msg ("PING"), "PONG", hd.io_timeout_ms,
                    e2, sizeof e2);
  pthread_mutex_unlock (&m->via_lock);
  if (r == -1)
    return set_error (err, errlen, "the stream proxy %s stopped answering: "
                      "%s", m->via, e2);
  return 0;
}

/* The relay's first arguments into ARGV: the program, listening on
 * the VM's mig.sock (LISTEN holds the URI).  How many. */
static size_t
relay_argv_start (struct migration *m, char **argv, char *listen,
                  size_t listenlen)
{
  char sock[PATH_MAX];
  size_t n = 0;

  vm_run_path (m->vm, "mig.sock", sock, sizeof sock);
  uri_unix (sock, listen, listenlen);
  unlink (sock);
  argv[n++] = (char *) hd.xfer_bin;
  argv[n++] = (char *) "relay";
  argv[n++] = (char *) "--listen";
  argv[n++] = listen;
  return n;
}

/* ARGV (N arguments so far, room for 4 more) ended with what every
 * relay of the source takes, and started: 0 once it listens, or -1
 * (err). */
static int
relay_spawn (struct migration *m, char **argv, size_t n, char *err,
             size_t errlen)
{
  char sock[PATH_MAX], pid[PATH_MAX], log[PATH_MAX];
  pid_t p;

  if (m->hold)
    argv[n++] = (char *) "--hold-switchover";
  argv[n++] = (char *) "--buffer";
  argv[n++] = (char *) MIGRATION_RELAY_BUFFER;
  argv[n] = NULL;
  vm_run_path (m->vm, "mig.sock", sock, sizeof sock);
  vm_run_path (m->vm, "relay.pid", pid, sizeof pid);
  vm_run_path (m->vm, "relay.log", log, sizeof log);
  p = proc_spawn (argv, NULL, log, pid, err, errlen);
  if (p < 0)
    return -1;
  m->relay_pid = p;
  if (proc_wait_socket (sock, p, 10000) == -1) {
    char tail[512];
    proc_log_tail (log, 3, tail, sizeof tail);
    return set_error (err, errlen, "the stream relay did not start: %s", tail);
  }
  return 0;
}

/* --via: this host's relay sends QEMU's stream once, to the proxy's,
 * which carries it to every destination. */
static int
start_via_relay (struct migration *m, char *err, size_t errlen)
{
  char listen[PATH_MAX + 8];
  char *argv[16];
  size_t n;

  if (!m->via_peer)
    return set_error (err, errlen, "the stream proxy %s no longer relays",
                      m->via);
  n = relay_argv_start (m, argv, listen, sizeof listen);
  argv[n++] = (char *) "--to";
  argv[n++] = m->via_xfer;
  argv[n++] = (char *) "--psk";
  argv[n++] = m->via_psk;
  /* The proxy merges the destinations' return paths and passes their
   * acknowledgement on: the switch-over is held here. */
  if (relay_spawn (m, argv, n, err, errlen) == -1)
    return -1;
  log_info ("migration %s: RAM goes once to %s, which carries it to every "
            "destination (%s)", m->id, m->via, m->via_xfer);
  return 0;
}

int
source_start_relay (struct migration *m, char *err, size_t errlen)
{
  char listen[PATH_MAX + 8];
  char to[MAX_DESTS][PATH_MAX + 512], or_to[MAX_DESTS][2 * PATH_MAX + 512];
  char *argv[13 + 4 * MAX_DESTS];
  size_t n, k = 0;

  if (m->via[0])
    return start_via_relay (m, err, errlen);
  n = relay_argv_start (m, argv, listen, sizeof listen);
  for (size_t i = 0; i < m->ndests; ++i) {
    struct dest *d = source_alive_dest (m, i);
    if (!d)
      continue;
    const char *xfer = json_string_value (json_object_get (d->endpoints,
                                                           "xfer"));
    if (!xfer)
      return set_error (err, errlen, "%s sent no stream address", d->host);
    /* rdma:// proves the peer with a token: the migration key, which
     * both ends hold. */
    if (strncmp (xfer, "rdma://", 7) == 0)
      snprintf (to[k], sizeof to[k], "%s?token-file=%s", xfer, d->psk);
    else if (m->ndests == 1)
      snprintf (to[k], sizeof to[k], "%s", xfer);
    else
      snprintf (to[k], sizeof to[k], "%s?tls-psk-file=%s", xfer, d->psk);
    argv[n++] = (char *) "--to";
    argv[n++] = to[k];
    /* Over TCP, should RDMA not come up (auto only: the destination
     * offers it then). */
    const char *alt = json_string_value (json_object_get (d->endpoints,
                                                          "xfer_tcp"));
    d->tcp_beside = alt && strncmp (xfer, "rdma://", 7) == 0 &&
      m->transport_ask && strcmp (m->transport_ask, "auto") == 0;
    if (d->tcp_beside) {
      /* The destination's relay asks for the token on both. */
      snprintf (or_to[k], sizeof or_to[k], "%s?tls-psk-file=%s&token-file=%s",
                alt, d->psk, d->psk);
      argv[n++] = (char *) "--or";
      argv[n++] = or_to[k];
    }
    d->relay_index = (int) k++;
  }
  if (m->ndests == 1) {
    argv[n++] = (char *) "--psk";
    argv[n++] = m->dests[0].psk;
  }
  else {
    argv[n++] = (char *) "--lagging";
    argv[n++] = (char *) "drop";
  }
  return relay_spawn (m, argv, n, err, errlen);
}

static bool
any_tcp_beside (const struct migration *m)
{
  for (size_t i = 0; i < m->ndests; ++i)
    if (m->dests[i].tcp_beside)
      return true;
  return false;
}


/* Over what, to whom, into m->ram_over: the journal, the progress and
 * the result say it. */
void
source_describe_ram_over (struct migration *m)
{
  char over[sizeof m->ram_over] = "";
  size_t rdma = 0, alive = 0, n = 0;

  for (size_t i = 0; i < m->ndests; ++i)
    if (m->dests[i].alive) {
      alive++;
      rdma += strcmp (m->dests[i].transport, "rdma") == 0;
    }
  for (size_t i = 0; rdma && rdma < alive && i < m->ndests; ++i)
    if (m->dests[i].alive && n < sizeof over)
      n += (size_t) snprintf (over + n, sizeof over - n, "%s%s to %s",
                              n ? ", " : "",
                              strcmp (m->dests[i].transport, "rdma") == 0
                              ? "RDMA" : "TCP", m->dests[i].host);
  if (!over[0])
    snprintf (over, sizeof over, "%s", rdma ? "RDMA" : "TCP");
  if (m->via[0] && n < sizeof over)
    snprintf (over + strlen (over), sizeof over - strlen (over),
              " through %s", m->via);
  pthread_mutex_lock (&m->lock);
  snprintf (m->ram_over, sizeof m->ram_over, "%s", over);
  pthread_mutex_unlock (&m->lock);
}

/* Did the relay carry a destination's stream over TCP because RDMA to
 * it did not come up (--or)?  Its warning says so; the transport, the
 * journal and the progress are put right, once.  Until the VM pauses
 * this costs nothing but the transport. */
void
source_note_ram_fallback (struct migration *m)
{
  char path[PATH_MAX], line[1024];
  FILE *f;

  if (!any_tcp_beside (m))
    return;
  vm_run_path (m->vm, "relay.log", path, sizeof path);
  f = fopen (path, "re");
  if (!f)
    return;
  while (fgets (line, sizeof line, f)) {
    const char *p = strstr (line, ": destination ");
    char *end;
    unsigned long k;
    if (!p || !strstr (p, "carried over"))
      continue;
    errno = 0;
    k = strtoul (p + strlen (": destination "), &end, 10);
    if (errno || *end != ':' || k >= MAX_DESTS)
      continue;
    for (size_t i = 0; i < m->ndests; ++i) {
      struct dest *d = &m->dests[i];
      if (!d->tcp_beside || d->relay_index != (int) k)
        continue;
      d->tcp_beside = false;
      pthread_mutex_lock (&m->lock);
      snprintf (d->transport, sizeof d->transport, "tcp");
      pthread_mutex_unlock (&m->lock);
      source_describe_ram_over (m);
      log_warn ("migration %s: RDMA to %s did not come up: its RAM stream "
                "goes over TCP", m->id, d->host);
      record_set_phase (m, "memory", "RDMA to %s did not come up: moving "
                        "RAM over %s (max downtime %" PRIu64 " ms)", d->host,
                        m->ram_over, m->max_downtime_ms);
    }
  }
  fclose (f);
}
