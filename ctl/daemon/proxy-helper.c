/* handoffd: what the stream proxy's disks and share both need
 * (proxy-helper.h). */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dest-phases.h"
#include "errors.h"
#include "proc.h"
#include "proxy-helper.h"

int
proxy_spawn (const struct proxy_helper *h, char *err, size_t errlen)
{
  char tail[512];

  if (strlen (h->ctl) >= sizeof ((struct sockaddr_un *) 0)->sun_path)
    return set_error (err, errlen, "%s: too long for a socket's name",
                      h->ctl);
  /* A port found free may be taken before the helper binds it: twice. */
  for (int attempt = 1; attempt <= 2; ++attempt) {
    int port = dest_free_port (h->addr);
    pid_t p;

    if (port < 0)
      return set_error (err, errlen, "no free port on %s", h->addr);
    if (h->uri)
      snprintf (h->portarg, h->portlen, "tcp://%s:%d", h->addr, port);
    else
      snprintf (h->portarg, h->portlen, "%d", port);
    unlink (h->ctl);
    p = proc_spawn (h->argv, h->env, h->log, h->pid, err, errlen);
    if (p < 0)
      return -1;
    if (proc_wait_port (port, p, 10000) == 0 &&
        proc_wait_socket (h->ctl, p, 10000) == 0)
      return port;
    proc_stop (h->pid, h->match, 1000);
  }
  proc_log_tail (h->log, 2, tail, sizeof tail);
  return set_error (err, errlen, "%s did not start: %s", h->what, tail);
}

int
proxy_dest_index (json_t *to, const char *host)
{
  json_t *d;
  size_t j;

  json_array_foreach (to, j, d)
    if (strcmp (json_string_value (json_object_get (d, "host")), host) == 0)
      return (int) j;
  return -1;
}
