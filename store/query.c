/*  store/query.c: the store's streaming reads. Every history row, or every event, that
    matches a set of filters goes to a callback one at a time from a single prepared
    statement, so an export of any size holds one row in memory and SQL is never built
    from values. Both read base tables only (query.h). The read transaction (one snapshot for
    the whole walk) is store_read.c's. */
#include "store/query.h"
#include "store/verify.h"
#include "common/util.h"
#include <string.h>

//  The filters, in the order of both statements' parameters ?1 .. ?5.
static const char *s_filters[] = { "principal", "session", "state", "since", "until" };
#define NFILTERS (sizeof s_filters / sizeof s_filters[0])

static const char *s_requests_sql =
    "SELECT " QUERY_HISTORY_COLUMNS " FROM requests r WHERE " QUERY_HISTORY_FILTERS
    " ORDER BY r.id";

//  Events about no request match only when no request filter is given.
static const char *s_events_sql =
    "SELECT e.seq, e.at, e.request_id, e.type, e.actor, e.data, e.prev_hash, e.hash"
    " FROM events e LEFT JOIN requests r ON r.id = e.request_id"
    " WHERE (?1 IS NULL OR r.principal = ?1) AND (?2 IS NULL OR r.session = ?2)"
    " AND (?3 IS NULL OR r.state = ?3) AND (?4 IS NULL OR e.at >= ?4)"
    " AND (?5 IS NULL OR e.at < ?5) ORDER BY e.seq";

int
query_prepare (query_t *self, sqlite3 *db)
{
    if (sqlite3_prepare_v3 (db, s_requests_sql, -1, SQLITE_PREPARE_PERSISTENT, &self->requests,
                            NULL) == SQLITE_OK
    &&  sqlite3_prepare_v3 (db, s_events_sql, -1, SQLITE_PREPARE_PERSISTENT, &self->events,
                            NULL) == SQLITE_OK)
        return 0;
    log_error ("query: cannot prepare: %s", sqlite3_errmsg (db));
    query_finalize (self);
    return -1;
}

void
query_finalize (query_t *self)
{
    sqlite3_finalize (self->requests);
    sqlite3_finalize (self->events);
    self->requests = self->events = NULL;
}

//  Binds the filters; a key that is not a filter, or not a string, is an error (a mistyped
//  filter must not widen the result).
static int
s_bind (sqlite3_stmt *st, json_t *filters)
{
    const char *key;
    json_t *value;
    json_object_foreach (filters, key, value) {
        size_t i = 0;
        while (i < NFILTERS && strcmp (key, s_filters[i]) != 0)
            i++;
        if (i == NFILTERS || !(json_is_string (value) || json_is_null (value))) {
            log_error ("store: unknown filter or not a string: '%s'", key);
            return -1;
        }
        int rc = json_is_string (value)
               ? sqlite3_bind_text (st, (int) i + 1, json_string_value (value), -1,
                                    SQLITE_TRANSIENT)
               : sqlite3_bind_null (st, (int) i + 1);
        if (rc != SQLITE_OK)
            return -1;
    }
    return 0;
}

int
query_each (query_t *self, sqlite3 *db, bool events, json_t *filters, store_each_fn *fn,
            void *arg)
{
    sqlite3_stmt *st = events ? self->events : self->requests;
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    if (s_bind (st, filters))
        return -1;
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        json_t *row = store_row_json (st, false);
        stop = row ? fn (row, arg) : -1;
        json_decref (row);
    }
    if (!stop && rc != SQLITE_DONE) {
        log_error ("store: reading %s: %s", events ? "events" : "requests", sqlite3_errmsg (db));
        stop = -1;
    }
    sqlite3_reset (st);
    return stop;
}
