/*  store/store_test.c: store_test, the store module's self-test, on real files in a
    temporary directory; it also runs verify_test, checkpointer_test, schema_test
    and query_test. */
#include "store/store_int.h"
#include "store/checkpointer.h"
#include "common/check.h"
#include "common/util.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
json_t *
store_test_last_data (store_t *store)
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
    json_t *data = store_test_last_data (store);
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
    json_t *data = store_test_last_data (store);
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
    json_t *data = store_test_last_data (store);
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
        //  v6 spells these CHECKs as comparisons: still nothing else passes.
        { "UPDATE requests SET state = 'hacked' WHERE id = 1", "CHECK constraint failed" },
        { "UPDATE requests SET outcome = 'fine' WHERE id = 1", "CHECK constraint failed" },
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

//  The streamed hash against the canonical event built and dumped whole, as it was first
//  written: the strings it passes through as they are, those jansson must escape, numbers.
static void
s_test_canonical_strings (void)
{
    const char *strings[] = { "bob", "", "a\"b", "back\\slash", "tab\there", "\x7f",
                              "caf\xc3\xa9", "\xf0\x9f\x94\x92", "a/b", "~ !#$%&'()*+,-.:;<=>?@[]^_`{|}",
                              "\x01\x1f" };
    json_t *data = json_pack ("{s:s}", "k", "v");
    char *text = event_data_text (data);
    for (size_t i = 0; i < COUNT (strings); i++)
        for (int64_t request_id = 0; request_id <= 9007199254740993LL; request_id += 9007199254740993LL) {
            json_t *event = json_pack ("{s:I, s:s, s:o, s:s, s:s, s:O}", "seq", (json_int_t) 77 + i,
                                       "at", strings[i], "request_id", request_id ? json_integer (
                                       request_id) : json_null (), "type", strings[COUNT (strings) - 1 - i],
                                       "actor", strings[i], "data", data);
            char *canonical = json_dumps (event, JSON_COMPACT | JSON_SORT_KEYS);
            char *bytes = canonical ? sqlite3_mprintf ("%s%s", VERIFY_GENESIS, canonical) : NULL;
            char want[65] = "", hash[65] = "";
            if (bytes)
                sha256_hex (bytes, strlen (bytes), want);
            CHECK (event_hash_text (VERIFY_GENESIS, 77 + (int64_t) i, strings[i], request_id,
                                    strings[COUNT (strings) - 1 - i], strings[i], text, hash) == 0);
            CHECK (*want && strcmp (hash, want) == 0);
            sqlite3_free (bytes);
            free (canonical);
            json_decref (event);
        }
    char hash[65];
    CHECK (event_hash_text (VERIFY_GENESIS, 1, "t", 0, "note", "\xc3(", text, hash) == -1);
    CHECK (event_hash_text (VERIFY_GENESIS, 1, "t", 0, "note", NULL, text, hash) == -1);
    CHECK (event_hash_text (VERIFY_GENESIS, 1, "t", 0, "note", "bob", NULL, hash) == -1);
    free (text);
    json_decref (data);
}

//  store_row_json on every kind of value SQLite can hand it, from any statement.
static void
s_test_row_json (void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT 7 AS i, 2.5 AS r, NULL AS n, 'caf\xc3\xa9' AS t, X'FF00' AS b,"
                      " CAST (X'61C3' AS TEXT) AS cut, 'a' || char (0) || 'b' AS nul,"
                      " 1 AS stdout_truncated, 2 AS stderr_truncated, 0 AS session_reset,"
                      " '{\"q\":2}' AS review, 'nope' AS limits, 9223372036854775807 AS big";
    CHECK (sqlite3_open (":memory:", &db) == SQLITE_OK
           && sqlite3_prepare_v2 (db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step (st) == SQLITE_ROW);
    json_t *row = store_row_json (st, false);
    CHECK (row && json_integer_value (json_object_get (row, "i")) == 7);
    CHECK (json_real_value (json_object_get (row, "r")) == 2.5 && json_is_null (json_object_get (row, "n")));
    CHECK (s_streq (json_string_value (json_object_get (row, "t")), "caf\xc3\xa9"));
    CHECK (s_streq (json_string_value (json_object_get (row, "b")), "\xef\xbf\xbd\xef\xbf\xbd"));
    CHECK (s_streq (json_string_value (json_object_get (row, "b_base64")), "/wA="));
    CHECK (s_streq (json_string_value (json_object_get (row, "cut")), "a\xef\xbf\xbd"));  //  cut UTF-8
    CHECK (s_streq (json_string_value (json_object_get (row, "nul")), "a\xef\xbf\xbd" "b"));
    CHECK (json_is_true (json_object_get (row, "stdout_truncated")));
    CHECK (json_integer_value (json_object_get (row, "stderr_truncated")) == 2);   //  not a boolean
    CHECK (json_is_false (json_object_get (row, "session_reset")));
    CHECK (json_integer_value (json_object_get (json_object_get (row, "review"), "q")) == 2);
    CHECK (json_is_null (json_object_get (row, "limits")));                        //  not JSON
    CHECK (json_integer_value (json_object_get (row, "big")) == INT64_MAX);
    json_decref (row);
    row = store_row_json (st, true);                //  raw: the bytes, nothing parsed
    json_t *nul = json_object_get (row, "nul");
    CHECK (row && json_string_length (nul) == 3 && memcmp (json_string_value (nul), "a\0b", 3) == 0);
    CHECK (json_string_length (json_object_get (row, "cut")) == 2 && !json_object_get (row, "b_base64"));
    CHECK (s_streq (json_string_value (json_object_get (row, "review")), "{\"q\":2}"));
    json_decref (row);
    sqlite3_finalize (st);
    sqlite3_close (db);
}

//  A group: its writes are invisible to other connections until it commits, a write that
//  fails inside it rolls back alone, and a group rolled back leaves nothing.
static void
s_test_groups (const char *dir)
{
    char path[256], count[32];
    snprintf (path, sizeof path, "%s/group.db", dir);
    store_t *store = store_new (path, 0);
    CHECK (store && !store_in_group (store));
    CHECK (store_group_begin (store) == 0 && store_in_group (store));
    int64_t id = s_test_submit (store, "p", "s", "python", "1", NULL);
    CHECK (id > 0);
    CHECK (store_transition (store, id, "received", "running", "broker", NULL) == -1);
    CHECK (store_transition (store, id, "received", "queued", "broker", NULL) == 0);
    s_raw_text (path, "SELECT count(*) FROM requests", count, sizeof count);
    CHECK (strcmp (count, "0") == 0);               //  not committed yet
    CHECK (store_group_end (store, true) == 0 && !store_in_group (store));
    s_raw_text (path, "SELECT state || count(*) FROM requests", count, sizeof count);
    CHECK (strcmp (count, "queued1") == 0);
    s_raw_text (path, "SELECT group_concat (type) FROM events", count, sizeof count);
    CHECK (strcmp (count, "received,queued") == 0);
    CHECK (store_group_begin (store) == 0);
    CHECK (s_test_submit (store, "p", "s", "python", "2", NULL) > 0);
    CHECK (store_group_end (store, false) == 0);    //  rolled back as asked
    s_raw_text (path, "SELECT count(*) FROM events", count, sizeof count);
    CHECK (strcmp (count, "2") == 0);
    json_t *report = NULL;
    CHECK (store_verify (store, &report) == 0 && json_is_true (json_object_get (report, "ok")));
    json_decref (report);
    store_destroy (&store);
}

//  store_get_entry: its columns, each as store_get shows it, and nothing else.
static void
s_test_entry (store_t *store)
{
    int64_t parked = s_test_submit (store, "dave", "s9", "python", "y = 2", NULL);
    json_t *fields = json_pack ("{s:s, s:{s:i}, s:{s:i, s:s}}", "rule", "r", "limits",
                                "timeout_ms", 5000, "review", "quorum", 1, "expires_at",
                                "2026-12-04T00:00:00.000Z");
    CHECK (store_transition (store, parked, "received", "pending_approval", "broker", fields) == 0);
    json_decref (fields);
    bool review = false, limits = false;
    for (int64_t id = 1; id <= parked; id++) {
        json_t *entry = store_get_entry (store, id), *row = store_get (store, id);
        CHECK (entry && row && json_object_size (entry) == 9);
        const char *key;
        json_t *v;
        json_object_foreach (entry, key, v)
            CHECK (json_equal (v, json_object_get (row, key)));
        review |= json_is_object (json_object_get (entry, "review"));
        limits |= json_is_object (json_object_get (entry, "limits"));
        json_decref (entry);
        json_decref (row);
    }
    CHECK (review && limits);           //  the JSON columns, read as objects
    CHECK (store_get_entry (store, 99) == NULL && store_fault (store) == 0);
}

int
store_test (void)
{
    char dir[] = "/tmp/replgate-store-XXXXXX";
    CHECK (mkdtemp (dir) != NULL);
    s_test_open (dir);
    s_test_canonical ();
    s_test_canonical_strings ();
    s_test_row_json ();
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
        s_test_entry (store);
        store_destroy (&store);
    }
    s_test_groups (dir);
    verify_test (dir);
    checkpointer_test (dir);
    schema_test (dir);
    query_test (dir);
    CHECK (check_remove_dir (dir) == 0);
    return 0;
}
