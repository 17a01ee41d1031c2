/* handoff CLI: talking to the local handoffd. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "channel.h"
#include "channel-proto.h"
#include "client.h"
#include "exitcodes.h"
#include "jsonutil.h"
#include "log.h"
#include "psk.h"
#include "uri.h"

bool cli_json;
const char *cli_cmd;
const char *cli_socket_path;
const char *cli_host_uri;
const char *cli_psk_path;

void
cli_print_json (json_t *j)
{
  char *s = json_dumps (j, JSON_COMPACT);

  if (s)
    printf ("%s\n", s);
  free (s);
  fflush (stdout);
}

int
cli_fail (int rc, const char *fmt, ...)
{
  char msg[2048];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  fprintf (stderr, "handoff%s%s: %s\n", cli_cmd ? " " : "",
           cli_cmd ? cli_cmd : "", msg);
  if (cli_json) {
    json_t *o = json_pack ("{s:b, s:i, s:s}", "ok", 0, "code", rc, "error",
                           msg);
    if (o)
      cli_print_json (o);
    json_decref (o);
  }
  return rc;
}

int
cli_bad_option (const char *cmd, char **argv, const char *optstring)
{
  const char *arg = argv[optind - 1];
  const char *o = optopt ? strchr (optstring, optopt) : NULL;
  char prog[64];

  snprintf (prog, sizeof prog, "handoff%s%s", cmd ? " " : "", cmd ? cmd : "");
  cli_cmd = cmd;
  if (o && o[1] == ':')
    return cli_fail (RC_ERROR, "option '%s' needs a value (see '%s --help')",
                     arg, prog);
  return cli_fail (RC_ERROR, "unknown option '%s' (see '%s --help')", arg,
                   prog);
}

const char *
cli_socket (void)
{
  const char *env = getenv ("HANDOFF_SOCKET");

  if (cli_socket_path)
    return cli_socket_path;
  return env && *env ? env : "/run/handoff/handoffd.sock";
}

struct channel *
cli_connect (int *rc)
{
  char uri[4200];
  struct chan_config cfg = {
    .service = CHAN_SERVICE_CLI, .version_min = 1, .version_max = 1,
    .timeout_ms = 30000, .max_frame = 4u << 20,
  };
  struct channel *c;
  struct stat st;
  const char *path = cli_socket ();
  const char *host = cli_host_uri ? cli_host_uri : getenv ("HANDOFF_HOST");

  /* A remote handoffd: its admin channel, TLS with the key.  The
   * address and the key are checked first: a typo in either is a
   * usage error (1), not an unreachable host (7). */
  if (host && *host) {
    char err[512];
    struct uri u;
    struct psk_table t;
    cfg.psk_file = cli_psk_path ? cli_psk_path : "/etc/handoff/handoff.psk";
    err[0] = '\0';
    if (uri_parse (host, &u, err, sizeof err) == 0) {
      if (u.scheme != URI_SCHEME_TCP)
        snprintf (err, sizeof err, "'%s' is not tcp://ADDR:PORT", host);
      uri_free (&u);
    }
    if (err[0]) {
      *rc = cli_fail (RC_ERROR, "--host: %s", err);
      return NULL;
    }
    if (psk_load (cfg.psk_file, &t, err, sizeof err) == -1) {
      *rc = cli_fail (RC_ERROR, "--psk: %s", err);
      return NULL;
    }
    psk_table_free (&t);
    c = chan_connect (host, &cfg);
    if (!c)
      *rc = cli_fail (RC_UNREACHABLE, "cannot reach handoffd at %s (its "
                      "--admin address? the key %s?)", host, cfg.psk_file);
    return c;
  }
  if (stat (path, &st) == -1) {
    *rc = cli_fail (RC_UNREACHABLE, "%s: %s (is handoffd running? --socket "
                    "or HANDOFF_SOCKET choose another)", path,
                    strerror (errno));
    return NULL;
  }
  uri_unix (path, uri, sizeof uri);
  c = chan_connect (uri, &cfg);
  if (!c)
    *rc = cli_fail (RC_UNREACHABLE, "cannot reach handoffd at %s", path);
  return c;
}

int
cli_code_rc (const char *code)
{
  static const struct { const char *code; int rc; } map[] = {
    { "denied", RC_DENIED }, { "rolled_back", RC_ROLLED_BACK },
    { "timeout", RC_TIMEOUT }, { "unreachable", RC_UNREACHABLE },
    { "not_found", RC_NOT_FOUND }, { "verify_failed", RC_VERIFY_FAILED },
    { "in_doubt", RC_IN_DOUBT },
  };

  if (!code)
    return RC_ERROR;
  for (size_t i = 0; i < sizeof map / sizeof map[0]; ++i)
    if (strcmp (map[i].code, code) == 0)
      return map[i].rc;
  return RC_ERROR;
}

struct channel *
cli_send (json_t *req, int *rc)
{
  struct channel *c = cli_connect (rc);

  if (c && chan_send_json (c, req) == -1) {
    chan_close (c);
    c = NULL;
    *rc = cli_fail (RC_UNREACHABLE, "handoffd closed the connection");
  }
  json_decref (req);
  return c;
}

bool
cli_redirect (json_t *reply)
{
  static char there[4096];
  const char *admin = json_string_value (json_object_get (reply, "admin"));

  /* Once only: the daemon there answers for itself. */
  if (there[0] || !admin || json_is_true (json_object_get (reply, "ok")) ||
      strlen (admin) >= sizeof there)
    return false;
  snprintf (there, sizeof there, "%s", admin);
  fprintf (stderr, "handoff: %s; asking it there\n",
           json_string_value (json_object_get (reply, "error")));
  cli_host_uri = there;
  return true;
}

json_t *
cli_request (json_t *req, int *rc)
{
  json_t *r;
  bool eof;

  /* Terminates: a reply redirects the request once at most. */
  for (;;) {
    struct channel *c = cli_send (json_incref (req), rc);
    if (!c) {
      json_decref (req);
      return NULL;
    }
    r = chan_recv_json (c, 600000, &eof);
    chan_close (c);
    if (!r || !cli_redirect (r))
      break;
    json_decref (r);
  }
  json_decref (req);
  if (!r) {
    *rc = cli_fail (RC_UNREACHABLE, "no answer from handoffd");
    return NULL;
  }
  if (!json_is_true (json_object_get (r, "ok"))) {
    const char *e = json_string_value (json_object_get (r, "error"));
    *rc = cli_fail (cli_code_rc (json_string_value (json_object_get (r,
                                                                     "code"))),
                    "%s", e ? e : "failed");
    json_decref (r);
    return NULL;
  }
  *rc = RC_OK;
  return r;
}
