/*  store/verify.h: internal to the store module (store*.c, verify*.c, query.c, schema_test.c).
    verify.c owns the canonical form of an event, its hash, and the re-verification of the
    whole database (verify_schema.c its schema); store.c owns the connection, store_write.c
    and store_prune.c every write. */
#ifndef RG_VERIFY_H
#define RG_VERIFY_H
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store/store.h"

#define VERIFY_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

//  The statements store_verify runs, prepared once when the store opens.
typedef struct {
    sqlite3_stmt *events;           //  the whole chain in seq order
    sqlite3_stmt *requests;         //  every requests row in id order
    sqlite3_stmt *request_events;   //  one request's events in seq order
    sqlite3_stmt *approvals;        //  one request's approvals in id order
    sqlite3_stmt *orphans;          //  first received event whose row is missing
} verify_t;

//  0 or -1 (logged); on -1 whatever was prepared is finalized.
int verify_prepare (verify_t *self, sqlite3 *db);
void verify_finalize (verify_t *self);

//  Runs the checks of store_verify_head (head NULL: of store_verify); the caller holds a
//  read transaction. 0 intact, 1 tampered, -1 error (*report NULL).
int verify_run (verify_t *self, sqlite3 *db, const char *head, json_t **report);

//  The differences between db's schema and the one schema.c's migrations make, and what
//  PRAGMA integrity_check finds, as a new array of {problem: differs|missing|extra|integrity|
//  more, type, name, sql (the file's definition, null if none), why} (verify_schema.c); an
//  empty array when they agree. The caller holds a read transaction. 0 or -1 (logged).
int verify_schema (sqlite3 *db, json_t **differences);

//  The canonical text of an event's data (compact, sorted keys); caller frees. NULL on error.
char *event_data_text (const json_t *data);

//  hash = sha256_hex (prev_hash || canonical event), see store.h, with the event's data as its
//  canonical text (event_data_text). 0, or -1 (a string not UTF-8, out of memory).
int event_hash_text (const char *prev_hash, int64_t seq, const char *at, int64_t request_id,
                     const char *type, const char *actor, const char *data_text, char hash[65]);
//  The same, from the data itself.
int event_hash (const char *prev_hash, int64_t seq, const char *at, int64_t request_id,
                const char *type, const char *actor, json_t *data, char hash[65]);

//  Test helper in store_test.c: runs sql on a connection of its own, as an outsider would; the
//  sqlite result code, and the error text into error (may be NULL).
int store_raw_exec (const char *path, const char *sql, char *error, size_t size);

//  Self-tests only: the data of the store's last event (caller owns it).
json_t *store_test_last_data (store_t *store);

//  Defined in verify_test.c, run by store_test: tampering with a closed file is caught.
int verify_test (const char *dir);

//  Self-tests only (verify_test.c): a new store at path holding requests 1 (done), 2
//  (approved by bob, done with an error) and 3 (denied), all alice's, then a rejected event
//  by mallory: events 1-13. NULL on failure.
store_t *verify_test_build (const char *path);

//  Defined in verify_schema_test.c, run by verify_test: a schema changed any way is named,
//  a fresh or migrated one is not, and the readers ignore a view that lies.
int verify_schema_test (const char *dir);
#endif
