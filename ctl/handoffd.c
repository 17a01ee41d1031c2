/* handoffd: the per-host daemon.  See daemon.h for the thread model,
 * handoffd(8) for the options.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build-info.h"
#include "channel-proto.h"
#include "ctlserver.h"
#include "daemon.h"
#include "hostid.h"
#include "db.h"
#include "exitcodes.h"
#include "log.h"
#include "migrate.h"
#include "names.h"
#include "peer.h"
#include "policy.h"
#include "uri.h"
#include "util.h"
#include "vm-ops.h"

#define PROG "handoffd"

struct hd_config hd;

void
hd_crash_point (const char *phase)
{
  const char *at = getenv ("HANDOFF_TEST_CRASH_AT");
  const char *delay = getenv ("HANDOFF_TEST_DELAY_AT");
  size_t n = strlen (phase);

  if (at && strcmp (at, phase) == 0) {
    log_error ("test hook: crashing at %s", phase);
    raise (SIGKILL);
  }
  /* "PHASE:MS": hold this step, so that a test can cut a link between
   * it and the next message. */
  if (delay && strncmp (delay, phase, n) == 0 && delay[n] == ':') {
    long ms = strtol (delay + n + 1, NULL, 10);
    log_info ("test hook: holding %s for %ld ms", phase, ms);
    if (ms > 0 && ms < 60000)
      usleep ((useconds_t) ms * 1000);
  }
}

const char *
hd_accel (const char **why)
{
  static char reason[128];
  FILE *f;
  char line[4096];
  bool virt = false;

  if (hd.accel) {
    if (why)
      *why = "set with --accel";
    return hd.accel;
  }
  f = fopen ("/proc/cpuinfo", "re");
  if (f) {
    while (!virt && fgets (line, sizeof line, f))
      if (strncmp (line, "flags", 5) == 0 &&
          (strstr (line, " vmx") || strstr (line, " svm")))
        virt = true;
    fclose (f);
  }
  if (virt && access ("/dev/kvm", R_OK | W_OK) == 0) {
    snprintf (reason, sizeof reason, "the CPU offers vmx/svm and /dev/kvm "
              "is usable");
    if (why)
      *why = reason;
    return "kvm";
  }
  snprintf (reason, sizeof reason, "%s", !virt
            ? "the CPU offers neither vmx nor svm" : "/dev/kvm is not usable");
  if (why)
    *why = reason;
  return "tcg";
}

const char *
hd_peer_uri (const char *name)
{
  for (size_t i = 0; i < hd.npeers; ++i)
    if (strcmp (hd.peers[i].name, name) == 0)
      return hd.peers[i].uri;
  if (strncmp (name, "tcp://", 6) == 0)
    return name;
  return NULL;
}

const char *
hd_peer_name_for_host (const char *host)
{
  for (size_t i = 0; i < hd.npeers; ++i) {
    struct uri u;
    char err[128];
    if (uri_parse (hd.peers[i].uri, &u, err, sizeof err) == 0) {
      bool same = strcmp (u.host, host) == 0;
      uri_free (&u);
      if (same)
        return hd.peers[i].name;
    }
  }
  return NULL;
}

static void __attribute__ ((noreturn))
usage (FILE *fp, int code)
{
  fprintf (fp,
"Usage: handoffd [OPTIONS]\n"
"\n"
"The per-host daemon: VM registry, QEMU driver, migrations.\n"
"\n"
"Options:\n"
"  -n, --name NAME         this host's name for its peers (default: the\n"
"                          host name)\n"
"  -s, --state-dir DIR     state.db, run/, images/ (default\n"
"                          /var/lib/handoff)\n"
"  -l, --listen URI        peer channel, tcp://ADDR:PORT (TLS); none by\n"
"                          default: this host can send VMs but not take\n"
"                          them\n"
"  -c, --control SOCKET    CLI socket (default /run/handoff/handoffd.sock)\n"
"      --admin URI         also take CLI requests on tcp://ADDR:PORT (TLS\n"
"                          with the pre-shared key); none by default\n"
"  -k, --psk FILE          pre-shared key (default\n"
"                          /etc/handoff/handoff.psk)\n"
"  -p, --policy FILE       admission policy (default\n"
"                          /etc/handoff/policy.json)\n"
"      --peer NAME=URI     how to reach host NAME (repeat)\n"
"      --hook-dir DIR      event hooks: the programs VM policies name\n"
"                          (default /etc/handoff/hooks)\n"
"      --qemu PATH         QEMU binary (default qemu-system-x86_64)\n"
"      --accel kvm|tcg     override the accelerator choice\n"
"      --io-timeout TIME   a peer or data channel silent this long has\n"
"                          failed (default 30s)\n"
"      --log FORMAT        stderr (default), json or syslog\n"
"  -v, --verbose           more messages (repeat for debug)\n"
"  -h, --help              show this help\n"
"  -V, --version           print the version\n");
  exit (code);
}

static volatile sig_atomic_t stop_signal;

static void
on_signal (int sig)
{
  stop_signal = sig;
}

/* Helper programs and the filter: beside this executable in the build
 * tree or an installed prefix, else the installed paths. */
static const char *
find_beside (const char *rel, const char *installed)
{
  char exe[PATH_MAX], path[PATH_MAX + 64];
  ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);

  if (n > 0) {
    exe[n] = '\0';
    snprintf (path, sizeof path, "%s/%s", dirname (exe), rel);
    if (access (path, R_OK) == 0)
      return strdup (path);
  }
  return installed;
}

static int
add_peer (const char *arg)
{
  const char *eq = strchr (arg, '=');
  struct uri u;
  char err[256];

  if (!eq || eq == arg || uri_parse (eq + 1, &u, err, sizeof err) == -1) {
    fprintf (stderr, "%s: --peer %s: expected NAME=tcp://ADDR:PORT%s%s\n",
             PROG, arg, eq ? ": " : "", eq ? err : "");
    return -1;
  }
  uri_free (&u);
  {
    char name[NAME_HOST_MAX + 2];
    snprintf (name, sizeof name, "%.*s", (int) (eq - arg < NAME_HOST_MAX + 1
                                                ? eq - arg
                                                : NAME_HOST_MAX + 1), arg);
    if (name_check_host (name, err, sizeof err) == -1) {
      fprintf (stderr, "%s: --peer %s: %s\n", PROG, arg, err);
      return -1;
    }
  }
  hd.peers = realloc (hd.peers, (hd.npeers + 1) * sizeof *hd.peers);
  if (!hd.peers)
    return -1;
  hd.peers[hd.npeers].name = strndup (arg, (size_t) (eq - arg));
  hd.peers[hd.npeers].uri = strdup (eq + 1);
  hd.npeers++;
  return 0;
}

int
main (int argc, char **argv)
{
  enum { OPT_PEER = 256, OPT_QEMU, OPT_ACCEL, OPT_TIMEOUT, OPT_LOG,
         OPT_ADMIN, OPT_HOOK_DIR };
  static const struct option long_options[] = {
    { "name", required_argument, NULL, 'n' },
    { "state-dir", required_argument, NULL, 's' },
    { "listen", required_argument, NULL, 'l' },
    { "control", required_argument, NULL, 'c' },
    { "psk", required_argument, NULL, 'k' },
    { "policy", required_argument, NULL, 'p' },
    { "peer", required_argument, NULL, OPT_PEER },
    { "qemu", required_argument, NULL, OPT_QEMU },
    { "accel", required_argument, NULL, OPT_ACCEL },
    { "admin", required_argument, NULL, OPT_ADMIN },
    { "hook-dir", required_argument, NULL, OPT_HOOK_DIR },
    { "io-timeout", required_argument, NULL, OPT_TIMEOUT },
    { "log", required_argument, NULL, OPT_LOG },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  static char hostname[256];
  char dbpath[PATH_MAX + 16], err[1024];
  struct sigaction sa = { .sa_handler = on_signal };
  struct ctlserver *cli = NULL, *peers = NULL, *admin = NULL;
  uint64_t v;
  int c;

  log_set_program (PROG);
  log_set_level (LOG_LEVEL_INFO);
  hd.state_dir = "/var/lib/handoff";
  hd.control = "/run/handoff/handoffd.sock";
  hd.psk = "/etc/handoff/handoff.psk";
  hd.policy = "/etc/handoff/policy.json";
  hd.hook_dir = "/etc/handoff/hooks";
  hd.qemu = "qemu-system-x86_64";
  hd.io_timeout_ms = 30000;
  if (gethostname (hostname, sizeof hostname) == -1)
    snprintf (hostname, sizeof hostname, "localhost");
  hd.name = hostname;

  while ((c = getopt_long (argc, argv, "n:s:l:c:k:p:vhV", long_options,
                           NULL)) != -1) {
    switch (c) {
    case 'n': hd.name = optarg; break;
    case 's': hd.state_dir = optarg; break;
    case 'l': hd.listen = optarg; break;
    case OPT_ADMIN: hd.admin = optarg; break;
    case OPT_HOOK_DIR: hd.hook_dir = optarg; break;
    case 'c': hd.control = optarg; break;
    case 'k': hd.psk = optarg; break;
    case 'p': hd.policy = optarg; break;
    case OPT_PEER:
      if (add_peer (optarg) == -1)
        return RC_ERROR;
      break;
    case OPT_QEMU: hd.qemu = optarg; break;
    case OPT_ACCEL:
      if (strcmp (optarg, "kvm") != 0 && strcmp (optarg, "tcg") != 0) {
        fprintf (stderr, "%s: --accel must be kvm or tcg\n", PROG);
        return RC_ERROR;
      }
      hd.accel = optarg;
      break;
    case OPT_TIMEOUT:
      if (parse_duration_ms (optarg, &v, err, sizeof err) == -1 ||
          v < 1000 || v > 3600000) {
        fprintf (stderr, "%s: --io-timeout: %s\n", PROG,
                 v < 1000 || v > 3600000 ? "1s to 1h" : err);
        return RC_ERROR;
      }
      hd.io_timeout_ms = (int) v;
      break;
    case OPT_LOG:
      if (strcmp (optarg, "json") == 0)
        log_set_sink (LOG_SINK_JSON);
      else if (strcmp (optarg, "syslog") == 0)
        log_set_sink (LOG_SINK_SYSLOG);
      else if (strcmp (optarg, "stderr") != 0) {
        fprintf (stderr, "%s: --log must be stderr, json or syslog\n", PROG);
        return RC_ERROR;
      }
      break;
    case 'v': log_more_verbose (); break;
    case 'h': usage (stdout, RC_OK);
    case 'V': printf ("handoffd %s (%s)\n", HANDOFF_VERSION, HANDOFF_GIT_REV);
      return RC_OK;
    default: usage (stderr, RC_ERROR);
    }
  }
  if (optind != argc) {
    fprintf (stderr, "%s: unexpected argument '%s'\n", PROG, argv[optind]);
    return RC_ERROR;
  }
  if (name_check_host (hd.name, err, sizeof err) == -1) {
    fprintf (stderr, "%s: --name: %s\n", PROG, err);
    return RC_ERROR;
  }
  if (access (hd.psk, R_OK) == -1) {
    fprintf (stderr, "%s: %s: %s (make one with 'handoff keygen')\n", PROG,
             hd.psk, strerror (errno));
    return RC_ERROR;
  }
  if (policy_check_file (err, sizeof err) == -1) {
    fprintf (stderr, "%s: %s\n", PROG, err);
    return RC_ERROR;
  }

  /* Only what the daemon makes is ours to read. */
  umask (077);
  hd.filter = getenv ("HANDOFF_FILTER");
  if (!hd.filter)
    hd.filter = find_beside ("../filters/nbdkit-handoff-mirror-filter.so",
                             HANDOFF_FILTERDIR
                             "/nbdkit-handoff-mirror-filter.so");
  hd.share_bin = find_beside ("handoff-share",
                              HANDOFF_BINDIR "/handoff-share");
  hd.xfer_bin = find_beside ("handoff-xfer", HANDOFF_BINDIR "/handoff-xfer");
  if (hostid_compute (hd.name, hd.host_id, hd.host_info) == -1)
    log_warn ("cannot compute this host's ID: guests will not see one");
  hd.nbdkit_preload = getenv ("HANDOFF_NBDKIT_PRELOAD");
  snprintf (hd.run_dir, sizeof hd.run_dir, "%s/run", hd.state_dir);
  snprintf (hd.images_dir, sizeof hd.images_dir, "%s/images", hd.state_dir);
  if (mkdir_p (hd.run_dir, 0700) == -1 || mkdir_p (hd.images_dir, 0700) == -1) {
    fprintf (stderr, "%s: %s: %s\n", PROG, hd.state_dir, strerror (errno));
    return RC_ERROR;
  }
  {
    char cdir[PATH_MAX];
    snprintf (cdir, sizeof cdir, "%s", hd.control);
    if (mkdir_p (dirname (cdir), 0755) == -1) {
      fprintf (stderr, "%s: %s: %s\n", PROG, hd.control, strerror (errno));
      return RC_ERROR;
    }
  }
  snprintf (dbpath, sizeof dbpath, "%s/state.db", hd.state_dir);
  if (db_open (dbpath, err, sizeof err) == -1) {
    fprintf (stderr, "%s: %s\n", PROG, err);
    return RC_ERROR;
  }
  signal (SIGPIPE, SIG_IGN);
  signal (SIGCHLD, SIG_DFL);

  {
    const char *why;
    const char *accel = hd_accel (&why);
    log_info ("host %s: state in %s; QEMU will use %s (%s)", hd.name,
              hd.state_dir, accel, why);
  }
  /* Before taking requests: finish or undo what a previous run left. */
  recover_all ();

  const struct ctlserver_config clicfg = {
    .path = hd.control, .service = CHAN_SERVICE_CLI, .version = 1,
    .handle_chan = cli_handle,
  };
  cli = ctlserver_start (&clicfg);
  if (!cli) {
    fprintf (stderr, "%s: %s: cannot listen\n", PROG, hd.control);
    return RC_ERROR;
  }
  if (hd.admin) {
    static bool remote = true;
    const struct ctlserver_config acfg = {
      .uri = hd.admin, .psk_file = hd.psk, .service = CHAN_SERVICE_CLI,
      .version = 1, .handle_chan = cli_handle, .opaque = &remote,
    };
    admin = ctlserver_start (&acfg);
    if (!admin) {
      fprintf (stderr, "%s: %s: cannot listen (see above)\n", PROG,
               hd.admin);
      ctlserver_stop (cli);
      return RC_ERROR;
    }
  }
  if (hd.listen) {
    const struct ctlserver_config pcfg = {
      .uri = hd.listen, .psk_file = hd.psk, .service = CHAN_SERVICE_CTL,
      .version = PEER_PROTO_VERSION, .handle_chan = incoming_handle,
    };
    peers = ctlserver_start (&pcfg);
    if (!peers) {
      fprintf (stderr, "%s: %s: cannot listen (see above)\n", PROG,
               hd.listen);
      ctlserver_stop (admin);
      ctlserver_stop (cli);
      return RC_ERROR;
    }
  }
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  log_info ("ready: CLI on %s%s%s", hd.control,
            hd.listen ? ", peers on " : "", hd.listen ? hd.listen : "");

  /* Terminates: on SIGINT or SIGTERM.  VMs keep running: a restarted
   * daemon finds them again. */
  while (!stop_signal)
    pause ();
  log_info ("stopping (signal %d); VMs keep running", (int) stop_signal);
  ctlserver_stop (peers);
  ctlserver_stop (admin);
  ctlserver_stop (cli);
  db_close ();
  return RC_OK;
}
