/*  store/store_int.h: internal to the store module (store.c, store_write.c, store_prune.c,
    store_read.c, store_test.c); nothing else includes it. The connection, its prepared
    statements and the helpers every part of the store shares: binding, stepping,
    transactions, rows as JSON and appending to the chain. The public contract is store.h. */
#ifndef RG_STORE_INT_H
#define RG_STORE_INT_H
#include "store/store.h"
#include "store/verify.h"
#include "store/query.h"
#include "store/schema.h"
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SCHEMA_VERSION (schema_version ())
#define COUNT(a) (sizeof (a) / sizeof (a)[0])

//  Statements, prepared once in store_new (their SQL is in store.c).
typedef enum {
    ST_BEGIN, ST_BEGIN_READ, ST_COMMIT, ST_ROLLBACK, ST_SAVEPOINT, ST_RELEASE, ST_ROLLBACK_TO, ST_HEAD, ST_EVENT_ADD, ST_KEY_FIND,
    ST_REQUEST_ADD, ST_STATE_GET, ST_STATE_SET, ST_DECISION_SET, ST_WORKER_SET, ST_RESULT_SET,
    ST_APPROVAL_ADD, ST_GET, ST_APPROVALS, ST_IDS, ST_RECEIVED, ST_EVENTS, ST_HISTORY, ST_PRUNE_PICK,
    ST_PRUNE_SET, ST_REQUEST_EVENTS, ST_ENTRY, ST_COUNT
} stmt_id_t;

struct _store_t {
    sqlite3 *db;
    char *path;
    bool readonly;
    int nested;                 //  writes open inside a group (store_group_begin), +1 while
                                //  the group is open; 0 outside any
    bool group_open;            //  the group's transaction began (with its first write)
    int fault;                  //  SQLite's code for the last step that failed in this
                                //  transaction (locked, full, I/O...), 0 if none did
    sqlite3_stmt *stmt[ST_COUNT];
    verify_t verify;
    query_t query;
};

static inline bool
s_streq (const char *a, const char *b)
{
    return a && b && strcmp (a, b) == 0;
}

//  The current time as ISO-8601 UTC text with milliseconds.
void store_now (char at[32]);

//  Notes a failed step (rc is SQLite's code) so that store_fault can tell a storage failure
//  from a logical refusal (a request not in the state the caller saw).
void store_failed (store_t *self, int rc);

//  Statement helpers (store.c). Binding can only fail on a bug or an oversized value; the
//  first failure is kept so each call site checks once.
typedef struct { sqlite3_stmt *st; int rc; } binder_t;

//  The statement, reset and with its bindings cleared.
sqlite3_stmt *store_stmt (store_t *self, stmt_id_t id);
void store_bind_text (binder_t *b, int i, const char *text, size_t len);
void store_bind_str (binder_t *b, int i, const char *text);
void store_bind_int (binder_t *b, int i, int64_t value);
//  Binds a JSON scalar by its type (null, string, integer, real, boolean as 0/1).
void store_bind_json (binder_t *b, int i, json_t *v);
//  0 if every bind succeeded, else -1 (logged with what).
int store_bound (store_t *self, binder_t *b, const char *what);
//  Steps a statement that returns no rows, then resets it. 0 or -1 (logged).
int store_run (store_t *self, sqlite3_stmt *st, const char *what);
//  BEGIN IMMEDIATE. 0 or -1 (logged).
int store_begin (store_t *self);
//  Ends the transaction: COMMIT if rc is 0 (a failed COMMIT becomes a rollback and -1),
//  otherwise ROLLBACK. Returns rc, or -1 if the commit failed.
int store_end (store_t *self, int rc, const char *what);
//  0, or -1 (logged) if the store was opened read-only.
int store_writable (store_t *self, const char *what);

//  Steps st to its end, appending each row (as store_row_json) to a new array; resets st
//  (store_read.c).
json_t *store_rows (store_t *self, sqlite3_stmt *st, const char *what);

//  Appending to the chain (store.c); the caller holds the write transaction.
//  The last event's seq and hash (0 and VERIFY_GENESIS if none). 0 or -1 (logged).
int store_head (store_t *self, int64_t *seq, char prev[65]);
//  Appends the next event. 0 or -1 (logged).
int store_append (store_t *self, int64_t request_id, const char *type, const char *actor,
                  json_t *data, const char *at);
#endif
