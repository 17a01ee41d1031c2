/* handoffd: the source's calls to a VM's stream helpers
 * (source-helpers.h), over their control sockets in the VM's run
 * directory; the disks' mirrors are source-mirror.c's.
 */
#include <limits.h>
#include <stdio.h>

#include "channel-proto.h"
#include "source-helpers.h"
#include "source-mirror.h"
#include "source-share.h"
#include "vm.h"

/* A helper that does not answer this soon is stuck; the caller goes
 * on without it (the mirror also drops the destination by itself
 * after its own timeout). */
#define LEAVE_CALL_MS 5000

void
source_stop_mirroring (struct migration *m, const struct dest *d)
{
  char err[512];

  for (size_t k = 0; k < m->ndisks; ++k) {
    char uri[PATH_MAX + 512];
    json_decref (source_mirror_call (m, k, json_pack (
                   "{s:s, s:s}", "op", "cancel", "destination",
                   source_disk_uri (d, k, uri, sizeof uri)), LEAVE_CALL_MS,
                                     err, sizeof err));
  }
}

void
source_leave_streams (struct migration *m, const struct dest *d)
{
  char err[256];

  /* Before its streams started there is nothing to leave. */
  if (d->slot < 0)
    return;
  /* Its file share receiver: the guest's writes to its directory wait
   * for every receiver, and this one may never answer again. */
  if (json_string_value (json_object_get (m->def, "dir")))
    json_decref (source_share_call (
                   m, json_pack ("{s:s, s:O}", "op", "drop", "to",
                                 json_object_get (d->endpoints, "share")),
                   LEAVE_CALL_MS, err, sizeof err));
  /* Its disks: a guest write mirrored to it would otherwise wait for
   * the mirror's own destination timeout. */
  if (json_is_array (json_object_get (d->endpoints, "disks")))
    source_stop_mirroring (m, d);
}

void
source_ram_result (const struct migration *m, json_t *res)
{
  json_t *ram = json_object_get (m->ram_final, "ram");
  json_t *bytes = json_object_get (ram, "transferred");
  json_t *ms = json_object_get (m->ram_final, "total-time");

  if (!json_is_integer (bytes) || !json_is_integer (ms))
    return;
  json_object_set_new (res, "ram", json_pack ("{s:O, s:O, s:s}", "bytes",
                                              bytes, "ms", ms, "over",
                                              m->ram_over));
}
