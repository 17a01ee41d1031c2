/* handoffd: the source's stream relay, which carries QEMU's RAM stream
 * to every destination, and what carried it: RDMA, or TCP where RDMA
 * did not come up (source-relay.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "errors.h"
#include "log.h"
#include "proc.h"
#include "record.h"
#include "source-dests.h"
#include "source-relay.h"
#include "uri.h"
#include "vm.h"

int
source_start_relay (struct migration *m, char *err, size_t errlen)
{
  char sock[PATH_MAX], pid[PATH_MAX], log[PATH_MAX], listen[PATH_MAX + 8];
  char to[MAX_DESTS][PATH_MAX + 512], or_to[MAX_DESTS][2 * PATH_MAX + 512];
  char *argv[13 + 4 * MAX_DESTS];
  size_t n = 0, k = 0;
  pid_t p;

  vm_run_path (m->vm, "mig.sock", sock, sizeof sock);
  vm_run_path (m->vm, "relay.pid", pid, sizeof pid);
  vm_run_path (m->vm, "relay.log", log, sizeof log);
  uri_unix (sock, listen, sizeof listen);
  unlink (sock);
  argv[n++] = (char *) hd.xfer_bin;
  argv[n++] = (char *) "relay";
  argv[n++] = (char *) "--listen";
  argv[n++] = listen;
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
  if (m->hold)
    argv[n++] = (char *) "--hold-switchover";
  argv[n++] = (char *) "--buffer";
  argv[n++] = (char *) MIGRATION_RELAY_BUFFER;
  argv[n] = NULL;
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
