/*  store/verify_schema_test.c: verify_schema_test, run by verify_test. Each way of changing
    the schema of a closed file (a view redefined, a trigger or an index dropped or replaced,
    a trigger or a view added, a column added, an index whose contents lie) is named by
    verify; a fresh database and one migrated from every older version verify clean; history
    and export show the rows that a redefined view hides. */
#include "store/verify.h"
#include "store/schema.h"
#include "store/store.h"
#include "common/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COUNT(a) (sizeof (a) / sizeof (a)[0])

//  The fixture of verify_test.c, plus request 4 by mallory; closed again.
static int
s_test_fixture (const char *path)
{
    unlink (path);
    store_t *store = verify_test_build (path);
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", "mallory", "role",
                             "agent", "session", "s3", "lang", "shell", "code", "id");
    int64_t id = 0;
    bool duplicate;
    int rc = store && store_submit (store, req, &id, &duplicate) == 0 && id == 4 ? 0 : -1;
    json_decref (req);
    store_destroy (&store);
    return rc;
}

//  Verifies path as `replgate verify` does (read-only, a connection of its own). Returns
//  the report (caller owns it; NULL on error), *rc store_verify's result.
static json_t *
s_test_report (const char *path, int *rc)
{
    store_t *store = store_new (path, STORE_READONLY);
    json_t *report = NULL;
    *rc = store ? store_verify (store, &report) : -2;
    store_destroy (&store);
    CHECK (report && json_integer_value (json_object_get (report, "schema_version"))
                     == schema_version ());
    return report;
}

static const char *
s_test_why (json_t *report, size_t i)
{
    const char *why = json_string_value (json_object_get (json_array_get (json_object_get (
                                         report, "schema"), i), "why"));
    return why ? why : "";
}

static bool
s_test_is (json_t *object, const char *key, const char *text)
{
    const char *value = json_string_value (json_object_get (object, key));
    return value && strcmp (value, text) == 0;
}

//  A clean file: verify passes and says the schema was compared (an empty list).
static void
s_test_clean (const char *path, const char *what)
{
    int rc;
    json_t *report = s_test_report (path, &rc);
    json_t *schema = json_object_get (report, "schema");
    CHECK (rc == 0 && json_is_array (schema) && json_array_size (schema) == 0);
    if (rc != 0 || json_array_size (schema))
        fprintf (stderr, "FAIL verify of %s: rc %d, first difference: %s\n", what, rc,
                 s_test_why (report, 0));
    json_decref (report);
}

typedef struct {
    const char *name;
    const char *sql;
    const char *why;            //  the first difference listed (%d: the schema version)
    size_t count;               //  how many are listed
} change_t;

static const change_t s_changes[] = {
    { "view redefined", "DROP VIEW history; CREATE VIEW history AS SELECT * FROM requests"
      " WHERE principal != 'mallory'", "view history differs from schema v%d", 1 },
    { "trigger dropped", "DROP TRIGGER events_no_update", "trigger events_no_update missing", 1 },
    { "trigger weakened", "DROP TRIGGER events_no_delete; CREATE TRIGGER events_no_delete"
      " BEFORE DELETE ON events WHEN 0 BEGIN SELECT RAISE (ABORT, 'x'); END",
      "trigger events_no_delete differs from schema v%d", 1 },
    { "index dropped", "DROP INDEX requests_session", "index requests_session missing", 1 },
    { "extra trigger", "CREATE TRIGGER x AFTER INSERT ON events BEGIN SELECT 1; END",
      "extra trigger x", 1 },
    { "extra view", "CREATE VIEW history2 AS SELECT * FROM requests", "extra view history2", 1 },
    { "table altered", "ALTER TABLE requests ADD COLUMN note TEXT",
      "table requests differs from schema v%d", 1 },
    //  The index's text is what schema.c says; its contents leave out mallory's rows.
    { "index that lies", "DROP INDEX requests_session; CREATE INDEX requests_session ON"
      " requests (session, lang, id) WHERE principal != 'mallory'; PRAGMA writable_schema = ON;"
      " UPDATE sqlite_master SET sql = 'CREATE INDEX requests_session ON requests (session,"
      " lang, id)' WHERE name = 'requests_session'; PRAGMA writable_schema = OFF",
      "integrity_check: row 4 missing from index requests_session", 2 },
};

static void
s_test_change (const char *path, const change_t *c)
{
    char error[256] = "", why[128];
    snprintf (why, sizeof why, c->why, schema_version ());
    CHECK (s_test_fixture (path) == 0);
    CHECK (store_raw_exec (path, c->sql, error, sizeof error) == SQLITE_OK);
    int rc;
    json_t *report = s_test_report (path, &rc);
    json_t *schema = json_object_get (report, "schema");
    bool named = rc == 1 && json_is_false (json_object_get (report, "ok"))
              && !json_object_get (report, "bad") && json_array_size (schema) == c->count
              && strcmp (s_test_why (report, 0), why) == 0;
    CHECK (named);
    if (!named)
        fprintf (stderr, "FAIL schema change '%s': rc %d, %zu differences, first: %s %s\n",
                 c->name, rc, json_array_size (schema), s_test_why (report, 0), error);
    json_decref (report);
}

//  Every trigger dropped, then a row edited: each trigger is named, and so is the row.
static void
s_test_no_triggers (const char *path)
{
    CHECK (s_test_fixture (path) == 0);
    CHECK (store_raw_exec (path, "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete;"
                           " DROP TRIGGER approvals_no_update; DROP TRIGGER approvals_no_delete;"
                           " DROP TRIGGER requests_inputs_fixed; DROP TRIGGER requests_no_delete;"
                           " DROP TRIGGER requests_pruned_once;"
                           " UPDATE requests SET outcome = 'error' WHERE id = 1", NULL, 0) == 0);
    int rc;
    json_t *report = s_test_report (path, &rc);
    json_t *schema = json_object_get (report, "schema"), *bad = json_object_get (report, "bad");
    CHECK (rc == 1 && json_array_size (schema) == 7);
    size_t i;
    json_t *d;
    json_array_foreach (schema, i, d)
        CHECK (s_test_is (d, "problem", "missing") && s_test_is (d, "type", "trigger"));
    CHECK (s_test_is (bad, "table", "requests")
           && json_integer_value (json_object_get (bad, "row")) == 1);
    json_decref (report);
}

//  A file made by migrations 1 .. version alone, then opened by this build, which migrates it.
static void
s_test_migrated (const char *path, int version)
{
    unlink (path);
    sqlite3 *db = NULL;
    int rc = sqlite3_open (path, &db);
    for (int v = 0; rc == SQLITE_OK && v < version; v++)
        rc = sqlite3_exec (db, schema_migration (v), NULL, NULL, NULL);
    sqlite3_close (db);
    CHECK (rc == SQLITE_OK);
    store_t *store = store_new (path, 0);
    CHECK (store && store_event (store, 0, "note", "bob", NULL) == 0);
    store_destroy (&store);
    char what[64];
    snprintf (what, sizeof what, "a file migrated from v%d", version);
    s_test_clean (path, what);
}

static int
s_test_collect (json_t *row, void *arg)
{
    return json_array_append ((json_t *) arg, row);
}

//  The rows of the history view as sqlite3 shows them; NULL on error.
static json_t *
s_test_view (const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    json_t *rows = json_array ();
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK
    &&  sqlite3_prepare_v2 (db, "SELECT * FROM history ORDER BY id", -1, &st, NULL) == SQLITE_OK)
        while (sqlite3_step (st) == SQLITE_ROW)
            json_array_append_new (rows, store_row_json (st, false));
    sqlite3_finalize (st);
    sqlite3_close (db);
    return rows;
}

//  history and export read what the view would show, from the tables: a view redefined to
//  hide mallory changes neither.
static void
s_test_readers (const char *path)
{
    CHECK (s_test_fixture (path) == 0);
    json_t *view = s_test_view (path);
    CHECK (json_array_size (view) == 4);
    store_t *store = store_new (path, STORE_READONLY);
    json_t *history = store ? store_history (store, NULL, 0) : NULL, *each = json_array ();
    CHECK (json_equal (history, view));
    CHECK (store && store_each (store, NULL, s_test_collect, each) == 0 && json_equal (each, view));
    store_destroy (&store);
    json_decref (history);
    json_decref (each);
    CHECK (store_raw_exec (path, "DROP VIEW history; CREATE VIEW history AS SELECT * FROM"
                           " requests WHERE principal != 'mallory'", NULL, 0) == SQLITE_OK);
    store = store_new (path, STORE_READONLY);
    history = store ? store_history (store, NULL, 0) : NULL;
    each = json_array ();
    json_t *mallory = json_pack ("{s:s}", "principal", "mallory");
    json_t *hers = store ? store_history (store, mallory, 0) : NULL;
    CHECK (json_equal (history, view) && json_array_size (hers) == 1);
    CHECK (store && store_each (store, NULL, s_test_collect, each) == 0 && json_equal (each, view));
    store_destroy (&store);
    json_decref (history);
    json_decref (hers);
    json_decref (mallory);
    json_decref (each);
    json_decref (view);
}

int
verify_schema_test (const char *dir)
{
    char path[256];
    snprintf (path, sizeof path, "%s/schema.db", dir);
    CHECK (s_test_fixture (path) == 0);
    s_test_clean (path, "a fresh file");
    for (int v = 1; v < schema_version (); v++)
        s_test_migrated (path, v);
    for (size_t i = 0; i < COUNT (s_changes); i++)
        s_test_change (path, &s_changes[i]);
    s_test_no_triggers (path);
    s_test_readers (path);
    unlink (path);
    return 0;
}
