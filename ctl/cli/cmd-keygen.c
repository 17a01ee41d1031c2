/* handoff keygen: write a pre-shared key file. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client.h"
#include "commands.h"
#include "exitcodes.h"
#include "psk.h"
#include "util.h"

#define DEFAULT_KEY_FILE "/etc/handoff/handoff.psk"

static void __attribute__ ((noreturn))
usage (FILE *fp, int exitcode)
{
  fprintf (fp,
"Usage: handoff keygen [--identity NAME] [--force] [FILE]\n"
"\n"
"Write a new random 256-bit pre-shared key as NAME:HEXKEY to FILE\n"
"(default " DEFAULT_KEY_FILE ", mode 0600; '-' for stdout).  The same\n"
"file works for handoff's channels, nbdkit --tls-psk, libnbd and QEMU\n"
"tls-creds-psk.\n"
"\n"
"  -i, --identity NAME   PSK user name (default: " PSK_DEFAULT_IDENTITY ")\n"
"  -f, --force           replace an existing file\n"
"  -h, --help            show this help\n");
  exit (exitcode);
}

int
cmd_keygen (int argc, char **argv)
{
  static const struct option long_options[] = {
    { "identity", required_argument, NULL, 'i' },
    { "force", no_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *identity = NULL, *path = DEFAULT_KEY_FILE;
  int force = 0, c;
  char err[512];

  opterr = 0;
  while ((c = getopt_long (argc, argv, "i:fh", long_options, NULL)) != -1) {
    switch (c) {
    case 'i': identity = optarg; break;
    case 'f': force = 1; break;
    case 'h': usage (stdout, RC_OK);
    default: return cli_bad_option ("keygen", argv, "i:fh");
    }
  }
  if (argc - optind > 1) {
    fprintf (stderr, "handoff keygen: too many arguments\n");
    return RC_ERROR;
  }
  if (optind < argc)
    path = argv[optind];
  if (strcmp (path, DEFAULT_KEY_FILE) == 0 &&
      mkdir_p ("/etc/handoff", 0700) == -1) {
    fprintf (stderr, "handoff keygen: /etc/handoff: %m\n");
    return RC_ERROR;
  }
  if (psk_keygen (path, identity, force, err, sizeof err) == -1) {
    fprintf (stderr, "handoff keygen: %s\n", err);
    return RC_ERROR;
  }
  if (strcmp (path, "-") != 0)
    fprintf (stderr, "handoff keygen: wrote %s\n", path);
  return RC_OK;
}
