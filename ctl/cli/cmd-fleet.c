/* handoff CLI: fleet mode's evacuate - every VM off a host, to where
 * placement puts it, each VM's news as it comes ('undrain' is one of
 * cmd-vm.c's simple commands). */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "channel.h"
#include "client.h"
#include "commands.h"
#include "exitcodes.h"
#include "jsonutil.h"
#include "util.h"

/* One VM's news, as a line. */
static void
show_vm (json_t *ev)
{
  const char *vm = json_string_value (json_object_get (ev, "vm"));
  const char *state = json_string_value (json_object_get (ev, "state"));
  const char *to = json_string_value (json_object_get (ev, "to"));
  json_t *downtime = json_object_get (ev, "downtime_ms");

  if (!vm || !state)
    return;
  if (strcmp (state, "moving") == 0)
    printf ("%s -> %s (%s)\n", vm, to ? to : "?",
            json_string_value (json_object_get (ev, "mode")));
  else if (strcmp (state, "moved") == 0 && downtime)
    printf ("%s runs on %s (downtime %.1f ms)\n", vm, to ? to : "?",
            json_number_value (downtime));
  else if (strcmp (state, "moved") == 0)
    printf ("%s is on %s\n", vm, to ? to : "?");
  else
    printf ("%s did not move: %s\n", vm,
            json_string_value (json_object_get (ev, "error")));
  fflush (stdout);
}

/* follow's answer when the request belongs to another host's handoffd
 * (cli_redirect): no exit code, it is to be sent there. */
#define FOLLOW_ELSEWHERE (-1)

/* What handoffd sends until its reply: the exit code. */
static int
follow (struct channel *ch, uint64_t timeout_s, bool json_out)
{
  /* Terminates: the daemon ends with a reply that has "ok". */
  for (;;) {
    bool eof;
    /* A VM's migration says nothing until it ends: wait as long. */
    json_t *ev = chan_recv_json (ch, (int) (timeout_s + 120) * 1000, &eof);
    if (!ev)
      return cli_fail (RC_UNREACHABLE, "lost handoffd%s (the evacuation "
                       "goes on there)", eof ? "" : " (no news in time)");
    const char *type = json_string_value (json_object_get (ev, "event"));
    json_t *ok = json_object_get (ev, "ok");
    if (ok && !json_is_true (ok)) {
      if (cli_redirect (ev)) {
        json_decref (ev);
        return FOLLOW_ELSEWHERE;
      }
      const char *code = json_string_value (json_object_get (ev, "code"));
      int rc = cli_code_rc (code);
      if (json_out) {
        if (code)
          json_object_set_new (ev, "outcome", json_string (code));
        json_object_set_new (ev, "code", json_integer (rc));
        cli_print_json (ev);
      }
      else
        fprintf (stderr, "handoff evacuate: %s\n",
                 json_string_value (json_object_get (ev, "error")));
      json_decref (ev);
      return rc;
    }
    if (json_out)
      cli_print_json (ev);
    else if (ok)
      printf ("%s is empty: %zu VM%s moved; it takes no VM until "
              "'handoff undrain %s'\n",
              json_string_value (json_object_get (ev, "host")),
              json_array_size (json_object_get (ev, "moved")),
              json_array_size (json_object_get (ev, "moved")) == 1 ? "" : "s",
              json_string_value (json_object_get (ev, "host")));
    else if (type && strcmp (type, "evacuate") == 0)
      printf ("evacuating %s: %" JSON_INTEGER_FORMAT " VM(s), %"
              JSON_INTEGER_FORMAT " at a time, up to %" JSON_INTEGER_FORMAT
              " cop%s of each running one\n",
              json_string_value (json_object_get (ev, "host")),
              json_integer_value (json_object_get (ev, "vms")),
              json_integer_value (json_object_get (ev, "parallel")),
              json_integer_value (json_object_get (ev, "copies")),
              json_integer_value (json_object_get (ev, "copies")) == 1
              ? "y" : "ies");
    else if (type && strcmp (type, "vm") == 0)
      show_vm (ev);
    json_decref (ev);
    if (ok)
      return RC_OK;
  }
}

static void
evacuate_usage (FILE *fp)
{
  fprintf (fp,
"Usage: handoff evacuate HOST [--parallel N] [--copies N]\n"
"                             [--max-downtime MS] [--bandwidth RATE]\n"
"                             [--timeout S]\n"
"                             [--socket PATH] [--json]\n"
"\n"
"Moves every VM of HOST off it (fleet mode): running VMs live, stopped\n"
"ones offline, N at a time (default 2, at most 8), each to the host\n"
"that 'migrate VM --to auto' would pick.  It runs on HOST's own\n"
"handoffd: asked of another, the CLI is sent on to HOST's admin address\n"
"if the cluster knows it (handoffd --admin; the key is --psk's).  HOST\n"
"drains from the start: placement passes it over and it admits no\n"
"incoming VM, until 'handoff undrain HOST'.\n"
"A VM that cannot move runs on where it was; the exit status is then\n"
"5 (rolled back).\n"
"\n"
"  --parallel N       migrations at once\n"
"  --copies N         copy each running VM to up to N hosts at once (1 to\n"
"                     4, default 1); the first ready runs it, the others\n"
"                     drop their copy\n"
"  --max-downtime MS  each live migration's (default 300)\n"
"  --bandwidth RATE   each migration's cap, bytes/s: 100M, 1G (default\n"
"                     none)\n"
"  --timeout S        each migration's (default 600)\n"
"  --json             one JSON object per line: each VM's news, then the\n"
"                     result with \"moved\" and \"failed\"\n");
}

int
cmd_evacuate (int argc, char **argv)
{
  static const struct option opts[] = {
    { "parallel", required_argument, NULL, 'p' },
    { "copies", required_argument, NULL, 'c' },
    { "max-downtime", required_argument, NULL, 'd' },
    { "bandwidth", required_argument, NULL, 'b' },
    { "timeout", required_argument, NULL, 'T' },
    { "socket", required_argument, NULL, 'S' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  uint64_t timeout_s = 600;
  json_t *req = json_object ();
  int c, rc;

  /* A bad option's error is JSON too when --json comes after it. */
  for (int i = 1; i < argc; ++i)
    cli_json |= strcmp (argv[i], "--json") == 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "p:c:d:b:T:S:jh", opts, NULL)) != -1) {
    char err[256] = "";
    uint64_t v;
    switch (c) {
    case 'p':
      if (parse_uint (optarg, 1, 8, &v, err, sizeof err) == -1) {
        json_decref (req);
        return cli_fail (RC_ERROR, "--parallel: %s", err);
      }
      json_object_set_new (req, "parallel", json_integer ((json_int_t) v));
      break;
    case 'c':
      if (parse_uint (optarg, 1, 4, &v, err, sizeof err) == -1) {
        json_decref (req);
        return cli_fail (RC_ERROR, "--copies: %s", err);
      }
      json_object_set_new (req, "copies", json_integer ((json_int_t) v));
      break;
    case 'd':
      /* As migrate's: a bare number is milliseconds. */
      if (parse_duration_in (optarg, 1, &v, err, sizeof err) == -1 ||
          v < 1 || v > 600000) {
        json_decref (req);
        return cli_fail (RC_ERROR, "--max-downtime: %s",
                         err[0] ? err : "1 ms to 10 min");
      }
      json_object_set_new (req, "max_downtime_ms",
                           json_integer ((json_int_t) v));
      break;
    case 'b':
      if (parse_rate (optarg, &v, err, sizeof err) == -1) {
        json_decref (req);
        return cli_fail (RC_ERROR, "--bandwidth: %s", err);
      }
      json_object_set_new (req, "bandwidth", json_integer ((json_int_t) v));
      break;
    case 'T':
      if (parse_duration_ms (optarg, &v, err, sizeof err) == -1 ||
          v % 1000 != 0 || v < 5000 || v > 86400000) {
        json_decref (req);
        return cli_fail (RC_ERROR, "--timeout: %s",
                         err[0] ? err : "whole seconds, 5 s to 1 day");
      }
      timeout_s = v / 1000;
      json_object_set_new (req, "timeout_s", json_integer ((json_int_t)
                                                           timeout_s));
      break;
    case 'S': cli_socket_path = optarg; break;
    case 'j': cli_json = true; break;
    case 'h':
      json_decref (req);
      evacuate_usage (stdout);
      return RC_OK;
    default:
      json_decref (req);
      return cli_bad_option ("evacuate", argv, "p:c:d:b:T:S:jh");
    }
  }
  if (argc - optind != 1) {
    json_decref (req);
    return cli_fail (RC_ERROR, "expected one HOST");
  }
  json_object_set_new (req, "op", json_string ("evacuate"));
  json_object_set_new (req, "host", json_string (argv[optind]));

  /* Terminates: the request is sent elsewhere once at most. */
  do {
    struct channel *ch = cli_send (json_incref (req), &rc);
    if (!ch)
      break;
    rc = follow (ch, timeout_s, cli_json);
    chan_close (ch);
  } while (rc == FOLLOW_ELSEWHERE);
  json_decref (req);
  return rc;
}
