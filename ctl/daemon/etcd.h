/* handoffd: a client of etcd's v3 JSON gateway (etcd.c), what fleet
 * mode (cluster.c) keeps its membership and ownership in.
 *
 * Every call is one HTTP POST, made with its own libcurl handle so any
 * thread may call at any time.  Keys and values are strings; the
 * gateway's base64 and string-typed integers stay inside etcd.c.
 */
#ifndef HANDOFF_CTL_ETCD_H
#define HANDOFF_CTL_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct etcd;

/* URLS: etcd://HOST:PORT[,HOST:PORT...] (plain HTTP to the members'
 * client port), or etcds://... (HTTPS).  NULL with err on a malformed
 * list. */
extern struct etcd *etcd_new (const char *urls, char *err, size_t errlen);
extern void etcd_free (struct etcd *e);
/* etcds://: the CA that signed the members' certificates (NULL: the
 * system's) and this host's certificate and key (both or neither), PEM
 * files, checked readable now.  -1 with err, also for any of them with
 * etcd:// members. */
extern int etcd_set_tls (struct etcd *e, const char *ca, const char *cert,
                         const char *key, char *err, size_t errlen);
extern bool etcd_tls (const struct etcd *e);
/* How long each member may take to answer one call (default 4 s). */
extern void etcd_set_timeout (struct etcd *e, int timeout_ms);

/* A lease of TTL_S seconds: its ID and the TTL etcd granted. */
extern int etcd_lease_grant (struct etcd *e, int ttl_s, int64_t *id_r,
                             int *ttl_r, char *err, size_t errlen);
/* Refresh lease ID, asking every member at once and each again while
 * it fails, for at most WITHIN_MS: *TTL_R is what the lease has left,
 * 0 if etcd no longer knows it (expired or revoked). */
extern int etcd_lease_keepalive (struct etcd *e, int64_t id, int within_ms,
                                 int *ttl_r, char *err, size_t errlen);
extern int etcd_lease_revoke (struct etcd *e, int64_t id, char *err,
                              size_t errlen);

/* KEY's value (malloc'd), the revision of its last change and its
 * lease (0: none).  1 found, 0 absent, -1 error. */
extern int etcd_get (struct etcd *e, const char *key, char **value_r,
                     int64_t *mod_rev_r, int64_t *lease_r, char *err,
                     size_t errlen);
/* Every key under PREFIX: an array of {key, value, mod_revision,
 * lease}, or NULL with err. */
extern json_t *etcd_list (struct etcd *e, const char *prefix, char *err,
                          size_t errlen);
/* Set KEY (under LEASE; 0: none). */
extern int etcd_put (struct etcd *e, const char *key, const char *value,
                     int64_t lease, char *err, size_t errlen);
/* One transaction: set KEY to VALUE (under LEASE) if its last change is
 * still MOD_REV (0: if it does not exist).  1 set, 0 not (the key
 * changed meanwhile), -1 error: then whether it was set is unknown. */
extern int etcd_swap (struct etcd *e, const char *key, int64_t mod_rev,
                      const char *value, int64_t lease, char *err,
                      size_t errlen);
/* Delete KEY if its last change is still MOD_REV: 1, 0, -1 as above. */
extern int etcd_delete_if (struct etcd *e, const char *key, int64_t mod_rev,
                           char *err, size_t errlen);

#endif /* HANDOFF_CTL_ETCD_H */
