/*  store/verify_schema.c: the schema part of store_verify. Readers (and people with sqlite3)
    trust the file's tables, indexes, triggers and views, and anyone who can write the file
    can redefine them: a view that hides a principal, triggers dropped so rows can be edited,
    a table with a column added. The file's sqlite_master is compared, object by object, with
    what schema.c's migrations make in a database of their own; that is also what they made
    of any older file, since every file reaches the current version by the same steps. The
    text of a definition is all SQLite reads back, with one exception: an index's contents.
    An index rebuilt with a WHERE clause, its old text put back with writable_schema, keeps
    the expected text and hides rows from every query that uses it; PRAGMA integrity_check
    finds the rows its indexes lack. */
#include "store/verify.h"
#include "store/schema.h"
#include "common/util.h"
#include <stdio.h>
#include <string.h>

//  At most this many differences are listed (a hostile file may hold a million triggers).
#define MAX_DIFFERENCES 100

//  SQLite's statistics tables are left out: ANALYZE and PRAGMA optimize make them, and they
//  change query plans, never results.
static const char *s_objects_sql =
    "SELECT type, name, tbl_name, sql FROM main.sqlite_master"
    " WHERE NOT (type = 'table' AND name LIKE 'sqlite\\_stat%' ESCAPE '\\')";

//  The objects of db as an array of {type, name, tbl_name, sql}, in sqlite_master's order;
//  NULL (logged) on error.
static json_t *
s_objects (sqlite3 *db, const char *which)
{
    sqlite3_stmt *st = NULL;
    json_t *objects = json_array ();
    int rc = sqlite3_prepare_v2 (db, s_objects_sql, -1, &st, NULL);
    while (objects && rc == SQLITE_OK && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        if (json_array_append_new (objects, store_row_json (st, false)) != 0)
            rc = SQLITE_NOMEM;
        else
            rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        log_error ("verify: reading the schema of %s: %s", which, sqlite3_errmsg (db));
        json_decref (objects);
        objects = NULL;
    }
    sqlite3_finalize (st);
    return objects;
}

//  What the migrations make of an empty database, built afresh in memory.
static json_t *
s_expected (void)
{
    sqlite3 *db = NULL;
    char *error = NULL;
    int rc = sqlite3_open_v2 (":memory:", &db, SQLITE_OPEN_READWRITE, NULL);
    for (int v = 0; rc == SQLITE_OK && v < schema_version (); v++)
        rc = sqlite3_exec (db, schema_migration (v), NULL, NULL, &error);
    json_t *objects = rc == SQLITE_OK ? s_objects (db, "schema.c's migrations") : NULL;
    if (rc != SQLITE_OK)
        log_error ("verify: building schema v%d to compare with: %s", schema_version (),
                   error ? error : db ? sqlite3_errmsg (db) : sqlite3_errstr (rc));
    sqlite3_free (error);
    sqlite3_close (db);
    return objects;
}

static const char *
s_field (json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "";
}

//  The object of `objects` with the same type and name as `like`, or NULL.
static json_t *
s_find (json_t *objects, json_t *like)
{
    size_t i;
    json_t *object;
    json_array_foreach (objects, i, object)
        if (strcmp (s_field (object, "type"), s_field (like, "type")) == 0
        &&  strcmp (s_field (object, "name"), s_field (like, "name")) == 0)
            return object;
    return NULL;
}

//  text made safe for a terminal: printable ASCII, at most 64 characters.
static void
s_printable (const char *text, char out[68])
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p && n < 64; p++)
        out[n++] = *p >= 0x20 && *p < 0x7f ? (char) *p : '?';
    snprintf (out + n, 68 - n, "%s", text[n] && n == 64 ? "..." : "");
}

//  Appends one difference: problem is differs, missing, extra or integrity; object the
//  file's (NULL if missing), like the object it is about (NULL for integrity, with detail).
static void
s_add (json_t *differences, const char *problem, json_t *object, json_t *like,
       const char *detail)
{
    size_t count = json_array_size (differences);
    if (count == MAX_DIFFERENCES)
        json_array_append_new (differences, json_pack ("{s:s, s:n, s:n, s:n, s:s}", "problem",
                               "more", "type", "name", "sql", "why",
                               "more differences, not listed"));
    if (count >= MAX_DIFFERENCES)
        return;
    char type[68], name[68], why[256];
    s_printable (s_field (like, "type"), type);
    s_printable (s_field (like, "name"), name);
    if (detail)
        snprintf (why, sizeof why, "%s", detail);
    else if (strcmp (problem, "extra") == 0)
        snprintf (why, sizeof why, "extra %s %s", type, name);
    else if (strcmp (problem, "missing") == 0)
        snprintf (why, sizeof why, "%s %s missing", type, name);
    else
        snprintf (why, sizeof why, "%s %s differs from schema v%d", type, name,
                  schema_version ());
    json_t *sql = object ? json_object_get (object, "sql") : NULL;
    json_array_append_new (differences, json_pack ("{s:s, s:O?, s:O?, s:O?, s:s}", "problem",
                           problem, "type", json_object_get (like, "type"), "name",
                           json_object_get (like, "name"), "sql", sql, "why", why));
}

//  PRAGMA integrity_check's findings (an index that lacks rows of its table, a broken page),
//  each as a difference. 0 or -1 (logged).
static int
s_integrity (sqlite3 *db, json_t *differences)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2 (db, "PRAGMA main.integrity_check (20)", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        const char *text = (const char *) sqlite3_column_text (st, 0);
        char line[68], why[96];
        if (text && strcmp (text, "ok") != 0) {
            s_printable (text, line);
            snprintf (why, sizeof why, "integrity_check: %s", line);
            s_add (differences, "integrity", NULL, NULL, why);
        }
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE)
        log_error ("verify: integrity_check: %s", sqlite3_errmsg (db));
    sqlite3_finalize (st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int
verify_schema (sqlite3 *db, json_t **differences)
{
    json_t *expected = s_expected (), *found = expected ? s_objects (db, "the database") : NULL;
    *differences = found ? json_array () : NULL;
    size_t i;
    json_t *object, *other;
    json_array_foreach (found ? expected : NULL, i, object) {
        if (!(other = s_find (found, object)))
            s_add (*differences, "missing", NULL, object, NULL);
        else if (!json_equal (json_object_get (other, "sql"), json_object_get (object, "sql"))
             ||  !json_equal (json_object_get (other, "tbl_name"),
                              json_object_get (object, "tbl_name")))
            s_add (*differences, "differs", other, object, NULL);
    }
    json_array_foreach (found, i, object)
        if (!s_find (expected, object))
            s_add (*differences, "extra", object, object, NULL);
    json_decref (expected);
    json_decref (found);
    if (*differences && s_integrity (db, *differences) != 0) {
        json_decref (*differences);
        *differences = NULL;
    }
    return *differences ? 0 : -1;
}
