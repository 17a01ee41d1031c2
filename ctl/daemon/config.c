/* handoffd: the configuration main parsed, and what every part of the
 * daemon asks of it.  See config.h. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "config.h"
#include "errors.h"
#include "log.h"
#include "names.h"
#include "uri.h"

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
  /* "PHASE:MS[,PHASE:MS...]": hold this step, so that a test can cut a
   * link between it and the next message; "~MS": a random time below
   * MS, each time (races). */
  /* Terminates: d moves past one entry each pass. */
  for (const char *d = delay; d && *d; ) {
    size_t k = strcspn (d, ",");
    if (k > n && strncmp (d, phase, n) == 0 && d[n] == ':') {
      bool random_ms = d[n + 1] == '~';
      long ms = strtol (d + n + 1 + random_ms, NULL, 10);
      unsigned int r = 0;
      if (random_ms && ms > 0 && getrandom (&r, sizeof r, 0) == sizeof r)
        ms = (long) (r % (unsigned long) ms);
      log_info ("test hook: holding %s for %ld ms", phase, ms);
      if (ms > 0 && ms < 60000)
        usleep ((useconds_t) ms * 1000);
    }
    d += k;
    if (*d == ',')
      d++;
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

/* Fleet mode's member list (cluster.c): the peers no --peer names. */
static struct hd_peer_source peer_source;

void
hd_set_peer_source (const struct hd_peer_source *src)
{
  peer_source = *src;
}

const char *
hd_peer_uri (const char *name)
{
  for (size_t i = 0; i < hd.npeers; ++i)
    if (strcmp (hd.peers[i].name, name) == 0)
      return hd.peers[i].uri;
  if (strncmp (name, "tcp://", 6) == 0)
    return name;
  return peer_source.uri ? peer_source.uri (name) : NULL;
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

int
config_add_peer (const char *arg, char *err, size_t errlen)
{
  const char *eq = strchr (arg, '=');
  struct uri u;
  char e2[256], name[NAME_HOST_MAX + 2];
  struct hd_peer *peers;

  if (!eq || eq == arg || uri_parse (eq + 1, &u, e2, sizeof e2) == -1)
    return set_error (err, errlen, "expected NAME=tcp://ADDR:PORT%s%s",
                      eq ? ": " : "", eq ? e2 : "");
  uri_free (&u);
  snprintf (name, sizeof name, "%.*s", (int) (eq - arg < NAME_HOST_MAX + 1
                                              ? eq - arg : NAME_HOST_MAX + 1),
            arg);
  if (name_check_host (name, err, errlen) == -1)
    return -1;
  peers = realloc (hd.peers, (hd.npeers + 1) * sizeof *hd.peers);
  if (!peers)
    return set_error_errno (ENOMEM, err, errlen, "out of memory");
  hd.peers = peers;
  hd.peers[hd.npeers].name = strndup (arg, (size_t) (eq - arg));
  hd.peers[hd.npeers].uri = strdup (eq + 1);
  hd.npeers++;
  return 0;
}
