/* handoffd: the RAM stream's transport (transport.h).
 *
 * The probe is handoff-xfer's, run once at start: handoffd itself does
 * not link librdmacm (a daemon keeps what it loads small), and the
 * probe binds an RDMA CM id to the very address peers reach this host
 * on, which is exactly what the relay's rdma:// listener will do.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "errors.h"
#include "log.h"
#include "proc.h"
#include "transport.h"
#include "uri.h"

#define PROBE_TIMEOUT_MS 10000

static bool rdma_here;
static char rdma_why[300] = "not probed";
static char rdma_device[80];

const char *
transport_name (enum transport t)
{
  return t == TRANSPORT_RDMA ? "rdma" : t == TRANSPORT_TCP ? "tcp" : "auto";
}

void
transport_probe (void)
{
  char out[2048] = "", err[256];
  struct uri u;
  json_t *j;

  rdma_here = false;
  if (!hd.listen) {
    snprintf (rdma_why, sizeof rdma_why, "no peer address (--listen)");
    goto said;
  }
  if (uri_parse (hd.listen, &u, err, sizeof err) == -1) {
    snprintf (rdma_why, sizeof rdma_why, "%s", err);
    goto said;
  }
  char *argv[] = {
    (char *) hd.xfer_bin, (char *) "probe", u.host, (char *) "--json", NULL,
  };
  int st = proc_run (argv, out, sizeof out, PROBE_TIMEOUT_MS);
  uri_free (&u);
  j = st == 0 ? json_loads (out, 0, NULL) : NULL;
  if (!j) {
    snprintf (rdma_why, sizeof rdma_why, "%.80s probe: %s: %.150s",
              hd.xfer_bin, st == 127 ? "cannot run it"
              : st < 0 ? "killed or timed out" : "failed",
              out[0] ? out : "no output");
    goto said;
  }
  rdma_here = json_is_true (json_object_get (j, "rdma"));
  snprintf (rdma_device, sizeof rdma_device, "%.63s port %" JSON_INTEGER_FORMAT,
            json_string_value (json_object_get (j, "device"))
            ? json_string_value (json_object_get (j, "device")) : "",
            json_integer_value (json_object_get (j, "port")));
  snprintf (rdma_why, sizeof rdma_why, "%.250s",
            json_string_value (json_object_get (j, "reason"))
            ? json_string_value (json_object_get (j, "reason")) : "");
  json_decref (j);

 said:
  if (rdma_here)
    log_info ("RDMA: %s serves the peer address: RAM streams go over "
              "rdma:// to peers that have it too (--transport %s)",
              rdma_device, transport_name (hd.transport));
  else if (hd.transport == TRANSPORT_RDMA)
    log_warn ("RDMA: none (%s), and --transport rdma: this host will "
              "refuse every live migration", rdma_why);
  else
    log_info ("RDMA: none (%s): RAM streams go over TCP", rdma_why);
}

bool
transport_rdma_here (char *why, size_t whylen)
{
  if (why)
    snprintf (why, whylen, "%s", rdma_why);
  return rdma_here;
}

json_t *
transport_describe (void)
{
  json_t *r = json_pack ("{s:s, s:b}", "transport",
                         transport_name (hd.transport), "usable", rdma_here);

  if (r && rdma_here)
    json_object_set_new (r, "device", json_string (rdma_device));
  else if (r)
    json_object_set_new (r, "reason", json_string (rdma_why));
  return r;
}

int
transport_source_ask (enum transport want, const char **ask, char *err,
                      size_t errlen)
{
  if (want == TRANSPORT_TCP && hd.transport == TRANSPORT_RDMA)
    return set_error (err, errlen, "%s takes migrations over RDMA only "
                      "(handoffd --transport rdma)", hd.name);
  if (want == TRANSPORT_AUTO && hd.transport != TRANSPORT_AUTO)
    want = hd.transport;
  if (want == TRANSPORT_RDMA && !rdma_here)
    return set_error (err, errlen, "RDMA asked for, but %s has none: %s",
                      hd.name, rdma_why);
  if (want == TRANSPORT_AUTO)
    *ask = rdma_here ? "auto" : "tcp";
  else
    *ask = transport_name (want);
  return 0;
}

int
transport_dest_choose (const char *ask, bool *rdma, char *err, size_t errlen)
{
  *rdma = false;
  if (!ask || strcmp (ask, "tcp") == 0) {
    if (hd.transport == TRANSPORT_RDMA)
      return set_error (err, errlen, "%s takes migrations over RDMA only "
                        "(handoffd --transport rdma), and the source sends "
                        "over TCP", hd.name);
    return 0;
  }
  if (strcmp (ask, "rdma") == 0 ||
      (strcmp (ask, "auto") == 0 && hd.transport == TRANSPORT_RDMA)) {
    if (!rdma_here)
      return set_error (err, errlen, "RDMA asked for, but %s has none: %s",
                        hd.name, rdma_why);
    *rdma = true;
    return 0;
  }
  /* auto: RDMA if this host has it and may use it. */
  *rdma = rdma_here && hd.transport != TRANSPORT_TCP;
  return 0;
}
