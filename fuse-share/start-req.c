/* fuse-share: the receivers of a "start" request (start-req.h). */
#include <stdio.h>
#include <string.h>

#include "start-req.h"

#define MAX_ADDRESS 255         /* What a link keeps of its address. */

int
start_req_receivers (json_t *req, struct share_receiver *rcv, size_t *n_r,
                     char *err, size_t errlen)
{
  json_t *to = json_object_get (req, "to");
  json_t *psk = json_object_get (req, "psk");
  size_t n = json_is_array (to) ? json_array_size (to) : 1;

  if (!json_is_string (to) && !json_is_array (to)) {
    snprintf (err, errlen, "\"to\": expected an address or a list of them");
    return -1;
  }
  if (n == 0 || n > SHARE_MAX_RECEIVERS) {
    snprintf (err, errlen, "\"to\": 1 to %d receivers", SHARE_MAX_RECEIVERS);
    return -1;
  }
  if (psk && !json_is_string (psk) &&
      !(json_is_array (psk) && json_is_array (to) &&
        json_array_size (psk) == n)) {
    snprintf (err, errlen, "\"psk\": expected a key file, or one per "
              "receiver");
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    json_t *t = json_is_array (to) ? json_array_get (to, i) : to;
    json_t *k = json_is_array (psk) ? json_array_get (psk, i) : psk;

    if (!json_is_string (t) || (k && !json_is_string (k))) {
      snprintf (err, errlen, "receiver %zu: expected strings", i);
      return -1;
    }
    /* A NUL inside would cut the address short without a word. */
    size_t len = json_string_length (t);
    if (len == 0 || len > MAX_ADDRESS ||
        strlen (json_string_value (t)) != len ||
        (k && strlen (json_string_value (k)) != json_string_length (k))) {
      snprintf (err, errlen, "receiver %zu: an address of 1 to %d bytes "
                "and a key file name, without NUL", i, MAX_ADDRESS);
      return -1;
    }
    rcv[i].to = json_string_value (t);
    rcv[i].psk = k ? json_string_value (k) : NULL;
    for (size_t j = 0; j < i; ++j)
      if (strcmp (rcv[j].to, rcv[i].to) == 0) {
        snprintf (err, errlen, "receiver %.256s is named twice", rcv[i].to);
        return -1;
      }
  }
  *n_r = n;
  return 0;
}
