/*  common/store.c: the SQLite connection of replgate and every write to it: schema and its
    migrations, submissions, state transitions, approvals and the appending of hash-chained
    events, plus the read queries of the broker and the CLI. verify.c owns the canonical event
    form and store_verify's checks. The contract (schema, chain, event data) is in store.h.

    Invariants
    1. Every statement is prepared once in store_new and reused; no SQL text is ever built
       from values (the only multi-statement SQL is the fixed migration text).
    2. A write runs BEGIN IMMEDIATE ... COMMIT, so the chain head read inside it cannot move
       under it; 0 is returned only after COMMIT succeeded, anything else rolls back.
    3. Exactly one event per transition, of type = the new state; the row update is
       conditional on the state the caller saw (WHERE state = from).
    4. Large texts reach event data only as their sha256. */
#include "common/store.h"
#include "common/verify.h"
#include "common/schema.h"
#include "common/query.h"
#include "common/check.h"
#include "common/util.h"
#include <assert.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCHEMA_VERSION (schema_version ())

//  --------------------------------------------------------------------------------------
//  Statements, prepared once.

typedef enum {
    ST_BEGIN, ST_BEGIN_READ, ST_COMMIT, ST_ROLLBACK, ST_HEAD, ST_EVENT_ADD, ST_KEY_FIND,
    ST_REQUEST_ADD, ST_STATE_GET, ST_STATE_SET, ST_DECISION_SET, ST_WORKER_SET, ST_RESULT_SET,
    ST_APPROVAL_ADD, ST_GET, ST_APPROVALS, ST_IDS, ST_EVENTS, ST_HISTORY, ST_PRUNE_PICK,
    ST_PRUNE_SET, ST_COUNT
} stmt_id_t;

static const char *s_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_HEAD] = "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
    [ST_EVENT_ADD] = "INSERT INTO events (seq, at, request_id, type, actor, data, prev_hash, hash)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_KEY_FIND] = "SELECT id FROM requests WHERE principal = ?1 AND idem_key = ?2",
    [ST_REQUEST_ADD] = "INSERT INTO requests (principal, role, session, lang, code, code_sha256,"
                       " bind_sha256, reason, idem_key, state, submitted_at)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'received', ?10)",
    [ST_STATE_GET] = "SELECT state FROM requests WHERE id = ?1",
    [ST_STATE_SET] = "UPDATE requests SET state = ?3,"
                     " queued_at = CASE WHEN ?3 = 'queued' THEN ?4 ELSE queued_at END,"
                     " started_at = CASE WHEN ?3 = 'running' THEN ?4 ELSE started_at END,"
                     " finished_at = CASE WHEN ?3 IN ('done', 'denied', 'expired', 'cancelled',"
                     " 'lost') THEN ?4 ELSE finished_at END WHERE id = ?1 AND state = ?2",
    [ST_DECISION_SET] = "UPDATE requests SET rule = ?2, decision_message = ?3, policy_sha256 = ?4,"
                        " limits = ?5, review = ?6 WHERE id = ?1",
    [ST_WORKER_SET] = "UPDATE requests SET worker = ?2 WHERE id = ?1",
    [ST_RESULT_SET] = "UPDATE requests SET outcome = ?2, exit_code = ?3, signal = ?4, stdout = ?5,"
                      " stderr = ?6, stdout_truncated = ?7, stderr_truncated = ?8, value = ?9,"
                      " error_name = ?10, error_value = ?11, traceback = ?12, wall_ms = ?13,"
                      " cpu_ms = ?14, max_rss_kb = ?15, execution_count = ?16,"
                      " session_reset = ?17, sandbox = ?18, stdout_sha256 = ?19,"
                      " stderr_sha256 = ?20 WHERE id = ?1",
    [ST_APPROVAL_ADD] = "INSERT INTO approvals (request_id, approver, via, on_behalf_of, decision,"
                        " reason, at, slack_user) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_GET] = "SELECT * FROM requests WHERE id = ?1",
    [ST_APPROVALS] = "SELECT approver, via, on_behalf_of, slack_user, decision, reason, at"
                     " FROM approvals"
                     " WHERE request_id = ?1 ORDER BY id",
    [ST_IDS] = "SELECT id FROM requests WHERE state = ?1 ORDER BY id",
    [ST_EVENTS] = "SELECT seq, at, request_id, type, actor, data, prev_hash, hash FROM events"
                  " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [ST_HISTORY] = "SELECT * FROM (SELECT * FROM history WHERE (?1 IS NULL OR principal = ?1)"
                   " AND (?2 IS NULL OR session = ?2) AND (?3 IS NULL OR state = ?3)"
                   " AND (?4 IS NULL OR submitted_at >= ?4) AND (?5 IS NULL OR submitted_at < ?5)"
                   " ORDER BY id DESC LIMIT ?6) ORDER BY id",
    [ST_PRUNE_PICK] = "SELECT id, code, stdout, stderr, value, traceback FROM requests"
                      " WHERE finished_at < ?1 AND pruned_at IS NULL AND state IN ('done',"
                      " 'denied', 'expired', 'cancelled', 'lost') ORDER BY id LIMIT ?2",
    [ST_PRUNE_SET] = "UPDATE requests SET code = '', stdout = NULL, stderr = NULL, value = NULL,"
                     " traceback = NULL, pruned_at = ?2 WHERE id = ?1 AND pruned_at IS NULL",
};

struct _store_t {
    sqlite3 *db;
    char *path;
    bool readonly;
    sqlite3_stmt *stmt[ST_COUNT];
    verify_t verify;
    query_t query;
};

//  Fields a transition may set, in the order of their statement's parameters (?2, ?3, ...).
typedef enum { F_TEXT, F_INT, F_REAL, F_BOOL, F_SCALAR, F_JSON } field_kind_t;
static const char *s_kind_name[] = { "a string", "an integer", "a number", "a boolean",
                                     "a string or an integer", "an object" };
typedef struct {
    const char *name;
    field_kind_t kind;
    bool large;         //  recorded in the event as <name>_sha256 only
    int sha_param;      //  parameter of its <name>_sha256 column, 0 if none
} field_t;

//  received -> denied sets the first 3, -> queued also limits, -> pending_approval all 5.
static const field_t s_decision_fields[] = {
    { "rule", F_TEXT, false, 0 }, { "decision_message", F_TEXT, false, 0 },
    { "policy_sha256", F_TEXT, false, 0 }, { "limits", F_JSON, false, 0 },
    { "review", F_JSON, false, 0 },
};
static const field_t s_worker_fields[] = { { "worker", F_TEXT, false, 0 } };
static const field_t s_result_fields[] = {
    { "outcome", F_TEXT, false, 0 }, { "exit_code", F_INT, false, 0 },
    { "signal", F_SCALAR, false, 0 }, { "stdout", F_TEXT, true, 19 },
    { "stderr", F_TEXT, true, 20 }, { "stdout_truncated", F_BOOL, false, 0 },
    { "stderr_truncated", F_BOOL, false, 0 }, { "value", F_TEXT, true, 0 },
    { "error_name", F_TEXT, false, 0 }, { "error_value", F_TEXT, false, 0 },
    { "traceback", F_TEXT, true, 0 }, { "wall_ms", F_REAL, false, 0 },
    { "cpu_ms", F_REAL, false, 0 }, { "max_rss_kb", F_INT, false, 0 },
    { "execution_count", F_INT, false, 0 }, { "session_reset", F_BOOL, false, 0 },
    { "sandbox", F_TEXT, false, 0 },
};
#define COUNT(a) (sizeof (a) / sizeof (a)[0])

static const char *s_edges[][2] = {
    { "received", "pending_approval" }, { "received", "queued" }, { "received", "denied" },
    { "pending_approval", "queued" }, { "pending_approval", "denied" },
    { "pending_approval", "expired" }, { "pending_approval", "cancelled" },
    { "queued", "running" }, { "queued", "cancelled" },
    { "running", "done" }, { "running", "lost" },
};

static bool
s_streq (const char *a, const char *b)
{
    return a && b && strcmp (a, b) == 0;
}

static void
s_now (char at[32])
{
    time_iso8601 (clock_wall_ms (), at, 32);
}

//  --------------------------------------------------------------------------------------
//  Statement helpers. Binding can only fail on a bug or an oversized value; the first
//  failure is kept so each call site checks once.

typedef struct { sqlite3_stmt *st; int rc; } binder_t;

static sqlite3_stmt *
s_stmt (store_t *self, stmt_id_t id)
{
    sqlite3_stmt *st = self->stmt[id];
    sqlite3_reset (st);             //  its code repeats the last step's error, already logged
    sqlite3_clear_bindings (st);
    return st;
}

static void
s_bind_text (binder_t *b, int i, const char *text, size_t len)
{
    if (b->rc == SQLITE_OK)         //  text outlives the step: callers own it until reset
        b->rc = text ? sqlite3_bind_text64 (b->st, i, text, len, SQLITE_STATIC, SQLITE_UTF8)
                     : sqlite3_bind_null (b->st, i);
}

static void
s_bind_str (binder_t *b, int i, const char *text)
{
    s_bind_text (b, i, text, text ? strlen (text) : 0);
}

static void
s_bind_int (binder_t *b, int i, int64_t value)
{
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_int64 (b->st, i, value);
}

//  Binds a JSON scalar by its type (null, string, integer, real, boolean as 0/1).
static void
s_bind_json (binder_t *b, int i, json_t *v)
{
    if (json_is_string (v))
        s_bind_text (b, i, json_string_value (v), json_string_length (v));
    else if (json_is_integer (v))
        s_bind_int (b, i, json_integer_value (v));
    else if (json_is_boolean (v))
        s_bind_int (b, i, json_is_true (v));
    else if (json_is_real (v) && b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_double (b->st, i, json_real_value (v));
    else if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_null (b->st, i);
}

static int
s_bound (store_t *self, binder_t *b, const char *what)
{
    if (b->rc == SQLITE_OK)
        return 0;
    log_error ("store: %s: cannot bind: %s", what, sqlite3_errstr (b->rc));
    return -1;
}

//  Steps a statement that returns no rows, then resets it. 0 or -1 (logged).
static int
s_run (store_t *self, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step (st);
    if (rc != SQLITE_DONE)
        log_error ("store: %s: %s", what, sqlite3_errmsg (self->db));
    sqlite3_reset (st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int
s_begin (store_t *self)
{
    return s_run (self, s_stmt (self, ST_BEGIN), "begin");
}

//  Ends the transaction: COMMIT if rc is 0 (a failed COMMIT becomes a rollback and -1),
//  otherwise ROLLBACK. Returns rc, or -1 if the commit failed.
static int
s_end (store_t *self, int rc, const char *what)
{
    if (rc == 0 && s_run (self, s_stmt (self, ST_COMMIT), what) != 0)
        rc = -1;
    //  Some errors (SQLITE_FULL, IOERR) roll back by themselves; a second one would fail.
    if (rc != 0 && !sqlite3_get_autocommit (self->db))
        s_run (self, s_stmt (self, ST_ROLLBACK), "rollback");
    return rc;
}

static int
s_writable (store_t *self, const char *what)
{
    if (!self->readonly)
        return 0;
    log_error ("store: %s: %s is open read-only", what, self->path);
    return -1;
}

//  --------------------------------------------------------------------------------------
//  Rows as JSON.

static bool
s_is_bool_column (const char *name)
{
    return s_streq (name, "stdout_truncated") || s_streq (name, "stderr_truncated")
        || s_streq (name, "session_reset");
}

//  review and limits hold JSON objects as text; read as objects, except raw (verify compares
//  the text itself with the canonical form of what the events recorded).
static bool
s_is_json_column (const char *name)
{
    return s_streq (name, "review") || s_streq (name, "limits");
}

static json_t *
s_json_text (const char *text, size_t len, const char *name)
{
    json_error_t error;
    json_t *v = json_loadb (text, len, 0, &error);
    if (!v)
        log_warn ("store: column %s is not JSON, shown as null", name);
    return v ? v : json_null ();
}

static json_t *
s_column_json (sqlite3_stmt *st, int i, const char *name, bool raw)
{
    switch (sqlite3_column_type (st, i)) {
        case SQLITE_INTEGER: {
            sqlite3_int64 v = sqlite3_column_int64 (st, i);
            if (s_is_bool_column (name) && (v == 0 || v == 1))
                return json_boolean (v);
            return json_integer (v);
        }
        case SQLITE_FLOAT:
            return json_real (sqlite3_column_double (st, i));
        case SQLITE_TEXT:
        case SQLITE_BLOB: {
            const char *text = (const char *) sqlite3_column_text (st, i);
            size_t len = (size_t) sqlite3_column_bytes (st, i);
            if (text && !raw && s_is_json_column (name))
                return s_json_text (text, len, name);
            json_t *v = !text ? NULL : raw ? json_stringn_nocheck (text, len)
                                           : json_stringn (text, len);
            if (!v && text)
                log_warn ("store: column %s is not valid UTF-8, shown as null", name);
            return v ? v : json_null ();
        }
        default:
            return json_null ();
    }
}

json_t *
store_row_json (sqlite3_stmt *st, bool raw)
{
    json_t *row = json_object ();
    int columns = sqlite3_column_count (st);
    for (int i = 0; row && i < columns; i++) {
        const char *name = sqlite3_column_name (st, i);
        if (!name || json_object_set_new (row, name, s_column_json (st, i, name, raw)) != 0) {
            log_error ("store: out of memory reading a row");
            json_decref (row);
            row = NULL;
        }
    }
    return row;
}

//  Steps st to its end, appending each row (as store_row_json) to a new array; resets st.
static json_t *
s_rows (store_t *self, sqlite3_stmt *st, const char *what)
{
    json_t *rows = json_array ();
    int rc;
    while (rows && (rc = sqlite3_step (st)) == SQLITE_ROW)
        if (json_array_append_new (rows, store_row_json (st, false)) != 0) {
            json_decref (rows);
            rows = NULL;
        }
    if (rows && rc != SQLITE_DONE) {
        log_error ("store: %s: %s", what, sqlite3_errmsg (self->db));
        json_decref (rows);
        rows = NULL;
    }
    sqlite3_reset (st);
    return rows;
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
    if (sqlite3_exec (self->db, sql, NULL, NULL, &error) == SQLITE_OK)
        return 0;
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
    if (s_pragma (self, "PRAGMA journal_mode = WAL", mode, sizeof mode))
        return -1;
    if (strcmp (mode, "wal") != 0) {
        log_error ("store: %s refuses WAL mode (journal_mode stays %s)", self->path, mode);
        return -1;
    }
    //  The broker checkpoints from its timer (store_checkpoint), so no request pays for
    //  copying the WAL back and the fsync that goes with it.
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
    if (s_exec (self, "BEGIN IMMEDIATE", "migration"))
        return -1;
    int rc = (version = s_version (self)) < 0 ? -1 : 0;
    for (int v = version; rc == 0 && v < SCHEMA_VERSION; v++)
        rc = s_exec (self, schema_migration (v), "migration");
    if (rc == 0)
        log_info ("store: %s migrated from schema version %d to %d", self->path, version,
                  SCHEMA_VERSION);
    if (rc == 0)
        rc = s_exec (self, "COMMIT", "migration commit");
    if (rc != 0 && !sqlite3_get_autocommit (self->db))
        s_exec (self, "ROLLBACK", "migration rollback");
    return rc;
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
    int open = self->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
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

static int
s_head (store_t *self, int64_t *seq, char prev[65])
{
    sqlite3_stmt *st = s_stmt (self, ST_HEAD);
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
    else if (rc != SQLITE_DONE)
        log_error ("store: reading the chain head: %s", sqlite3_errmsg (self->db));
    sqlite3_reset (st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int
s_append (store_t *self, int64_t request_id, const char *type, const char *actor,
          json_t *data, const char *at)
{
    int64_t seq;
    char prev[65], hash[65];
    if (s_head (self, &seq, prev))
        return -1;
    seq++;
    char *text = event_data_text (data);
    if (!text || event_hash (prev, seq, at, request_id, type, actor, data, hash)) {
        log_error ("store: out of memory hashing event %lld", (long long) seq);
        free (text);
        return -1;
    }
    binder_t b = { s_stmt (self, ST_EVENT_ADD), SQLITE_OK };
    s_bind_int (&b, 1, seq);
    s_bind_str (&b, 2, at);
    if (request_id)
        s_bind_int (&b, 3, request_id);
    s_bind_str (&b, 4, type);
    s_bind_str (&b, 5, actor);
    s_bind_str (&b, 6, text);
    s_bind_str (&b, 7, prev);
    s_bind_str (&b, 8, hash);
    int rc = s_bound (self, &b, "event") ? -1 : s_run (self, b.st, "appending an event");
    free (text);
    return rc;
}

//  --------------------------------------------------------------------------------------
//  Submissions.

static const char *
s_required (json_t *req, const char *key)
{
    const char *value = json_string_value (json_object_get (req, key));
    if (!value)
        log_error ("store: submit: '%s' must be a string", key);
    return value;
}

static bool
s_optional_ok (json_t *req, const char *key)
{
    json_t *v = json_object_get (req, key);
    if (!v || json_is_null (v) || json_is_string (v))
        return true;
    log_error ("store: '%s' must be a string or null", key);
    return false;
}

//  sha256 (lang || 0x00 || session || 0x00 || code): what approvals are bound to.
static int
s_bind_sha (const char *lang, const char *session, json_t *code, char out[65])
{
    size_t ll = strlen (lang), sl = strlen (session), cl = json_string_length (code);
    char *buf = (char *) malloc (ll + sl + cl + 2);
    if (!buf)
        return -1;
    memcpy (buf, lang, ll + 1);
    memcpy (buf + ll + 1, session, sl + 1);
    memcpy (buf + ll + sl + 2, json_string_value (code), cl);
    sha256_hex (buf, ll + sl + cl + 2, out);
    free (buf);
    return 0;
}

//  Looks (principal, key) up. 1 found (*id set), 0 not, -1 error.
static int
s_find_key (store_t *self, const char *principal, const char *key, int64_t *id)
{
    binder_t b = { s_stmt (self, ST_KEY_FIND), SQLITE_OK };
    s_bind_str (&b, 1, principal);
    s_bind_str (&b, 2, key);
    if (s_bound (self, &b, "submit"))
        return -1;
    int rc = sqlite3_step (b.st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64 (b.st, 0);
    else if (rc != SQLITE_DONE)
        log_error ("store: looking up idempotency key: %s", sqlite3_errmsg (self->db));
    sqlite3_reset (b.st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int
s_insert_request (store_t *self, json_t *req, const char *sha[2], const char *at, int64_t *id)
{
    json_t *code = json_object_get (req, "code");
    binder_t b = { s_stmt (self, ST_REQUEST_ADD), SQLITE_OK };
    s_bind_str (&b, 1, json_string_value (json_object_get (req, "principal")));
    s_bind_str (&b, 2, json_string_value (json_object_get (req, "role")));
    s_bind_str (&b, 3, json_string_value (json_object_get (req, "session")));
    s_bind_str (&b, 4, json_string_value (json_object_get (req, "lang")));
    s_bind_text (&b, 5, json_string_value (code), json_string_length (code));
    s_bind_str (&b, 6, sha[0]);
    s_bind_str (&b, 7, sha[1]);
    s_bind_str (&b, 8, json_string_value (json_object_get (req, "reason")));
    s_bind_str (&b, 9, json_string_value (json_object_get (req, "key")));
    s_bind_str (&b, 10, at);
    if (s_bound (self, &b, "submit") || s_run (self, b.st, "inserting a request"))
        return -1;
    *id = sqlite3_last_insert_rowid (self->db);
    return 0;
}

int
store_submit (store_t *self, json_t *req, int64_t *id, bool *duplicate)
{
    assert (self && req && id && duplicate);
    *duplicate = false;
    const char *principal = s_required (req, "principal"), *role = s_required (req, "role"),
               *session = s_required (req, "session"), *lang = s_required (req, "lang"),
               *key = json_string_value (json_object_get (req, "key"));
    json_t *code = json_object_get (req, "code");
    if (!principal || !role || !session || !lang || !s_required (req, "code")
    ||  !s_optional_ok (req, "reason") || !s_optional_ok (req, "key") || s_writable (self, "submit"))
        return -1;
    char code_sha[65], bind_sha[65], at[32];
    sha256_hex (json_string_value (code), json_string_length (code), code_sha);
    if (s_bind_sha (lang, session, code, bind_sha) || s_begin (self))
        return -1;
    int rc = key ? s_find_key (self, principal, key, id) : 0;
    if (rc == 1) {                  //  a retry: the first submission stands, nothing is written
        *duplicate = true;
        return s_end (self, 1, "submit") == 1 ? 0 : -1;
    }
    s_now (at);
    const char *sha[2] = { code_sha, bind_sha };
    if (rc == 0)
        rc = s_insert_request (self, req, sha, at, id);
    json_t *data = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:O?, s:O?}", "principal", principal,
                              "role", role, "session", session, "lang", lang, "code_sha256",
                              code_sha, "bind_sha256", bind_sha, "reason",
                              json_object_get (req, "reason"), "key", json_object_get (req, "key"));
    if (rc == 0)
        rc = data ? s_append (self, *id, "received", principal, data, at) : -1;
    json_decref (data);
    return s_end (self, rc, "submit");
}

//  --------------------------------------------------------------------------------------
//  Transitions.

bool
store_transition_legal (const char *from, const char *to)
{
    for (size_t i = 0; i < COUNT (s_edges); i++)
        if (s_streq (from, s_edges[i][0]) && s_streq (to, s_edges[i][1]))
            return true;
    return false;
}

//  A field's value: flat in fields, or for error_* / traceback inside an "error" object
//  as the worker sends it. NULL if absent or null.
static json_t *
s_field (json_t *fields, const char *name)
{
    json_t *v = json_object_get (fields, name);
    json_t *error = json_object_get (fields, "error");
    if (!v && json_is_object (error)) {
        if (s_streq (name, "error_name")) v = json_object_get (error, "name");
        if (s_streq (name, "error_value")) v = json_object_get (error, "value");
        if (s_streq (name, "traceback")) v = json_object_get (error, "traceback");
    }
    return json_is_null (v) ? NULL : v;
}

static bool
s_kind_ok (field_kind_t kind, json_t *v)
{
    switch (kind) {
        case F_TEXT: return json_is_string (v);
        case F_INT: return json_is_integer (v);
        case F_REAL: return json_is_number (v);
        case F_BOOL: return json_is_boolean (v);
        case F_JSON: return json_is_object (v);
        default: return json_is_string (v) || json_is_integer (v);
    }
}

//  Binds one field at param and records it, or its sha256, in the event data. Reals are
//  recorded as reals so the event equals what the REAL column reads back.
static int
s_set_field (binder_t *b, const field_t *f, int param, json_t *v, json_t *data)
{
    if (v && !s_kind_ok (f->kind, v)) {
        log_error ("store: field '%s' must be %s", f->name, s_kind_name[f->kind]);
        return -1;
    }
    json_t *note = v ? json_incref (v) : json_null ();
    char key[64], sha[65];
    snprintf (key, sizeof key, "%s%s", f->name, f->large ? "_sha256" : "");
    if (f->large) {
        json_decref (note);
        if (v)
            sha256_hex (json_string_value (v), json_string_length (v), sha);
        note = v ? json_string (sha) : json_null ();    //  its column is bound by the caller
    }
    else if (v && f->kind == F_REAL) {
        json_decref (note);
        note = json_real (json_number_value (v));
        v = note;
    }
    if (v && f->kind == F_JSON) {       //  the column holds the canonical text of the event's object
        char *text = event_data_text (v);
        if (b->rc == SQLITE_OK)
            b->rc = text ? sqlite3_bind_text (b->st, param, text, -1, SQLITE_TRANSIENT)
                         : SQLITE_NOMEM;
        free (text);
    }
    else
        s_bind_json (b, param, v);
    return json_object_set_new (data, key, note);
}

//  Runs one of the field statements (?1 = id, fields from ?2 in table order).
static int
s_set_fields (store_t *self, stmt_id_t which, const field_t *table, size_t count, int64_t id,
              json_t *fields, json_t *data)
{
    binder_t b = { s_stmt (self, which), SQLITE_OK };
    s_bind_int (&b, 1, id);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = s_set_field (&b, &table[i], (int) i + 2, s_field (fields, table[i].name), data);
    //  <name>_sha256 columns take the hash from the event data, which outlives the step.
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (table[i].sha_param) {
            char key[64];
            snprintf (key, sizeof key, "%s_sha256", table[i].name);
            s_bind_str (&b, table[i].sha_param, json_string_value (json_object_get (data, key)));
        }
    if (rc == 0 && (s_bound (self, &b, "transition") || s_run (self, b.st, "setting fields")))
        rc = -1;
    return rc;
}

//  reason / message go only into the event.
static int
s_notes (json_t *fields, json_t *data)
{
    static const char *keys[] = { "reason", "message" };
    for (size_t i = 0; i < COUNT (keys); i++) {
        json_t *v = json_object_get (fields, keys[i]);
        if (v && !json_is_null (v) && !json_is_string (v)) {
            log_error ("store: '%s' must be a string", keys[i]);
            return -1;
        }
        if (json_is_string (v))
            json_object_set (data, keys[i], v);
    }
    return 0;
}

static int
s_state_set (store_t *self, int64_t id, const char *from, const char *to, const char *at)
{
    binder_t b = { s_stmt (self, ST_STATE_SET), SQLITE_OK };
    s_bind_int (&b, 1, id);
    s_bind_str (&b, 2, from);
    s_bind_str (&b, 3, to);
    s_bind_str (&b, 4, at);
    if (s_bound (self, &b, "transition") || s_run (self, b.st, "changing state"))
        return -1;
    if (sqlite3_changes (self->db) == 1)
        return 0;
    log_warn ("store: request %lld is not %s (absent or moved on): %s -> %s refused",
              (long long) id, from, from, to);
    return -1;
}

//  The body of a transition; the caller holds the transaction.
static int
s_transit (store_t *self, int64_t id, const char *from, const char *to, const char *actor,
           json_t *fields, const char *at)
{
    if (s_state_set (self, id, from, to, at))
        return -1;
    json_t *data = json_pack ("{s:s, s:s}", "from", from, "to", to);
    int rc = data ? s_notes (fields, data) : -1;
    if (rc == 0 && s_streq (from, "received"))
        rc = s_set_fields (self, ST_DECISION_SET, s_decision_fields, s_streq (to, "denied") ? 3
                           : s_streq (to, "queued") ? 4 : 5, id, fields, data);
    else if (rc == 0 && s_streq (to, "running"))
        rc = s_set_fields (self, ST_WORKER_SET, s_worker_fields, COUNT (s_worker_fields), id,
                           fields, data);
    else if (rc == 0 && s_streq (to, "done"))
        rc = s_set_fields (self, ST_RESULT_SET, s_result_fields, COUNT (s_result_fields), id,
                           fields, data);
    if (rc == 0)
        rc = s_append (self, id, to, actor, data, at);
    json_decref (data);
    return rc;
}

static int
s_edge_ok (int64_t id, const char *from, const char *to)
{
    if (store_transition_legal (from, to))
        return 0;
    log_error ("store: request %lld: %s -> %s is not a transition of the state machine",
               (long long) id, from ? from : "(null)", to ? to : "(null)");
    return -1;
}

int
store_transition (store_t *self, int64_t id, const char *from, const char *to,
                  const char *actor, json_t *fields)
{
    assert (self && actor);
    if (s_writable (self, "transition") || s_edge_ok (id, from, to) || s_begin (self))
        return -1;
    char at[32];
    s_now (at);
    return s_end (self, s_transit (self, id, from, to, actor, fields, at), "transition");
}

//  --------------------------------------------------------------------------------------
//  Approvals and standalone events.

static int
s_approval_check (json_t *a)
{
    const char *via = json_string_value (json_object_get (a, "via"));
    const char *decision = json_string_value (json_object_get (a, "decision"));
    if (!json_is_string (json_object_get (a, "approver"))
    ||  !(s_streq (via, "cli") || s_streq (via, "slack"))
    ||  !(s_streq (decision, "approve") || s_streq (decision, "deny"))) {
        log_error ("store: an approval needs approver, via (cli|slack), decision (approve|deny)");
        return -1;
    }
    return s_optional_ok (a, "on_behalf_of") && s_optional_ok (a, "reason")
        && s_optional_ok (a, "slack_user") ? 0 : -1;
}

//  0 if request id is in `state`, else -1 (logged).
static int
s_state_is (store_t *self, int64_t id, const char *state)
{
    binder_t b = { s_stmt (self, ST_STATE_GET), SQLITE_OK };
    s_bind_int (&b, 1, id);
    if (s_bound (self, &b, "state"))
        return -1;
    int rc = sqlite3_step (b.st);
    bool match = rc == SQLITE_ROW && s_streq ((const char *) sqlite3_column_text (b.st, 0), state);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        log_error ("store: reading request %lld: %s", (long long) id, sqlite3_errmsg (self->db));
    else if (!match)
        log_warn ("store: request %lld is not %s", (long long) id, state);
    sqlite3_reset (b.st);
    return match ? 0 : -1;
}

static int
s_insert_approval (store_t *self, int64_t id, json_t *a, const char *at)
{
    binder_t b = { s_stmt (self, ST_APPROVAL_ADD), SQLITE_OK };
    s_bind_int (&b, 1, id);
    s_bind_json (&b, 2, json_object_get (a, "approver"));
    s_bind_json (&b, 3, json_object_get (a, "via"));
    s_bind_json (&b, 4, json_object_get (a, "on_behalf_of"));
    s_bind_json (&b, 5, json_object_get (a, "decision"));
    s_bind_json (&b, 6, json_object_get (a, "reason"));
    s_bind_str (&b, 7, at);
    s_bind_json (&b, 8, json_object_get (a, "slack_user"));
    return s_bound (self, &b, "approval") ? -1 : s_run (self, b.st, "recording an approval");
}

int
store_approve (store_t *self, int64_t id, json_t *approval, const char *to, json_t *fields)
{
    assert (self && approval);
    if (s_writable (self, "approve") || s_approval_check (approval)
    ||  (to && s_edge_ok (id, "pending_approval", to)) || s_begin (self))
        return -1;
    char at[32];
    s_now (at);
    const char *approver = json_string_value (json_object_get (approval, "approver"));
    json_t *data = json_pack ("{s:s, s:O, s:O?, s:O, s:O?}", "approver", approver,
                              "via", json_object_get (approval, "via"),
                              "on_behalf_of", json_object_get (approval, "on_behalf_of"),
                              "decision", json_object_get (approval, "decision"),
                              "reason", json_object_get (approval, "reason"));
    //  Only when given, so approvals from the command line keep their v1 form.
    json_t *slack_user = json_object_get (approval, "slack_user");
    if (data && json_is_string (slack_user))
        json_object_set (data, "slack_user", slack_user);
    int rc = data ? s_state_is (self, id, "pending_approval") : -1;
    if (rc == 0)
        rc = s_insert_approval (self, id, approval, at);
    if (rc == 0)
        rc = s_append (self, id, "approval", approver, data, at);
    if (rc == 0 && to)
        rc = s_transit (self, id, "pending_approval", to, approver, fields, at);
    json_decref (data);
    return s_end (self, rc, "approve");
}

int
store_event (store_t *self, int64_t request_id, const char *type, const char *actor,
             json_t *data)
{
    assert (self && type && actor);
    if (verify_is_state (type) || s_streq (type, "approval") || s_streq (type, "pruned")
    ||  (data && !json_is_object (data))) {
        log_error ("store: event '%s': the type is reserved or the data is not an object", type);
        return -1;
    }
    if (s_writable (self, "event") || s_begin (self))
        return -1;
    char at[32];
    s_now (at);
    json_t *empty = data ? NULL : json_object ();
    int rc = s_append (self, request_id, type, actor, data ? data : empty, at);
    json_decref (empty);
    return s_end (self, rc, "event");
}

//  --------------------------------------------------------------------------------------
//  Retention.

#define PRUNE_BATCH 200         //  requests per transaction: the broker waits at most one batch

static const char *s_bodies[] = { "code", "stdout", "stderr", "value", "traceback" };

//  Up to PRUNE_BATCH prunable requests as [{id, <body>_sha256...}], hashed from what is
//  there now. Collected first, so the UPDATEs never run under the open SELECT.
static json_t *
s_prune_pick (store_t *self, const char *before)
{
    binder_t b = { s_stmt (self, ST_PRUNE_PICK), SQLITE_OK };
    s_bind_str (&b, 1, before);
    s_bind_int (&b, 2, PRUNE_BATCH);
    json_t *rows = s_bound (self, &b, "prune") ? NULL : s_rows (self, b.st, "picking requests");
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        for (size_t k = 0; k < COUNT (s_bodies); k++) {
            json_t *text = json_object_get (row, s_bodies[k]);
            char key[64], sha[65];
            snprintf (key, sizeof key, "%s_sha256", s_bodies[k]);
            if (json_is_string (text))
                sha256_hex (json_string_value (text), json_string_length (text), sha);
            json_object_set_new (row, key, json_is_string (text) ? json_string (sha)
                                                                 : json_null ());
            json_object_del (row, s_bodies[k]);
        }
    return rows;
}

//  Blanks one request and appends its `pruned` event; row is {id, <body>_sha256...}.
static int
s_prune_one (store_t *self, json_t *row, const char *before, const char *actor, const char *at)
{
    int64_t id = json_integer_value (json_object_get (row, "id"));
    binder_t b = { s_stmt (self, ST_PRUNE_SET), SQLITE_OK };
    s_bind_int (&b, 1, id);
    s_bind_str (&b, 2, at);
    if (s_bound (self, &b, "prune") || s_run (self, b.st, "pruning a request"))
        return -1;
    json_object_del (row, "id");
    json_object_set_new (row, "before", json_string (before));
    return s_append (self, id, "pruned", actor, row, at);
}

//  One batch in one transaction; *n = requests pruned in it.
static int
s_prune_batch (store_t *self, const char *before, const char *actor, int64_t *n)
{
    *n = 0;
    if (s_begin (self))
        return -1;
    char at[32];
    s_now (at);
    json_t *rows = s_prune_pick (self, before);
    int rc = rows ? 0 : -1;
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        if (rc == 0)
            rc = s_prune_one (self, row, before, actor, at);
    *n = rc == 0 ? (int64_t) json_array_size (rows) : 0;
    json_decref (rows);
    return s_end (self, rc, "prune");
}

int
store_prune (store_t *self, const char *before, const char *actor, int64_t *count)
{
    assert (self && before && actor && count);
    *count = 0;
    if (s_writable (self, "prune"))
        return -1;
    int64_t n = 0;
    int rc = 0;
    do {
        rc = s_prune_batch (self, before, actor, &n);
        *count += n;
    } while (rc == 0 && n == PRUNE_BATCH);
    return rc;
}

//  --------------------------------------------------------------------------------------
//  Reading.

//  "bob, carol for U123": who decided `decision`, as the history view shows it; null if none.
static json_t *
s_deciders (json_t *approvals, const char *decision)
{
    char text[1024] = "";
    size_t i, used = 0;
    json_t *a;
    json_array_foreach (approvals, i, a) {
        const char *obo = json_string_value (json_object_get (a, "on_behalf_of"));
        if (!s_streq (json_string_value (json_object_get (a, "decision")), decision))
            continue;
        int n = snprintf (text + used, sizeof text - used, "%s%s%s%s", used ? ", " : "",
                          json_string_value (json_object_get (a, "approver")),
                          obo ? " for " : "", obo ? obo : "");
        used = n < 0 ? used : used + (size_t) n < sizeof text ? used + (size_t) n : sizeof text - 1;
    }
    return used ? json_string (text) : json_null ();
}

json_t *
store_get (store_t *self, int64_t id)
{
    assert (self);
    binder_t b = { s_stmt (self, ST_GET), SQLITE_OK };
    s_bind_int (&b, 1, id);
    if (s_bound (self, &b, "get"))
        return NULL;
    json_t *rows = s_rows (self, b.st, "reading a request");
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    if (!row)
        return NULL;
    b = (binder_t) { s_stmt (self, ST_APPROVALS), SQLITE_OK };
    s_bind_int (&b, 1, id);
    json_t *approvals = s_bound (self, &b, "get") ? NULL : s_rows (self, b.st, "reading approvals");
    if (!approvals || json_object_set_new (row, "approvals", approvals) != 0) {
        json_decref (row);
        return NULL;
    }
    json_object_set_new (row, "approvers", s_deciders (approvals, "approve"));
    json_object_set_new (row, "denied_by", s_deciders (approvals, "deny"));
    return row;
}

int
store_ids_in_state (store_t *self, const char *state, json_t **ids)
{
    assert (self && state && ids);
    binder_t b = { s_stmt (self, ST_IDS), SQLITE_OK };
    s_bind_str (&b, 1, state);
    json_t *rows = s_bound (self, &b, "ids") ? NULL : s_rows (self, b.st, "listing ids");
    *ids = rows ? json_array () : NULL;
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        json_array_append (*ids, json_object_get (row, "id"));
    json_decref (rows);
    return *ids ? 0 : -1;
}

json_t *
store_events_since (store_t *self, int64_t seq, int limit)
{
    assert (self);
    binder_t b = { s_stmt (self, ST_EVENTS), SQLITE_OK };
    s_bind_int (&b, 1, seq);
    s_bind_int (&b, 2, limit > 0 ? limit : -1);
    json_t *events = s_bound (self, &b, "events") ? NULL : s_rows (self, b.st, "reading events");
    size_t i;
    json_t *event;
    json_array_foreach (events, i, event) {
        const char *text = json_string_value (json_object_get (event, "data"));
        json_error_t error;
        json_t *data = text ? json_loads (text, JSON_ALLOW_NUL, &error) : NULL;
        if (!data)
            log_warn ("store: event %lld: data is not JSON", (long long) json_integer_value (
                      json_object_get (event, "seq")));
        json_object_set_new (event, "data", data ? data : json_null ());
    }
    return events;
}

int64_t
store_head_seq (store_t *self)
{
    assert (self);
    int64_t seq;
    char prev[65];
    return s_head (self, &seq, prev) ? -1 : seq;
}

json_t *
store_history (store_t *self, json_t *filters, int limit)
{
    assert (self);
    static const char *keys[] = { "principal", "session", "state", "since", "until" };
    binder_t b = { s_stmt (self, ST_HISTORY), SQLITE_OK };
    const char *key;
    json_t *value;
    json_object_foreach (filters, key, value) {
        size_t i = 0;
        while (i < COUNT (keys) && strcmp (key, keys[i]) != 0)
            i++;
        if (i == COUNT (keys) || !(json_is_string (value) || json_is_null (value))) {
            log_error ("store: history: unknown filter or not a string: '%s'", key);
            return NULL;
        }
        s_bind_json (&b, (int) i + 1, value);
    }
    s_bind_int (&b, 6, limit > 0 ? limit : -1);
    return s_bound (self, &b, "history") ? NULL : s_rows (self, b.st, "reading history");
}

//  Both walks run in one read transaction: one snapshot while the broker keeps appending.
static int
s_each (store_t *self, bool events, json_t *filters, store_each_fn *fn, void *arg)
{
    assert (self && fn);
    if (s_run (self, s_stmt (self, ST_BEGIN_READ), "reading"))
        return -1;
    int rc = query_each (&self->query, self->db, events, filters, fn, arg);
    return s_end (self, 0, "reading") != 0 && rc == 0 ? -1 : rc;
}

int
store_each (store_t *self, json_t *filters, store_each_fn *fn, void *arg)
{
    return s_each (self, false, filters, fn, arg);
}

int
store_each_event (store_t *self, json_t *filters, store_each_fn *fn, void *arg)
{
    return s_each (self, true, filters, fn, arg);
}

int
store_verify (store_t *self, json_t **report)
{
    return store_verify_head (self, NULL, report);
}

int
store_verify_head (store_t *self, const char *head, json_t **report)
{
    assert (self && report);
    *report = NULL;
    //  One read transaction: a consistent snapshot while the broker keeps appending.
    if (s_run (self, s_stmt (self, ST_BEGIN_READ), "verify"))
        return -1;
    int rc = verify_run (&self->verify, self->db, head, report);
    if (s_end (self, 0, "verify") != 0 && rc >= 0) {
        json_decref (*report);
        *report = NULL;
        rc = -1;
    }
    return rc;
}

//  --------------------------------------------------------------------------------------
//  Self-test, on real files in a temporary directory.

int
store_raw_exec (const char *path, const char *sql, char *error, size_t size)
{
    sqlite3 *db = NULL;
    char *message = NULL;
    int rc = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout (db, 5000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (db, sql, NULL, NULL, &message);
    if (error)
        snprintf (error, size, "%s", message ? message : db ? sqlite3_errmsg (db) : "");
    sqlite3_free (message);
    sqlite3_close (db);
    return rc;
}

//  The single text a query returns, or "" (test helper).
static void
s_raw_text (const char *path, const char *sql, char *out, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    *out = 0;
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
    &&  sqlite3_prepare_v2 (db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step (st) == SQLITE_ROW)
        snprintf (out, size, "%s", sqlite3_column_text (st, 0) ? (const char *)
                  sqlite3_column_text (st, 0) : "");
    sqlite3_finalize (st);
    sqlite3_close (db);
}

static int64_t
s_test_submit (store_t *store, const char *principal, const char *session, const char *lang,
               const char *code, const char *key)
{
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s?}", "principal", principal,
                             "role", "agent", "session", session, "lang", lang, "code", code,
                             "key", key);
    int64_t id = 0;
    bool duplicate = true;
    int rc = store_submit (store, req, &id, &duplicate);
    json_decref (req);
    return rc == 0 && !duplicate ? id : -1;
}

//  The data of the last event.
static json_t *
s_test_last_data (store_t *store)
{
    json_t *events = store_events_since (store, store_head_seq (store) - 1, 0);
    json_t *data = json_incref (json_object_get (json_array_get (events, 0), "data"));
    json_decref (events);
    return data;
}

static void
s_test_open (const char *dir)
{
    char path[256], text[64];
    snprintf (path, sizeof path, "%s/open.db", dir);
    CHECK (store_new (path, STORE_READONLY) == NULL);           //  no such file
    store_t *store = store_new (path, 0);
    CHECK (store);
    s_raw_text (path, "PRAGMA user_version", text, sizeof text);
    CHECK (atoi (text) == SCHEMA_VERSION);
    s_raw_text (path, "PRAGMA journal_mode", text, sizeof text);
    CHECK (strcmp (text, "wal") == 0);
    CHECK (store_head_seq (store) == 0);
    store_destroy (&store);
    CHECK (store == NULL);
    store_destroy (&store);                                     //  idempotent
    store = store_new (path, STORE_SYNC_FULL);                  //  re-open: nothing to migrate
    CHECK (store);
    store_destroy (&store);
    CHECK (store_raw_exec (path, "PRAGMA user_version = 99", NULL, 0) == SQLITE_OK);
    CHECK (store_new (path, 0) == NULL);                        //  newer than we know
    CHECK (store_new (path, STORE_READONLY) == NULL);
    snprintf (path, sizeof path, "%s/empty.db", dir);
    CHECK (store_raw_exec (path, "PRAGMA user_version = 0", NULL, 0) != SQLITE_OK);
    FILE *file = fopen (path, "w");
    if (file)
        fclose (file);
    CHECK (store_new (path, STORE_READONLY) == NULL);           //  not initialised
}

static void
s_test_submit_checks (store_t *store)
{
    int64_t id = s_test_submit (store, "alice", "s1", "python", "x = 1", "k1");
    CHECK (id == 1);
    json_t *row = store_get (store, id);
    char sha[65];
    sha256_hex ("x = 1", 5, sha);
    CHECK (s_streq (json_string_value (json_object_get (row, "code_sha256")), sha));
    sha256_hex ("python\0s1\0x = 1", 15, sha);
    CHECK (s_streq (json_string_value (json_object_get (row, "bind_sha256")), sha));
    CHECK (s_streq (json_string_value (json_object_get (row, "state")), "received"));
    CHECK (json_is_null (json_object_get (row, "reason")));
    CHECK (json_array_size (json_object_get (row, "approvals")) == 0);
    json_decref (row);
    json_t *data = s_test_last_data (store);
    CHECK (s_streq (json_string_value (json_object_get (data, "key")), "k1"));
    CHECK (json_object_get (data, "code") == NULL && json_object_get (data, "code_sha256"));
    json_decref (data);
    //  A retry with the same key is the same request; nothing is written.
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s}", "principal", "alice", "role",
                             "agent", "session", "s1", "lang", "python", "code", "x = 1", "key", "k1");
    int64_t again = 0;
    bool duplicate = false;
    CHECK (store_submit (store, req, &again, &duplicate) == 0 && duplicate && again == id);
    CHECK (store_head_seq (store) == 1);
    json_object_set_new (req, "lang", json_string ("cobol"));
    json_object_set_new (req, "key", json_string ("k2"));
    CHECK (store_submit (store, req, &again, &duplicate) == -1);
    json_object_del (req, "code");
    json_object_set_new (req, "lang", json_string ("shell"));
    CHECK (store_submit (store, req, &again, &duplicate) == -1);
    CHECK (store_head_seq (store) == 1);
    json_decref (req);
    CHECK (s_test_submit (store, "bob", "s1", "python", "x = 1", "k1") == 2);  //  keys per principal
}

static void
s_test_transitions (store_t *store)
{
    int64_t id = 1;
    json_t *fields = json_pack ("{s:s, s:s, s:s, s:s}", "rule", "allow-small",
                                "decision_message", "ok", "policy_sha256", "abc", "stdout", "no");
    CHECK (store_transition (store, id, "received", "running", "broker", NULL) == -1);  //  illegal
    CHECK (store_transition (store, id, "received", "queued", "broker", fields) == 0);
    int64_t head = store_head_seq (store);
    CHECK (store_transition (store, id, "received", "queued", "broker", fields) == -1); //  stale
    CHECK (store_head_seq (store) == head);
    json_decref (fields);
    json_t *row = store_get (store, id);
    CHECK (s_streq (json_string_value (json_object_get (row, "rule")), "allow-small"));
    CHECK (json_is_string (json_object_get (row, "queued_at")));
    CHECK (json_is_null (json_object_get (row, "stdout")));    //  not a decision field
    json_decref (row);
    json_t *data = s_test_last_data (store);
    CHECK (s_streq (json_string_value (json_object_get (data, "from")), "received"));
    CHECK (s_streq (json_string_value (json_object_get (data, "to")), "queued"));
    CHECK (s_streq (json_string_value (json_object_get (data, "policy_sha256")), "abc"));
    json_decref (data);
    fields = json_pack ("{s:s}", "worker", "w1");
    CHECK (store_transition (store, id, "queued", "running", "broker", fields) == 0);
    json_decref (fields);
    //  Failures after the state UPDATE ran inside the transaction roll all of it back.
    head = store_head_seq (store);
    fields = json_pack ("{s:s, s:s}", "outcome", "ok", "exit_code", "zero");
    CHECK (store_transition (store, id, "running", "done", "w1", fields) == -1);
    json_decref (fields);
    fields = json_pack ("{s:s}", "outcome", "exploded");        //  CHECK constraint
    CHECK (store_transition (store, id, "running", "done", "w1", fields) == -1);
    json_decref (fields);
    row = store_get (store, id);
    CHECK (s_streq (json_string_value (json_object_get (row, "state")), "running"));
    CHECK (json_is_null (json_object_get (row, "finished_at")));
    CHECK (store_head_seq (store) == head);
    json_decref (row);
}

static void
s_test_result (store_t *store)
{
    json_t *fields = json_pack ("{s:s, s:i, s:n, s:s, s:s, s:b, s:b, s:s, s:{s:s, s:s, s:s},"
                                " s:f, s:i, s:i, s:i, s:b, s:s, s:s}",
                                "outcome", "error", "exit_code", 1, "signal", "stdout", "a\nb",
                                "stderr", "", "stdout_truncated", 1, "stderr_truncated", 0,
                                "value", "42", "error", "name", "ZeroDivisionError", "value",
                                "division by zero", "traceback", "Traceback ...", "wall_ms", 1.25,
                                "cpu_ms", 2, "max_rss_kb", 9000, "execution_count", 3,
                                "session_reset", 0, "sandbox", "none", "op", "result");
    CHECK (store_transition (store, 1, "running", "done", "w1", fields) == 0);
    json_decref (fields);
    json_t *row = store_get (store, 1);
    char sha[65];
    sha256_hex ("a\nb", 3, sha);
    CHECK (s_streq (json_string_value (json_object_get (row, "stdout")), "a\nb"));
    CHECK (s_streq (json_string_value (json_object_get (row, "stdout_sha256")), sha));
    CHECK (json_is_true (json_object_get (row, "stdout_truncated")));
    CHECK (json_is_false (json_object_get (row, "stderr_truncated")));
    CHECK (json_is_null (json_object_get (row, "signal")));
    CHECK (s_streq (json_string_value (json_object_get (row, "error_name")), "ZeroDivisionError"));
    CHECK (json_real_value (json_object_get (row, "wall_ms")) == 1.25);
    CHECK (json_real_value (json_object_get (row, "cpu_ms")) == 2.0);
    CHECK (json_integer_value (json_object_get (row, "execution_count")) == 3);
    CHECK (json_is_string (json_object_get (row, "finished_at")));
    json_decref (row);
    json_t *data = s_test_last_data (store);
    CHECK (s_streq (json_string_value (json_object_get (data, "stdout_sha256")), sha));
    sha256_hex ("Traceback ...", 13, sha);
    CHECK (s_streq (json_string_value (json_object_get (data, "traceback_sha256")), sha));
    CHECK (json_object_get (data, "value_sha256") && !json_object_get (data, "value"));
    CHECK (!json_object_get (data, "stdout") && !json_object_get (data, "traceback"));
    CHECK (json_is_real (json_object_get (data, "cpu_ms")) && !json_object_get (data, "op"));
    CHECK (json_is_null (json_object_get (data, "signal")));
    json_decref (data);
    CHECK (store_transition (store, 1, "done", "lost", "broker", NULL) == -1);   //  terminal
}

static void
s_test_approvals (store_t *store)
{
    int64_t id = s_test_submit (store, "alice", "s2", "shell", "rm -rf /tmp/x", NULL);
    json_t *fields = json_pack ("{s:s}", "rule", "review-rm");
    CHECK (store_transition (store, id, "received", "pending_approval", "broker", fields) == 0);
    json_decref (fields);
    json_t *bob = json_pack ("{s:s, s:s, s:s}", "approver", "bob", "via", "cli", "decision", "approve");
    json_t *carol = json_pack ("{s:s, s:s, s:s, s:s}", "approver", "carol", "via", "slack",
                               "on_behalf_of", "U123", "decision", "approve");
    CHECK (store_approve (store, id, bob, NULL, NULL) == 0);
    int64_t head = store_head_seq (store);
    CHECK (store_approve (store, id, bob, NULL, NULL) == -1);           //  one per approver
    CHECK (store_head_seq (store) == head);
    CHECK (store_approve (store, id, carol, "running", NULL) == -1);    //  not an edge
    CHECK (store_approve (store, id, carol, "queued", NULL) == 0);
    CHECK (store_approve (store, 1, carol, NULL, NULL) == -1);          //  not pending
    json_t *row = store_get (store, id);
    CHECK (s_streq (json_string_value (json_object_get (row, "state")), "queued"));
    json_t *approvals = json_object_get (row, "approvals");
    CHECK (json_array_size (approvals) == 2);
    CHECK (s_streq (json_string_value (json_object_get (json_array_get (approvals, 1),
                                                        "on_behalf_of")), "U123"));
    CHECK (s_streq (json_string_value (json_object_get (row, "approvers")), "bob, carol for U123"));
    CHECK (json_is_null (json_object_get (row, "denied_by")));
    json_decref (row);
    json_t *filters = json_pack ("{s:s}", "session", "s2");
    json_t *rows = store_history (store, filters, 10);
    CHECK (json_array_size (rows) == 1);
    CHECK (s_streq (json_string_value (json_object_get (json_array_get (rows, 0), "approvers")),
                    "bob, carol for U123"));
    json_decref (rows);
    json_decref (filters);
    fields = json_pack ("{s:s}", "reason", "changed my mind");
    CHECK (store_transition (store, id, "queued", "cancelled", "alice", fields) == 0);
    json_decref (fields);
    json_decref (bob);
    json_decref (carol);
}

static void
s_test_queries (store_t *store)
{
    json_t *data = json_pack ("{s:s, s:i}", "code", "bad_json", "size", 3);
    CHECK (store_event (store, 0, "rejected", "mallory", data) == 0);
    CHECK (store_event (store, 0, "done", "mallory", data) == -1);      //  reserved type
    CHECK (store_event (store, 999, "note", "mallory", data) == -1);    //  no such request
    CHECK (store_event (store, 2, "note", "bob", NULL) == 0);
    json_decref (data);
    int64_t head = store_head_seq (store);
    json_t *events = store_events_since (store, 0, 0);
    CHECK ((int64_t) json_array_size (events) == head);
    json_t *rejected = json_array_get (events, head - 2);
    CHECK (json_is_null (json_object_get (rejected, "request_id")));
    CHECK (json_integer_value (json_object_get (json_object_get (rejected, "data"), "size")) == 3);
    CHECK (s_streq (json_string_value (json_object_get (json_array_get (events, 1), "prev_hash")),
                    json_string_value (json_object_get (json_array_get (events, 0), "hash"))));
    json_decref (events);
    events = store_events_since (store, head - 3, 2);
    CHECK (json_array_size (events) == 2);
    json_decref (events);
    json_t *ids = NULL;
    CHECK (store_ids_in_state (store, "received", &ids) == 0 && json_array_size (ids) == 1);
    CHECK (json_integer_value (json_array_get (ids, 0)) == 2);
    json_decref (ids);
    json_t *rows = store_history (store, NULL, 2);                      //  newest 2, oldest first
    CHECK (json_array_size (rows) == 2);
    CHECK (json_integer_value (json_object_get (json_array_get (rows, 1), "id")) == 3);
    json_decref (rows);
    json_t *filters = json_pack ("{s:s, s:s, s:s}", "principal", "alice", "since", "2000-01-01",
                                 "until", "2999-01-01");
    rows = store_history (store, filters, 0);
    CHECK (json_array_size (rows) == 2);
    json_decref (rows);
    json_object_set_new (filters, "principl", json_string ("bob"));
    CHECK (store_history (store, filters, 0) == NULL);                  //  typo is an error
    json_decref (filters);
}

//  Readers hold snapshots and never block the writer; the read-only store cannot write.
static void
s_test_readonly (const char *path, store_t *writer)
{
    store_t *reader = store_new (path, STORE_READONLY);
    CHECK (reader);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    CHECK (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    CHECK (sqlite3_exec (db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
    CHECK (sqlite3_prepare_v2 (db, "SELECT count (*) FROM requests", -1, &st, NULL) == SQLITE_OK);
    CHECK (sqlite3_step (st) == SQLITE_ROW);
    int before = sqlite3_column_int (st, 0);
    sqlite3_reset (st);
    int64_t id = s_test_submit (writer, "dave", "s3", "python", "1", NULL);
    CHECK (id > 0);                                     //  committed under an open reader
    CHECK (sqlite3_step (st) == SQLITE_ROW && sqlite3_column_int (st, 0) == before);
    sqlite3_finalize (st);
    CHECK (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close (db);
    json_t *row = store_get (reader, id);               //  the reader sees the new commit
    CHECK (row && s_streq (json_string_value (json_object_get (row, "principal")), "dave"));
    json_decref (row);
    CHECK (s_test_submit (reader, "dave", "s3", "python", "2", NULL) == -1);
    CHECK (store_event (reader, 0, "note", "dave", NULL) == -1);
    json_t *report = NULL;
    CHECK (store_verify (reader, &report) == 0);
    CHECK (json_integer_value (json_object_get (report, "events")) == store_head_seq (writer));
    json_decref (report);
    store_destroy (&reader);
}

static void
s_test_append_only (const char *path)
{
    static const struct { const char *sql; const char *says; } cases[] = {
        { "UPDATE events SET actor = 'eve' WHERE seq = 1", "events are append-only" },
        { "DELETE FROM events WHERE seq = 1", "events are append-only" },
        { "UPDATE approvals SET decision = 'deny'", "approvals are append-only" },
        { "DELETE FROM approvals", "approvals are append-only" },
        { "UPDATE requests SET code = 'evil' WHERE id = 1", "request inputs are immutable" },
        { "DELETE FROM requests WHERE id = 1", "requests are never deleted" },
    };
    for (size_t i = 0; i < COUNT (cases); i++) {
        char error[256];
        CHECK (store_raw_exec (path, cases[i].sql, error, sizeof error) != SQLITE_OK);
        CHECK (strstr (error, cases[i].says) != NULL);
    }
}

//  The recipe in store.h, byte for byte.
static void
s_test_canonical (void)
{
    const char *canonical = "{\"actor\":\"bob\",\"at\":\"2026-01-01T00:00:00.000Z\",\"data\":"
                            "{\"a\":[1,2.5,null],\"b\":\"\\u001F\\n\\\"/\xc3\xa9\",\"z\":true},"
                            "\"request_id\":null,\"seq\":1,\"type\":\"note\"}";
    json_t *data = json_pack ("{s:b, s:s, s:[i, f, n]}", "z", 1, "b", "\x1f\n\"/\xc3\xa9",
                              "a", 1, 2.5);
    char hash[65], want[65], buf[512];
    snprintf (buf, sizeof buf, "%s%s", VERIFY_GENESIS, canonical);
    sha256_hex (buf, strlen (buf), want);
    CHECK (event_hash (VERIFY_GENESIS, 1, "2026-01-01T00:00:00.000Z", 0, "note", "bob", data,
                       hash) == 0);
    CHECK (strcmp (hash, want) == 0);
    char *text = event_data_text (data);
    CHECK (text && strstr (canonical, text) != NULL);
    free (text);
    json_decref (data);
}

static void
s_test_cleanup (const char *dir)
{
    DIR *d = opendir (dir);
    struct dirent *entry;
    char path[512];
    while (d && (entry = readdir (d)))
        if (entry->d_name[0] != '.') {
            snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
            unlink (path);
        }
    if (d)
        closedir (d);
    rmdir (dir);
}

int
store_test (void)
{
    char dir[] = "/tmp/replgate-store-XXXXXX";
    CHECK (mkdtemp (dir) != NULL);
    s_test_open (dir);
    s_test_canonical ();
    char path[256];
    snprintf (path, sizeof path, "%s/test.db", dir);
    store_t *store = store_new (path, 0);
    CHECK (store);
    if (store) {
        s_test_submit_checks (store);
        s_test_transitions (store);
        s_test_result (store);
        s_test_approvals (store);
        s_test_queries (store);
        s_test_readonly (path, store);
        s_test_append_only (path);
        json_t *report = NULL;
        CHECK (store_verify (store, &report) == 0);
        CHECK (json_is_true (json_object_get (report, "ok")) && !json_object_get (report, "bad"));
        CHECK (json_integer_value (json_object_get (report, "requests")) == 4);
        json_decref (report);
        store_destroy (&store);
    }
    verify_test (dir);
    schema_test (dir);
    query_test (dir);
    s_test_cleanup (dir);
    return 0;
}
