/* handoffd: a client of etcd's v3 JSON gateway.  See etcd.h.
 *
 * Why etcd, and why its JSON gateway: fleet mode needs a store whose
 * ownership records no partition can duplicate, and that is consensus;
 * writing our own would be the riskiest code in the project.  etcd is
 * packaged in Debian (etcd-server), is what Kubernetes trusts with the
 * same problem, and has leases (liveness with a TTL) and multi-key
 * transactions (compare-and-swap on a revision) built in.  libdqlite
 * would put consensus inside handoffd itself, with its failure modes;
 * ZooKeeper brings a JVM to every fleet.  Debian has no C client for
 * etcd's gRPC API, and linking gRPC's C++ core into a C daemon is a
 * heavier dependency than the whole of handoffd; the JSON gateway every
 * etcd 3.4 member serves maps the same API onto HTTP POSTs, which
 * libcurl and jansson (both already in the appliance) handle.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>

#include "cleanup.h"
#include "clock.h"
#include "etcd.h"
#include "errors.h"

#define MAX_ENDPOINTS 16
/* Every call: a member that does not answer within this is taken as
 * gone.  A healthy member answers in milliseconds; one without quorum
 * holds a request until etcd's own timeout (7 s), and a migration's
 * check need not wait that long to learn there is none.  A write cut
 * short has an unknown outcome, which every caller handles. */
#define CALL_TIMEOUT_MS 4000
#define CONNECT_TIMEOUT_MS 1000
/* No answer of the gateway's is this large: a bound on memory. */
#define MAX_RESPONSE (16 << 20)

struct etcd {
  char *endpoints[MAX_ENDPOINTS];       /* HOST:PORT */
  int n;
  int cur;                              /* The member that last answered. */
  int timeout_ms;                       /* Each member's, per call. */
  bool tls;                             /* etcds://: HTTPS */
  char *ca, *cert, *key;                /* PEM files, or NULL */
};

struct etcd *
etcd_new (const char *urls, char *err, size_t errlen)
{
  CLEANUP_FREE char *copy = strdup (urls);
  struct etcd *e = calloc (1, sizeof *e);
  char *save = NULL, *tok;

  if (!copy || !e) {
    free (e);
    set_error (err, errlen, "out of memory");
    return NULL;
  }
  e->timeout_ms = CALL_TIMEOUT_MS;
  for (tok = strtok_r (copy, ",", &save); tok;
       tok = strtok_r (NULL, ",", &save)) {
    /* The first member's scheme is every member's. */
    bool tls = strncmp (tok, "etcds://", 8) == 0;
    if (tls || strncmp (tok, "etcd://", 7) == 0) {
      if (e->n > 0 && tls != e->tls) {
        set_error (err, errlen, "'%s': every member etcd:// or every one "
                   "etcds://", urls);
        goto fail;
      }
      e->tls = tls;
      tok += tls ? 8 : 7;
    }
    else if (e->n == 0) {
      set_error (err, errlen, "'%s': expected etcd://HOST:PORT[,HOST:PORT...] "
                 "or etcds://...", urls);
      goto fail;
    }
    /* Only what a host and port are made of: the string becomes part
     * of a URL. */
    if (!*tok || strspn (tok, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
        != strlen (tok) || !strchr (tok, ':')) {
      set_error (err, errlen, "'%s': not HOST:PORT", tok);
      goto fail;
    }
    if (e->n == MAX_ENDPOINTS) {
      set_error (err, errlen, "more than %d etcd members", MAX_ENDPOINTS);
      goto fail;
    }
    e->endpoints[e->n] = strdup (tok);
    if (!e->endpoints[e->n++]) {
      set_error (err, errlen, "out of memory");
      goto fail;
    }
  }
  if (e->n == 0) {
    set_error (err, errlen, "no etcd member named");
    goto fail;
  }
  return e;

 fail:
  etcd_free (e);
  return NULL;
}

void
etcd_set_timeout (struct etcd *e, int timeout_ms)
{
  e->timeout_ms = timeout_ms;
}

bool
etcd_tls (const struct etcd *e)
{
  return e->tls;
}

int
etcd_set_tls (struct etcd *e, const char *ca, const char *cert,
              const char *key, char *err, size_t errlen)
{
  const char *files[] = { ca, cert, key };
  char **slots[] = { &e->ca, &e->cert, &e->key };

  if (!e->tls && (ca || cert || key))
    return set_error (err, errlen, "a CA or client certificate is for "
                      "etcds:// members (TLS)");
  if (!cert != !key)
    return set_error (err, errlen, "a client certificate needs its key, and "
                      "a key its certificate");
  for (size_t i = 0; i < 3; ++i) {
    if (!files[i])
      continue;
    /* Now, not at the first call: a typo is a start-up error. */
    FILE *f = fopen (files[i], "r");
    if (!f)
      return set_error (err, errlen, "%s: %s", files[i], strerror (errno));
    fclose (f);
    *slots[i] = strdup (files[i]);
    if (!*slots[i])
      return set_error (err, errlen, "out of memory");
  }
  return 0;
}

void
etcd_free (struct etcd *e)
{
  if (!e)
    return;
  for (int i = 0; i < e->n; ++i)
    free (e->endpoints[i]);
  free (e->ca);
  free (e->cert);
  free (e->key);
  free (e);
}

struct body {
  char *data;
  size_t len;
};

static size_t
on_data (char *p, size_t size, size_t n, void *opaque)
{
  struct body *b = opaque;
  size_t add = size * n;
  char *d;

  if (b->len + add > MAX_RESPONSE)
    return 0;
  d = realloc (b->data, b->len + add + 1);
  if (!d)
    return 0;
  memcpy (d + b->len, p, add);
  b->data = d;
  b->len += add;
  d[b->len] = '\0';
  return add;
}

/* TLS to the members (etcds://): their certificates checked against
 * the CA (the system's by default), this host's own if given. */
static void
set_tls (const struct etcd *e, CURL *c)
{
  curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (e->ca)
    curl_easy_setopt (c, CURLOPT_CAINFO, e->ca);
  if (e->cert) {
    curl_easy_setopt (c, CURLOPT_SSLCERT, e->cert);
    curl_easy_setopt (c, CURLOPT_SSLKEY, e->key);
  }
}

/* The request surely did not reach the member: it failed before a TLS
 * session (or a connection) was there to carry it. */
static bool
not_sent (CURLcode rc)
{
  return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
    rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
    rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE;
}

/* What a failure of RC may mean, for the operator: curl's own words
 * name the symptom ("Empty reply from server"), not the likely cause. */
static const char *
hint (const struct etcd *e, CURLcode rc)
{
  /* Reached, then dropped: not a failure to connect, to resolve, to
   * trust the member or to read our own files, nor a time limit. */
  bool lost = rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST &&
    rc != CURLE_OPERATION_TIMEDOUT && rc != CURLE_PEER_FAILED_VERIFICATION &&
    rc != CURLE_SSL_CACERT_BADFILE && rc != CURLE_SSL_CERTPROBLEM &&
    rc != CURLE_OUT_OF_MEMORY;

  if (!e->tls && rc == CURLE_GOT_NOTHING)
    return " (does the member serve TLS? then name it etcds://)";
  if (e->tls && lost && !e->cert)
    return " (does the member ask for a client certificate? "
      "--cluster-cert and --cluster-key)";
  if (e->tls && lost)
    return " (did the member refuse this host's client certificate?)";
  return "";
}

/* One POST in the making or in flight to one member. */
struct request {
  CURL *c;
  struct curl_slist *hdrs;
  struct body b;
  const char *ep;
  char why[CURL_ERROR_SIZE];
};

static void
request_free (struct request *r)
{
  if (r->c)
    curl_easy_cleanup (r->c);
  curl_slist_free_all (r->hdrs);
  free (r->b.data);
  memset (r, 0, sizeof *r);
}

/* R set up to POST BODY to PATH on member EP within TIMEOUT_MS. */
static int
request_init (const struct etcd *e, struct request *r, const char *ep,
              const char *path, const char *body, int timeout_ms, char *err,
              size_t errlen)
{
  char url[512];

  memset (r, 0, sizeof *r);
  r->ep = ep;
  r->c = curl_easy_init ();
  if (!r->c)
    return set_error (err, errlen, "curl_easy_init failed");
  r->hdrs = curl_slist_append (NULL, "Content-Type: application/json");
  if (!r->hdrs) {
    request_free (r);
    return set_error (err, errlen, "out of memory");
  }
  snprintf (url, sizeof url, "%s://%s%s", e->tls ? "https" : "http", ep,
            path);
  curl_easy_setopt (r->c, CURLOPT_URL, url);
  curl_easy_setopt (r->c, CURLOPT_PROTOCOLS_STR, e->tls ? "https" : "http");
  curl_easy_setopt (r->c, CURLOPT_ERRORBUFFER, r->why);
  if (e->tls)
    set_tls (e, r->c);
  curl_easy_setopt (r->c, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt (r->c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt (r->c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt (r->c, CURLOPT_WRITEDATA, &r->b);
  curl_easy_setopt (r->c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (r->c, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
  curl_easy_setopt (r->c, CURLOPT_CONNECTTIMEOUT_MS,
                    (long) (timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms
                            : CONNECT_TIMEOUT_MS));
  return 0;
}

/* The answer of R, finished with RC: a JSON object, or NULL with err;
 * *RETRY_R says whether another member may be asked (the request
 * surely did not reach this one, or READ_ONLY). */
static json_t *
request_answer (const struct etcd *e, struct request *r, CURLcode rc,
                bool read_only, bool *retry_r, char *err, size_t errlen)
{
  long status = 0;
  json_t *resp, *fault;
  json_error_t je;

  *retry_r = read_only;
  if (rc != CURLE_OK) {
    if (not_sent (rc))
      *retry_r = true;
    set_error (err, errlen, "etcd %s: %s%s", r->ep,
               r->why[0] ? r->why : curl_easy_strerror (rc), hint (e, rc));
    return NULL;
  }
  curl_easy_getinfo (r->c, CURLINFO_RESPONSE_CODE, &status);
  resp = r->b.data ? json_loads (r->b.data, 0, &je) : NULL;
  if (!json_is_object (resp)) {
    set_error (err, errlen, "etcd %s: HTTP %ld, %s", r->ep, status,
               r->b.data ? "not a JSON object" : "no answer");
    json_decref (resp);
    return NULL;
  }
  fault = json_object_get (resp, "error");
  if (fault || status != 200) {
    /* A read may go to another member (one without a leader answers
     * "unavailable"); a write may have been applied all the same. */
    set_error (err, errlen, "etcd %s: %s", r->ep,
               json_is_string (fault) ? json_string_value (fault) : "HTTP error");
    json_decref (resp);
    return NULL;
  }
  *retry_r = false;
  return resp;
}

/* One POST to one member: its answer, or NULL with err and *RETRY_R
 * as request_answer says. */
static json_t *
post_one (const struct etcd *e, const char *ep, const char *path,
          const char *req, bool read_only, int timeout_ms, bool *retry_r,
          char *err, size_t errlen)
{
  struct request r;
  json_t *resp;

  *retry_r = read_only;
  if (request_init (e, &r, ep, path, req, timeout_ms, err, errlen) == -1)
    return NULL;
  resp = request_answer (e, &r, curl_easy_perform (r.c), read_only, retry_r,
                         err, errlen);
  request_free (&r);
  return resp;
}

/* POST REQ (consumed) to PATH on the members in turn, starting with
 * the last one that answered; each may take TIMEOUT_MS. */
static json_t *
call_within (struct etcd *e, const char *path, json_t *req, bool read_only,
             int timeout_ms, char *err, size_t errlen)
{
  CLEANUP_FREE char *body = req ? json_dumps (req, JSON_COMPACT) : NULL;
  int first = __atomic_load_n (&e->cur, __ATOMIC_RELAXED);

  json_decref (req);
  if (!body)
    return set_error (err, errlen, "out of memory"), NULL;
  char first_err[512] = "";
  for (int t = 0; t < e->n; ++t) {
    int i = (first + t) % e->n;
    bool retry;
    json_t *resp = post_one (e, e->endpoints[i], path, body, read_only,
                             timeout_ms, &retry, err, errlen);
    if (resp) {
      __atomic_store_n (&e->cur, i, __ATOMIC_RELAXED);
      return resp;
    }
    if (!retry)
      break;
    /* Say why the first member failed, and how many others did: the
     * last one's "connection refused" hides a member without quorum. */
    if (!first_err[0])
      snprintf (first_err, sizeof first_err, "%s", err);
    else {
      char last[512];
      snprintf (last, sizeof last, "%s", err);
      set_error (err, errlen, "%s; %d other member%s failed too, the last: "
                 "%s", first_err, t, t == 1 ? "" : "s", last);
    }
  }
  return NULL;
}

static json_t *
call (struct etcd *e, const char *path, json_t *req, bool read_only,
      char *err, size_t errlen)
{
  return call_within (e, path, req, read_only, e->timeout_ms, err, errlen);
}

/* The gateway writes 64-bit integers as strings. */
static int64_t
get_int (json_t *o, const char *key)
{
  json_t *v = json_object_get (o, key);

  if (json_is_string (v))
    return strtoll (json_string_value (v), NULL, 10);
  return json_integer_value (v);
}

static json_t *
b64 (const char *s)
{
  gnutls_datum_t in = { (unsigned char *) s, (unsigned) strlen (s) }, out;
  json_t *j;

  if (gnutls_base64_encode2 (&in, &out) < 0)
    return NULL;
  j = json_stringn ((const char *) out.data, out.size);
  gnutls_free (out.data);
  return j;
}

/* A base64 value of an answer as a string, or NULL. */
static char *
unb64 (json_t *v)
{
  gnutls_datum_t in, out;
  char *s;

  if (!json_is_string (v))
    return strdup ("");
  in.data = (unsigned char *) json_string_value (v);
  in.size = (unsigned) json_string_length (v);
  if (in.size == 0)
    return strdup ("");
  if (gnutls_base64_decode2 (&in, &out) < 0)
    return NULL;
  s = strndup ((const char *) out.data, out.size);
  gnutls_free (out.data);
  return s;
}

static json_t *
int_str (int64_t v)
{
  char s[32];

  snprintf (s, sizeof s, "%" PRId64, v);
  return json_string (s);
}

int
etcd_lease_grant (struct etcd *e, int ttl_s, int64_t *id_r, int *ttl_r,
                  char *err, size_t errlen)
{
  json_t *r = call (e, "/v3/lease/grant",
                    json_pack ("{s:I}", "TTL", (json_int_t) ttl_s), false,
                    err, errlen);

  if (!r)
    return -1;
  *id_r = get_int (r, "ID");
  *ttl_r = (int) get_int (r, "TTL");
  json_decref (r);
  if (*id_r == 0 || *ttl_r <= 0)
    return set_error (err, errlen, "etcd granted no lease");
  return 0;
}

/* Every member at once, for the first good answer: one that does not
 * answer (cut off, or without a leader, which holds a request for
 * seconds) costs nothing while another does, and a slow one may take
 * all of WITHIN_MS.  A member that failed is asked again a moment
 * later, so one that comes back within the time is heard. */
#define ASK_AGAIN_MS 250

struct race {
  const struct etcd *e;
  CURLM *m;
  const char *path, *body;
  int64_t end;                          /* clock_ms () */
  struct request req[MAX_ENDPOINTS];
  int64_t again[MAX_ENDPOINTS];         /* When to ask again, or 0 */
  char why[MAX_ENDPOINTS][256];         /* Each member's last failure */
};

static void
race_ask (struct race *r, int i)
{
  int64_t left = r->end - clock_ms ();

  r->again[i] = 0;
  if (left <= 0)
    return;
  if (request_init (r->e, &r->req[i], r->e->endpoints[i], r->path, r->body,
                    (int) left, r->why[i], sizeof r->why[i]) == -1)
    return;
  curl_easy_setopt (r->req[i].c, CURLOPT_PRIVATE, (char *) &r->req[i]);
  if (curl_multi_add_handle (r->m, r->req[i].c) != CURLM_OK) {
    snprintf (r->why[i], sizeof r->why[i], "etcd %s: curl_multi_add_handle "
              "failed", r->e->endpoints[i]);
    request_free (&r->req[i]);
  }
}

/* The first member's answer to BODY at PATH, or NULL with every
 * member's last failure in err. */
static json_t *
race_run (struct race *r, char *err, size_t errlen)
{
  json_t *won = NULL;

  for (int i = 0; i < r->e->n; ++i)
    race_ask (r, i);
  /* Terminates: every turn waits at most until R->end, and none asks
   * again past it. */
  while (!won) {
    int running = 0, left;
    CURLMsg *msg;

    curl_multi_perform (r->m, &running);
    while (!won && (msg = curl_multi_info_read (r->m, &left))) {
      struct request *q = NULL;
      if (msg->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &q);
      CURLcode rc = msg->data.result;
      int i = (int) (q - r->req);
      bool retry;
      curl_multi_remove_handle (r->m, q->c);
      won = request_answer (r->e, q, rc, true, &retry, r->why[i],
                            sizeof r->why[i]);
      request_free (q);
      if (!won && clock_ms () + ASK_AGAIN_MS < r->end)
        r->again[i] = clock_ms () + ASK_AGAIN_MS;
    }
    if (won)
      break;
    int64_t now = clock_ms (), wake = r->end;
    bool pending = false;
    for (int i = 0; i < r->e->n; ++i) {
      if (r->again[i] && r->again[i] <= now)
        race_ask (r, i);
      if (r->again[i] && r->again[i] < wake)
        wake = r->again[i];
      pending |= r->again[i] != 0 || r->req[i].c != NULL;
    }
    if (!pending || now >= r->end)
      break;
    curl_multi_poll (r->m, NULL, 0, (int) (wake - now), NULL);
  }
  if (!won) {
    size_t off = (size_t) snprintf (err, errlen, "no etcd member answered");
    for (int i = 0; i < r->e->n && off < errlen; ++i)
      off += (size_t) snprintf (err + off, errlen - off, "%s %s",
                                i ? ";" : ":", r->why[i][0] ? r->why[i]
                                : "no answer in time");
  }
  return won;
}

int
etcd_lease_keepalive (struct etcd *e, int64_t id, int within_ms, int *ttl_r,
                      char *err, size_t errlen)
{
  struct race r = { .e = e, .path = "/v3/lease/keepalive" };
  CLEANUP_FREE char *body = NULL;
  json_t *req = json_pack ("{s:o}", "ID", int_str (id)), *ans;

  body = req ? json_dumps (req, JSON_COMPACT) : NULL;
  json_decref (req);
  r.m = curl_multi_init ();
  if (!body || !r.m) {
    if (r.m)
      curl_multi_cleanup (r.m);
    return set_error (err, errlen, "out of memory");
  }
  r.body = body;
  r.end = clock_ms () + within_ms;
  /* A refresh only restarts the TTL: asking several members, or one
   * again, is harmless. */
  ans = race_run (&r, err, errlen);
  for (int i = 0; i < e->n; ++i)
    if (r.req[i].c) {
      curl_multi_remove_handle (r.m, r.req[i].c);
      request_free (&r.req[i]);
    }
  curl_multi_cleanup (r.m);
  if (!ans)
    return -1;
  /* Unknown to etcd: an answer without a TTL. */
  *ttl_r = (int) get_int (json_object_get (ans, "result"), "TTL");
  json_decref (ans);
  return 0;
}

int
etcd_lease_revoke (struct etcd *e, int64_t id, char *err, size_t errlen)
{
  json_t *r = call (e, "/v3/lease/revoke",
                    json_pack ("{s:o}", "ID", int_str (id)), true, err,
                    errlen);

  json_decref (r);
  return r ? 0 : -1;
}

/* One key-value of an answer as {key, value, mod_revision, lease}. */
static json_t *
kv_of (json_t *kv)
{
  CLEANUP_FREE char *k = unb64 (json_object_get (kv, "key"));
  CLEANUP_FREE char *v = unb64 (json_object_get (kv, "value"));

  if (!k || !v)
    return NULL;
  return json_pack ("{s:s, s:s, s:I, s:I}", "key", k, "value", v,
                    "mod_revision", (json_int_t) get_int (kv, "mod_revision"),
                    "lease", (json_int_t) get_int (kv, "lease"));
}

int
etcd_get (struct etcd *e, const char *key, char **value_r, int64_t *mod_rev_r,
          int64_t *lease_r, char *err, size_t errlen)
{
  json_t *r = call (e, "/v3/kv/range", json_pack ("{s:o}", "key", b64 (key)),
                    true, err, errlen);
  json_t *kv;

  if (!r)
    return -1;
  kv = json_array_get (json_object_get (r, "kvs"), 0);
  if (!kv) {
    json_decref (r);
    return 0;
  }
  if (value_r && !(*value_r = unb64 (json_object_get (kv, "value")))) {
    json_decref (r);
    return set_error (err, errlen, "etcd: a value that is not base64");
  }
  if (mod_rev_r)
    *mod_rev_r = get_int (kv, "mod_revision");
  if (lease_r)
    *lease_r = get_int (kv, "lease");
  json_decref (r);
  return 1;
}

json_t *
etcd_list (struct etcd *e, const char *prefix, char *err, size_t errlen)
{
  CLEANUP_FREE char *end = strdup (prefix);
  size_t n = strlen (prefix);
  json_t *r, *out, *kv;
  size_t i;

  /* Every key with the prefix: up to the prefix with its last byte
   * one higher (etcd's range_end). */
  if (!end || n == 0)
    return set_error (err, errlen, "out of memory"), NULL;
  end[n - 1]++;
  r = call (e, "/v3/kv/range",
            json_pack ("{s:o, s:o}", "key", b64 (prefix), "range_end",
                       b64 (end)), true, err, errlen);
  if (!r)
    return NULL;
  out = json_array ();
  json_array_foreach (json_object_get (r, "kvs"), i, kv) {
    json_t *o = kv_of (kv);
    if (o)
      json_array_append_new (out, o);
  }
  json_decref (r);
  return out;
}

int
etcd_put (struct etcd *e, const char *key, const char *value, int64_t lease,
          char *err, size_t errlen)
{
  json_t *req = json_pack ("{s:o, s:o}", "key", b64 (key), "value",
                           b64 (value));
  json_t *r;

  if (lease)
    json_object_set_new (req, "lease", int_str (lease));
  /* Putting the same value again changes nothing that matters. */
  r = call (e, "/v3/kv/put", req, true, err, errlen);
  json_decref (r);
  return r ? 0 : -1;
}

/* A transaction on KEY still at MOD_REV, doing OP ({request_put: …}
 * or {request_delete_range: …}, consumed). */
static int
txn_if (struct etcd *e, const char *key, int64_t mod_rev, json_t *op,
        char *err, size_t errlen)
{
  json_t *cmp, *r;
  bool ok;

  /* MOD_REV 0: the key does not exist, which is a create revision of
   * 0 (an absent key's mod revision compares as 0 too, but a create
   * revision cannot be faked by a write). */
  if (mod_rev == 0)
    cmp = json_pack ("{s:o, s:s, s:s, s:s}", "key", b64 (key), "target",
                     "CREATE", "result", "EQUAL", "create_revision", "0");
  else
    cmp = json_pack ("{s:o, s:s, s:s, s:o}", "key", b64 (key), "target",
                     "MOD", "result", "EQUAL", "mod_revision",
                     int_str (mod_rev));
  /* Not retried on another member: the first may have applied it. */
  r = call (e, "/v3/kv/txn",
            json_pack ("{s:[o], s:[o]}", "compare", cmp, "success", op),
            false, err, errlen);
  if (!r)
    return -1;
  ok = json_is_true (json_object_get (r, "succeeded"));
  json_decref (r);
  if (!ok)
    set_error (err, errlen, "%s changed meanwhile", key);
  return ok ? 1 : 0;
}

int
etcd_swap (struct etcd *e, const char *key, int64_t mod_rev, const char *value,
           int64_t lease, char *err, size_t errlen)
{
  json_t *put = json_pack ("{s:o, s:o}", "key", b64 (key), "value",
                           b64 (value));

  if (lease)
    json_object_set_new (put, "lease", int_str (lease));
  return txn_if (e, key, mod_rev, json_pack ("{s:o}", "request_put", put),
                 err, errlen);
}

int
etcd_delete_if (struct etcd *e, const char *key, int64_t mod_rev, char *err,
                size_t errlen)
{
  return txn_if (e, key, mod_rev,
                 json_pack ("{s:{s:o}}", "request_delete_range", "key",
                            b64 (key)), err, errlen);
}
