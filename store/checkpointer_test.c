/*  store/checkpointer_test.c: checkpointer_test, run by store_test. Rows the writer commits
    reach the main file only through the thread, and the writer's short pass after it lets
    the WAL start over. */
#include "store/checkpointer.h"
#include "store/store.h"
#include "common/check.h"
#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

//  Rows in the main database file alone: immutable=1 makes SQLite ignore the WAL.
static int
s_rows_in_main_file (const char *path)
{
    char uri [1100];
    snprintf (uri, sizeof uri, "file:%s?immutable=1", path);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rows = -1;
    if (sqlite3_open_v2 (uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) == SQLITE_OK
    &&  sqlite3_prepare_v2 (db, "SELECT count(*) FROM requests", -1, &st, NULL) == SQLITE_OK
    &&  sqlite3_step (st) == SQLITE_ROW)
        rows = sqlite3_column_int (st, 0);
    sqlite3_finalize (st);
    sqlite3_close (db);
    return rows;
}

int
checkpointer_test (const char *dir)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/checkpointer.db", dir);
    store_t *store = store_new (path, STORE_MANUAL_CHECKPOINT);
    CHECK (store);
    if (!store)
        return 0;
    checkpointer_t *idle = checkpointer_new (path, 10);
    for (int i = 0; i < 20 && idle && checkpointer_count (idle) < 1; i++)
        usleep (10000);         //  the schema reaches the file, no request yet
    checkpointer_destroy (&idle);
    CHECK (idle == NULL);
    int recorded = 0;
    for (int i = 0; i < 50; i++) {
        json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", "p", "role", "agent",
                                 "session", "s", "lang", "python", "code", "1");
        int64_t id;
        bool duplicate;
        recorded += store_submit (store, req, &id, &duplicate) == 0;
        json_decref (req);
    }
    CHECK (recorded == 50);
    //  The writer never checkpoints: the 50 rows are in the WAL only, until the thread runs.
    CHECK (s_rows_in_main_file (path) == 0);
    checkpointer_t *self = checkpointer_new (path, 20);
    CHECK (self);
    //  The thread bumps its count after the copy that makes the rows visible: wait for both.
    for (int i = 0; i < 500 && self && (s_rows_in_main_file (path) != 50
                                        || checkpointer_count (self) < 1); i++)
        usleep (10000);
    CHECK (s_rows_in_main_file (path) == 50);
    CHECK (self && checkpointer_count (self) >= 1);
    checkpointer_destroy (&self);
    CHECK (self == NULL);
    //  The writer's short pass after it: the WAL then starts over at the next commit, so it
    //  holds that commit's frames only, not the 50 before.
    int before = store_checkpoint (store);
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", "p", "role", "agent",
                             "session", "s", "lang", "python", "code", "2");
    int64_t id;
    bool duplicate;
    CHECK (store_submit (store, req, &id, &duplicate) == 0);
    json_decref (req);
    int after = store_checkpoint (store);
    CHECK (before > 50 && after > 0 && after < before / 10);
    CHECK (checkpointer_new ("/nonexistent/dir/x.db", 10) == NULL);
    store_destroy (&store);
    return 0;
}
