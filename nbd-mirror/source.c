/* nbd-mirror: the local disk, through the plugin context the copier
 * and verification read (source.h).  Opened from a background thread
 * after nbdkit's fork (.after_fork).
 */
#include <errno.h>
#include <pthread.h>

#include "log.h"
#include "source.h"

int
source_open (struct mirror *m)
{
  nbdkit_next *ctx;
  int64_t size;

  ctx = nbdkit_next_context_open (m->backend, 0, "", 1);
  if (!ctx) {
    log_error ("cannot open a context into the plugin");
    return -1;
  }
  if (ctx->prepare (ctx) == -1) {
    nbdkit_next_context_close (ctx);
    log_error ("cannot prepare the plugin context");
    return -1;
  }
  size = ctx->get_size (ctx);
  if (size < 0 || ctx->can_write (ctx) == -1) {
    ctx->finalize (ctx);
    nbdkit_next_context_close (ctx);
    log_error ("cannot query the plugin");
    return -1;
  }
  m->size = (uint64_t) size;
  m->ctx_can_extents = ctx->can_extents (ctx) == 1;
  m->ctx_can_zero = ctx->can_zero (ctx) > NBDKIT_ZERO_NONE;
  m->ctx = ctx;
  return 0;
}

void
source_close (struct mirror *m)
{
  if (m->ctx) {
    m->ctx->finalize (m->ctx);
    nbdkit_next_context_close (m->ctx);
    m->ctx = NULL;
  }
}

int
source_pread (struct mirror *m, void *buf, uint32_t count, uint64_t offset,
              int *err)
{
  int r;

  if (m->ctx_parallel)
    return m->ctx->pread (m->ctx, buf, count, offset, 0, err);
  pthread_mutex_lock (&m->ctx_lock);
  r = m->ctx->pread (m->ctx, buf, count, offset, 0, err);
  pthread_mutex_unlock (&m->ctx_lock);
  return r;
}

/* Extents of [offset, offset+count), or *exts_r = NULL when the plugin
 * cannot tell (then everything counts as data). */
int
source_extents (struct mirror *m, uint32_t count, uint64_t offset,
                    struct nbdkit_extents **exts_r, int *err)
{
  struct nbdkit_extents *e;
  int r;

  *exts_r = NULL;
  if (!m->ctx_can_extents)
    return 0;
  e = nbdkit_extents_new (offset, m->size);
  if (!e) {
    *err = errno;
    return -1;
  }
  if (!m->ctx_parallel)
    pthread_mutex_lock (&m->ctx_lock);
  r = m->ctx->extents (m->ctx, count, offset, 0, e, err);
  if (!m->ctx_parallel)
    pthread_mutex_unlock (&m->ctx_lock);
  if (r == -1) {
    nbdkit_extents_free (e);
    return -1;
  }
  *exts_r = e;
  return 0;
}
