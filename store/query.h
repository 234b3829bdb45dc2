/*  store/query.h: internal to the store module: the streaming reads behind store_each and
    store_each_event. store.c owns the connection; store_read.c holds the read transaction. */
#ifndef RG_QUERY_H
#define RG_QUERY_H
#include "store/store.h"
#include <sqlite3.h>

typedef struct {
    sqlite3_stmt *requests;     //  history rows by filters, in id order
    sqlite3_stmt *events;       //  events by filters, in seq order
} query_t;

//  0 or -1 (logged); on -1 whatever was prepared is finalized.
int query_prepare (query_t *self, sqlite3 *db);
void query_finalize (query_t *self);

//  Steps the requests (or, with events, the events) statement under filters, calling fn
//  with each row; see store_each. The caller holds a read transaction.
int query_each (query_t *self, sqlite3 *db, bool events, json_t *filters, store_each_fn *fn,
                void *arg);

//  In query_test.c, run by store_test: filters select exactly their rows, and fn can stop a walk.
int query_test (const char *dir);

#endif
