/* libFuzzer target: the edge of the peer protocol - every message a
 * peer may send (peer-check.c), the definitions in them and the checks
 * a destination adds (def-check.c), and the names of names.h. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "def-check.h"
#include "names.h"
#include "peer-check.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* A name that passed its check can be used in a path: one component,
 * never "." or "..". */
static void
name_is_a_component (const char *s)
{
  if (!s[0] || strchr (s, '/') || strcmp (s, ".") == 0 ||
      strcmp (s, "..") == 0)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char err[1024];
  json_t *msg = json_loadb ((const char *) data, size,
                            JSON_REJECT_DUPLICATES, NULL);
  json_t *boot_dirs = json_pack ("[s]", "/srv/kernels");
  const char *type, *s;

  if (!msg)
    goto out;
  /* A proxy's answer to RELAY_STREAM (the source's side): the stream
   * goes to the proxy, the key is one line. */
  if (json_is_string (json_object_get (msg, "type")) &&
      strcmp (json_string_value (json_object_get (msg, "type")),
              "RELAYING") == 0) {
    json_t *disks = json_object_get (msg, "disks"), *d;
    size_t n = json_array_size (disks), i;
    if (peer_check_relaying (msg, "10.0.0.4", n,
                             json_object_get (msg, "share") != NULL, err,
                             sizeof err) == 0) {
      if (strpbrk (json_string_value (json_object_get (msg, "key")),
                   "\r\n/") ||
          strchr (json_string_value (json_object_get (msg, "xfer")), '?'))
        abort ();
      /* The disks' exports too: on the proxy, no parameters. */
      json_array_foreach (disks, i, d)
        if (strncmp (json_string_value (d), "nbds://10.0.0.4", 15) != 0 ||
            strchr (json_string_value (d), '?'))
          abort ();
      /* And the share's pass-on. */
      d = json_object_get (msg, "share");
      if (d && (strncmp (json_string_value (d), "tcp://10.0.0.4", 14) != 0 ||
                strchr (json_string_value (d), '?')))
        abort ();
    }
    goto out;
  }
  /* The proxy's answer to SHARE (the source's side). */
  if (json_is_string (json_object_get (msg, "type")) &&
      strcmp (json_string_value (json_object_get (msg, "type")),
              "SHARED") == 0) {
    if (peer_check_shared (msg, err, sizeof err) == 0) {
      json_t *r = json_object_get (msg, "reply"), *d;
      size_t i;
      if (!json_is_string (json_object_get (r, "state")))
        abort ();
      json_array_foreach (json_object_get (r, "receivers"), i, d)
        if (!json_is_string (json_object_get (d, "state")))
          abort ();
    }
    goto out;
  }
  /* The proxy's answer to MIRROR (the source's side). */
  if (json_is_string (json_object_get (msg, "type")) &&
      strcmp (json_string_value (json_object_get (msg, "type")),
              "MIRRORED") == 0) {
    if (peer_check_mirrored (msg, err, sizeof err) == 0) {
      json_t *r = json_object_get (msg, "reply"), *d;
      size_t i;
      if (!json_is_string (json_object_get (r, "state")))
        abort ();
      json_array_foreach (json_object_get (r, "destinations"), i, d)
        if (!json_is_string (json_object_get (d, "state")))
          abort ();
    }
    goto out;
  }
  /* A destination's answer with endpoints (the source's side). */
  if (json_object_get (msg, "endpoints")) {
    peer_check_endpoints (json_object_get (msg, "endpoints"), "10.0.0.2", 1,
                          true, err, sizeof err);
    goto out;
  }
  if (peer_check_message (msg, err, sizeof err) == -1) {
    /* A refusal's reason is one printable line. */
    for (const char *c = err; *c; ++c)
      if ((unsigned char) *c < 0x20)
        abort ();
    goto out;
  }
  type = json_string_value (json_object_get (msg, "type"));
  if ((s = json_string_value (json_object_get (msg, "vm"))))
    name_is_a_component (s);
  if ((s = json_string_value (json_object_get (msg, "id"))))
    name_is_a_component (s);
  if (strcmp (type, "MANAGEMENT_STATE") == 0) {
    json_t *def = json_object_get (msg, "def");
    name_is_a_component (json_string_value (json_object_get (def, "name")));
    if (def_check_received (def, boot_dirs, err, sizeof err) == 0) {
      /* Boot files are then in the VM's directory or a boot dir. */
      const char *dir = json_string_value (json_object_get (def, "dir"));
      s = json_string_value (json_object_get (def, "kernel"));
      if (s && !(dir && path_is_beneath (s, dir)) &&
          !path_is_beneath (s, "/srv/kernels"))
        abort ();
    }
  }
  if (strcmp (type, "RELAY_STREAM") == 0) {
    /* Each key becomes one line of a key file; each address, one URI
     * the proxy adds its own parameters to. */
    json_t *d;
    size_t i;
    json_array_foreach (json_object_get (msg, "to"), i, d) {
      json_t *disk;
      size_t k;
      if (strpbrk (json_string_value (json_object_get (d, "key")), "\r\n") ||
          strchr (json_string_value (json_object_get (d, "xfer")), '?'))
        abort ();
      name_is_a_component (json_string_value (json_object_get (d, "host")));
      /* One export per disk size, each a URI without parameters. */
      if (json_array_size (json_object_get (d, "disks")) !=
          json_array_size (json_object_get (msg, "disks")))
        abort ();
      json_array_foreach (json_object_get (d, "disks"), k, disk)
        if (strchr (json_string_value (disk), '?'))
          abort ();
    }
  }
  /* The data the proxy makes room for comes with the disks. */
  if (strcmp (type, "RELAY_STREAM") == 0 &&
      json_object_get (msg, "disk_bytes") && !json_object_get (msg, "disks"))
    abort ();
  if (strcmp (type, "SHARE") == 0) {
    const char *op = json_string_value (json_object_get (msg, "op"));
    if (strcmp (op, "status") != 0 && strcmp (op, "drop") != 0)
      abort ();
    if (strcmp (op, "drop") == 0)
      name_is_a_component (json_string_value (json_object_get (msg, "host")));
  }
  if (strcmp (type, "MIRROR") == 0) {
    /* A disk the proxy may have, and a call its mirror takes. */
    const char *op = json_string_value (json_object_get (msg, "op"));
    if (json_integer_value (json_object_get (msg, "disk")) >= 8 ||
        json_integer_value (json_object_get (msg, "disk")) < 0 ||
        (strcmp (op, "status") != 0 && strcmp (op, "complete") != 0 &&
         strcmp (op, "cancel") != 0))
      abort ();
    if (strcmp (op, "cancel") == 0)
      name_is_a_component (json_string_value (json_object_get (msg, "host")));
  }
  if (strcmp (type, "VOLUME_HANDOFF") == 0) {
    json_t *disks = json_object_get (json_object_get (msg, "def"), "disks");
    if (json_array_size (json_object_get (msg, "volumes")) == 0 &&
        json_array_size (disks) > 0)
      abort ();
  }
 out:
  json_decref (boot_dirs);
  json_decref (msg);
  return 0;
}
