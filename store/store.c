/*  store/store.c: the SQLite connection of replgate: opening it (pragmas, migrations from
    schema.c, every statement prepared), the statement and transaction helpers the rest of the
    store module shares (store_int.h), and the appending of hash-chained events. The writes
    are in store_write.c and store_prune.c, the reads in store_read.c; verify.c owns the
    canonical event form and store_verify's checks. The contract (schema, chain, event data)
    is in store.h.

    Invariants
    1. Every statement is prepared once in store_new and reused; no SQL text is ever built
       from values (the only multi-statement SQL is the fixed migration text).
    2. A write runs BEGIN IMMEDIATE ... COMMIT, so the chain head read inside it cannot move
       under it; 0 is returned only after COMMIT succeeded, anything else rolls back. Inside
       a group (store_group_begin) a write is a savepoint of the group's transaction instead:
       it rolls back alone, and is durable only when the group commits.
    3. Exactly one event per transition, of type = the new state; the row update is
       conditional on the state the caller saw (WHERE state = from).
    4. Large texts reach event data only as their sha256. */
#include "store/store_int.h"
#include "common/util.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------------------
//  Statements, prepared once.

//  A transition's one UPDATE: the state (?STATE_TO, with its time stamp ?STATE_AT, and
//  finished_at when ?STATE_TERMINAL) and the fields it sets (?2...), only if the row is in
//  the state the caller saw (?STATE_FROM). Numbered past every field's parameter.
#define STATE_MOVE " state = ?93," \
                   " queued_at = CASE WHEN ?93 = 'queued' THEN ?94 ELSE queued_at END," \
                   " started_at = CASE WHEN ?93 = 'running' THEN ?94 ELSE started_at END," \
                   " finished_at = CASE WHEN ?95 THEN ?94 ELSE finished_at END"
#define STATE_GUARD " WHERE id = ?1 AND state = ?92"

static const char *s_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT nested",
    [ST_RELEASE] = "RELEASE nested",
    [ST_ROLLBACK_TO] = "ROLLBACK TO nested",
    [ST_HEAD] = "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
    [ST_EVENT_ADD] = "INSERT INTO events (seq, at, request_id, type, actor, data, prev_hash, hash)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_KEY_FIND] = "SELECT id FROM requests WHERE principal = ?1 AND idem_key = ?2",
    [ST_REQUEST_ADD] = "INSERT INTO requests (principal, role, session, lang, code, code_sha256,"
                       " bind_sha256, reason, idem_key, state, submitted_at)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'received', ?10)",
    [ST_STATE_GET] = "SELECT state FROM requests WHERE id = ?1",
    [ST_STATE_SET] = "UPDATE requests SET" STATE_MOVE STATE_GUARD,
    [ST_DECISION_SET] = "UPDATE requests SET" STATE_MOVE ", rule = ?2, decision_message = ?3,"
                        " policy_sha256 = ?4, limits = ?5, review = ?6" STATE_GUARD,
    [ST_WORKER_SET] = "UPDATE requests SET" STATE_MOVE ", worker = ?2" STATE_GUARD,
    [ST_RESULT_SET] = "UPDATE requests SET" STATE_MOVE ", outcome = ?2, exit_code = ?3, signal = ?4, stdout = ?5,"
                      " stderr = ?6, stdout_truncated = ?7, stderr_truncated = ?8, value = ?9,"
                      " error_name = ?10, error_value = ?11, traceback = ?12, wall_ms = ?13,"
                      " cpu_ms = ?14, max_rss_kb = ?15, execution_count = ?16,"
                      " session_reset = ?17, sandbox = ?18, value_truncated = ?19,"
                      " error_name_truncated = ?20, error_value_truncated = ?21,"
                      " traceback_truncated = ?22, reset_reason = ?23, session_cpu_ms = ?24,"
                      " egress_connections = ?25, egress_denied = ?26, egress_bytes_out = ?27,"
                      " egress_bytes_in = ?28, stdout_sha256 = ?29, stderr_sha256 = ?30" STATE_GUARD,
    [ST_APPROVAL_ADD] = "INSERT INTO approvals (request_id, approver, via, on_behalf_of, decision,"
                        " reason, at, slack_user) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_GET] = "SELECT * FROM requests WHERE id = ?1",
    [ST_APPROVALS] = "SELECT approver, via, on_behalf_of, slack_user, decision, reason, at"
                     " FROM approvals"
                     " WHERE request_id = ?1 ORDER BY id",
    [ST_IDS] = "SELECT id FROM requests WHERE state = ?1 ORDER BY id",
    [ST_RECEIVED] = "SELECT data FROM events WHERE request_id = ?1 AND type = 'received'"
                    " ORDER BY seq LIMIT 1",
    [ST_EVENTS] = "SELECT e.seq AS seq, e.at AS at, e.request_id AS request_id, e.type AS type,"
                  " e.actor AS actor, e.data AS data, e.prev_hash AS prev_hash, e.hash AS hash,"
                  " r.principal AS owner FROM events e LEFT JOIN requests r ON r.id = e.request_id"
                  " WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
    //  The history view's rows from the base tables (query.h): a view can be redefined.
    [ST_HISTORY] = "SELECT * FROM (SELECT " QUERY_HISTORY_COLUMNS " FROM requests r WHERE "
                   QUERY_HISTORY_FILTERS " ORDER BY r.id DESC LIMIT ?6) ORDER BY id",
    [ST_PRUNE_PICK] = "SELECT id, code, stdout, stderr, value, traceback FROM requests"
                      " WHERE finished_at < ?1 AND pruned_at IS NULL AND state IN ('done',"
                      " 'denied', 'expired', 'cancelled', 'lost') ORDER BY id LIMIT ?2",
    [ST_REQUEST_EVENTS] = "SELECT seq, at, actor, data FROM events WHERE request_id = ?1"
                          " AND type = ?2 ORDER BY seq",
    [ST_PRUNE_SET] = "UPDATE requests SET code = '', stdout = NULL, stderr = NULL, value = NULL,"
                     " traceback = NULL, pruned_at = ?2 WHERE id = ?1 AND pruned_at IS NULL",
    [ST_ENTRY] = "SELECT " STORE_ENTRY_COLUMNS " FROM requests WHERE id = ?1",
};

void
store_now (char at[32])
{
    time_iso8601 (clock_wall_ms (), at, 32);
}

//  --------------------------------------------------------------------------------------
//  Statement helpers. Binding can only fail on a bug or an oversized value; the first
//  failure is kept so each call site checks once.

sqlite3_stmt *
store_stmt (store_t *self, stmt_id_t id)
{
    sqlite3_stmt *st = self->stmt[id];
    sqlite3_reset (st);             //  its code repeats the last step's error, already logged
    sqlite3_clear_bindings (st);
    return st;
}

void
store_bind_text (binder_t *b, int i, const char *text, size_t len)
{
    if (b->rc == SQLITE_OK)         //  text outlives the step: callers own it until reset
        b->rc = text ? sqlite3_bind_text64 (b->st, i, text, len, SQLITE_STATIC, SQLITE_UTF8)
                     : sqlite3_bind_null (b->st, i);
}

void
store_bind_str (binder_t *b, int i, const char *text)
{
    store_bind_text (b, i, text, text ? strlen (text) : 0);
}

void
store_bind_int (binder_t *b, int i, int64_t value)
{
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_int64 (b->st, i, value);
}

//  Binds a JSON scalar by its type (null, string, integer, real, boolean as 0/1).
void
store_bind_json (binder_t *b, int i, json_t *v)
{
    if (json_is_string (v))
        store_bind_text (b, i, json_string_value (v), json_string_length (v));
    else if (json_is_integer (v))
        store_bind_int (b, i, json_integer_value (v));
    else if (json_is_boolean (v))
        store_bind_int (b, i, json_is_true (v));
    else if (json_is_real (v) && b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_double (b->st, i, json_real_value (v));
    else if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_null (b->st, i);
}

int
store_bound (store_t *self, binder_t *b, const char *what)
{
    if (b->rc == SQLITE_OK)
        return 0;
    log_error ("store: %s: cannot bind: %s", what, sqlite3_errstr (b->rc));
    return -1;
}

//  Steps a statement that returns no rows, then resets it. 0 or -1 (logged).
int
store_run (store_t *self, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step (st);
    if (rc != SQLITE_DONE) {
        log_error ("store: %s: %s", what, sqlite3_errmsg (self->db));
        store_failed (self, rc);
    }
    sqlite3_reset (st);
    return rc == SQLITE_DONE ? 0 : -1;
}

void
store_failed (store_t *self, int rc)
{
    if (rc != SQLITE_ROW && rc != SQLITE_DONE && rc != SQLITE_OK && !self->fault)
        self->fault = rc;
}

int
store_fault (store_t *self)
{
    return self->fault;
}

void
store_busy_timeout (store_t *self, int ms)
{
    int rc = sqlite3_busy_timeout (self->db, ms);
    if (rc != SQLITE_OK)
        log_error ("store: busy_timeout on %s: %s", self->path, sqlite3_errstr (rc));
}

int
store_begin (store_t *self)
{
    if (self->group_open && sqlite3_get_autocommit (self->db)) {
        //  An error (FULL, IOERR) rolled the whole group back: a savepoint now would start a
        //  transaction of its own outside it. Nothing more is written until the group ends.
        self->fault = self->fault ? self->fault : SQLITE_ABORT;
        return -1;
    }
    self->fault = 0;
    if (!self->nested)
        return store_run (self, store_stmt (self, ST_BEGIN), "begin");
    //  Inside a group: its transaction opens with its first write (a group with nothing
    //  to write never takes the write lock), and each write is a savepoint in it.
    if (!self->group_open) {
        if (store_run (self, store_stmt (self, ST_BEGIN), "begin"))
            return -1;
        self->group_open = true;
    }
    if (store_run (self, store_stmt (self, ST_SAVEPOINT), "savepoint"))
        return -1;
    self->nested++;
    return 0;
}

//  Ends the transaction: COMMIT if rc is 0 (a failed COMMIT becomes a rollback and -1),
//  otherwise ROLLBACK. Returns rc, or -1 if the commit failed. Inside a group only the
//  savepoint ends: released, or rolled back to and released.
int
store_end (store_t *self, int rc, const char *what)
{
    if (self->nested > 1) {
        self->nested--;
        if (sqlite3_get_autocommit (self->db))      //  FULL or IOERR ended the whole group
            return -1;
        if (rc != 0)
            store_run (self, store_stmt (self, ST_ROLLBACK_TO), "rollback to");
        if (store_run (self, store_stmt (self, ST_RELEASE), what) != 0)
            rc = -1;
        return rc;
    }
    if (rc == 0 && store_run (self, store_stmt (self, ST_COMMIT), what) != 0)
        rc = -1;
    if (rc == 0)
        self->fault = 0;
    //  Some errors (SQLITE_FULL, IOERR) roll back by themselves; a second one would fail.
    if (rc != 0 && !sqlite3_get_autocommit (self->db))
        store_run (self, store_stmt (self, ST_ROLLBACK), "rollback");
    return rc;
}

int
store_group_begin (store_t *self)
{
    assert (!self->nested);
    self->nested = 1;
    self->group_open = false;
    return 0;
}

bool
store_in_group (store_t *self)
{
    return self->nested > 0;
}

int
store_group_end (store_t *self, bool commit)
{
    assert (self->nested == 1);
    self->nested = 0;
    if (!self->group_open)
        return 0;                                   //  nothing was written
    self->group_open = false;
    if (sqlite3_get_autocommit (self->db))          //  already rolled back by an error
        return -1;
    int rc = store_end (self, commit ? 0 : 1, "group");
    return commit && rc != 0 ? -1 : 0;
}

int
store_writable (store_t *self, const char *what)
{
    if (!self->readonly)
        return 0;
    log_error ("store: %s: %s is open read-only", what, self->path);
    return -1;
}

//  --------------------------------------------------------------------------------------
//  Opening: pragmas, migrations, statements.

//  Runs a pragma whose one-row answer is wanted, e.g. journal_mode. 0 or -1 (logged).
static int
s_pragma (store_t *self, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step (st);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *) sqlite3_column_text (st, 0);
        snprintf (out, size, "%s", text ? text : "");
    }
    else
        log_error ("store: %s on %s: %s", sql, self->path, sqlite3_errmsg (self->db));
    sqlite3_finalize (st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int
s_exec (store_t *self, const char *sql, const char *what)
{
    char *error = NULL;
    int rc = sqlite3_exec (self->db, sql, NULL, NULL, &error);
    if (rc == SQLITE_OK)
        return 0;
    store_failed (self, rc);
    log_error ("store: %s on %s: %s", what, self->path, error ? error : sqlite3_errmsg (self->db));
    sqlite3_free (error);
    return -1;
}

static int
s_configure (store_t *self, int flags)
{
    int rc = sqlite3_busy_timeout (self->db, 5000);
    if (rc != SQLITE_OK) {
        log_error ("store: busy_timeout on %s: %s", self->path, sqlite3_errstr (rc));
        return -1;
    }
    if (s_exec (self, "PRAGMA foreign_keys = ON", "foreign_keys"))
        return -1;
    if (self->readonly)
        return 0;           //  a reader follows whatever journal the writer chose
    char mode[16];
    //  Each transition rewrites about six pages (row, indexes, event): at SQLite's default
    //  4 KiB that was 100 KiB of WAL per snippet, all of it fsynced at the next checkpoint.
    //  1 KiB pages write a quarter of that. Only a new file takes it; others keep theirs.
    if (s_exec (self, "PRAGMA page_size = 1024", "page_size"))
        return -1;
    if (s_pragma (self, "PRAGMA journal_mode = WAL", mode, sizeof mode))
        return -1;
    if (strcmp (mode, "wal") != 0) {
        log_error ("store: %s refuses WAL mode (journal_mode stays %s)", self->path, mode);
        return -1;
    }
    //  The broker checkpoints from a thread of its own (checkpointer.h), so no request pays
    //  for copying the whole WAL back and the fsync that goes with it.
    if ((flags & STORE_MANUAL_CHECKPOINT) && s_exec (self, "PRAGMA wal_autocheckpoint = 0", "wal_autocheckpoint"))
        return -1;
    return s_exec (self, flags & STORE_SYNC_FULL ? "PRAGMA synchronous = FULL"
                                                 : "PRAGMA synchronous = NORMAL", "synchronous");
}

int
store_checkpoint (store_t *self)
{
    int frames = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        log_error ("store: checkpoint of %s: %s", self->path, sqlite3_errmsg (self->db));
        return -1;
    }
    return frames;
}

int
store_probe (store_t *self)
{
    if (store_writable (self, "probe") || store_begin (self))
        return -1;
    //  Rewriting the version it already has appends page 1 to the WAL and commits: it fails
    //  the way a real write would (locked, full, read-only) and adds nothing to the record.
    char sql[48];
    snprintf (sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
    return store_end (self, s_exec (self, sql, "probe"), "probe");
}

static int
s_version (store_t *self)
{
    char text[16];
    if (s_pragma (self, "PRAGMA user_version", text, sizeof text))
        return -1;
    int version = atoi (text);
    if (version > SCHEMA_VERSION)
        log_error ("store: %s has schema version %d, newer than this replgate knows (%d): "
                   "upgrade replgate", self->path, version, SCHEMA_VERSION);
    return version > SCHEMA_VERSION ? -1 : version;
}

//  Brings the schema to SCHEMA_VERSION in one transaction; the version is read again
//  inside it because another process may have migrated meanwhile.
static int s_foreign_keys_hold (store_t *self);

static int
s_migrate (store_t *self)
{
    int version = s_version (self);
    if (version < 0 || version == SCHEMA_VERSION)
        return version < 0 ? -1 : 0;
    if (self->readonly) {
        log_error ("store: %s has schema version %d, expected %d: %s", self->path, version,
                   SCHEMA_VERSION, version ? "start the broker once to migrate it"
                                           : "not a replgate database yet");
        return -1;
    }
    //  A migration may rebuild a table that others reference (SQLite's way of changing a
    //  constraint): foreign keys are off while it runs, and checked before its commit.
    if (s_exec (self, "PRAGMA foreign_keys = OFF", "migration")
    ||  s_exec (self, "BEGIN IMMEDIATE", "migration"))
        return -1;
    int rc = (version = s_version (self)) < 0 ? -1 : 0;
    for (int v = version; rc == 0 && v < SCHEMA_VERSION; v++)
        rc = s_exec (self, schema_migration (v), "migration");
    if (rc == 0)
        rc = s_foreign_keys_hold (self);
    if (rc == 0)
        log_info ("store: %s migrated from schema version %d to %d", self->path, version,
                  SCHEMA_VERSION);
    if (rc == 0)
        rc = s_exec (self, "COMMIT", "migration commit");
    if (rc != 0 && !sqlite3_get_autocommit (self->db))
        s_exec (self, "ROLLBACK", "migration rollback");
    if (s_exec (self, "PRAGMA foreign_keys = ON", "foreign_keys"))
        rc = -1;
    return rc;
}

//  0 if no row references a row that is not there (PRAGMA foreign_key_check is empty).
static int
s_foreign_keys_hold (store_t *self)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2 (self->db, "PRAGMA foreign_key_check", -1, &st, NULL);
    int step = rc == SQLITE_OK ? sqlite3_step (st) : rc;
    sqlite3_finalize (st);
    if (step == SQLITE_DONE)
        return 0;
    log_error ("store: %s: %s after the migration", self->path, step == SQLITE_ROW
               ? "a row references a row that is not there" : sqlite3_errmsg (self->db));
    return -1;
}

static int
s_prepare (store_t *self)
{
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3 (self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &self->stmt[i], NULL) != SQLITE_OK) {
            log_error ("store: cannot prepare \"%s\": %s", s_sql[i], sqlite3_errmsg (self->db));
            return -1;
        }
    return verify_prepare (&self->verify, self->db) || query_prepare (&self->query, self->db)
         ? -1 : 0;
}

store_t *
store_new (const char *path, int flags)
{
    assert (path);
    store_t *self = (store_t *) calloc (1, sizeof *self);
    if (!self || !(self->path = strdup (path))) {
        free (self);
        log_error ("store: out of memory");
        return NULL;
    }
    self->readonly = (flags & STORE_READONLY) != 0;
    //  A store is used by one thread at a time (the broker's loop; the checkpointer has a
    //  connection of its own): its connection needs no mutex of its own, whose lock and
    //  unlock came at every call into SQLite.
    int open = SQLITE_OPEN_NOMUTEX
             | (self->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2 (path, &self->db, open, NULL);
    if (rc != SQLITE_OK)
        log_error ("store: cannot open %s%s: %s", path, self->readonly ? " read-only" : "",
                   self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
    if (rc != SQLITE_OK || s_configure (self, flags) || s_migrate (self) || s_prepare (self))
        store_destroy (&self);
    return self;
}

void
store_destroy (store_t **self_p)
{
    assert (self_p);
    store_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize (self->stmt[i]);
    verify_finalize (&self->verify);
    query_finalize (&self->query);
    //  With every statement finalized close cannot be busy; it checkpoints the WAL.
    if (self->db && sqlite3_close (self->db) != SQLITE_OK)
        log_error ("store: closing %s: %s", self->path, sqlite3_errmsg (self->db));
    free (self->path);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------------------
//  Appending to the chain; the caller holds the write transaction.

int
store_head (store_t *self, int64_t *seq, char prev[65])
{
    sqlite3_stmt *st = store_stmt (self, ST_HEAD);
    int rc = sqlite3_step (st);
    *seq = 0;
    snprintf (prev, 65, "%s", VERIFY_GENESIS);
    if (rc == SQLITE_ROW) {
        const char *hash = (const char *) sqlite3_column_text (st, 1);
        *seq = sqlite3_column_int64 (st, 0);
        if (!hash || strlen (hash) != 64) {
            log_error ("store: the chain head (event %lld) has a malformed hash: run "
                       "`replgate verify`; refusing to extend it", (long long) *seq);
            rc = SQLITE_CORRUPT;
        }
        else
            memcpy (prev, hash, 65);
    }
    else if (rc != SQLITE_DONE) {
        log_error ("store: reading the chain head: %s", sqlite3_errmsg (self->db));
        store_failed (self, rc);
    }
    sqlite3_reset (st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
store_append (store_t *self, int64_t request_id, const char *type, const char *actor,
          json_t *data, const char *at)
{
    int64_t seq;
    char prev[65], hash[65];
    if (store_head (self, &seq, prev))
        return -1;
    seq++;
    char *text = event_data_text (data);
    if (!text || event_hash_text (prev, seq, at, request_id, type, actor, text, hash)) {
        log_error ("store: cannot hash event %lld (out of memory, or a string not UTF-8)",
                   (long long) seq);
        free (text);
        return -1;
    }
    binder_t b = { store_stmt (self, ST_EVENT_ADD), SQLITE_OK };
    store_bind_int (&b, 1, seq);
    store_bind_str (&b, 2, at);
    if (request_id)
        store_bind_int (&b, 3, request_id);
    store_bind_str (&b, 4, type);
    store_bind_str (&b, 5, actor);
    store_bind_str (&b, 6, text);
    store_bind_str (&b, 7, prev);
    store_bind_str (&b, 8, hash);
    int rc = store_bound (self, &b, "event") ? -1 : store_run (self, b.st, "appending an event");
    free (text);
    return rc;
}
