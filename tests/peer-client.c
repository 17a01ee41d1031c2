/* peer-client: speak the handoffd peer protocol by hand, to send bad
 * input on purpose.
 *
 *   peer-client [--cli] URI PSK-FILE MESSAGE...
 *
 * Connects over TLS with the key (PSK-FILE "-": none, for a Unix
 * socket) and sends each MESSAGE as one frame: a JSON text, or
 * "raw:TEXT" for bytes that need not be JSON.  --cli speaks to the
 * daemon's CLI service (its socket or --admin) instead of a peer's.
 * Prints each answer on a line ("<closed>" once the daemon hangs up).
 * Exits 2 if the connection is refused, else 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "channel-proto.h"
#include "log.h"

int
main (int argc, char **argv)
{
  struct chan_config cfg = {
    .service = CHAN_SERVICE_CTL, .version_min = 1, .version_max = 1,
    .timeout_ms = 20000, .max_frame = 4u << 20,
  };
  struct channel *c;

  if (argc > 1 && strcmp (argv[1], "--cli") == 0) {
    cfg.service = CHAN_SERVICE_CLI;
    argv++;
    argc--;
  }
  if (argc < 3) {
    fprintf (stderr, "usage: peer-client [--cli] URI PSK-FILE MESSAGE...\n");
    return 1;
  }
  log_set_program ("peer-client");
  cfg.psk_file = strcmp (argv[2], "-") == 0 ? NULL : argv[2];
  c = chan_connect (argv[1], &cfg);
  if (!c) {
    printf ("connect refused\n");
    return 2;
  }
  for (int i = 3; i < argc; ++i) {
    const char *m = argv[i];
    bool eof = false;
    json_t *r;
    int sent = strncmp (m, "raw:", 4) == 0
      ? chan_send (c, m + 4, strlen (m + 4))
      : chan_send (c, m, strlen (m));
    if (sent == -1) {
      printf ("<closed>\n");
      break;
    }
    r = chan_recv_json (c, 20000, &eof);
    if (!r) {
      printf ("<closed>\n");
      break;
    }
    char *s = json_dumps (r, JSON_COMPACT | JSON_SORT_KEYS);
    printf ("%s\n", s);
    free (s);
    json_decref (r);
  }
  fflush (stdout);
  chan_close (c);
  return 0;
}
