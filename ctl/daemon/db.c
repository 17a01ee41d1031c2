/* handoffd: the state database.  See db.h. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "metrics.h"

static sqlite3 *db;
static pthread_mutex_t db_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t tx_owner;
static bool in_tx;

/* Set on every open: WAL with NORMAL, so a commit survives the
 * daemon's death (the kernel has it) without an fsync per step of a
 * migration's blackout; only a power loss can take back the last
 * steps, and a power loss ends the VM on that host anyway. */
static const char pragmas[] =
  "PRAGMA journal_mode=WAL;"
  "PRAGMA synchronous=NORMAL;";

/* The schema, as steps: upgrade[V] takes a database of schema V to
 * V + 1, and PRAGMA user_version records where a database stands.
 * A state directory written before the schema had a version reads 0
 * and holds the tables of step 0 already: its statements leave them
 * as they are.  Append new steps; never edit an old one. */
static const char *const upgrade[] = {
  /* 0 -> 1: the tables. */
  "CREATE TABLE IF NOT EXISTS vms ("
  "  name TEXT PRIMARY KEY, def TEXT NOT NULL, state TEXT NOT NULL,"
  "  updated INTEGER NOT NULL);"
  "CREATE TABLE IF NOT EXISTS objects ("
  "  vm TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
  "  updated INTEGER NOT NULL, PRIMARY KEY (vm, key));"
  "CREATE TABLE IF NOT EXISTS events ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT UNIQUE NOT NULL,"
  "  vm TEXT NOT NULL, type TEXT NOT NULL, payload TEXT NOT NULL,"
  "  posted INTEGER NOT NULL, state TEXT NOT NULL, result TEXT);"
  "CREATE TABLE IF NOT EXISTS journal ("
  "  id TEXT PRIMARY KEY, vm TEXT NOT NULL, role TEXT NOT NULL,"
  "  peer TEXT NOT NULL, phase TEXT NOT NULL, detail TEXT NOT NULL,"
  "  started INTEGER NOT NULL, updated INTEGER NOT NULL, result TEXT);"
  "CREATE TABLE IF NOT EXISTS steps ("
  "  mid TEXT NOT NULL, at INTEGER NOT NULL, phase TEXT NOT NULL,"
  "  note TEXT);",
  /* 1 -> 2: a migration's steps and a VM's events are looked up by
   * migration and by VM; every migration adds steps for good. */
  "CREATE INDEX IF NOT EXISTS steps_by_migration ON steps (mid, at);"
  "CREATE INDEX IF NOT EXISTS events_by_vm ON events (vm, id);",
};
#define DB_SCHEMA ((int) (sizeof upgrade / sizeof upgrade[0]))

/* The lock is recursive for the thread inside db_begin..db_commit. */
static void
lock (void)
{
  if (in_tx && pthread_equal (tx_owner, pthread_self ()))
    return;
  pthread_mutex_lock (&db_lock);
}

static void
unlock (void)
{
  if (in_tx && pthread_equal (tx_owner, pthread_self ()))
    return;
  pthread_mutex_unlock (&db_lock);
}

/* The one integer SQL answers, in *V; 0 or -1. */
static int
query_int (const char *sql, int *v)
{
  sqlite3_stmt *st = NULL;
  int r = sqlite3_prepare_v2 (db, sql, -1, &st, NULL);

  if (r == SQLITE_OK && sqlite3_step (st) == SQLITE_ROW) {
    *v = sqlite3_column_int (st, 0);
    sqlite3_finalize (st);
    return 0;
  }
  sqlite3_finalize (st);
  return -1;
}

/* A database of a newer schema is refused before anything writes to
 * it, even a pragma: this daemon would misread it. */
static int
check_not_newer (const char *path, int *version, char *err, size_t errlen)
{
  int v;

  if (query_int ("PRAGMA user_version", &v) == -1) {
    snprintf (err, errlen, "%s: cannot read the schema version: %s", path,
              sqlite3_errmsg (db));
    return -1;
  }
  if (v > DB_SCHEMA) {
    snprintf (err, errlen, "%s: written by a newer handoffd (schema %d; "
              "this one knows up to %d): refusing to touch it", path, v,
              DB_SCHEMA);
    return -1;
  }
  *version = v;
  return 0;
}

/* Bring the database to schema DB_SCHEMA in one transaction: a crash
 * half-way leaves the old schema, whole. */
static int
upgrade_schema (const char *path, char *err, size_t errlen)
{
  char *msg = NULL, sql[64];
  int from, tables;

  if (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
    goto fail;
  if (check_not_newer (path, &from, err, errlen) == -1)
    goto rollback;
  if (query_int ("SELECT count(*) FROM sqlite_master", &tables) == -1)
    goto fail;
  for (int v = from; v < DB_SCHEMA; ++v)
    if (sqlite3_exec (db, upgrade[v], NULL, NULL, &msg) != SQLITE_OK)
      goto fail;
  snprintf (sql, sizeof sql, "PRAGMA user_version = %d", DB_SCHEMA);
  if (sqlite3_exec (db, sql, NULL, NULL, &msg) != SQLITE_OK ||
      sqlite3_exec (db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
    goto fail;
  if (tables == 0)
    log_info ("%s: new, schema %d", path, DB_SCHEMA);
  else if (from != DB_SCHEMA)
    log_info ("%s: schema %d, upgraded to %d", path, from, DB_SCHEMA);
  return 0;

 fail:
  snprintf (err, errlen, "%s: schema: %s", path, msg ? msg :
            sqlite3_errmsg (db));
  sqlite3_free (msg);
 rollback:
  sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  return -1;
}

int
db_open (const char *path, char *err, size_t errlen)
{
  char *msg = NULL;
  int version;

  if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                       SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    snprintf (err, errlen, "%s: %s", path, db ? sqlite3_errmsg (db)
              : "cannot open");
    sqlite3_close (db);
    db = NULL;
    return -1;
  }
  sqlite3_busy_timeout (db, 5000);
  if (check_not_newer (path, &version, err, errlen) == -1)
    goto close;
  if (sqlite3_exec (db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
    snprintf (err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg (db));
    sqlite3_free (msg);
    goto close;
  }
  if (upgrade_schema (path, err, errlen) == -1)
    goto close;
  return 0;

 close:
  sqlite3_close (db);
  db = NULL;
  return -1;
}

void
db_close (void)
{
  sqlite3_close (db);
  db = NULL;
}

static int
exec_simple (const char *sql)
{
  char *msg = NULL;
  int r = sqlite3_exec (db, sql, NULL, NULL, &msg);

  if (r != SQLITE_OK) {
    log_error ("database: %s: %s", sql, msg ? msg : "error");
    sqlite3_free (msg);
    return -1;
  }
  return 0;
}

void
db_begin (void)
{
  pthread_mutex_lock (&db_lock);
  tx_owner = pthread_self ();
  in_tx = true;
  exec_simple ("BEGIN IMMEDIATE");
}

int
db_commit (void)
{
  int r = exec_simple ("COMMIT");

  in_tx = false;
  pthread_mutex_unlock (&db_lock);
  return r;
}

void
db_rollback (void)
{
  exec_simple ("ROLLBACK");
  in_tx = false;
  pthread_mutex_unlock (&db_lock);
}

/* Run SQL with text/integer parameters given as a format string:
 * 's' = const char * (NULL binds NULL), 'i' = int64_t.  For each result
 * row, ROW is called.  Returns 0 or -1. */
typedef void (*row_fn) (sqlite3_stmt *st, void *opaque);

static int
run (const char *sql, row_fn row, void *opaque, const char *types, ...)
{
  sqlite3_stmt *st = NULL;
  va_list ap;
  int r, rv = 0;

  lock ();
  if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) != SQLITE_OK) {
    log_error ("database: %s: %s", sql, sqlite3_errmsg (db));
    unlock ();
    return -1;
  }
  va_start (ap, types);
  for (int i = 0; types[i]; ++i) {
    if (types[i] == 's') {
      const char *s = va_arg (ap, const char *);
      if (s)
        sqlite3_bind_text (st, i + 1, s, -1, SQLITE_TRANSIENT);
      else
        sqlite3_bind_null (st, i + 1);
    }
    else
      sqlite3_bind_int64 (st, i + 1, va_arg (ap, int64_t));
  }
  va_end (ap);
  /* Terminates: sqlite3_step returns DONE after the last row. */
  while ((r = sqlite3_step (st)) == SQLITE_ROW)
    if (row)
      row (st, opaque);
  if (r != SQLITE_DONE) {
    log_error ("database: %s: %s", sql, sqlite3_errmsg (db));
    rv = -1;
  }
  sqlite3_finalize (st);
  unlock ();
  return rv;
}

static const char *
col (sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text (st, i);
  return t ? (const char *) t : "";
}

static json_t *
parse_or_null (const char *text)
{
  json_t *j = json_loads (text, 0, NULL);
  return j ? j : json_null ();
}

/* ------------------------------------------------------------------ */
/* VMs */

static void
vm_row (sqlite3_stmt *st, void *opaque)
{
  json_t *arr = opaque;
  json_array_append_new (arr, json_pack ("{s:s, s:o, s:s, s:I}",
                                         "name", col (st, 0),
                                         "def", parse_or_null (col (st, 1)),
                                         "state", col (st, 2),
                                         "updated",
                                         (json_int_t) sqlite3_column_int64 (st, 3)));
}

json_t *
db_vm_get (const char *name)
{
  json_t *arr = json_array ();
  json_t *r = NULL;

  if (run ("SELECT name, def, state, updated FROM vms WHERE name = ?",
           vm_row, arr, "s", name) == 0 && json_array_size (arr) == 1)
    r = json_incref (json_array_get (arr, 0));
  json_decref (arr);
  return r;
}

json_t *
db_vm_list (void)
{
  json_t *arr = json_array ();

  run ("SELECT name, def, state, updated FROM vms ORDER BY name", vm_row, arr,
       "");
  return arr;
}

int
db_vm_put (const char *name, json_t *def, const char *state)
{
  char *text = json_dumps (def, JSON_COMPACT | JSON_SORT_KEYS);
  int r;

  if (!text)
    return -1;
  r = run ("INSERT INTO vms (name, def, state, updated) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (name) DO UPDATE SET def = excluded.def, "
           "state = excluded.state, updated = excluded.updated",
           NULL, NULL, "sssi", name, text, state, wall_ms ());
  free (text);
  return r;
}

int
db_vm_set_state (const char *name, const char *state)
{
  return run ("UPDATE vms SET state = ?, updated = ? WHERE name = ?", NULL,
              NULL, "sis", state, wall_ms (), name);
}

int
db_vm_delete (const char *name)
{
  if (run ("DELETE FROM objects WHERE vm = ?", NULL, NULL, "s", name) == -1)
    return -1;
  return run ("DELETE FROM vms WHERE name = ?", NULL, NULL, "s", name);
}

/* ------------------------------------------------------------------ */
/* Objects */

static void
object_row (sqlite3_stmt *st, void *opaque)
{
  json_object_set_new (opaque, col (st, 0), json_string (col (st, 1)));
}

json_t *
db_objects_get (const char *vm)
{
  json_t *o = json_object ();

  run ("SELECT key, value FROM objects WHERE vm = ? ORDER BY key", object_row,
       o, "s", vm);
  return o;
}

json_t *
db_objects_since (const char *vm, int64_t since_ms)
{
  json_t *o = json_object ();

  run ("SELECT key, value FROM objects WHERE vm = ? AND updated >= ? "
       "ORDER BY key", object_row, o, "si", vm, since_ms);
  return o;
}

int
db_object_put (const char *vm, const char *key, const char *value)
{
  return run ("INSERT INTO objects (vm, key, value, updated) "
              "VALUES (?, ?, ?, ?) ON CONFLICT (vm, key) DO UPDATE SET "
              "value = excluded.value, updated = excluded.updated",
              NULL, NULL, "sssi", vm, key, value, wall_ms ());
}

int
db_objects_replace (const char *vm, json_t *objects)
{
  const char *key;
  json_t *v;

  if (run ("DELETE FROM objects WHERE vm = ?", NULL, NULL, "s", vm) == -1)
    return -1;
  json_object_foreach (objects, key, v) {
    if (!json_is_string (v) ||
        db_object_put (vm, key, json_string_value (v)) == -1)
      return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Events */

int
db_event_add (const char *uid, const char *vm, const char *type,
              const char *payload, int64_t posted, const char *state)
{
  return run ("INSERT INTO events (uid, vm, type, payload, posted, state) "
              "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (uid) DO NOTHING",
              NULL, NULL, "ssssis", uid, vm, type, payload, posted, state);
}

static void
event_row (sqlite3_stmt *st, void *opaque)
{
  json_array_append_new (opaque, json_pack (
    "{s:s, s:s, s:s, s:o, s:I, s:s, s:s}",
    "uid", col (st, 0), "vm", col (st, 1), "type", col (st, 2),
    "payload", parse_or_null (col (st, 3)),
    "posted", (json_int_t) sqlite3_column_int64 (st, 4),
    "state", col (st, 5), "result", col (st, 6)));
}

json_t *
db_events (const char *vm, const char *state)
{
  json_t *arr = json_array ();

  if (state)
    run ("SELECT uid, vm, type, payload, posted, state, result FROM events "
         "WHERE vm = ? AND state = ? ORDER BY posted, id", event_row, arr,
         "ss", vm, state);
  else
    run ("SELECT uid, vm, type, payload, posted, state, result FROM events "
         "WHERE vm = ? ORDER BY posted, id", event_row, arr, "s", vm);
  return arr;
}

int
db_event_set_state (const char *uid, const char *state, const char *result)
{
  return run ("UPDATE events SET state = ?, result = ? WHERE uid = ?", NULL,
              NULL, "sss", state, result, uid);
}

int
db_events_delete (const char *vm)
{
  return run ("DELETE FROM events WHERE vm = ?", NULL, NULL, "s", vm);
}

/* ------------------------------------------------------------------ */
/* Journal */

int
db_journal_start (const char *id, const char *vm, const char *role,
                  const char *peer, json_t *detail)
{
  char *text = json_dumps (detail, JSON_COMPACT);
  int64_t now = wall_ms ();
  int r;

  if (!text)
    return -1;
  r = run ("INSERT INTO journal (id, vm, role, peer, phase, detail, started, "
           "updated) VALUES (?, ?, ?, ?, 'begin', ?, ?, ?)", NULL, NULL,
           "sssssii", id, vm, role, peer, text, now, now);
  free (text);
  if (r == 0)
    r = run ("INSERT INTO steps (mid, at, phase, note) VALUES (?, ?, 'begin', "
             "?)", NULL, NULL, "sis", id, now, role);
  return r;
}

int
db_journal_phase (const char *id, const char *phase, const char *note)
{
  return db_journal_phase_peer (id, phase, NULL, note);
}

int
db_journal_phase_peer (const char *id, const char *phase, const char *peer,
                       const char *note)
{
  int64_t now = wall_ms ();
  int r;

  db_begin ();
  r = run ("UPDATE journal SET phase = ?, updated = ? WHERE id = ?", NULL,
           NULL, "sis", phase, now, id);
  if (r == 0 && peer)
    r = run ("UPDATE journal SET peer = ? WHERE id = ?", NULL, NULL, "ss",
             peer, id);
  if (r == 0)
    r = run ("INSERT INTO steps (mid, at, phase, note) VALUES (?, ?, ?, ?)",
             NULL, NULL, "siss", id, now, phase, note);
  if (r == 0)
    return db_commit ();
  db_rollback ();
  return -1;
}

int
db_journal_detail (const char *id, json_t *detail)
{
  char *text = json_dumps (detail, JSON_COMPACT);
  int r;

  if (!text)
    return -1;
  r = run ("UPDATE journal SET detail = ? WHERE id = ?", NULL, NULL, "ss",
           text, id);
  free (text);
  return r;
}

int
db_journal_end (const char *id, const char *result, const char *note)
{
  int64_t now = wall_ms ();
  json_t *row = db_journal_get (id);
  const char *was = json_string_value (json_object_get (row, "result"));
  const char *role = json_string_value (json_object_get (row, "role"));
  int r;

  r = run ("UPDATE journal SET result = ?, updated = ? WHERE id = ?", NULL,
           NULL, "sis", result, now, id);
  if (r == 0)
    r = run ("INSERT INTO steps (mid, at, phase, note) VALUES (?, ?, ?, ?)",
             NULL, NULL, "siss", id, now, result, note);
  /* Counted once, at the first end (a settled doubt ends it again). */
  if (r == 0 && role && (!was || !was[0]))
    metrics_migration_ended (role, result, (double) (now - json_integer_value (
      json_object_get (row, "started"))) / 1000.0);
  json_decref (row);
  return r;
}

static void
journal_row (sqlite3_stmt *st, void *opaque)
{
  json_array_append_new (opaque, json_pack (
    "{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:s}",
    "id", col (st, 0), "vm", col (st, 1), "role", col (st, 2),
    "peer", col (st, 3), "phase", col (st, 4),
    "detail", parse_or_null (col (st, 5)),
    "started", (json_int_t) sqlite3_column_int64 (st, 6),
    "updated", (json_int_t) sqlite3_column_int64 (st, 7),
    "result", col (st, 8)));
}

static const char *
text_of (json_t *obj, const char *key)
{
  const char *s = json_string_value (json_object_get (obj, key));
  return s ? s : "";
}

struct journal_row
journal_row_read (json_t *row)
{
  struct journal_row r = {
    .id = text_of (row, "id"), .vm = text_of (row, "vm"),
    .role = text_of (row, "role"), .peer = text_of (row, "peer"),
    .phase = text_of (row, "phase"), .result = text_of (row, "result"),
    .detail = json_object_get (row, "detail"),
  };
  r.source = strcmp (r.role, "source") == 0;
  r.volume = strcmp (text_of (r.detail, "mode"), "volume") == 0;
  return r;
}

json_t *
db_journal_open (void)
{
  json_t *arr = json_array ();

  run ("SELECT id, vm, role, peer, phase, detail, started, updated, result "
       "FROM journal WHERE result IS NULL ORDER BY started", journal_row, arr,
       "");
  return arr;
}

json_t *
db_journal_last (const char *vm)
{
  json_t *arr = json_array ();
  json_t *r = NULL;

  if (run ("SELECT id, vm, role, peer, phase, detail, started, updated, "
           "result FROM journal WHERE vm = ? ORDER BY started DESC, rowid "
           "DESC LIMIT 1", journal_row, arr, "s", vm) == 0 &&
      json_array_size (arr) == 1)
    r = json_incref (json_array_get (arr, 0));
  json_decref (arr);
  return r;
}

json_t *
db_journal_get (const char *id)
{
  json_t *arr = json_array ();
  json_t *r = NULL;

  if (run ("SELECT id, vm, role, peer, phase, detail, started, updated, "
           "result FROM journal WHERE id = ?", journal_row, arr, "s",
           id) == 0 && json_array_size (arr) == 1)
    r = json_incref (json_array_get (arr, 0));
  json_decref (arr);
  return r;
}

static void
step_row (sqlite3_stmt *st, void *opaque)
{
  json_array_append_new (opaque, json_pack (
    "{s:I, s:s, s:s}", "at", (json_int_t) sqlite3_column_int64 (st, 0),
    "phase", col (st, 1), "note", col (st, 2)));
}

json_t *
db_journal_steps (const char *id)
{
  json_t *arr = json_array ();

  run ("SELECT at, phase, note FROM steps WHERE mid = ? ORDER BY at, rowid",
       step_row, arr, "s", id);
  return arr;
}
