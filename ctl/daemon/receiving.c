/* handoffd: which VMs are being received here right now (receiving.h).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "receiving.h"

#define MAX_RECEIVING 16

static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static char active_vms[MAX_RECEIVING][65];         /* active_lock */

bool
receiving_active (const char *vm)
{
  bool r = false;

  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < MAX_RECEIVING; ++i)
    if (strcmp (active_vms[i], vm) == 0)
      r = true;
  pthread_mutex_unlock (&active_lock);
  return r;
}

int
receiving_claim (const char *vm)
{
  int rv = -1;

  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < 16 && rv == -1; ++i)
    if (strcmp (active_vms[i], vm) == 0)
      break;
  for (size_t i = 0; i < 16 && rv == -1; ++i)
    if (!active_vms[i][0]) {
      snprintf (active_vms[i], sizeof active_vms[i], "%s", vm);
      rv = 0;
    }
  pthread_mutex_unlock (&active_lock);
  return rv;
}

void
receiving_release (const char *vm)
{
  pthread_mutex_lock (&active_lock);
  for (size_t i = 0; i < 16; ++i)
    if (strcmp (active_vms[i], vm) == 0)
      active_vms[i][0] = '\0';
  pthread_mutex_unlock (&active_lock);
}
