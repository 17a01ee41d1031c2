/* handoff CLI: define, undefine, start, stop, list, status, event,
 * abort, host. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "commands.h"
#include "exitcodes.h"
#include "jsonutil.h"
#include "progress.h"
#include "util.h"

/* A path for the daemon.  Here it is made absolute and resolved, and
 * must exist.  With --host the path is the other host's: it cannot be
 * looked up here, so it must be absolute already, and the daemon
 * checks the rest (normal form, that it exists). */
static int
abs_path (const char *p, char *buf, size_t len, const char *what)
{
  if (cli_host_uri && *cli_host_uri) {
    if (p[0] != '/' || strlen (p) >= len) {
      cli_fail (RC_ERROR, "%s %s: with --host, give the path on that host, "
                "absolute", what, p);
      return -1;
    }
    strcpy (buf, p);
    return 0;
  }
  if (!realpath (p, buf)) {
    cli_fail (RC_ERROR, "%s %s: %s", what, p, strerror (errno));
    return -1;
  }
  return 0;
}

/* --memory: a bare number is MiB, as QEMU's -m; a suffix says what it
 * means ("512K" is KiB, not MiB). */
static int
set_memory (json_t *def, const char *arg)
{
  char err[256];
  uint64_t v;

  if (parse_size_in (arg, 1 << 20, &v, err, sizeof err) == -1) {
    cli_fail (RC_ERROR, "--memory: %s", err);
    return -1;
  }
  if (v % (1 << 20) != 0 || v == 0) {
    cli_fail (RC_ERROR, "--memory: '%s' is not a whole number of MiB", arg);
    return -1;
  }
  json_object_set_new (def, "memory", json_integer ((json_int_t) (v >> 20)));
  return 0;
}

/* --policy FILE: the VM's policy, a JSON object, kept as text. */
static int
set_policy (json_t *objects, const char *path)
{
  json_error_t je;
  json_t *pol = json_load_file (path, JSON_REJECT_DUPLICATES, &je);
  char *text;

  if (!pol || !json_is_object (pol)) {
    cli_fail (RC_ERROR, "--policy %s: %s", path,
              pol ? "not a JSON object" : je.text);
    json_decref (pol);
    return -1;
  }
  text = json_dumps (pol, JSON_COMPACT | JSON_SORT_KEYS);
  json_object_set_new (objects, "policy", json_string (text));
  free (text);
  json_decref (pol);
  return 0;
}

static const char define_help[] =
"Usage: handoff define NAME --memory SIZE --vcpus N --disk FILE...\n"
"         [--dir DIR] [--kernel FILE --initrd FILE --append ARGS]\n"
"         [--policy FILE] [--label KEY=VALUE]... [--socket PATH] [--json]\n"
"\n"
"Registers a VM with this host's handoffd (it does not start it).\n"
"\n"
"  -m, --memory SIZE     RAM: a bare number is MiB (as QEMU's -m); K, M,\n"
"                        G, T are powers of 1024; whole MiB (default 256)\n"
"  -c, --vcpus N         virtual CPUs, 1 to 256 (default 1)\n"
"  -d, --disk FILE       a raw disk image; repeat for more, in order\n"
"  -D, --dir DIR         the VM's directory, which moves with it\n"
"  -k, --kernel FILE     boot this kernel instead of the first disk\n"
"  -i, --initrd FILE     its initrd\n"
"  -a, --append ARGS     its command line\n"
"  -p, --policy FILE     a JSON object kept with the VM (hooks)\n"
"  -l, --label KEY=VALUE a label; repeat for more\n"
"  -S, --socket PATH     handoffd's CLI socket\n"
"      --json            print the answer as JSON\n";

int
cmd_define (int argc, char **argv)
{
  static const struct option opts[] = {
    { "memory", required_argument, NULL, 'm' },
    { "vcpus", required_argument, NULL, 'c' },
    { "disk", required_argument, NULL, 'd' },
    { "dir", required_argument, NULL, 'D' },
    { "kernel", required_argument, NULL, 'k' },
    { "initrd", required_argument, NULL, 'i' },
    { "append", required_argument, NULL, 'a' },
    { "policy", required_argument, NULL, 'p' },
    { "label", required_argument, NULL, 'l' },
    { "socket", required_argument, NULL, 'S' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  json_t *def = json_object (), *disks = json_array (), *objects = json_object ();
  char err[256], path[PATH_MAX];
  uint64_t v;
  int c, rc;

  json_object_set_new (def, "memory", json_integer (256));
  json_object_set_new (def, "vcpus", json_integer (1));
  json_object_set_new (def, "disks", disks);
  opterr = 0;
  while ((c = getopt_long (argc, argv, "m:c:d:D:k:i:a:p:l:S:jh", opts,
                           NULL)) != -1) {
    switch (c) {
    case 'm':
      if (set_memory (def, optarg) == -1)
        goto bad;
      break;
    case 'c':
      if (parse_uint (optarg, 1, 256, &v, err, sizeof err) == -1) {
        cli_fail (RC_ERROR, "--vcpus: %s", err);
        goto bad;
      }
      json_object_set_new (def, "vcpus", json_integer ((json_int_t) v));
      break;
    case 'd':
      if (abs_path (optarg, path, sizeof path, "disk") == -1)
        goto bad;
      json_array_append_new (disks, json_pack ("{s:s, s:i}", "path", path,
                                               "size", 0));
      break;
    case 'D': case 'k': case 'i': {
      const char *key = c == 'D' ? "dir" : c == 'k' ? "kernel" : "initrd";
      if (abs_path (optarg, path, sizeof path, key) == -1)
        goto bad;
      json_object_set_new (def, key, json_string (path));
      break;
    }
    case 'a':
      json_object_set_new (def, "append", json_string (optarg));
      break;
    case 'p':
      if (set_policy (objects, optarg) == -1)
        goto bad;
      break;
    case 'l': {
      const char *eq = strchr (optarg, '=');
      char key[200];
      if (!eq || eq == optarg || eq - optarg > 128) {
        cli_fail (RC_ERROR, "--label %s: expected KEY=VALUE", optarg);
        goto bad;
      }
      snprintf (key, sizeof key, "label:%.*s", (int) (eq - optarg), optarg);
      json_object_set_new (objects, key, json_string (eq + 1));
      break;
    }
    case 'S': cli_socket_path = optarg; break;
    case 'j': cli_json = true; break;
    case 'h':
      fputs (define_help, stdout);
      json_decref (def);
      json_decref (objects);
      return RC_OK;
    default:
      cli_bad_option ("define", argv, "m:c:d:D:k:i:a:p:l:S:jh");
      goto bad;
    }
  }
  if (argc - optind != 1) {
    cli_fail (RC_ERROR, "expected one NAME");
    goto bad;
  }
  json_object_set_new (def, "name", json_string (argv[optind]));
  json_t *r = cli_request (json_pack ("{s:s, s:o, s:o}", "op", "define", "def",
                                      def, "objects", objects), &rc);
  if (r && cli_json)
    cli_print_json (r);
  else if (r)
    printf ("defined %s\n", argv[optind]);
  json_decref (r);
  return rc;

 bad:
  json_decref (def);
  json_decref (objects);
  return RC_ERROR;
}

static void
print_list (json_t *r)
{
  json_t *v;
  size_t i;

  printf ("%-20s %-10s %-14s %8s %5s\n", "NAME", "STATE", "QEMU", "MEMORY",
          "VCPUS");
  json_array_foreach (json_object_get (r, "vms"), i, v)
    printf ("%-20s %-10s %-14s %6" JSON_INTEGER_FORMAT "Mi %5"
            JSON_INTEGER_FORMAT "\n",
            json_string_value (json_object_get (v, "name")),
            json_string_value (json_object_get (v, "state")),
            json_string_value (json_object_get (v, "run_state")),
            json_integer_value (json_object_get (v, "memory")),
            json_integer_value (json_object_get (v, "vcpus")));
}

/* How QEMU reaches disk I, from its block nodes: its raw node "diskI"
 * over the image's file, or over NBD (the mirror's nbdkit). */
static const char *
disk_way (json_t *nodes, size_t i)
{
  char want[32];
  json_t *n;
  size_t k;

  snprintf (want, sizeof want, "disk%zu", i);
  json_array_foreach (nodes, k, n) {
    const char *node = json_string_value (json_object_get (n, "node"));
    const char *file = json_string_value (json_object_get (n, "file"));
    if (node && file && strcmp (node, want) == 0)
      return strncmp (file, "nbd", 3) == 0 ? " (through the mirror)"
        : " (QEMU's own driver)";
  }
  return "";
}

static void
print_status (json_t *r)
{
  json_t *def = json_object_get (r, "def"), *d, *m, *dest;
  size_t i;

  printf ("name:     %s\n", json_string_value (json_object_get (r, "name")));
  printf ("state:    %s (QEMU: %s, %s)\n",
          json_string_value (json_object_get (r, "state")),
          json_string_value (json_object_get (r, "run_state")),
          json_string_value (json_object_get (r, "accel")));
  printf ("memory:   %" JSON_INTEGER_FORMAT " MiB, %" JSON_INTEGER_FORMAT
          " vCPU\n", json_integer_value (json_object_get (def, "memory")),
          json_integer_value (json_object_get (def, "vcpus")));
  json_array_foreach (json_object_get (def, "disks"), i, d)
    printf ("disk %zu:   %s%s\n", i,
            json_string_value (json_object_get (d, "path")),
            disk_way (json_object_get (r, "block_nodes"), i));
  if (json_string_value (json_object_get (def, "dir")))
    printf ("dir:      %s (mounted at %s)\n",
            json_string_value (json_object_get (def, "dir")),
            json_string_value (json_object_get (r, "share_mount")));
  printf ("console:  %s\n", json_string_value (json_object_get (r,
                                                                "serial")));
  m = json_object_get (r, "migration");
  if (!m)
    return;
  const char *via = json_string_value (json_object_get (m, "via"));
  printf ("migration: %s to %s%s%s, phase %s\n",
          json_string_value (json_object_get (m, "id")),
          json_string_value (json_object_get (m, "to")),
          via ? ", streams through " : "", via ? via : "",
          json_string_value (json_object_get (m, "phase")));
  json_array_foreach (json_object_get (m, "destinations"), i, dest) {
    const char *why = json_string_value (json_object_get (dest, "reason"));
    printf ("  %-16s %s%s%s\n",
            json_string_value (json_object_get (dest, "host")),
            json_string_value (json_object_get (dest, "state")),
            why ? ": " : "", why ? why : "");
  }
}

static void
print_host (json_t *r)
{
  printf ("host %s: QEMU uses %s (%s); state in %s\n",
          json_string_value (json_object_get (r, "host")),
          json_string_value (json_object_get (r, "accel")),
          json_string_value (json_object_get (r, "accel_reason")),
          json_string_value (json_object_get (r, "state_dir")));
  if (json_object_get (r, "host_id"))
    printf ("host ID (published to guests): %s\n",
            json_string_value (json_object_get (r, "host_id")));
  json_t *rdma = json_object_get (r, "rdma");
  if (json_is_true (json_object_get (rdma, "usable")))
    printf ("RAM streams: RDMA (%s) with peers that have it too "
            "(--transport %s)\n",
            json_string_value (json_object_get (rdma, "device")),
            json_string_value (json_object_get (rdma, "transport")));
  else if (rdma)
    printf ("RAM streams: TCP; no RDMA: %s (--transport %s)\n",
            json_string_value (json_object_get (rdma, "reason")),
            json_string_value (json_object_get (rdma, "transport")));
}

/* One line per member; this host marked. */
static void
print_cluster_hosts (json_t *r)
{
  const char *self = json_string_value (json_object_get (r, "host"));
  json_t *h;
  size_t i;

  printf ("this host's lease: %s\n",
          json_string_value (json_object_get (r, "lease")));
  printf ("%-16s %-26s %9s %5s %6s %4s %s\n", "HOST", "PEER URI", "MEM FREE",
          "VCPUS", "LOAD", "VMS", "RDMA");
  json_array_foreach (json_object_get (r, "hosts"), i, h) {
    const char *name = json_string_value (json_object_get (h, "name"));
    const char *uri = json_string_value (json_object_get (h, "uri"));
    printf ("%-16s %-26s %6lld MiB %5lld %6.2f %4lld %s%s%s\n",
            name ? name : "?", uri ? uri : "-",
            (long long) json_integer_value (json_object_get (h,
                                                  "memory_free_mib")),
            (long long) json_integer_value (json_object_get (h, "vcpus")),
            json_number_value (json_object_get (h, "load1")),
            (long long) json_integer_value (json_object_get (h, "vms")),
            json_is_true (json_object_get (h, "rdma")) ? "yes" : "no",
            json_is_true (json_object_get (h, "draining")) ? "  (draining)"
            : "",
            self && name && strcmp (self, name) == 0 ? "  (this host)" : "");
  }
}

/* Does every peer answer?  Printed (JSON: "ok" agrees with the exit
 * status); RC_OK or RC_UNREACHABLE. */
static int
peers_answer (json_t *r, bool json_out)
{
  json_t *p;
  size_t i;
  bool all = true;

  json_array_foreach (json_object_get (r, "peers"), i, p) {
    bool ok = json_is_true (json_object_get (p, "ok"));
    if (!json_out)
      printf ("%-16s %-28s %s\n",
              json_string_value (json_object_get (p, "name")),
              json_string_value (json_object_get (p, "uri")),
              ok ? "answers" : json_string_value (json_object_get (p,
                                                                 "error")));
    all = all && ok;
  }
  if (json_out) {
    if (!all) {
      json_object_set_new (r, "ok", json_false ());
      json_object_set_new (r, "code", json_integer (RC_UNREACHABLE));
      json_object_set_new (r, "error", json_string ("a peer does not "
                                                    "answer"));
    }
    cli_print_json (r);
  }
  return all ? RC_OK : RC_UNREACHABLE;
}

/* The options every VM command has, as its --help lists them. */
static const char socket_json_help[] =
"  -S, --socket PATH   handoffd's CLI socket\n"
"      --json          print the answer as JSON\n";

static const char *
simple_summary (const char *op)
{
  static const struct { const char *op, *text; } s[] = {
    { "start", "Starts the VM under QEMU." },
    { "undefine", "Forgets a stopped VM; its disks and directory stay." },
    { "status", "The VM: its state, definition, labels, queued events and\n"
      "running migration.  With --watch (-w), follows that migration live\n"
      "to its result, as 'handoff job NAME --watch'." },
    { "abort", "Aborts the VM's running migration: it rolls back, and the\n"
      "VM runs on here." },
    { "list", "This host's VMs and their states." },
    { "host", "This host's handoffd: name, version, accelerator, host ID." },
    { "peers", "Checks that every peer answers, over TLS with the key\n"
      "(exit 7 if one does not)." },
    { "undrain", "Fleet mode: HOST takes VMs again after 'handoff evacuate\n"
      "HOST': placement may pick it and it admits incoming VMs.  It runs on\n"
      "HOST's own handoffd: asked of another, the CLI is sent on to HOST's\n"
      "admin address if the cluster knows it (handoffd --admin)." },
    { "cluster_hosts", "Fleet mode (handoffd --cluster): the hosts that are live\n"
      "members of the cluster now, with what each has free (exit 7 if the\n"
      "cluster cannot be reached)." },
  };
  for (size_t i = 0; i < sizeof s / sizeof s[0]; ++i)
    if (strcmp (s[i].op, op) == 0)
      return s[i].text;
  return "";
}

/* handoff OP [NAME] [--socket PATH] [--json]: the simple ones.  NAME
 * goes in the request as NAME_KEY ("vm", "host"), or there is none
 * (NULL). */
static int
simple (const char *op, int argc, char **argv, const char *name_key)
{
  static const struct option opts[] = {
    { "socket", required_argument, NULL, 'S' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool json_out = false;
  int c, rc;
  json_t *req, *r;

  opterr = 0;
  while ((c = getopt_long (argc, argv, "S:jh", opts, NULL)) != -1) {
    switch (c) {
    case 'S': cli_socket_path = optarg; break;
    case 'j': json_out = true; break;
    case 'h':
      printf ("Usage: handoff %s%s [--socket PATH] [--json]\n\n%s\n\n%s",
              strcmp (op, "cluster_hosts") == 0 ? "cluster hosts" : op,
              !name_key ? "" : strcmp (name_key, "host") == 0 ? " HOST"
              : " NAME", simple_summary (op),
              socket_json_help);
      return RC_OK;
    default: return cli_bad_option (op, argv, "S:jh");
    }
  }
  cli_json = json_out;
  if (argc - optind != (name_key ? 1 : 0))
    return cli_fail (RC_ERROR, "expected %s", !name_key ? "no arguments"
                     : strcmp (name_key, "host") == 0 ? "one HOST"
                     : "one VM NAME");
  req = json_pack ("{s:s}", "op", op);
  if (name_key)
    json_object_set_new (req, name_key, json_string (argv[optind]));
  r = cli_request (req, &rc);
  if (!r)
    return rc;
  if (strcmp (op, "peers") == 0)
    rc = peers_answer (r, json_out);
  else if (json_out)
    cli_print_json (r);
  else if (strcmp (op, "list") == 0)
    print_list (r);
  else if (strcmp (op, "status") == 0)
    print_status (r);
  else if (strcmp (op, "host") == 0)
    print_host (r);
  else if (strcmp (op, "cluster_hosts") == 0)
    print_cluster_hosts (r);
  else if (strcmp (op, "undrain") == 0)
    printf ("%s takes VMs again\n", argv[optind]);
  json_decref (r);
  return rc;
}

int cmd_start (int argc, char **argv) { return simple ("start", argc, argv, "vm"); }
int cmd_undefine (int argc, char **argv) { return simple ("undefine", argc, argv, "vm"); }
int
cmd_status (int argc, char **argv)
{
  /* --watch follows the VM's running migration live: the job view. */
  for (int i = 1; i < argc; ++i)
    if (strcmp (argv[i], "--watch") == 0 || strcmp (argv[i], "-w") == 0)
      return cmd_job (argc, argv);
  return simple ("status", argc, argv, "vm");
}
int cmd_abort (int argc, char **argv) { return simple ("abort", argc, argv, "vm"); }
int cmd_list (int argc, char **argv) { return simple ("list", argc, argv, NULL); }
int cmd_host (int argc, char **argv) { return simple ("host", argc, argv, NULL); }
int cmd_peers (int argc, char **argv) { return simple ("peers", argc, argv, NULL); }
int cmd_undrain (int argc, char **argv) { return simple ("undrain", argc, argv, "host"); }

/* handoff cluster hosts: fleet mode's members. */
int
cmd_cluster (int argc, char **argv)
{
  if (argc >= 2 && strcmp (argv[1], "hosts") == 0)
    return simple ("cluster_hosts", argc - 1, argv + 1, NULL);
  if (argc >= 2 && (strcmp (argv[1], "--help") == 0 ||
                    strcmp (argv[1], "-h") == 0)) {
    printf ("Usage: handoff cluster hosts [--socket PATH] [--json]\n\n%s\n\n%s",
            simple_summary ("cluster_hosts"), socket_json_help);
    return RC_OK;
  }
  return cli_fail (RC_ERROR, "expected 'handoff cluster hosts'");
}

int
cmd_event (int argc, char **argv)
{
  static const struct option opts[] = {
    { "socket", required_argument, NULL, 'S' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool json_out = false;
  json_t *payload = NULL, *req, *r;
  int c, rc;

  opterr = 0;
  while ((c = getopt_long (argc, argv, "S:jh", opts, NULL)) != -1) {
    switch (c) {
    case 'S': cli_socket_path = optarg; break;
    case 'j': json_out = true; break;
    case 'h':
      printf ("Usage: handoff event VM TYPE [JSON] [--socket PATH] "
              "[--json]\n\n"
              "Posts a management event (TYPE, with an optional JSON\n"
              "object) for VM; one posted while VM moves is held and\n"
              "delivered once, on the host that runs it at the end.\n\n"
              "%s", socket_json_help);
      return RC_OK;
    default: return cli_bad_option ("event", argv, "S:jh");
    }
  }
  cli_json = json_out;
  if (argc - optind < 2 || argc - optind > 3)
    return cli_fail (RC_ERROR, "expected VM TYPE [JSON]");
  if (argc - optind == 3) {
    json_error_t je;
    payload = json_loads (argv[optind + 2], JSON_DECODE_ANY, &je);
    if (!payload)
      return cli_fail (RC_ERROR, "the payload is not JSON: %s",
                       je.text);
  }
  req = json_pack ("{s:s, s:s, s:s}", "op", "event", "vm", argv[optind],
                   "type", argv[optind + 1]);
  if (payload)
    json_object_set_new (req, "payload", payload);
  r = cli_request (req, &rc);
  if (!r)
    return rc;
  if (json_out)
    cli_print_json (r);
  else
    printf ("event %s %s\n",
            json_string_value (json_object_get (json_object_get (r, "event"),
                                                "uid")),
            json_is_true (json_object_get (r, "queued"))
            ? "queued (the VM is migrating)" : "delivered");
  json_decref (r);
  return RC_OK;
}

int
cmd_label (int argc, char **argv)
{
  static const struct option opts[] = {
    { "socket", required_argument, NULL, 'S' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  json_t *labels, *r;
  int c, rc;

  opterr = 0;
  while ((c = getopt_long (argc, argv, "S:jh", opts, NULL)) != -1) {
    switch (c) {
    case 'S': cli_socket_path = optarg; break;
    case 'j': cli_json = true; break;
    case 'h':
      printf ("Usage: handoff label VM KEY=VALUE... [--socket PATH] "
              "[--json]\n\n"
              "Sets VM's labels (KEY= with no value removes one); they\n"
              "move with it.\n\n%s", socket_json_help);
      return RC_OK;
    default: return cli_bad_option ("label", argv, "S:jh");
    }
  }
  if (argc - optind < 2)
    return cli_fail (RC_ERROR, "expected VM KEY=VALUE...");
  labels = json_object ();
  for (int i = optind + 1; i < argc; ++i) {
    const char *eq = strchr (argv[i], '=');
    char key[200];
    if (!eq || eq == argv[i] || eq - argv[i] > 128) {
      json_decref (labels);
      return cli_fail (RC_ERROR, "%s: expected KEY=VALUE", argv[i]);
    }
    snprintf (key, sizeof key, "%.*s", (int) (eq - argv[i]), argv[i]);
    json_object_set_new (labels, key, json_string (eq + 1));
  }
  r = cli_request (json_pack ("{s:s, s:s, s:o}", "op", "label", "vm",
                              argv[optind], "labels", labels), &rc);
  if (r && cli_json)
    cli_print_json (r);
  json_decref (r);
  return rc;
}

/* handoff stop NAME [--timeout TIME] [--force]: the guest's own
 * shutdown (ACPI power button) unless --force, as virsh's shutdown and
 * destroy. */
int
cmd_stop (int argc, char **argv)
{
  static const struct option opts[] = {
    { "timeout", required_argument, NULL, 't' },
    { "force", no_argument, NULL, 'f' },
    { "socket", required_argument, NULL, 'S' },
    { "json", no_argument, NULL, 'j' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool force = false;
  uint64_t timeout_ms = 60000;
  char err[256];
  int c, rc;
  json_t *req, *r;

  opterr = 0;
  while ((c = getopt_long (argc, argv, "t:fS:jh", opts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (parse_duration_ms (optarg, &timeout_ms, err, sizeof err) == -1)
        return cli_fail (RC_ERROR, "--timeout: %s", err);
      if (timeout_ms > 600000)
        return cli_fail (RC_ERROR, "--timeout: at most 10m");
      break;
    case 'f': force = true; break;
    case 'S': cli_socket_path = optarg; break;
    case 'j': cli_json = true; break;
    case 'h':
      printf (
"Usage: handoff stop NAME [--timeout TIME] [--force] [--socket PATH] [--json]\n"
"\n"
"Presses the guest's ACPI power button and waits until it has powered\n"
"off; then stops the VM's disk and share servers.\n"
"\n"
"  -t, --timeout TIME  how long the guest may take (90s, 5m, 1.5s, 250ms;\n"
"                      bare seconds; default 60s, at most 10m); if it\n"
"                      still runs then, stop fails (exit 6), and the VM\n"
"                      runs on\n"
"  -f, --force         power off at once (QEMU quits; the guest gets no\n"
"                      say), as after a failed shutdown\n"
"%s", socket_json_help);
      return RC_OK;
    default: return cli_bad_option ("stop", argv, "t:fS:jh");
    }
  }
  if (argc - optind != 1)
    return cli_fail (RC_ERROR, "expected one VM NAME");
  req = json_pack ("{s:s, s:s, s:b, s:I}", "op", "stop", "vm", argv[optind],
                   "force", force, "timeout_ms", (json_int_t) timeout_ms);
  r = cli_request (req, &rc);
  if (!r)
    return rc;
  if (cli_json)
    cli_print_json (r);
  json_decref (r);
  return rc;
}
