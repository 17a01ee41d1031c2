/* handoff: what a name, an id, a key or a path from outside may be.
 *
 * One check per kind, used at every edge where such a string comes in:
 * the CLI before it sends, handoffd's CLI and admin socket, the peer
 * protocol, the mirror's and the share's control sockets.  A string
 * that passes can be used in a file name, a process argument, an SQL
 * row and a log line without further thought.  Each check returns 0, or
 * -1 with err saying what the value must be (the value itself quoted
 * with name_quote, so a hostile one cannot break the message).
 *
 * The checks are pure: no file system, no globals (the fuzzers and the
 * unit tests call them directly).
 */
#ifndef HANDOFF_NAMES_H
#define HANDOFF_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_VM_MAX 64
#define NAME_HOST_MAX 64
#define NAME_ID_MAX 79          /* Migration ids. */
#define NAME_EVENT_ID_MAX 150   /* Event uids. */
#define NAME_EVENT_TYPE_MAX 64
#define NAME_LABEL_MAX 128
#define NAME_TEXT_MAX 4096      /* Reasons. */
#define NAME_LABEL_VALUE_MAX 1024
#define NAME_HOOK_MAX 64        /* A hook: a file in the hook directory. */

/* A VM: 1-64 of letters, digits, '-', '_', '.', not starting with '-'
 * or '.' (so never "." or ".."). */
extern int name_check_vm (const char *s, char *err, size_t errlen);
/* A host (handoffd --name, a peer's "source"): the VM rule. */
extern int name_check_host (const char *s, char *err, size_t errlen);
/* A migration id or an event uid: the same characters, up to MAX. */
extern int name_check_id (const char *what, const char *s, size_t max,
                          char *err, size_t errlen);
/* An event type: 1-64 of letters, digits, '-', '_', '.', ':'. */
extern int name_check_event_type (const char *s, char *err, size_t errlen);
/* A label key: 1-128 of letters, digits, '-', '_', '.', ':', '/'. */
extern int name_check_label_key (const char *s, char *err, size_t errlen);
/* A management object's key: "policy" or "label:" + a label key. */
extern int name_check_object_key (const char *s, char *err, size_t errlen);
/* Free text kept or shown (a label's value, a reason): valid UTF-8, no
 * control characters, at most MAX bytes. */
extern int name_check_text (const char *what, const char *s, size_t max,
                            char *err, size_t errlen);

/* An absolute path in normal form: starts with '/', no empty, "." or
 * ".." component, no trailing '/', no control characters and no ','
 * (QEMU's option separator), shorter than PATH_MAX - 64. */
extern int path_check_abs (const char *what, const char *s, char *err,
                           size_t errlen);
/* One file name (a path component): not empty, ".", ".." and no '/'. */
extern int path_check_leaf (const char *what, const char *s, char *err,
                            size_t errlen);
/* The first bad component of a relative path S (LEN bytes, components
 * separated by '/'): one that is "." or "..", longer than MAX bytes,
 * or - unless ALLOW_EMPTY - empty ("a//b", a trailing '/').  Every
 * check of a path's parts goes through here. */
enum path_part { PATH_PART_OK, PATH_PART_DOT, PATH_PART_EMPTY,
                 PATH_PART_LONG };
extern enum path_part path_parts_check (const char *s, size_t len,
                                        size_t max, bool allow_empty);

/* Is PATH strictly beneath DIR, comparing the strings (both in the
 * normal form of path_check_abs)?  "/a/b" is beneath "/a", "/ab" and
 * "/a" are not. */
extern bool path_is_beneath (const char *path, const char *dir);

/* S made fit for a message: printable ASCII kept, anything else as
 * \xNN, cut to fit LEN (with "..." when cut).  Returns BUF. */
extern const char *name_quote (const char *s, char *buf, size_t len);
/* Replace control characters and invalid UTF-8 in S with '?', in
 * place (a log line stays one line and valid JSON). */
extern void text_sanitize (char *s);

#endif /* HANDOFF_NAMES_H */
