/* handoffd: checks of CLI socket requests.  See request-check.h. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "def-check.h"
#include "errors.h"
#include "evacuate.h"
#include "jsonutil.h"
#include "names.h"
#include "request-check.h"
#include "transport.h"

int
request_check_hosts (const char *what, const char *list, char *err,
                     size_t errlen)
{
  char names[MAX_DESTS][NAME_HOST_MAX + 1];
  size_t n = 0;
  const char *p = list;

  /* Terminates: p moves past one name and its comma each pass. */
  for (;;) {
    size_t k = strcspn (p, ",");
    char q[96];

    if (k == 0 || k > NAME_HOST_MAX)
      return set_error (err, errlen, "%s: expected HOST[,HOST...], each "
                        "name 1 to %d bytes", what, NAME_HOST_MAX);
    if (n == MAX_DESTS)
      return set_error (err, errlen, "%s: at most %d destinations", what,
                        MAX_DESTS);
    memcpy (names[n], p, k);
    names[n][k] = '\0';
    if (name_check_host (names[n], err, errlen) == -1)
      return -1;
    for (size_t i = 0; i < n; ++i)
      if (strcmp (names[i], names[n]) == 0)
        return set_error (err, errlen, "%s names %s twice", what,
                          name_quote (names[n], q, sizeof q));
    n++;
    p += k;
    if (*p == '\0')
      return 0;
    p++;
  }
}

static int
check_vm_field (json_t *req, char *err, size_t errlen)
{
  const char *vm;

  if (msg_get_string (req, "vm", true, &vm, err, errlen) != 0)
    return -1;
  return name_check_vm (vm, err, errlen);
}

static int
check_define (json_t *req, char *err, size_t errlen)
{
  json_t *def, *objects = NULL;

  if (msg_get_object (req, "def", true, &def, err, errlen) != 0 ||
      msg_get_object (req, "objects", false, &objects, err, errlen) == -1 ||
      vm_def_check (def, err, errlen) == -1)
    return -1;
  return objects ? objects_check (objects, err, errlen) : 0;
}

static int
check_event (json_t *req, char *err, size_t errlen)
{
  const char *type;

  if (msg_get_string (req, "type", true, &type, err, errlen) != 0)
    return -1;
  return name_check_event_type (type, err, errlen);
}

/* Every label checked before any is stored: a refusal changes
 * nothing. */
static int
check_label (json_t *req, char *err, size_t errlen)
{
  json_t *labels, *v;
  const char *key;

  if (msg_get_object (req, "labels", true, &labels, err, errlen) != 0)
    return -1;
  json_object_foreach (labels, key, v) {
    if (!json_is_string (v))
      return set_error (err, errlen, "labels are KEY=VALUE strings");
    if (name_check_label_key (key, err, errlen) == -1 ||
        name_check_text ("label value", json_string_value (v),
                         NAME_LABEL_VALUE_MAX, err, errlen) == -1)
      return -1;
  }
  return 0;
}

static int
check_cutover (json_t *req, char *err, size_t errlen)
{
  const char *to = NULL;

  if (msg_get_string (req, "to", false, &to, err, errlen) == -1)
    return -1;
  return to ? request_check_hosts ("--to", to, err, errlen) : 0;
}

/* No host of LIST is in OTHER (both checked host lists). */
static int
request_check_disjoint (const char *what, const char *list, const char *other,
                        char *err, size_t errlen)
{
  /* Terminates: p moves past one name each pass. */
  for (const char *p = list; *p; ) {
    size_t k = strcspn (p, ",");
    for (const char *o = other; *o; ) {
      size_t n = strcspn (o, ",");
      if (n == k && strncmp (p, o, k) == 0)
        return set_error (err, errlen, "%s names %.*s, already a "
                          "destination", what, (int) k, p);
      o += n + (o[n] == ',');
    }
    p += k + (p[k] == ',');
  }
  return 0;
}

static int
check_migrate (json_t *req, char *err, size_t errlen)
{
  const char *to, *mode = "live", *warm_exit = "converging", *fallback = "";
  const char *cascade = "", *transport = "auto", *via = "";
  uint64_t retries = 0, max_downtime = 300, bandwidth = 0, timeout = 600;
  uint64_t shutdown_ms = 0, quorum = 0;
  bool prewarm = false, delete_source = false, follow = true;

  if (msg_get_string (req, "to", true, &to, err, errlen) != 0 ||
      msg_get_string (req, "mode", false, &mode, err, errlen) == -1 ||
      msg_get_u64 (req, "max_downtime_ms", false, &max_downtime, err,
                   errlen) == -1 ||
      msg_get_u64 (req, "bandwidth", false, &bandwidth, err, errlen) == -1 ||
      msg_get_u64 (req, "timeout_s", false, &timeout, err, errlen) == -1 ||
      msg_get_u64 (req, "shutdown_timeout_ms", false, &shutdown_ms, err,
                   errlen) == -1 ||
      msg_get_bool (req, "delete_source", false, &delete_source, err,
                    errlen) == -1 ||
      msg_get_bool (req, "prewarm", false, &prewarm, err, errlen) == -1 ||
      msg_get_bool (req, "follow", false, &follow, err, errlen) == -1 ||
      msg_get_string (req, "fallback", false, &fallback, err, errlen) == -1 ||
      msg_get_string (req, "cascade", false, &cascade, err, errlen) == -1 ||
      msg_get_string (req, "via", false, &via, err, errlen) == -1 ||
      msg_get_u64 (req, "retries", false, &retries, err, errlen) == -1 ||
      msg_get_u64 (req, "quorum", false, &quorum, err, errlen) == -1 ||
      msg_get_string (req, "transport", false, &transport, err,
                      errlen) == -1 ||
      msg_get_string (req, "warm_exit", false, &warm_exit, err,
                      errlen) == -1)
    return -1;
  bool live = strcmp (mode, "live") == 0;
  bool offline = strcmp (mode, "offline") == 0;
  if (!live && !offline && strcmp (mode, "volume") != 0)
    return set_error (err, errlen, "mode must be live, offline or volume");
  if (strcmp (warm_exit, "copied") != 0 &&
      strcmp (warm_exit, "downtime") != 0 &&
      strcmp (warm_exit, "converging") != 0)
    return set_error (err, errlen, "--warm-exit must be copied, downtime or "
                      "converging");
  if (prewarm && !live)
    return set_error (err, errlen, "--prewarm is for live migrations");
  enum transport t;
  if (transport_parse (transport, &t, err, errlen) == -1)
    return -1;
  if (t != TRANSPORT_AUTO && !live)
    return set_error (err, errlen, "--transport is for live migrations (the "
                      "RAM stream)");
  if (json_object_get (req, "quorum") && (quorum < 1 || quorum > 100))
    return set_error (err, errlen, "--quorum: a percentage, 1 to 100");
  if (quorum && !strchr (to, ','))
    return set_error (err, errlen, "--quorum is for several destinations");
  if ((fallback[0] || retries) && !live)
    return set_error (err, errlen, "--fallback and --retries are for live "
                      "migrations");
  if (cascade[0] && !live)
    return set_error (err, errlen, "--cascade is for live migrations");
  if (cascade[0] &&
      (request_check_hosts ("--cascade", cascade, err, errlen) == -1 ||
       request_check_disjoint ("--cascade", cascade, to, err, errlen) == -1))
    return -1;
  if (via[0] && !live)
    return set_error (err, errlen, "--via is for live migrations (the RAM "
                      "stream)");
  if (via[0] &&
      (strchr (via, ',') ||
       request_check_hosts ("--via", via, err, errlen) == -1 ||
       request_check_disjoint ("--via", via, to, err, errlen) == -1 ||
       (fallback[0] && request_check_disjoint ("--via", via, fallback, err,
                                               errlen) == -1)))
    return strchr (via, ',') ? set_error (err, errlen, "--via takes one "
                                          "host") : -1;
  if (retries > MIGRATE_MAX_RETRIES)
    return set_error (err, errlen, "--retries: at most %d",
                      MIGRATE_MAX_RETRIES);
  if (max_downtime < 1 || max_downtime > MIGRATE_MAX_DOWNTIME_MS ||
      timeout < MIGRATE_MIN_TIMEOUT_S || timeout > MIGRATE_MAX_TIMEOUT_S ||
      shutdown_ms > MIGRATE_MAX_SHUTDOWN_MS)
    return set_error (err, errlen, "max downtime must be 1 ms to 10 min, the "
                      "timeout 5 s to 1 day, the shutdown timeout at most "
                      "10 min");
  /* auto[:N]: fleet mode picks N hosts (migration.c). */
  unsigned long auto_n = 0;
  bool placed = strcmp (to, "auto") == 0;
  if (strncmp (to, "auto:", 5) == 0) {
    char *end;
    auto_n = strtoul (to + 5, &end, 10);
    if (to[5] < '1' || to[5] > '9' || *end || auto_n > MAX_DESTS)
      return set_error (err, errlen, "--to auto:N takes N from 1 to %d",
                        MAX_DESTS);
    placed = true;
  }
  if ((!placed && request_check_hosts ("--to", to, err, errlen) == -1) ||
      (fallback[0] &&
       request_check_hosts ("--fallback", fallback, err, errlen) == -1))
    return -1;
  if ((offline || (!live && !offline)) && auto_n > 1)
    return set_error (err, errlen, "--to auto:N: %s migration takes one "
                      "destination", offline ? "an offline" : "a volume");
  if (offline && strchr (to, ','))
    return set_error (err, errlen, "an offline migration takes one "
                      "destination");
  if (!live && !offline && strchr (to, ','))
    return set_error (err, errlen, "a volume is mounted on one host: volume "
                      "mode takes one destination");
  return 0;
}

static int
check_stop (json_t *req, char *err, size_t errlen)
{
  uint64_t timeout_ms = STOP_DEFAULT_TIMEOUT_MS;
  bool force = false;

  if (msg_get_bool (req, "force", false, &force, err, errlen) == -1 ||
      msg_get_u64 (req, "timeout_ms", false, &timeout_ms, err, errlen) == -1)
    return -1;
  if (timeout_ms > STOP_MAX_TIMEOUT_MS)
    return set_error (err, errlen, "the stop timeout is at most 10 min");
  return 0;
}

static int
check_job (json_t *req, char *err, size_t errlen)
{
  bool watch;

  return msg_get_bool (req, "watch", false, &watch, err, errlen) == -1
    ? -1 : 0;
}

/* "evacuate" and "undrain": a host name; how many VMs move at once,
 * to how many hosts each running one is copied, and each migration's
 * limits, as "migrate" takes them. */
static int
check_evacuate (json_t *req, char *err, size_t errlen)
{
  const char *host;
  uint64_t parallel = EVACUATE_DEFAULT_PARALLEL, max_downtime = 300;
  uint64_t timeout = 600, copies = 1, bandwidth = 0;

  if (msg_get_string (req, "host", true, &host, err, errlen) != 0 ||
      msg_get_u64 (req, "copies", false, &copies, err, errlen) == -1 ||
      msg_get_u64 (req, "bandwidth", false, &bandwidth, err, errlen) == -1 ||
      msg_get_u64 (req, "parallel", false, &parallel, err, errlen) == -1 ||
      msg_get_u64 (req, "max_downtime_ms", false, &max_downtime, err,
                   errlen) == -1 ||
      msg_get_u64 (req, "timeout_s", false, &timeout, err, errlen) == -1)
    return -1;
  if (name_check_host (host, err, errlen) == -1)
    return -1;
  if (parallel < 1 || parallel > EVACUATE_MAX_PARALLEL)
    return set_error (err, errlen, "--parallel takes 1 to %d",
                      EVACUATE_MAX_PARALLEL);
  if (copies < 1 || copies > MAX_DESTS)
    return set_error (err, errlen, "--copies takes 1 to %d", MAX_DESTS);
  if (max_downtime < 1 || max_downtime > MIGRATE_MAX_DOWNTIME_MS ||
      timeout < MIGRATE_MIN_TIMEOUT_S || timeout > MIGRATE_MAX_TIMEOUT_S)
    return set_error (err, errlen, "max downtime must be 1 ms to 10 min, the "
                      "timeout 5 s to 1 day");
  return 0;
}

static int
check_nothing (json_t *req, char *err, size_t errlen)
{
  (void) req;
  (void) err;
  (void) errlen;
  return 0;
}

static const struct {
  const char *op;
  bool vm;                      /* Names a VM in "vm". */
  int (*check) (json_t *req, char *err, size_t errlen);
} ops[] = {
  { "define", false, check_define },
  { "undefine", true, check_nothing },
  { "start", true, check_nothing },
  { "stop", true, check_stop },
  { "list", false, check_nothing },
  { "status", true, check_nothing },
  { "event", true, check_event },
  { "host", false, check_nothing },
  { "label", true, check_label },
  { "peers", false, check_nothing },
  { "cluster_hosts", false, check_nothing },
  { "migrate", true, check_migrate },
  { "abort", true, check_nothing },
  { "cutover", true, check_cutover },
  { "job", true, check_job },
  { "evacuate", false, check_evacuate },
  { "undrain", false, check_evacuate },
};

int
request_check (json_t *req, char *err, size_t errlen)
{
  const char *op;
  char q[80];

  if (!json_is_object (req))
    return set_error (err, errlen, "a request must be a JSON object");
  if (msg_get_string (req, "op", true, &op, err, errlen) != 0)
    return -1;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; ++i)
    if (strcmp (op, ops[i].op) == 0)
      /* A VM name is checked wherever it appears, also in a request
       * that has no use for it: no handler can then meet an unchecked
       * one. */
      return ((ops[i].vm || json_object_get (req, "vm")) &&
              check_vm_field (req, err, errlen) == -1) ||
        ops[i].check (req, err, errlen) == -1 ? -1 : 0;
  return set_error (err, errlen, "unknown op '%s'",
                    name_quote (op, q, sizeof q));
}
