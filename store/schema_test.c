/*  store/schema_test.c: schema_test, run by store_test: a database made as version 1 made it
    upgrades through the migrations, still verifies, and takes the fields added since; the
    states the stored schema spells are those of common/states.c. */
#include "store/schema.h"
#include "store/store.h"
#include "store/verify.h"
#include "common/states.h"
#include "common/check.h"
#include "common/util.h"
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Appends one event the way version 1 did; prev is updated to its hash.
static int
s_test_event (sqlite3 *db, int64_t seq, int64_t request_id, const char *type, json_t *data,
              char prev[65])
{
    const char *at = "2026-01-01T00:00:00.000Z";
    char hash[65], *text = event_data_text (data);
    int rc = text ? event_hash (prev, seq, at, request_id, type, "alice", data, hash) : -1;
    char *sql = rc ? NULL : sqlite3_mprintf ("INSERT INTO events VALUES (%lld, %Q, %lld, %Q,"
                                             " 'alice', %Q, %Q, %Q)", (long long) seq, at,
                                             (long long) request_id, type, text, prev, hash);
    rc = sql ? sqlite3_exec (db, sql, NULL, NULL, NULL) : -1;
    if (rc == SQLITE_OK)
        memcpy (prev, hash, 65);
    sqlite3_free (sql);
    free (text);
    json_decref (data);
    return rc;
}

//  Request 1, received then queued, as a version 1 broker recorded it.
static int
s_test_v1 (const char *path)
{
    sqlite3 *db = NULL;
    char code_sha[65], bind_sha[65], prev[65] = VERIFY_GENESIS;
    sha256_hex ("1", 1, code_sha);
    sha256_hex ("python\0s\0" "1", 11, bind_sha);
    int rc = sqlite3_open (path, &db);
    rc |= sqlite3_exec (db, schema_migration (0), NULL, NULL, NULL);
    char *sql = sqlite3_mprintf ("INSERT INTO requests (principal, role, session, lang, code,"
                                 " code_sha256, bind_sha256, state, submitted_at, queued_at, rule)"
                                 " VALUES ('alice', 'agent', 's', 'python', '1', %Q, %Q, 'queued',"
                                 " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'r')",
                                 code_sha, bind_sha);
    rc |= sqlite3_exec (db, sql, NULL, NULL, NULL);
    sqlite3_free (sql);
    rc |= s_test_event (db, 1, 1, "received", json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n}",
                        "principal", "alice", "role", "agent", "session", "s", "lang", "python",
                        "code_sha256", code_sha, "bind_sha256", bind_sha, "reason", "key"), prev);
    rc |= s_test_event (db, 2, 1, "queued", json_pack ("{s:s, s:s, s:s, s:n, s:n}", "from",
                        "received", "to", "queued", "rule", "r", "decision_message",
                        "policy_sha256"), prev);
    sqlite3_close (db);
    return rc;
}

static int
s_test_verify (store_t *store, const char *table, int64_t row)
{
    json_t *report = NULL;
    int rc = store_verify (store, &report);
    json_t *bad = json_object_get (report, "bad");
    if (bad && !table)
        fprintf (stderr, "FAIL verify: %s\n", json_string_value (json_object_get (bad, "why")));
    if (table && (!bad || strcmp (json_string_value (json_object_get (bad, "table")), table)
                  || json_integer_value (json_object_get (bad, "row")) != row))
        rc = -2;
    json_decref (report);
    return rc;
}

//  review and limits: set from received, objects in events, canonical text in the row.
static void
s_test_review (store_t *store, const char *path)
{
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", "alice", "role", "agent",
                             "session", "s", "lang", "shell", "code", "rm x");
    int64_t id = 0;
    bool duplicate;
    CHECK (store_submit (store, req, &id, &duplicate) == 0 && id == 2);
    json_decref (req);
    json_t *fields = json_pack ("{s:s, s:{s:i, s:i, s:s, s:{s:[], s:[s]}, s:n}, s:{s:i, s:i}}",
                                "rule", "review-rm", "review", "ttl_s", 600, "quorum", 2,
                                "expires_at", "2026-01-01T00:10:00.000Z", "approvers",
                                "principals", "groups", "ops", "webhook", "limits",
                                "timeout_ms", 30000, "memory_mb", 1024);
    CHECK (store_transition (store, id, "received", "pending_approval", "broker", fields) == 0);
    json_t *row = store_get (store, id);
    CHECK (json_equal (json_object_get (row, "review"), json_object_get (fields, "review")));
    CHECK (json_equal (json_object_get (row, "limits"), json_object_get (fields, "limits")));
    json_t *data = store_test_last_data (store);
    CHECK (json_equal (json_object_get (data, "review"), json_object_get (fields, "review")));
    json_decref (data);
    json_decref (row);
    char text[256] = "";
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open (path, &db) == SQLITE_OK && sqlite3_prepare_v2 (db,
        "SELECT limits FROM requests WHERE id = 2", -1, &st, NULL) == SQLITE_OK
    &&  sqlite3_step (st) == SQLITE_ROW)
        snprintf (text, sizeof text, "%s", sqlite3_column_text (st, 0));
    sqlite3_finalize (st);
    sqlite3_close (db);
    CHECK (strcmp (text, "{\"memory_mb\":1024,\"timeout_ms\":30000}") == 0);
    json_object_set_new (fields, "review", json_string ("two"));        //  not an object
    CHECK (store_transition (store, 1, "received", "queued", "broker", fields) == -1);
    json_decref (fields);
    json_t *history = store_history (store, NULL, 0);
    row = json_array_get (history, 1);
    CHECK (json_integer_value (json_object_get (json_object_get (row, "review"), "quorum")) == 2);
    CHECK (strcmp (json_string_value (json_object_get (row, "decision")), "review") == 0);
    CHECK (json_is_null (json_object_get (json_array_get (history, 0), "limits")));
    json_decref (history);
}

static void
s_test_slack_user (store_t *store)
{
    json_t *a = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "approver", "gateway", "via", "slack",
                           "on_behalf_of", "carol", "slack_user", "U123", "decision", "approve");
    CHECK (store_approve (store, 2, a, NULL, NULL) == 0);
    json_decref (a);
    json_t *data = store_test_last_data (store);
    CHECK (strcmp (json_string_value (json_object_get (data, "slack_user")), "U123") == 0);
    json_decref (data);
    json_t *row = store_get (store, 2);
    json_t *approval = json_array_get (json_object_get (row, "approvals"), 0);
    CHECK (strcmp (json_string_value (json_object_get (approval, "slack_user")), "U123") == 0);
    json_decref (row);
    a = json_pack ("{s:s, s:s, s:s, s:i}", "approver", "dave", "via", "slack", "decision",
                   "approve", "slack_user", 5);
    CHECK (store_approve (store, 2, a, NULL, NULL) == -1);
    json_decref (a);
}

//  The CREATE statement of table or view `name` in the database at path; caller frees.
static char *
s_test_sql (const char *path, const char *name)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *sql = NULL;
    if (sqlite3_open (path, &db) == SQLITE_OK && sqlite3_prepare_v2 (db,
        "SELECT sql FROM sqlite_master WHERE name = ?1", -1, &st, NULL) == SQLITE_OK
    &&  sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC) == SQLITE_OK
    &&  sqlite3_step (st) == SQLITE_ROW)
        sql = strdup ((const char *) sqlite3_column_text (st, 0));
    sqlite3_finalize (st);
    sqlite3_close (db);
    return sql;
}

//  The quoted names of the parenthesized list after `marker` in sql (at most max); the count.
static size_t
s_test_list (const char *sql, const char *marker, char names[][32], size_t max)
{
    const char *p = sql ? strstr (sql, marker) : NULL;
    p = p ? strchr (p, '(') : NULL;
    size_t n = 0;
    while (p && *p != ')' && n < max) {
        const char *open = strchr (p, '\''), *close = strchr (p, ')');
        const char *end = open ? strchr (open + 1, '\'') : NULL;
        if (!end || !close || open > close)
            break;
        snprintf (names[n++], 32, "%.*s", (int) (end - open - 1), open + 1);
        p = end + 1;
    }
    return n;
}

//  The stored schema spells the states of common/states.c twice: the CHECK on
//  requests.state and, in the history view, the edges out of received. Released migrations
//  never change, so rather than built from the table they are checked against it.
static void
s_test_states (const char *path)
{
    char *requests = s_test_sql (path, "requests"), *history = s_test_sql (path, "history");
    char names[16][32];
    size_t n = s_test_list (requests, "CHECK (state =", names, 16);
    CHECK (n == states_count ());
    for (size_t i = 0; i < n; i++)
        CHECK (strcmp (names[i], states_name (i) ? states_name (i) : "") == 0);
    size_t out = 0;
    const char *from, *to;
    for (size_t e = 0; states_edge (e, &from, &to) == 0; e++)
        out += strcmp (from, "received") == 0;
    n = s_test_list (history, "e.type IN", names, 16);
    CHECK (n == out);
    for (size_t i = 0; i < n; i++)
        CHECK (states_edge_legal ("received", names[i]));
    free (requests);
    free (history);
}

//  Request 1 as a version 4 broker left it: run, interrupted, its events as it wrote them.
static int
s_test_v4 (const char *path)
{
    sqlite3 *db = NULL;
    char code_sha[65], bind_sha[65], prev[65] = VERIFY_GENESIS;
    const char *at = "2026-01-01T00:00:00.000Z";
    sha256_hex ("1", 1, code_sha);
    sha256_hex ("python\0s\0" "1", 11, bind_sha);
    int rc = sqlite3_open (path, &db);
    for (int v = 0; v < 4; v++)
        rc |= sqlite3_exec (db, schema_migration (v), NULL, NULL, NULL);
    char *sql = sqlite3_mprintf ("INSERT INTO requests (principal, role, session, lang, code,"
                                 " code_sha256, bind_sha256, state, submitted_at, queued_at,"
                                 " started_at, finished_at, rule, worker, outcome, exit_code)"
                                 " VALUES ('alice', 'agent', 's', 'python', '1', %Q, %Q, 'done',"
                                 " %Q, %Q, %Q, %Q, 'r', 'w1', 'interrupted', 130)",
                                 code_sha, bind_sha, at, at, at, at);
    rc |= sqlite3_exec (db, sql, NULL, NULL, NULL);
    sqlite3_free (sql);
    rc |= s_test_event (db, 1, 1, "received", json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n}",
                        "principal", "alice", "role", "agent", "session", "s", "lang", "python",
                        "code_sha256", code_sha, "bind_sha256", bind_sha, "reason", "key"), prev);
    rc |= s_test_event (db, 2, 1, "queued", json_pack ("{s:s, s:s, s:s}", "from", "received",
                        "to", "queued", "rule", "r"), prev);
    rc |= s_test_event (db, 3, 1, "running", json_pack ("{s:s, s:s, s:s}", "from", "queued",
                        "to", "running", "worker", "w1"), prev);
    rc |= s_test_event (db, 4, 1, "done", json_pack ("{s:s, s:s, s:s, s:i}", "from", "running",
                        "to", "done", "outcome", "interrupted", "exit_code", 130), prev);
    sqlite3_close (db);
    return rc;
}

//  A run with a grant on the migrated file: its connections as events before its end, the
//  totals in the row and in history, egress_limit taken, and an egress event anywhere but
//  before the end of a run found by verify.
static void
s_test_egress (store_t *store)
{
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", "bob", "role", "agent",
                             "session", "net", "lang", "python", "code", "fetch()");
    int64_t id = 0;
    bool duplicate;
    CHECK (store_submit (store, req, &id, &duplicate) == 0 && id == 2);
    json_decref (req);
    CHECK (store_transition (store, id, "received", "queued", "broker", NULL) == 0);
    json_t *worker = json_pack ("{s:s}", "worker", "w1");
    CHECK (store_transition (store, id, "queued", "running", "broker", worker) == 0);
    json_decref (worker);
    json_t *entry = json_pack ("{s:s, s:s, s:i, s:s, s:i, s:i, s:f, s:s}", "host", "pypi.org",
                               "address", "151.101.0.223", "port", 443, "method", "CONNECT",
                               "bytes_out", 517, "bytes_in", 4096, "ms", 12.5, "outcome", "allowed");
    CHECK (store_event (store, id, "egress", "w1", entry) == 0);
    json_t *fields = json_pack ("{s:s, s:i, s:i, s:i, s:i, s:i}", "outcome", "egress_limit",
                                "egress_connections", 2, "egress_denied", 1, "egress_bytes_out",
                                517, "egress_bytes_in", 4096, "egress_dropped", 3);
    CHECK (store_transition (store, id, "running", "done", "w1", fields) == 0);
    json_decref (fields);
    json_t *data = store_test_last_data (store);
    CHECK (json_integer_value (json_object_get (data, "egress_dropped")) == 3);
    CHECK (json_integer_value (json_object_get (data, "egress_bytes_in")) == 4096);
    json_decref (data);
    json_t *row = store_get (store, id);
    CHECK (strcmp (json_string_value (json_object_get (row, "outcome")), "egress_limit") == 0);
    CHECK (json_integer_value (json_object_get (row, "egress_connections")) == 2);
    CHECK (json_integer_value (json_object_get (row, "egress_bytes_out")) == 517);
    json_decref (row);
    json_t *history = store_history (store, NULL, 0);
    CHECK (json_integer_value (json_object_get (json_array_get (history, 1), "egress_denied")) == 1);
    CHECK (json_is_null (json_object_get (json_array_get (history, 0), "egress_denied")));
    json_decref (history);
    CHECK (s_test_verify (store, NULL, 0) == 0);
    CHECK (store_event (store, id, "egress", "w1", entry) == 0);        //  after the end
    CHECK (s_test_verify (store, "events", store_head_seq (store)) == 1);
    json_decref (entry);
}

int
schema_test (const char *dir)
{
    char v4[256];
    snprintf (v4, sizeof v4, "%s/v4.db", dir);
    CHECK (s_test_v4 (v4) == SQLITE_OK);
    store_t *store4 = store_new (v4, 0);
    CHECK (store4);
    if (store4) {
        CHECK (s_test_verify (store4, NULL, 0) == 0);
        json_t *row = store_get (store4, 1);
        CHECK (row && strcmp (json_string_value (json_object_get (row, "outcome")), "interrupted") == 0);
        CHECK (json_integer_value (json_object_get (row, "exit_code")) == 130);
        CHECK (strcmp (json_string_value (json_object_get (row, "code")), "1") == 0);
        CHECK (json_object_get (row, "egress_connections") && json_is_null (json_object_get (row, "egress_connections")));
        json_decref (row);
        s_test_egress (store4);
        store_destroy (&store4);
    }
    unlink (v4);

    char path[256];
    snprintf (path, sizeof path, "%s/v1.db", dir);
    CHECK (s_test_v1 (path) == SQLITE_OK);
    store_t *store = store_new (path, 0);
    CHECK (store);
    if (!store)
        return 0;
    CHECK (s_test_verify (store, NULL, 0) == 0);
    json_t *row = store_get (store, 1);
    CHECK (row && json_is_null (json_object_get (row, "review")));
    json_decref (row);
    s_test_review (store, path);
    s_test_slack_user (store);
    CHECK (s_test_verify (store, NULL, 0) == 0);
    store_raw_exec (path, "DROP TRIGGER approvals_no_update", NULL, 0);
    CHECK (store_raw_exec (path, "UPDATE requests SET review = json_set (review, '$.quorum', 1)"
                           " WHERE id = 2", NULL, 0) == SQLITE_OK);
    CHECK (s_test_verify (store, "requests", 2) == 1);
    CHECK (store_raw_exec (path, "UPDATE requests SET review = NULL WHERE id = 2", NULL, 0) == 0);
    CHECK (s_test_verify (store, "requests", 2) == 1);
    store_destroy (&store);
    s_test_states (path);
    unlink (path);
    return 0;
}
