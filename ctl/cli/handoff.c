/* handoff: the command-line tool.
 *
 * "handoff COMMAND ARGS..." runs a built-in command or, git-style, the
 * helper program "handoff-COMMAND" (for example "handoff mirror" runs
 * handoff-mirror), looked up in $HANDOFF_LIBEXECDIR, then ../libexec
 * beside this executable, then the installed libexec directory.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-info.h"
#include "client.h"
#include "commands.h"
#include "helper.h"
#include "exitcodes.h"
#include "log.h"

static int cmd_help (int argc, char **argv);
static int cmd_version (int argc, char **argv);
static int run_command (int argc, char **argv);

static const struct cli_command builtins[] = {
  { "define", cmd_define, "register a VM with the local handoffd" },
  { "undefine", cmd_undefine, "forget a stopped VM" },
  { "start", cmd_start, "start a VM" },
  { "stop", cmd_stop, "stop a VM" },
  { "list", cmd_list, "list this host's VMs" },
  { "status", cmd_status, "show a VM (and its migration)" },
  { "migrate", cmd_migrate, "move a VM to another host" },
  { "cutover", cmd_cutover, "switch a pre-warmed migration over" },
  { "job", cmd_job, "the running or last migration of a VM" },
  { "abort", cmd_abort, "abort a VM's migration (it stays here)" },
  { "event", cmd_event, "post a management event for a VM" },
  { "label", cmd_label, "set a VM's labels (management objects)" },
  { "host", cmd_host, "show this host's handoffd" },
  { "peers", cmd_peers, "check that every peer answers (TLS with the key)" },
  { "cluster", cmd_cluster, "fleet mode: 'cluster hosts' lists the members" },
  { "evacuate", cmd_evacuate, "fleet mode: move every VM off a host" },
  { "undrain", cmd_undrain, "fleet mode: an evacuated host takes VMs again" },
  { "hostid", cmd_hostid, "print the ID of the host this VM runs on" },
  { "scan", cmd_scan, "run an inventory scan, safe across migrations" },
  { "keygen", cmd_keygen, "write a pre-shared key file for TLS" },
  { "version", cmd_version, "print the version" },
  { "help", cmd_help, "show this help" },
};

/* Helper programs, in the order help lists them. */
static const struct {
  const char *name;
  const char *program;
  const char *summary;
} helpers[] = {
  { "mirror", "handoff-mirror", "control a disk mirror (nbd-mirror filter)" },
  { "share", "handoff-share", "serve, mount and control a file share" },
  { "volume", "handoff-volid", "identify, locate and mount SAN volumes" },
  { "xfer", "handoff-xfer", "relay a migration stream over RDMA or TCP" },
};

static void __attribute__ ((noreturn))
usage (FILE *fp, int exitcode)
{
  fprintf (fp,
"handoff: move running virtual machines between hosts\n"
"\n"
"Usage: handoff [OPTIONS] COMMAND [ARGS...]\n"
"\n"
"Options:\n"
"  -h, --help        show this help\n"
"  -V, --version     print the version\n"
"  -v, --verbose     more messages (repeat for debug)\n"
"  -S, --socket PATH handoffd's CLI socket (default $HANDOFF_SOCKET or\n"
"                    /run/handoff/handoffd.sock)\n"
"  -H, --host URI    a remote handoffd's admin channel, tcp://ADDR:PORT\n"
"                    (TLS; default $HANDOFF_HOST)\n"
"  -k, --psk FILE    the key for --host (default /etc/handoff/handoff.psk)\n"
"\n"
"Commands:\n");
  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; ++i)
    fprintf (fp, "  %-10s %s\n", builtins[i].name, builtins[i].summary);
  for (size_t i = 0; i < sizeof helpers / sizeof helpers[0]; ++i) {
    char path[PATH_MAX];
    if (cli_find_helper (helpers[i].program, path, sizeof path) == 0)
      fprintf (fp, "  %-10s %s\n", helpers[i].name, helpers[i].summary);
  }
  fprintf (fp,
"\n"
"Run 'handoff help COMMAND' (or 'handoff COMMAND --help') for a command's\n"
"options.\n"
"See handoff(1) for exit codes and examples.\n");
  exit (exitcode);
}

/* "handoff help" lists the commands; "handoff help CMD" is
 * "handoff CMD --help", helpers included, as git and virsh do. */
static int
cmd_help (int argc, char **argv)
{
  if (argc < 2)
    usage (stdout, RC_OK);
  if (argc > 2) {
    fprintf (stderr, "handoff: help: one command at a time\n");
    return RC_ERROR;
  }
  if (strcmp (argv[1], "help") == 0)
    usage (stdout, RC_OK);
  char *help_argv[] = { argv[1], (char *) "--help", NULL };
  return run_command (2, help_argv);
}

static int
cmd_version (int argc, char **argv)
{
  (void) argc;
  (void) argv;
  printf ("handoff %s (%s)\n", HANDOFF_VERSION, HANDOFF_GIT_REV);
  return RC_OK;
}

int
main (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { "verbose", no_argument, NULL, 'v' },
    { "socket", required_argument, NULL, 'S' },
    { "host", required_argument, NULL, 'H' },
    { "psk", required_argument, NULL, 'k' },
    { NULL, 0, NULL, 0 },
  };
  int c;

  log_set_program ("handoff");
  /* Stop at the first non-option: it is the command. */
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+hVvS:H:k:", long_options, NULL)) != -1) {
    switch (c) {
    case 'S':
      cli_socket_path = optarg;
      break;
    case 'H':
      cli_host_uri = optarg;
      break;
    case 'k':
      cli_psk_path = optarg;
      break;
    case 'h':
      usage (stdout, RC_OK);
    case 'V':
      return cmd_version (0, NULL);
    case 'v':
      log_more_verbose ();
      break;
    default:
      return cli_bad_option (NULL, argv, "+hVvS:H:k:");
    }
  }
  if (optind >= argc) {
    fprintf (stderr, "handoff: no command given; see 'handoff --help'\n");
    return RC_ERROR;
  }

  return run_command (argc - optind, argv + optind);
}

/* Runs the built-in command or helper program named by sub_argv[0]. */
static int
run_command (int sub_argc, char **sub_argv)
{
  const char *cmd = sub_argv[0];

  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; ++i)
    if (strcmp (cmd, builtins[i].name) == 0) {
      /* Errors name the command; with --json anywhere among its
       * options, even one found before it, they are JSON too. */
      cli_cmd = cmd;
      for (int k = 1; k < sub_argc && strcmp (sub_argv[k], "--") != 0; ++k)
        if (strcmp (sub_argv[k], "--json") == 0)
          cli_json = true;
      /* 0, not 1: glibc then forgets the "+" mode of our own parse. */
      optind = 0;
      return builtins[i].fn (sub_argc, sub_argv);
    }

  for (size_t i = 0; i < sizeof helpers / sizeof helpers[0]; ++i)
    if (strcmp (cmd, helpers[i].name) == 0) {
      char path[PATH_MAX];
      if (cli_find_helper (helpers[i].program, path, sizeof path) == -1) {
        fprintf (stderr, "handoff: %s: helper %s is not installed\n",
                 cmd, helpers[i].program);
        return RC_ERROR;
      }
      sub_argv[0] = (char *) helpers[i].program;
      execv (path, sub_argv);
      fprintf (stderr, "handoff: %s: %s: %s\n", cmd, path, strerror (errno));
      return RC_ERROR;
    }

  fprintf (stderr, "handoff: unknown command '%s'; see 'handoff --help'\n",
           cmd);
  return RC_ERROR;
}
