/* handoffd: the per-host daemon's main: options, start-up, the
 * listeners, signals.  See config.h for the thread model, handoffd(8)
 * for the options.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "beneath.h"
#include "build-info.h"
#include "channel-proto.h"
#include "cleanup.h"
#include "cluster.h"
#include "cluster-fence.h"
#include "ctlserver.h"
#include "config.h"
#include "db.h"
#include "destination.h"
#include "exitcodes.h"
#include "hostid.h"
#include "log.h"
#include "metrics.h"
#include "nbd-tls.h"
#include "migration.h"
#include "names.h"
#include "peer.h"
#include "policy.h"
#include "psk.h"
#include "proxy.h"
#include "recover.h"
#include "server.h"
#include "transport.h"
#include "util.h"

#define PROG "handoffd"

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
"      --transport auto|rdma|tcp  the RAM stream of a live migration:\n"
"                          auto (default) takes RDMA when both hosts have\n"
"                          it on their peer address, else TCP (TLS); rdma\n"
"                          refuses to migrate without it\n"
"      --disk-path file|nbd  how a running VM's QEMU reaches its disks:\n"
"                          file (default), its own file driver, the mirror\n"
"                          put under it only while it migrates; nbd, the\n"
"                          mirror's nbdkit always\n"
"      --cluster etcd://HOST:PORT[,HOST:PORT...]\n"
"                          fleet mode: membership, peers and the VMs'\n"
"                          ownership in etcd (none by default); etcds://\n"
"                          for TLS to the members\n"
"      --cluster-ca FILE   etcds://: the CA of the members' certificates\n"
"                          (default: the system's)\n"
"      --cluster-cert FILE, --cluster-key FILE\n"
"                          etcds://: this host's client certificate and key\n"
"      --cluster-prefix P  the keys' prefix (default /handoff)\n"
"      --cluster-ttl TIME  this host's lease (default 10s)\n"
"      --metrics ADDR:PORT serve Prometheus metrics at /metrics (none by\n"
"                          default; HTTPS needed beyond loopback)\n"
"      --metrics-cert FILE, --metrics-key FILE\n"
"                          serve them over HTTPS with this certificate\n"
"      --io-timeout TIME   a peer or data channel silent this long has\n"
"                          failed (default 30s)\n"
"      --log FORMAT        stderr (default), json or syslog\n"
"  -v, --verbose           more messages (repeat for debug)\n"
"  -h, --help              show this help\n"
"  -V, --version           print the version\n");
  exit (code);
}

/* A start-up error: say it and exit (nothing is running yet: the
 * listeners start last). */
static void __attribute__ ((noreturn, format (printf, 1, 2)))
die (const char *fmt, ...)
{
  char msg[2048];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  fprintf (stderr, "%s: %s\n", PROG, msg);
  exit (RC_ERROR);
}

/* A signal may land on any of the daemon's threads: the handler only
 * notes it and wakes the main thread through a pipe. */
static volatile sig_atomic_t stop_signal, reload_signal;
static int signal_pipe[2] = { -1, -1 };

static void
on_signal (int sig)
{
  int e = errno;

  if (sig == SIGHUP)
    reload_signal = 1;
  else
    stop_signal = sig;
  if (write (signal_pipe[1], "", 1) < 0) {
    /* Full: the main thread has a wake-up pending already. */
  }
  errno = e;
}

static void
catch_signals (void)
{
  struct sigaction sa = { .sa_handler = on_signal };

  if (pipe2 (signal_pipe, O_CLOEXEC | O_NONBLOCK) == -1)
    die ("pipe: %s", strerror (errno));
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);
}

/* SIGHUP: read the policy file again.  Every admission reads it, so an
 * edit takes effect anyway; this makes a mistake in it visible now, in
 * the log, rather than as refusals at the next migration. */
static void
reload_policy (void)
{
  char err[1024];

  if (policy_check_file (err, sizeof err) == -1)
    log_error ("SIGHUP: %s; admissions are refused until it is mended",
               err);
  else
    log_info ("SIGHUP: policy %s reloaded", hd.policy);
}

/* One daemon per state directory: a second would share state.db and
 * the VMs' run directories with the first.  The lock lives as long as
 * the process (helpers never keep the descriptor: it is close-on-exec
 * and proc.c closes everything before it waits). */
static void
lock_state_dir (void)
{
  char path[PATH_MAX + 8], pid[32] = "";
  int fd;

  snprintf (path, sizeof path, "%s/lock", hd.state_dir);
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd == -1)
    die ("%s: %s", path, strerror (errno));
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno != EWOULDBLOCK)
      die ("%s: %s", path, strerror (errno));
    if (pread (fd, pid, sizeof pid - 1, 0) > 0)
      pid[strcspn (pid, "\n")] = '\0';
    die ("%s is in use by another handoffd%s%s%s: one daemon per state "
         "directory", hd.state_dir, pid[0] ? " (pid " : "", pid,
         pid[0] ? ")" : "");
  }
  if (ftruncate (fd, 0) == -1 ||
      dprintf (fd, "%ld\n", (long) getpid ()) < 0)
    log_warn ("%s: cannot record this daemon's pid: %s", path,
              strerror (errno));
  /* Kept open, deliberately, until the process ends. */
}

/* Every file a peer may name is opened with openat2(RESOLVE_BENEATH),
 * and every recursive removal resolves each step with it: without
 * openat2 the daemon would have to trust paths it cannot check.  A
 * seccomp filter can hide it (systemd's RestrictSUIDSGID= answers
 * ENOSYS to every openat2, since it cannot inspect its flags): say so
 * at start rather than fail at the first VM that needs it. */
static void
check_openat2 (void)
{
  CLEANUP_CLOSE int dirfd = open (hd.state_dir, O_PATH | O_DIRECTORY |
                                  O_CLOEXEC);
  int fd;

  if (dirfd == -1)
    die ("%s: %s", hd.state_dir, strerror (errno));
  fd = open_beneath (dirfd, "lock", O_RDONLY, 0, 0);
  if (fd == -1)
    die ("openat2 on %s: %s%s", hd.state_dir, strerror (errno),
         errno == ENOSYS ? " (blocked by a seccomp filter? a systemd unit "
         "must not set RestrictSUIDSGID=, which blocks openat2): every "
         "path a peer names is checked with it" : "");
  close (fd);
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
    const char *dir = dirname (exe);
    snprintf (path, sizeof path, "%s/%s", dir, rel);
    if (access (path, R_OK) == 0)
      return strdup (path);
    /* Installed: handoffd in PREFIX/sbin, its helpers in PREFIX/bin,
     * whatever PREFIX the build was made for (the appliance installs
     * a build made with the default prefix under /usr). */
    if (!strchr (rel, '/')) {
      snprintf (path, sizeof path, "%s/../bin/%s", dir, rel);
      if (access (path, X_OK) == 0)
        return strdup (path);
    }
  }
  return installed;
}

/* Keys are PREFIX/hosts/NAME: an absolute path without a trailing
 * slash. */
static void
cluster_prefix_option (const char *arg)
{
  if (arg[0] != '/' || arg[strlen (arg) - 1] == '/' || strlen (arg) > 200 ||
      strstr (arg, "//"))
    die ("--cluster-prefix: an absolute key prefix such as /handoff");
  hd.cluster_prefix = arg;
}

static void
cluster_ttl_option (const char *arg)
{
  char err[256];
  uint64_t v;

  if (parse_duration_ms (arg, &v, err, sizeof err) == -1)
    die ("--cluster-ttl: %s", err);
  if (v < 3000 || v > 300000)
    die ("--cluster-ttl: 3s to 5min");
  hd.cluster_ttl_s = (int) (v / 1000);
}

static void check_options (void);

/* Options into hd; exits on --help, --version and usage errors. */
static void
parse_options (int argc, char **argv)
{
  enum { OPT_PEER = 256, OPT_QEMU, OPT_ACCEL, OPT_TIMEOUT, OPT_LOG,
         OPT_TRANSPORT, OPT_ADMIN, OPT_HOOK_DIR, OPT_DISK_PATH, OPT_CLUSTER,
         OPT_CLUSTER_PREFIX, OPT_CLUSTER_TTL, OPT_CLUSTER_CA,
         OPT_CLUSTER_CERT, OPT_CLUSTER_KEY, OPT_METRICS, OPT_METRICS_CERT,
         OPT_METRICS_KEY };
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
    { "transport", required_argument, NULL, OPT_TRANSPORT },
    { "disk-path", required_argument, NULL, OPT_DISK_PATH },
    { "cluster", required_argument, NULL, OPT_CLUSTER },
    { "cluster-prefix", required_argument, NULL, OPT_CLUSTER_PREFIX },
    { "cluster-ttl", required_argument, NULL, OPT_CLUSTER_TTL },
    { "cluster-ca", required_argument, NULL, OPT_CLUSTER_CA },
    { "cluster-cert", required_argument, NULL, OPT_CLUSTER_CERT },
    { "cluster-key", required_argument, NULL, OPT_CLUSTER_KEY },
    { "metrics", required_argument, NULL, OPT_METRICS },
    { "metrics-cert", required_argument, NULL, OPT_METRICS_CERT },
    { "metrics-key", required_argument, NULL, OPT_METRICS_KEY },
    { "log", required_argument, NULL, OPT_LOG },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
  };
  static char hostname[256];
  char err[1024];
  uint64_t v;
  int c;

  hd.state_dir = "/var/lib/handoff";
  hd.control = "/run/handoff/handoffd.sock";
  hd.psk = "/etc/handoff/handoff.psk";
  hd.policy = "/etc/handoff/policy.json";
  hd.hook_dir = "/etc/handoff/hooks";
  hd.qemu = "qemu-system-x86_64";
  hd.io_timeout_ms = 30000;
  hd.cluster_prefix = "/handoff";
  hd.cluster_ttl_s = 10;
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
      if (config_add_peer (optarg, err, sizeof err) == -1)
        die ("--peer %s: %s", optarg, err);
      break;
    case OPT_QEMU: hd.qemu = optarg; break;
    case OPT_ACCEL:
      if (strcmp (optarg, "kvm") != 0 && strcmp (optarg, "tcg") != 0)
        die ("--accel must be kvm or tcg");
      hd.accel = optarg;
      break;
    case OPT_TIMEOUT:
      if (parse_duration_ms (optarg, &v, err, sizeof err) == -1)
        die ("--io-timeout: %s", err);
      if (v < 1000 || v > 3600000)
        die ("--io-timeout: 1s to 1h");
      hd.io_timeout_ms = (int) v;
      break;
    case OPT_TRANSPORT:
      if (transport_parse (optarg, &hd.transport, err, sizeof err) == -1)
        die ("--transport: %s", err);
      break;
    case OPT_DISK_PATH:
      if (strcmp (optarg, "nbd") != 0 && strcmp (optarg, "file") != 0)
        die ("--disk-path must be file or nbd");
      hd.disk_path_nbd = strcmp (optarg, "nbd") == 0;
      break;
    case OPT_CLUSTER: hd.cluster = optarg; break;
    case OPT_CLUSTER_PREFIX: cluster_prefix_option (optarg); break;
    case OPT_CLUSTER_TTL: cluster_ttl_option (optarg); break;
    case OPT_CLUSTER_CA: hd.cluster_ca = optarg; break;
    case OPT_CLUSTER_CERT: hd.cluster_cert = optarg; break;
    case OPT_CLUSTER_KEY: hd.cluster_key = optarg; break;
    case OPT_METRICS: hd.metrics = optarg; break;
    case OPT_METRICS_CERT: hd.metrics_cert = optarg; break;
    case OPT_METRICS_KEY: hd.metrics_key = optarg; break;
    case OPT_LOG:
      if (strcmp (optarg, "json") == 0)
        log_set_sink (LOG_SINK_JSON);
      else if (strcmp (optarg, "syslog") == 0)
        log_set_sink (LOG_SINK_SYSLOG);
      else if (strcmp (optarg, "stderr") != 0)
        die ("--log must be stderr, json or syslog");
      break;
    case 'v': log_more_verbose (); break;
    case 'h': usage (stdout, RC_OK);
    case 'V': printf ("handoffd %s (%s)\n", HANDOFF_VERSION, HANDOFF_GIT_REV);
      exit (RC_OK);
    default: usage (stderr, RC_ERROR);
    }
  }
  if (optind != argc)
    die ("unexpected argument '%s'", argv[optind]);
  check_options ();
}

/* What the options name, checked before anything starts. */
static void
check_options (void)
{
  char err[1024];

  if ((hd.cluster_ca || hd.cluster_cert || hd.cluster_key) && !hd.cluster)
    die ("--cluster-ca, --cluster-cert and --cluster-key are for "
         "--cluster etcds://...");
  if ((hd.metrics_cert || hd.metrics_key) && !hd.metrics)
    die ("--metrics-cert and --metrics-key are for --metrics");
  if (name_check_host (hd.name, err, sizeof err) == -1)
    die ("--name: %s", err);
  if (access (hd.psk, R_OK) == -1)
    die ("%s: %s (make one with 'handoff keygen')", hd.psk, strerror (errno));
  {
    /* Read it now, listening or not: a bad key found at the first
     * migration would look like a network failure. */
    struct psk_table t;
    if (psk_load (hd.psk, &t, err, sizeof err) == -1)
      die ("--psk: %s", err);
    psk_table_free (&t);
  }
  if (policy_check_file (err, sizeof err) == -1)
    die ("%s", err);
}

/* The state directory, the database, the helper programs. */
static void
prepare_state (void)
{
  char dbpath[PATH_MAX + 16], cdir[PATH_MAX], err[1024];
  const char *why, *accel;

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
  if (mkdir_p (hd.run_dir, 0700) == -1 || mkdir_p (hd.images_dir, 0700) == -1)
    die ("%s: %s", hd.state_dir, strerror (errno));
  lock_state_dir ();
  check_openat2 ();
  nbd_tls_init (hd.state_dir);
  snprintf (cdir, sizeof cdir, "%s", hd.control);
  if (mkdir_p (dirname (cdir), 0755) == -1)
    die ("%s: %s", hd.control, strerror (errno));
  snprintf (dbpath, sizeof dbpath, "%s/state.db", hd.state_dir);
  if (db_open (dbpath, err, sizeof err) == -1)
    die ("%s", err);
  signal (SIGPIPE, SIG_IGN);
  signal (SIGCHLD, SIG_DFL);
  accel = hd_accel (&why);
  log_info ("host %s: state in %s; QEMU will use %s (%s)", hd.name,
            hd.state_dir, accel, why);
  transport_probe ();
}

int
main (int argc, char **argv)
{
  struct ctlserver *cli, *peers = NULL, *admin = NULL;

  log_set_program (PROG);
  log_set_level (LOG_LEVEL_INFO);
  parse_options (argc, argv);
  catch_signals ();
  prepare_state ();
  if (hd.cluster) {
    char err[1024];
    if (cluster_start (hd.cluster, hd.cluster_prefix, hd.cluster_ttl_s, err,
                       sizeof err) == -1)
      die ("--cluster %s: %s", hd.cluster, err);
    /* Without the fence, fleet mode's promise does not hold. */
    if (cluster_fence_start () == -1)
      die ("--cluster: cannot start the fence's thread");
  }
  if (hd.metrics) {
    char err[1024];
    if (metrics_serve (hd.metrics, hd.metrics_cert, hd.metrics_key, err,
                       sizeof err) == -1)
      die ("--metrics: %s", err);
  }
  /* Before taking requests: finish or undo what a previous run left
   * (in fleet mode, with the cluster's word on who owns what). */
  recover_all ();
  proxy_recover ();

  const struct ctlserver_config clicfg = {
    .path = hd.control, .service = CHAN_SERVICE_CLI, .version = 1,
    .handle_chan = server_handle,
  };
  cli = ctlserver_start (&clicfg);
  if (!cli)
    die ("%s: cannot listen", hd.control);
  if (hd.admin) {
    static bool remote = true;
    const struct ctlserver_config acfg = {
      .uri = hd.admin, .psk_file = hd.psk, .service = CHAN_SERVICE_CLI,
      .version = 1, .handle_chan = server_handle, .opaque = &remote,
    };
    admin = ctlserver_start (&acfg);
    if (!admin) {
      ctlserver_stop (cli);
      die ("%s: cannot listen (see above)", hd.admin);
    }
  }
  if (hd.listen) {
    const struct ctlserver_config pcfg = {
      .uri = hd.listen, .psk_file = hd.psk, .service = CHAN_SERVICE_CTL,
      .version = PEER_PROTO_VERSION, .handle_chan = destination_handle,
    };
    peers = ctlserver_start (&pcfg);
    if (!peers) {
      ctlserver_stop (admin);
      ctlserver_stop (cli);
      die ("%s: cannot listen (see above)", hd.listen);
    }
  }
  log_info ("ready: CLI on %s%s%s", hd.control,
            hd.listen ? ", peers on " : "", hd.listen ? hd.listen : "");
  /* Under systemd (Type=notify): started only now, with every socket
   * listening, so units ordered after this one can use it at once.
   * Outside systemd this does nothing. */
  sd_notifyf (0, "READY=1\nSTATUS=CLI on %s%s%s", hd.control,
              hd.listen ? ", peers on " : "", hd.listen ? hd.listen : "");

  /* Terminates: on SIGINT or SIGTERM.  VMs keep running: a restarted
   * daemon finds them again. */
  while (!stop_signal) {
    char buf[16];
    struct pollfd p = { .fd = signal_pipe[0], .events = POLLIN };

    if (poll (&p, 1, -1) == -1 && errno != EINTR)
      die ("poll: %s", strerror (errno));
    while (read (signal_pipe[0], buf, sizeof buf) > 0)
      ;
    if (reload_signal) {
      reload_signal = 0;
      sd_notify (0, "RELOADING=1");
      reload_policy ();
      sd_notify (0, "READY=1");
    }
  }
  log_info ("stopping (signal %d); VMs keep running", (int) stop_signal);
  sd_notify (0, "STOPPING=1\nSTATUS=stopping; VMs keep running");
  /* A migration in flight rolls back (the VM stays here) and reports
   * it to its CLI before the listeners close; one past the point of no
   * return finishes. */
  migration_abort_all ("because handoffd is stopping");
  if (!migration_wait_idle (60000))
    log_warn ("migrations still running after 60 s; stopping anyway: "
              "the next start recovers them");
  ctlserver_stop (peers);
  ctlserver_stop (admin);
  ctlserver_stop (cli);
  metrics_stop ();
  cluster_fence_stop ();
  cluster_stop ();
  db_close ();
  return RC_OK;
}
