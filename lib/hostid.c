/* The host component ID: reading it inside a guest, computing it on a
 * host (see hostid.h). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "errors.h"
#include "cleanup.h"
#include "hostid.h"

#define FWCFG_DIR "/sys/firmware/qemu_fw_cfg/by_name/"

/* Trim whitespace and NULs at both ends, in place. */
static void
trim (char *s)
{
  size_t n = strlen (s), i = 0;

  while (n > 0 && (isspace ((unsigned char) s[n - 1]) || s[n - 1] == '\0'))
    s[--n] = '\0';
  while (s[i] && isspace ((unsigned char) s[i]))
    i++;
  memmove (s, s + i, n - i + 1);
}

/* Read at most len-1 bytes of PATH into buf; NULs become spaces. */
static int
read_small (const char *path, char *buf, size_t len, char *err,
            size_t errlen)
{
  CLEANUP_CLOSE int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t got = 0;

  buf[0] = '\0';
  if (fd == -1)
    return set_error_errno (errno, err, errlen, "%s: %s", path,
                            strerror (errno));
  /* Terminates: end of file or a full buffer. */
  while (got < len - 1) {
    ssize_t r = read (fd, buf + got, len - 1 - got);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return set_error_errno (errno, err, errlen, "%s: %s", path,
                              strerror (errno));
    if (r == 0)
      break;
    got += (size_t) r;
  }
  for (size_t i = 0; i < got; ++i)
    if (buf[i] == '\0')
      buf[i] = ' ';
  buf[got] = '\0';
  return 0;
}

/* The first line COMMAND (through /bin/sh) prints; it must succeed. */
static int
read_cmd (const char *command, char *buf, size_t len, char *err,
          size_t errlen)
{
  int pfd[2], status;
  size_t got = 0;
  pid_t pid;

  if (pipe2 (pfd, O_CLOEXEC) == -1)
    return set_error_errno (errno, err, errlen, "pipe: %s", strerror (errno));
  pid = fork ();
  if (pid == -1) {
    close (pfd[0]);
    close (pfd[1]);
    return set_error_errno (errno, err, errlen, "fork: %s", strerror (errno));
  }
  if (pid == 0) {
    dup2 (pfd[1], STDOUT_FILENO);
    execl ("/bin/sh", "sh", "-c", command, (char *) NULL);
    _exit (127);
  }
  close (pfd[1]);
  /* Terminates: the command closes its output (exits). */
  for (;;) {
    char sink[4096];
    char *dst = got < len - 1 ? buf + got : sink;
    size_t room = got < len - 1 ? len - 1 - got : sizeof sink;
    ssize_t r = read (pfd[0], dst, room);
    if (r == -1 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    if (dst == buf + got)
      got += (size_t) r;
  }
  close (pfd[0]);
  buf[got] = '\0';
  while (waitpid (pid, &status, 0) == -1 && errno == EINTR)
    ;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    return set_error_errno (errno, err, errlen,
                            "the ID command '%.200s' failed (%s %d)", command,
                            WIFEXITED (status) ? "exit" : "signal",
                            WIFEXITED (status) ? WEXITSTATUS (status)
                            : WTERMSIG (status));
  char *nl = strchr (buf, '\n');
  if (nl)
    *nl = '\0';
  return 0;
}

static int
read_dmi (char *buf, size_t len, char *err, size_t errlen)
{
  static const char *const fields[] = {
    "sys_vendor", "product_name", "product_serial", "product_uuid",
  };
  char v[256] = "", e[256];
  size_t used = 0;
  bool any = false;

  buf[0] = '\0';
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; ++i) {
    char path[128];
    snprintf (path, sizeof path, "/sys/class/dmi/id/%s", fields[i]);
    if (read_small (path, v, sizeof v, e, sizeof e) == -1)
      v[0] = '\0';
    trim (v);
    any = any || v[0];
    int n = snprintf (buf + used, len - used, "%s%s=%s", used ? " " : "",
                      fields[i], v);
    if (n < 0 || (size_t) n >= len - used)
      break;
    used += (size_t) n;
  }
  if (!any)
    return set_error_errno (errno, err, errlen,
                            "no DMI identity in /sys/class/dmi/id "
                            "(not readable here, or not root)");
  return 0;
}

int
hostid_read (const char *spec, char *id, size_t idlen, char *err,
             size_t errlen)
{
  int r;

  if (!spec || strcmp (spec, "fwcfg") == 0) {
    r = read_small (FWCFG_DIR HOSTID_FWCFG_ID "/raw", id, idlen, err, errlen);
    if (r == -1 && access ("/sys/firmware/qemu_fw_cfg", F_OK) == -1)
      snprintf (err, errlen, "no QEMU fw_cfg in /sys/firmware (not a guest, "
                "or the qemu_fw_cfg module is not loaded)");
    else if (r == -1)
      snprintf (err, errlen, "no handoff host ID in fw_cfg (%s): this guest "
                "was not started by handoffd", HOSTID_FWCFG_ID);
  }
  else if (strcmp (spec, "dmi") == 0)
    r = read_dmi (id, idlen, err, errlen);
  else if (strncmp (spec, "file:", 5) == 0 && spec[5])
    r = read_small (spec + 5, id, idlen, err, errlen);
  else if (strncmp (spec, "cmd:", 4) == 0 && spec[4])
    r = read_cmd (spec + 4, id, idlen, err, errlen);
  else
    return set_error_errno (errno, err, errlen,
                            "unknown ID source '%.64s' (fwcfg, dmi, "
                            "file:PATH, cmd:COMMAND)", spec);
  if (r == -1)
    return -1;
  trim (id);
  if (!id[0])
    return set_error_errno (errno, err, errlen,
                            "the ID source '%.200s' gave an empty ID",
                            spec ? spec : "fwcfg");
  return 0;
}

void
hostid_fwcfg_info (char *info, size_t len)
{
  char err[256];

  if (read_small (FWCFG_DIR HOSTID_FWCFG_INFO "/raw", info, len, err,
                  sizeof err) == -1)
    info[0] = '\0';
  trim (info);
}

int
hostid_compute (const char *name, char id[HOSTID_HEX_LEN + 1],
                char info[HOSTID_INFO_LEN + 1])
{
  char machine[128] = "", dmi[1024] = "", err[256], all[2048];
  unsigned char digest[32];
  char vendor[128] = "", product[128] = "", serial[128] = "";

  if (read_small ("/etc/machine-id", machine, sizeof machine, err,
                  sizeof err) == 0)
    trim (machine);
  if (read_dmi (dmi, sizeof dmi, err, sizeof err) == -1)
    dmi[0] = '\0';
  read_small ("/sys/class/dmi/id/sys_vendor", vendor, sizeof vendor, err,
              sizeof err);
  read_small ("/sys/class/dmi/id/product_name", product, sizeof product,
              err, sizeof err);
  read_small ("/sys/class/dmi/id/product_serial", serial, sizeof serial,
              err, sizeof err);
  trim (vendor);
  trim (product);
  trim (serial);
  snprintf (all, sizeof all, "handoff-host-id-v1\n%s\n%s\n%s", name, machine,
            dmi);
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, all, strlen (all), digest) != 0)
    return -1;
  for (size_t i = 0; i < sizeof digest; ++i)
    snprintf (id + 2 * i, 3, "%02x", digest[i]);
  /* Spaces would split a value and commas QEMU's option: both '_'. */
  char *fields[] = { vendor, product, serial };
  for (size_t f = 0; f < 3; ++f)
    for (char *p = fields[f]; *p; ++p)
      if (*p == ' ' || *p == ',')
        *p = '_';
  snprintf (info, HOSTID_INFO_LEN + 1, "name=%.64s vendor=%.48s "
            "product=%.48s serial=%.48s", name, vendor[0] ? vendor : "-",
            product[0] ? product : "-", serial[0] ? serial : "-");
  size_t n = strlen (info);
  memset (info + n, ' ', HOSTID_INFO_LEN - n);
  info[HOSTID_INFO_LEN] = '\0';
  return 0;
}
