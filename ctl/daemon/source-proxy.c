/* handoffd: the source's calls to the stream proxy that serves its
 * disks and passes its share on (source-proxy.h; --via).  They go over
 * the connection that keeps the proxy's relay, which answers one
 * message at a time: the cutover completes the disks side by side, so
 * callers take turns (via_lock).
 */
#include <pthread.h>
#include <stdio.h>

#include "errors.h"
#include "peer.h"
#include "source-proxy.h"

json_t *
source_proxy_call (struct migration *m, const char *type, json_t *msg,
                   const char *want, int (*check) (json_t *, char *, size_t),
                   int timeout_ms, char *err, size_t errlen)
{
  char e2[1024];
  json_t *a = NULL;

  json_object_set_new (msg, "type", json_string (type));
  pthread_mutex_lock (&m->via_lock);
  if (m->via_peer)
    a = peer_call (m->via_peer, msg, timeout_ms, e2, sizeof e2);
  else {
    snprintf (e2, sizeof e2, "it no longer relays");
    json_decref (msg);
  }
  pthread_mutex_unlock (&m->via_lock);
  if (!a || peer_expect (a, want, e2, sizeof e2) == -1 ||
      check (a, e2, sizeof e2) == -1) {
    json_decref (a);
    set_error (err, errlen, "the proxy %s: %s", m->via, e2);
    return NULL;
  }
  return a;
}
