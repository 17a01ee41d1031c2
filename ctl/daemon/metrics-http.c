/* handoffd: --metrics - /metrics in Prometheus' text format, served by
 * libmicrohttpd on a thread of its own.
 *
 * Plain HTTP only on a loopback address, where a local agent scrapes
 * it; any other address takes HTTPS (--metrics-cert, --metrics-key):
 * what a fleet's metrics say (which VM moves where, when) is not for
 * the whole network, and nothing here listens beyond loopback unless
 * asked to in so many words.  GET and HEAD of /metrics only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#include "build-info.h"
#include "cleanup.h"
#include "cluster.h"
#include "config.h"
#include "db.h"
#include "errors.h"
#include "metrics.h"
#include "migration.h"
#include "uri.h"

#define MAX_PEM (64 * 1024)

static struct MHD_Daemon *mhd;
static char *tls_key, *tls_cert;        /* PEM text, while serving */

/* The gauges: what is true now, read at each scrape. */
static void
render_gauges (FILE *f)
{
  json_t *vms = db_vm_list (), *row, *active = migration_list (), *m;
  /* The states a VM's row takes (vm.c and the migrations' ends); names
   * are checked (lib/names.h): no label value needs escaping. */
  const char *states[] = { "stopped", "running", "moving", "incoming",
                           "in_doubt", "crashed" };
  size_t i;

  fprintf (f, "# HELP handoff_build_info This handoffd.\n"
           "# TYPE handoff_build_info gauge\n"
           "handoff_build_info{host=\"%s\",version=\"%s\",revision=\"%s\"} 1\n",
           hd.name, HANDOFF_VERSION, HANDOFF_GIT_REV);
  fputs ("# HELP handoff_vms VMs defined on this host, by state.\n"
         "# TYPE handoff_vms gauge\n", f);
  for (size_t s = 0; s < sizeof states / sizeof states[0]; ++s) {
    unsigned n = 0;
    json_array_foreach (vms, i, row)
      n += strcmp (json_string_value (json_object_get (row, "state")),
                   states[s]) == 0;
    fprintf (f, "handoff_vms{state=\"%s\"} %u\n", states[s], n);
  }
  fputs ("# HELP handoff_migration_phase The phase of each migration this "
         "host sends now (1).\n"
         "# TYPE handoff_migration_phase gauge\n", f);
  json_array_foreach (active, i, m)
    fprintf (f, "handoff_migration_phase{vm=\"%s\",phase=\"%s\",to=\"%s\"} 1\n",
             json_string_value (json_object_get (m, "vm")),
             json_string_value (json_object_get (m, "phase")),
             json_string_value (json_object_get (m, "to")));
  fprintf (f, "# HELP handoff_cluster_member 1 in fleet mode (--cluster).\n"
           "# TYPE handoff_cluster_member gauge\n"
           "handoff_cluster_member %d\n"
           "# HELP handoff_cluster_lease_live 1 while this host's lease is "
           "live: it may start, resume and move VMs.\n"
           "# TYPE handoff_cluster_lease_live gauge\n"
           "handoff_cluster_lease_live %d\n"
           "# HELP handoff_cluster_draining 1 from 'handoff evacuate' to "
           "'handoff undrain'.\n"
           "# TYPE handoff_cluster_draining gauge\n"
           "handoff_cluster_draining %d\n",
           cluster_enabled (), cluster_lease_live (), cluster_draining ());
  json_decref (vms);
  json_decref (active);
}

static enum MHD_Result
reply (struct MHD_Connection *conn, unsigned status, char *body, size_t len)
{
  struct MHD_Response *r =
    MHD_create_response_from_buffer (len, body, MHD_RESPMEM_MUST_FREE);
  enum MHD_Result ret;

  if (!r) {
    free (body);
    return MHD_NO;
  }
  MHD_add_response_header (r, "Content-Type", status == MHD_HTTP_OK
                           ? "text/plain; version=0.0.4; charset=utf-8"
                           : "text/plain; charset=utf-8");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header (r, "Allow", "GET, HEAD");
  ret = MHD_queue_response (conn, status, r);
  MHD_destroy_response (r);
  return ret;
}

static enum MHD_Result
answer (void *cls, struct MHD_Connection *conn, const char *url,
        const char *method, const char *version, const char *upload,
        size_t *upload_len, void **req_cls)
{
  char *body = NULL;
  size_t len = 0;
  FILE *f;

  (void) cls;
  (void) version;
  (void) upload;
  (void) upload_len;
  (void) req_cls;
  if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0)
    return reply (conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                  strdup ("GET /metrics\n"), 13);
  if (strcmp (url, "/metrics") != 0) {
    body = strdup ("not here: GET /metrics\n");
    return reply (conn, MHD_HTTP_NOT_FOUND, body, body ? strlen (body) : 0);
  }
  f = open_memstream (&body, &len);
  if (!f)
    return MHD_NO;
  render_gauges (f);
  metrics_render (f);
  if (fclose (f) != 0) {
    free (body);
    return MHD_NO;
  }
  return reply (conn, MHD_HTTP_OK, body, len);
}

/* FILE's text (a PEM file), or NULL with err. */
static char *
read_pem (const char *file, char *err, size_t errlen)
{
  CLEANUP_FCLOSE FILE *f = fopen (file, "r");
  char *text = calloc (1, MAX_PEM + 1);
  size_t n;

  if (!f || !text) {
    set_error (err, errlen, "%s: %s", file, strerror (f ? ENOMEM : errno));
    free (text);
    return NULL;
  }
  n = fread (text, 1, MAX_PEM, f);
  if (n == 0 || n == MAX_PEM || !strstr (text, "-----BEGIN ")) {
    set_error (err, errlen, "%s: not a PEM file (or over %d KiB)", file,
               MAX_PEM / 1024);
    free (text);
    return NULL;
  }
  return text;
}

/* ADDR (HOST:PORT, an IP address, IPv6 in brackets) into SA. */
static int
parse_addr (const char *addr, struct sockaddr_storage *sa, bool *loopback,
            char *err, size_t errlen)
{
  char text[300];
  struct uri u;
  int r = 0;

  snprintf (text, sizeof text, "%s%s", strstr (addr, "://") ? "" : "tcp://",
            addr);
  if (uri_parse (text, &u, err, errlen) == -1)
    return -1;
  memset (sa, 0, sizeof *sa);
  if (u.scheme != URI_SCHEME_TCP)
    r = set_error (err, errlen, "'%s': expected ADDR:PORT", addr);
  else if (!u.ipv6) {
    struct sockaddr_in *in = (struct sockaddr_in *) sa;
    in->sin_family = AF_INET;
    in->sin_port = htons (u.port);
    if (inet_pton (AF_INET, u.host, &in->sin_addr) != 1)
      r = set_error (err, errlen, "'%s': an IP address, not a name", addr);
    *loopback = (ntohl (in->sin_addr.s_addr) >> 24) == 127;
  }
  else {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) sa;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons (u.port);
    if (inet_pton (AF_INET6, u.host, &in6->sin6_addr) != 1)
      r = set_error (err, errlen, "'%s': not an IPv6 address", addr);
    *loopback = IN6_IS_ADDR_LOOPBACK (&in6->sin6_addr);
  }
  uri_free (&u);
  return r;
}

int
metrics_serve (const char *addr, const char *cert, const char *key,
               char *err, size_t errlen)
{
  struct sockaddr_storage sa;
  bool loopback = false;
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

  if (parse_addr (addr, &sa, &loopback, err, errlen) == -1)
    return -1;
  if (!cert != !key)
    return set_error (err, errlen, "--metrics-cert and --metrics-key go "
                      "together");
  if (!cert && !loopback)
    return set_error (err, errlen, "%s is not a loopback address: serving "
                      "metrics there takes HTTPS (--metrics-cert and "
                      "--metrics-key)", addr);
  if (cert) {
    tls_cert = read_pem (cert, err, errlen);
    tls_key = tls_cert ? read_pem (key, err, errlen) : NULL;
    if (!tls_key) {
      metrics_stop ();
      return -1;
    }
    flags |= MHD_USE_TLS;
  }
  if (sa.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  mhd = MHD_start_daemon (flags, 0, NULL, NULL, answer, NULL,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                          MHD_OPTION_CONNECTION_LIMIT, 16u,
                          MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                          cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END,
                          tls_key, MHD_OPTION_HTTPS_MEM_CERT, tls_cert,
                          MHD_OPTION_END);
  if (!mhd) {
    metrics_stop ();
    return set_error (err, errlen, "cannot serve metrics on %s (in use? a "
                      "certificate and key that do not match?)", addr);
  }
  return 0;
}

void
metrics_stop (void)
{
  if (mhd)
    MHD_stop_daemon (mhd);
  mhd = NULL;
  free (tls_key);
  free (tls_cert);
  tls_key = tls_cert = NULL;
}
