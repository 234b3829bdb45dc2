/*  store/verify_test.c: verify.c's self-test. An attacker with write access to the file
    drops the triggers, edits rows and puts the triggers back; each edit is caught and the
    first bad row named. verify_schema_test.c tampers with the schema itself. */
#include "store/verify.h"
#include "store/store.h"
#include "common/check.h"
#include "common/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COUNT(a) (sizeof (a) / sizeof (a)[0])

static int64_t
s_test_request (store_t *store, const char *session, const char *lang, const char *code)
{
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", "alice", "role", "agent",
                             "session", session, "lang", lang, "code", code);
    int64_t id = 0;
    bool duplicate;
    if (store_submit (store, req, &id, &duplicate) != 0)
        id = -1;
    json_decref (req);
    return id;
}

static int
s_test_move (store_t *store, int64_t id, const char *from, const char *to, json_t *fields)
{
    int rc = store_transition (store, id, from, to, "broker", fields);
    json_decref (fields);
    return rc;
}

//  Requests 1 (done, ok), 2 (approved, done with an error), 3 (denied), then a rejected
//  event: events 1-4, 5-10, 11-12, 13.
store_t *
verify_test_build (const char *path)
{
    store_t *store = store_new (path, 0);
    int rc = store ? 0 : -1;
    rc |= s_test_request (store, "s1", "python", "print(1)") == 1 ? 0 : -1;
    rc |= s_test_move (store, 1, "received", "queued", json_pack ("{s:s}", "rule", "allow"));
    rc |= s_test_move (store, 1, "queued", "running", json_pack ("{s:s}", "worker", "w1"));
    rc |= s_test_move (store, 1, "running", "done", json_pack ("{s:s, s:i, s:s, s:f}",
                       "outcome", "ok", "exit_code", 0, "stdout", "1\n", "wall_ms", 0.8));
    rc |= s_test_request (store, "s1", "python", "1/0") == 2 ? 0 : -1;
    rc |= s_test_move (store, 2, "received", "pending_approval", NULL);
    json_t *bob = json_pack ("{s:s, s:s, s:s}", "approver", "bob", "via", "cli", "decision",
                             "approve");
    rc |= store_approve (store, 2, bob, "queued", NULL);
    json_decref (bob);
    rc |= s_test_move (store, 2, "queued", "running", json_pack ("{s:s}", "worker", "w1"));
    rc |= s_test_move (store, 2, "running", "done", json_pack ("{s:s, s:i, s:{s:s, s:s}}",
                       "outcome", "error", "exit_code", 1, "error", "name", "ZeroDivisionError",
                       "traceback", "Traceback (most recent call last): ..."));
    rc |= s_test_request (store, "s2", "shell", "rm -rf /") == 3 ? 0 : -1;
    rc |= s_test_move (store, 3, "received", "denied", NULL);
    rc |= store_event (store, 0, "rejected", "mallory", NULL);
    if (rc != 0 || store_head_seq (store) != 13)
        store_destroy (&store);
    return store;
}

//  Builds the SQL of the tampering cases that need values computed the way an attacker
//  would (hashes that match their edit); caller frees with sqlite3_free.
static char *
s_test_forge (store_t *store, const char *name)
{
    char sha[65];
    if (strcmp (name, "code with its sha") == 0) {
        sha256_hex ("print(2)", 8, sha);
        return sqlite3_mprintf ("UPDATE requests SET code = 'print(2)', code_sha256 = %Q"
                                " WHERE id = 1", sha);
    }
    if (strcmp (name, "stdout with its sha") == 0) {
        sha256_hex ("2\n", 2, sha);
        return sqlite3_mprintf ("UPDATE requests SET stdout = '2\n', stdout_sha256 = %Q"
                                " WHERE id = 1", sha);
    }
    //  A well-formed, correctly chained event that rewrites request 1's fate.
    json_t *events = store_events_since (store, 12, 1);
    const char *prev = json_string_value (json_object_get (json_array_get (events, 0), "hash"));
    json_t *data = json_pack ("{s:s, s:s}", "from", "running", "to", "lost");
    const char *at = "2030-01-01T00:00:00.000Z";
    char *sql = NULL;
    if (prev && data && event_hash (prev, 14, at, 1, "lost", "broker", data, sha) == 0)
        sql = sqlite3_mprintf ("INSERT INTO events VALUES (14, %Q, 1, 'lost', 'broker',"
                               " '{\"from\":\"running\",\"to\":\"lost\"}', %Q, %Q);"
                               " UPDATE requests SET state = 'lost' WHERE id = 1", at, prev, sha);
    json_decref (data);
    json_decref (events);
    return sql;
}

typedef struct {
    const char *name;
    const char *sql;            //  NULL: s_test_forge makes it
    const char *table;
    int64_t row;
} tamper_t;

static const tamper_t s_tampers[] = {
    { "altered code", "UPDATE requests SET code = 'print(2)' WHERE id = 1", "requests", 1 },
    { "code with its sha", NULL, "requests", 1 },
    { "altered stdout", "UPDATE requests SET stdout = '2\n' WHERE id = 1", "requests", 1 },
    { "stdout with its sha", NULL, "requests", 1 },
    { "altered event data", "UPDATE events SET data = replace (data, '\"w1\"', '\"w9\"')"
      " WHERE seq = 3", "events", 3 },
    { "deleted event", "DELETE FROM events WHERE seq = 6", "events", 7 },
    { "inserted event", "INSERT INTO events SELECT 14, at, NULL, 'note', 'mallory', '{}', hash,"
      " hex (zeroblob (32)) FROM events WHERE seq = 13", "events", 14 },
    { "forged event", NULL, "events", 14 },
    { "reordered events", "UPDATE events SET seq = -2 WHERE seq = 2; UPDATE events SET seq = 2"
      " WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = -2", "events", 2 },
    { "request by hand", "INSERT INTO requests (principal, role, session, lang, code,"
      " code_sha256, bind_sha256, state, submitted_at) VALUES ('alice', 'agent', 's1', 'python',"
      " 'x', 'x', 'x', 'done', '2026-01-01T00:00:00.000Z')", "requests", 4 },
    { "altered approval", "UPDATE approvals SET approver = 'eve'", "approvals", 1 },
    { "approval by hand", "INSERT INTO approvals (request_id, approver, via, decision, at)"
      " VALUES (2, 'eve', 'cli', 'approve', '2026-01-01T00:00:00.000Z')", "approvals", 2 },
    { "altered result", "UPDATE requests SET outcome = 'ok', exit_code = 0 WHERE id = 2",
      "requests", 2 },
    { "rewound state", "UPDATE requests SET state = 'queued' WHERE id = 3", "requests", 3 },
    { "deleted request", "DELETE FROM requests WHERE id = 3", "requests", 3 },
};

//  Runs sql as a careful intruder would, in one transaction: the triggers dropped, the edit,
//  then the triggers put back exactly as they were, so that only the rows tell. The sqlite
//  result code, and the error text into error (may be NULL).
static int
s_test_careful (const char *path, const char *sql, char *error, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *script = NULL;
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
    &&  sqlite3_prepare_v2 (db, "SELECT group_concat ('DROP TRIGGER ' || name, '; '),"
                            " group_concat (sql, '; ') FROM sqlite_master WHERE type = 'trigger'",
                            -1, &st, NULL) == SQLITE_OK
    &&  sqlite3_step (st) == SQLITE_ROW)
        script = sqlite3_mprintf ("BEGIN; %s; %s; %s; COMMIT;", sqlite3_column_text (st, 0), sql,
                                  sqlite3_column_text (st, 1));
    sqlite3_finalize (st);
    sqlite3_close (db);
    int rc = script ? store_raw_exec (path, script, error, size) : SQLITE_ERROR;
    sqlite3_free (script);
    return rc;
}

static const char *s_drop_triggers =
    "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete;"
    " DROP TRIGGER IF EXISTS approvals_no_update; DROP TRIGGER IF EXISTS approvals_no_delete;"
    " DROP TRIGGER IF EXISTS requests_inputs_fixed; DROP TRIGGER IF EXISTS requests_no_delete;";

static void
s_test_tamper (const char *dir, const tamper_t *t)
{
    char path[256], error[256] = "";
    snprintf (path, sizeof path, "%s/tamper.db", dir);
    store_t *store = verify_test_build (path);
    CHECK (store);
    char *forged = store && !t->sql ? s_test_forge (store, t->name) : NULL;
    const char *sql = t->sql ? t->sql : forged;
    CHECK (sql && s_test_careful (path, sql, error, sizeof error) == SQLITE_OK);
    sqlite3_free (forged);
    json_t *report = NULL;
    int rc = store ? store_verify (store, &report) : -1;
    json_t *bad = json_object_get (report, "bad");
    const char *table = json_string_value (json_object_get (bad, "table"));
    int64_t row = json_integer_value (json_object_get (bad, "row"));
    CHECK (rc == 1 && json_is_false (json_object_get (report, "ok")));
    CHECK (table && strcmp (table, t->table) == 0 && row == t->row);
    CHECK (json_is_array (json_object_get (report, "schema"))
           && json_array_size (json_object_get (report, "schema")) == 0);
    if (rc != 1 || !table || strcmp (table, t->table) != 0 || row != t->row)
        fprintf (stderr, "FAIL tampering '%s': rc %d, bad %s %lld (%s) %s\n", t->name, rc,
                 table ? table : "-", (long long) row,
                 json_string_value (json_object_get (bad, "why")), error);
    json_decref (report);
    store_destroy (&store);
    unlink (path);
}

static bool
s_streq_json (json_t *value, const char *text)
{
    return json_is_string (value) && strcmp (json_string_value (value), text) == 0;
}

//  The intact fixture verifies; a truncated tail does too, but its head moves.
static void
s_test_intact (const char *dir)
{
    char path[256];
    snprintf (path, sizeof path, "%s/intact.db", dir);
    store_t *store = verify_test_build (path);
    json_t *report = NULL;
    CHECK (store && store_verify (store, &report) == 0);
    CHECK (json_integer_value (json_object_get (report, "events")) == 13);
    CHECK (json_integer_value (json_object_get (report, "requests")) == 3);
    CHECK (json_is_string (json_object_get (report, "first_at")));
    json_t *events = store ? store_events_since (store, 12, 0) : NULL;
    const char *head = json_string_value (json_object_get (json_array_get (events, 0), "hash"));
    CHECK (head && s_streq_json (json_object_get (report, "head"), head));
    CHECK (json_integer_value (json_object_get (report, "head_seq")) == 13);
    json_decref (report);
    CHECK (s_test_careful (path, "DELETE FROM events WHERE seq = 13", NULL, 0) == SQLITE_OK);
    CHECK (store && store_verify (store, &report) == 0);
    CHECK (head && !s_streq_json (json_object_get (report, "head"), head));
    CHECK (json_integer_value (json_object_get (report, "head_seq")) == 12);
    json_decref (report);
    json_decref (events);
    store_destroy (&store);
    unlink (path);
}

static int
s_test_check (store_t *store, const char *head, const char *table, int64_t row)
{
    json_t *report = NULL;
    int rc = head ? store_verify_head (store, head, &report) : store_verify (store, &report);
    json_t *bad = json_object_get (report, "bad");
    if (rc == 1 && (!table || !s_streq_json (json_object_get (bad, "table"), table)
                    || json_integer_value (json_object_get (bad, "row")) != row)) {
        fprintf (stderr, "FAIL verify named %s %lld: %s\n", json_string_value (json_object_get (
                 bad, "table")), (long long) json_integer_value (json_object_get (bad, "row")),
                 json_string_value (json_object_get (bad, "why")));
        rc = -2;
    }
    json_decref (report);
    return rc;
}

//  Pruning keeps the chain whole, and what remains is still checked.
static void
s_test_prune (const char *dir)
{
    char path[256];
    snprintf (path, sizeof path, "%s/prune.db", dir);
    store_t *store = verify_test_build (path);
    int64_t count = -1;
    CHECK (store && store_prune (store, "2000-01-01", "admin", &count) == 0 && count == 0);
    CHECK (store_prune (store, "2999-01-01", "admin", &count) == 0 && count == 3);
    CHECK (store_head_seq (store) == 16 && s_test_check (store, NULL, NULL, 0) == 0);
    json_t *row = store_get (store, 1);
    CHECK (s_streq_json (json_object_get (row, "code"), "")
           && json_is_null (json_object_get (row, "stdout"))
           && json_is_string (json_object_get (row, "pruned_at"))
           && json_is_string (json_object_get (row, "code_sha256")));
    json_decref (row);
    CHECK (store_prune (store, "2999-01-01", "admin", &count) == 0 && count == 0);
    CHECK (store_event (store, 1, "pruned", "eve", NULL) == -1);
    //  The triggers allow only a blanking that sets pruned_at, once.
    CHECK (store_raw_exec (path, "UPDATE requests SET code = 'x', pruned_at = NULL WHERE id = 1",
                           NULL, 0) != SQLITE_OK);
    CHECK (store_raw_exec (path, "UPDATE requests SET pruned_at = 'x' WHERE id = 1", NULL, 0)
           != SQLITE_OK);
    CHECK (store_raw_exec (path, s_drop_triggers, NULL, 0) == SQLITE_OK);
    CHECK (store_raw_exec (path, "UPDATE requests SET code = 'x' WHERE id = 1", NULL, 0) == 0);
    CHECK (s_test_check (store, NULL, "requests", 1) == 1);
    CHECK (store_raw_exec (path, "UPDATE requests SET code = '', error_name = 'E' WHERE id = 1",
                           NULL, 0) == 0);
    CHECK (s_test_check (store, NULL, "requests", 1) == 1);
    store_destroy (&store);
    unlink (path);
}

//  A prune by hand, and a prune that would launder an edit, are both caught.
static void
s_test_prune_forged (const char *dir)
{
    char path[256];
    snprintf (path, sizeof path, "%s/prune.db", dir);
    store_t *store = verify_test_build (path);
    CHECK (store_raw_exec (path, "UPDATE requests SET code = '', pruned_at = '2030-01-01'"
                           " WHERE id = 1", NULL, 0) == SQLITE_OK);    //  triggers allow it
    CHECK (s_test_check (store, NULL, "requests", 1) == 1);
    store_destroy (&store);
    unlink (path);
    store = verify_test_build (path);
    int64_t count = 0;
    CHECK (store_raw_exec (path, s_drop_triggers, NULL, 0) == SQLITE_OK);
    CHECK (store_raw_exec (path, "UPDATE requests SET stdout = '2\n' WHERE id = 1", NULL, 0) == 0);
    CHECK (store && store_prune (store, "2999-01-01", "admin", &count) == 0 && count == 3);
    CHECK (s_test_check (store, NULL, "events", 14) == 1);
    store_destroy (&store);
    unlink (path);
}

//  A saved head proves the past: an event rewritten (and re-chained) before it is caught.
static void
s_test_saved_head (const char *dir)
{
    char path[256], hash[65];
    snprintf (path, sizeof path, "%s/head.db", dir);
    store_t *store = verify_test_build (path);
    json_t *events = store ? store_events_since (store, 11, 0) : NULL;
    json_t *e12 = json_array_get (events, 0), *e13 = json_array_get (events, 1);
    char head[65];
    snprintf (head, sizeof head, "%s", json_string_value (json_object_get (e13, "hash")));
    CHECK (store_event (store, 0, "note", "bob", NULL) == 0);
    json_t *report = NULL;
    CHECK (store_verify_head (store, head, &report) == 0);
    json_t *since = json_object_get (report, "since_head");
    CHECK (json_integer_value (json_object_get (since, "seq")) == 13
           && json_integer_value (json_object_get (since, "events_after")) == 1);
    json_decref (report);
    CHECK (s_test_check (store, "beef", "events", 0) == 1);
    //  Event 13 rewritten with another actor, 13 and 14 re-hashed: the chain is sound again.
    json_t *data = json_object ();
    const char *prev = json_string_value (json_object_get (e12, "hash"));
    const char *at = json_string_value (json_object_get (e13, "at"));
    CHECK (event_hash (prev, 13, at, 0, "rejected", "nobody", data, hash) == 0);
    char *sql = sqlite3_mprintf ("UPDATE events SET actor = 'nobody', hash = %Q WHERE seq = 13;"
                                 " UPDATE events SET prev_hash = %Q WHERE seq = 14", hash, hash);
    CHECK (s_test_careful (path, sql, NULL, 0) == SQLITE_OK);
    sqlite3_free (sql);
    json_decref (events);
    events = store_events_since (store, 13, 0);
    json_t *e14 = json_array_get (events, 0);
    CHECK (event_hash (hash, 14, json_string_value (json_object_get (e14, "at")), 0, "note", "bob",
                       data, hash) == 0);
    sql = sqlite3_mprintf ("UPDATE events SET hash = %Q WHERE seq = 14", hash);
    CHECK (s_test_careful (path, sql, NULL, 0) == SQLITE_OK);
    sqlite3_free (sql);
    CHECK (s_test_check (store, NULL, NULL, 0) == 0);
    CHECK (s_test_check (store, head, "events", 0) == 1);
    json_decref (events);
    json_decref (data);
    store_destroy (&store);
    unlink (path);
}

int
verify_test (const char *dir)
{
    s_test_intact (dir);
    s_test_prune (dir);
    s_test_prune_forged (dir);
    s_test_saved_head (dir);
    for (size_t i = 0; i < COUNT (s_tampers); i++)
        s_test_tamper (dir, &s_tampers[i]);
    verify_schema_test (dir);
    return 0;
}
