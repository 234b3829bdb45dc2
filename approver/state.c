/*  approver/state.c: the approver's SQLite state (see state.h). One writer (the approver's
    main thread); WAL and synchronous=FULL, as the file is tiny and a lost "posted" mark would
    mean a duplicate Slack message. */
#include "approver/state.h"
#include "common/check.h"
#include "store/store.h"
#include "common/util.h"
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct _state_t {
    sqlite3 *db;
    char *path;
};

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER);"
    "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, webhook TEXT NOT NULL,"
    "  response_url TEXT, url_seen_ms INTEGER NOT NULL DEFAULT 0, url_uses INTEGER NOT NULL DEFAULT 0,"
    "  rendered TEXT NOT NULL DEFAULT '', final INTEGER NOT NULL DEFAULT 0, rev INTEGER NOT NULL DEFAULT 1,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS decisions (request_id INTEGER NOT NULL, slack_user TEXT NOT NULL,"
    "  principal TEXT NOT NULL, action TEXT NOT NULL, PRIMARY KEY (request_id, slack_user, action));"
    "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL,"
    "  kind TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS failures (job_id INTEGER, request_id INTEGER, kind TEXT, url TEXT,"
    "  body TEXT, attempts INTEGER, status INTEGER, answer TEXT, at_ms INTEGER);";

//  Prepares sql and binds the variadic arguments by `types`: 'i' int64_t, 's' const char *.
static sqlite3_stmt *
s_prepare (state_t *self, const char *sql, const char *types, va_list ap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2 (self->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        log_error ("state: prepare %.60s: %s", sql, sqlite3_errmsg (self->db));
        return NULL;
    }
    for (int i = 0; types[i]; i++) {
        if (types[i] == 'i')
            rc = sqlite3_bind_int64 (st, i + 1, va_arg (ap, int64_t));
        else {
            const char *v = va_arg (ap, const char *);
            rc = v ? sqlite3_bind_text (st, i + 1, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null (st, i + 1);
        }
        if (rc != SQLITE_OK) {
            log_error ("state: bind %d of %.60s: %s", i + 1, sql, sqlite3_errmsg (self->db));
            sqlite3_finalize (st);
            return NULL;
        }
    }
    return st;
}

//  Runs a statement that returns no rows; the number of changed rows, or -1 (logged).
static int
s_run (state_t *self, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start (ap, types);
    sqlite3_stmt *st = s_prepare (self, sql, types, ap);
    va_end (ap);
    if (!st)
        return -1;
    int rc = sqlite3_step (st);
    sqlite3_finalize (st);
    if (rc != SQLITE_DONE) {
        log_error ("state: %.60s: %s", sql, sqlite3_errmsg (self->db));
        return -1;
    }
    return sqlite3_changes (self->db);
}

//  Runs a query; its rows as an array of objects keyed by column name (caller owns), or NULL.
static json_t *
s_query (state_t *self, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start (ap, types);
    sqlite3_stmt *st = s_prepare (self, sql, types, ap);
    va_end (ap);
    if (!st)
        return NULL;
    json_t *rows = json_array ();
    int rc = SQLITE_DONE;
    while (rows && (rc = sqlite3_step (st)) == SQLITE_ROW)
        if (json_array_append_new (rows, store_row_json (st, false))) {
            json_decref (rows);
            rows = NULL;
        }
    sqlite3_finalize (st);
    if (!rows)
        log_error ("state: %.60s: out of memory", sql);
    else
    if (rc != SQLITE_DONE) {
        log_error ("state: %.60s: %s", sql, sqlite3_errmsg (self->db));
        json_decref (rows);
        return NULL;
    }
    return rows;
}

state_t *
state_new (const char *path)
{
    state_t *self = (state_t *) calloc (1, sizeof (state_t));
    if (!self)
        return NULL;
    self->path = strdup (path);
    int rc = sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        log_error ("state: cannot open %s: %s", path, self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        state_destroy (&self);
        return NULL;
    }
    char *err = NULL;
    if (sqlite3_busy_timeout (self->db, 5000) != SQLITE_OK
     || sqlite3_exec (self->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;", NULL, NULL, &err) != SQLITE_OK
     || sqlite3_exec (self->db, s_schema, NULL, NULL, &err) != SQLITE_OK) {
        log_error ("state: setting up %s: %s", path, err ? err : sqlite3_errmsg (self->db));
        sqlite3_free (err);
        state_destroy (&self);
        return NULL;
    }
    return self;
}

void
state_destroy (state_t **self_p)
{
    if (*self_p) {
        state_t *self = *self_p;
        if (self->db && sqlite3_close (self->db) != SQLITE_OK)
            log_error ("state: closing %s: %s", self->path, sqlite3_errmsg (self->db));
        free (self->path);
        free (self);
        *self_p = NULL;
    }
}

int state_begin (state_t *self) { return s_run (self, "BEGIN IMMEDIATE", "") < 0 ? -1 : 0; }
int state_commit (state_t *self) { return s_run (self, "COMMIT", "") < 0 ? -1 : 0; }

void
state_rollback (state_t *self)
{
    if (!sqlite3_get_autocommit (self->db))
        s_run (self, "ROLLBACK", "");
}

//  The integer in column `col` of the first row of rows (consumed), or dflt.
static int64_t
s_first_int (json_t *rows, const char *col, int64_t dflt)
{
    json_t *v = json_object_get (json_array_get (rows, 0), col);
    int64_t out = json_is_integer (v) ? json_integer_value (v) : dflt;
    json_decref (rows);
    return out;
}

int64_t
state_last_seq (state_t *self)
{
    return s_first_int (s_query (self, "SELECT v FROM meta WHERE k = 'last_seq'", ""), "v", 0);
}

int
state_set_last_seq (state_t *self, int64_t seq)
{
    return s_run (self, "INSERT INTO meta (k, v) VALUES ('last_seq', ?) "
                  "ON CONFLICT (k) DO UPDATE SET v = MAX(v, excluded.v)", "i", seq) < 0 ? -1 : 0;
}

json_t *
state_request (state_t *self, int64_t id)
{
    json_t *rows = s_query (self, "SELECT * FROM requests WHERE id = ?", "i", id);
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return row;
}

int
state_add_request (state_t *self, int64_t id, const char *webhook, const char *rendered)
{
    return s_run (self, "INSERT OR IGNORE INTO requests (id, webhook, rendered, created_ms) VALUES (?, ?, ?, ?)",
                  "issi", id, webhook, rendered, clock_wall_ms ()) < 0 ? -1 : 0;
}

int
state_set_response_url (state_t *self, int64_t id, const char *url, int64_t now_ms)
{
    return s_run (self, "UPDATE requests SET response_url = ?, url_seen_ms = ?, url_uses = 0 WHERE id = ?",
                  "sii", url, now_ms, id) < 0 ? -1 : 0;
}

int
state_use_response_url (state_t *self, int64_t id)
{
    return s_run (self, "UPDATE requests SET url_uses = url_uses + 1 WHERE id = ?", "i", id) < 0 ? -1 : 0;
}

int
state_set_rendered (state_t *self, int64_t id, const char *rendered, bool final, int rev)
{
    return s_run (self, "UPDATE requests SET rendered = ?, final = ?, rev = ? WHERE id = ?",
                  "siii", rendered, (int64_t) final, (int64_t) rev, id) < 0 ? -1 : 0;
}

int
state_seen (state_t *self, const char *key, int64_t now_ms)
{
    //  Slack stops retrying a click after minutes; a day of keys is plenty to spot replays.
    if (s_run (self, "DELETE FROM seen WHERE at_ms < ?", "i", now_ms - 86400000) < 0)
        return -1;
    int n = s_run (self, "INSERT OR IGNORE INTO seen (key, at_ms) VALUES (?, ?)", "si", key, now_ms);
    return n < 0 ? -1 : n == 0 ? 1 : 0;
}

int
state_add_decision (state_t *self, int64_t id, const char *slack_user, const char *principal,
                    const char *action)
{
    return s_run (self, "INSERT OR IGNORE INTO decisions VALUES (?, ?, ?, ?)", "isss",
                  id, slack_user, principal, action) < 0 ? -1 : 0;
}

bool
state_has_decision (state_t *self, int64_t id, const char *slack_user, const char *action)
{
    return s_first_int (s_query (self, "SELECT count(*) AS n FROM decisions WHERE request_id = ? "
                                 "AND slack_user = ? AND action = ?", "iss", id, slack_user, action), "n", 0) > 0;
}

json_t *
state_slack_ids (state_t *self, int64_t id)
{
    json_t *rows = s_query (self, "SELECT principal, slack_user FROM decisions WHERE request_id = ?", "i", id);
    json_t *ids = json_object ();
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        json_object_set (ids, json_string_value (json_object_get (row, "principal")),
                         json_object_get (row, "slack_user"));
    json_decref (rows);
    return ids;
}

int
state_job_add (state_t *self, int64_t request_id, const char *kind, const char *url,
               const char *body, int64_t now_ms)
{
    return s_run (self, "INSERT INTO jobs (request_id, kind, url, body, next_at_ms, created_ms) "
                  "VALUES (?, ?, ?, ?, ?, ?)", "isssii", request_id, kind, url, body, now_ms, now_ms) < 0 ? -1 : 0;
}

json_t *
state_jobs_due (state_t *self, int64_t now_ms)
{
    //  Only the oldest job of each URL may go: messages to one webhook (or updates through
    //  one response_url) leave in the order they were queued, retries included.
    return s_query (self, "SELECT id, request_id, kind, url, body, attempts, created_ms FROM jobs j "
                    "WHERE next_at_ms <= ? AND id = (SELECT min(id) FROM jobs WHERE url = j.url) "
                    "ORDER BY id", "i", now_ms);
}

int64_t
state_jobs_count (state_t *self)
{
    return s_first_int (s_query (self, "SELECT count(*) AS n FROM jobs", ""), "n", -1);
}

int
state_job_done (state_t *self, int64_t job_id)
{
    return s_run (self, "DELETE FROM jobs WHERE id = ?", "i", job_id) < 0 ? -1 : 0;
}

int
state_job_retry (state_t *self, int64_t job_id, int attempts, int64_t next_at_ms)
{
    return s_run (self, "UPDATE jobs SET attempts = ?, next_at_ms = ? WHERE id = ?", "iii",
                  (int64_t) attempts, next_at_ms, job_id) < 0 ? -1 : 0;
}

int
state_job_failed (state_t *self, int64_t job_id, long status, const char *answer)
{
    if (state_begin (self))
        return -1;
    if (s_run (self, "INSERT INTO failures SELECT id, request_id, kind, url, body, attempts, ?, ?, ? "
               "FROM jobs WHERE id = ?", "isii", (int64_t) status, answer, clock_wall_ms (), job_id) < 0
     || s_run (self, "DELETE FROM jobs WHERE id = ?", "i", job_id) < 0) {
        state_rollback (self);
        return -1;
    }
    return state_commit (self);
}

int
state_test (void)
{
    char path[] = "/tmp/approver-state-XXXXXX";
    int fd = mkstemp (path);
    CHECK (fd >= 0);
    if (fd < 0)
        return -1;
    close (fd);
    state_t *s = state_new (path);
    CHECK (s != NULL);
    if (!s)
        return -1;
    CHECK (state_last_seq (s) == 0);
    CHECK (state_set_last_seq (s, 7) == 0 && state_set_last_seq (s, 5) == 0 && state_last_seq (s) == 7);
    CHECK (state_request (s, 1) == NULL);
    CHECK (state_begin (s) == 0);
    CHECK (state_add_request (s, 1, "http://hook/a", "pending_approval:0") == 0);
    CHECK (state_job_add (s, 1, "post", "http://hook/a", "{}", 1000) == 0);
    CHECK (state_job_add (s, 2, "post", "http://hook/a", "{}", 1000) == 0);
    CHECK (state_job_add (s, 2, "update", "http://resp/1", "{}", 1000) == 0);
    CHECK (state_commit (s) == 0);
    json_t *due = state_jobs_due (s, 1000);
    CHECK (json_array_size (due) == 2);         //  one per URL: the second hook post waits
    int64_t first = json_integer_value (json_object_get (json_array_get (due, 0), "id"));
    json_decref (due);
    CHECK (state_job_retry (s, first, 1, 5000) == 0);
    due = state_jobs_due (s, 2000);
    CHECK (json_array_size (due) == 1);         //  the retried head blocks its URL
    json_decref (due);
    CHECK (state_job_failed (s, first, 404, "no_service") == 0 && state_jobs_count (s) == 2);
    CHECK (state_seen (s, "t:1", 1) == 0 && state_seen (s, "t:1", 2) == 1);
    CHECK (state_add_decision (s, 1, "U1", "alice", "approve") == 0);
    CHECK (state_has_decision (s, 1, "U1", "approve") && !state_has_decision (s, 1, "U1", "deny"));
    json_t *ids = state_slack_ids (s, 1);
    CHECK (strcmp (json_string_value (json_object_get (ids, "alice")), "U1") == 0);
    json_decref (ids);
    CHECK (state_set_response_url (s, 1, "http://resp/2", 10) == 0 && state_use_response_url (s, 1) == 0);
    json_t *r = state_request (s, 1);
    CHECK (r && json_integer_value (json_object_get (r, "url_uses")) == 1);
    json_decref (r);
    state_destroy (&s);
    CHECK (s == NULL);
    s = state_new (path);                       //  survives a reopen
    CHECK (s && state_last_seq (s) == 7 && state_jobs_count (s) == 2);
    state_destroy (&s);
    char extra[64];
    unlink (path);
    snprintf (extra, sizeof extra, "%s-wal", path);
    unlink (extra);
    snprintf (extra, sizeof extra, "%s-shm", path);
    unlink (extra);
    return 0;
}
