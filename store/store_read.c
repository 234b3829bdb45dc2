/*  store/store_read.c: the reads of the store: lists of rows, store_get, history, the
    event log, and the streaming walks (over query.c) and store_verify (over verify.c), each
    of those two in one read snapshot. */
#include "store/store_int.h"
#include "common/util.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Steps st to its end, appending each row (as store_row_json) to a new array; resets st.
json_t *
store_rows (store_t *self, sqlite3_stmt *st, const char *what)
{
    json_t *rows = json_array ();
    int rc;
    while (rows && (rc = sqlite3_step (st)) == SQLITE_ROW)
        if (json_array_append_new (rows, store_row_json (st, false)) != 0) {
            json_decref (rows);
            rows = NULL;
        }
    if (rows && rc != SQLITE_DONE) {
        log_error ("store: %s: %s", what, sqlite3_errmsg (self->db));
        store_failed (self, rc);        //  a read the database failed is its fault too
        json_decref (rows);
        rows = NULL;
    }
    sqlite3_reset (st);
    return rows;
}

//  --------------------------------------------------------------------------------------
//  Reading.

//  "bob, carol for U123": who decided `decision`, as the history view shows it; null if none.
static json_t *
s_deciders (json_t *approvals, const char *decision)
{
    char text[1024] = "";
    size_t i, used = 0;
    json_t *a;
    json_array_foreach (approvals, i, a) {
        const char *obo = json_string_value (json_object_get (a, "on_behalf_of"));
        if (!s_streq (json_string_value (json_object_get (a, "decision")), decision))
            continue;
        int n = snprintf (text + used, sizeof text - used, "%s%s%s%s", used ? ", " : "",
                          json_string_value (json_object_get (a, "approver")),
                          obo ? " for " : "", obo ? obo : "");
        used = n < 0 ? used : used + (size_t) n < sizeof text ? used + (size_t) n : sizeof text - 1;
    }
    return used ? json_string (text) : json_null ();
}

//  What the human who denied wrote (one deny ends the request, so there is at most one).
static json_t *
s_deny_reason (json_t *approvals)
{
    size_t i;
    json_t *a;
    json_array_foreach (approvals, i, a)
        if (s_streq (json_string_value (json_object_get (a, "decision")), "deny"))
            return json_incref (json_object_get (a, "reason"));
    return json_null ();
}

//  The rows of statement `which` run with ?1 = id (caller owns them); NULL on error.
static json_t *
s_rows_of (store_t *self, stmt_id_t which, int64_t id, const char *what)
{
    binder_t b = { store_stmt (self, which), SQLITE_OK };
    store_bind_int (&b, 1, id);
    return store_bound (self, &b, "get") ? NULL : store_rows (self, b.st, what);
}

//  The first row of statement `which` run with ?1 = id (caller owns it); NULL if none.
static json_t *
s_row_of (store_t *self, stmt_id_t which, int64_t id, const char *what)
{
    json_t *rows = s_rows_of (self, which, id, what);
    json_t *row = json_incref (json_array_get (rows, 0));
    json_decref (rows);
    return row;
}

json_t *
store_get (store_t *self, int64_t id)
{
    assert (self);
    json_t *row = s_row_of (self, ST_GET, id, "reading a request");
    if (!row)
        return NULL;
    json_t *approvals = s_rows_of (self, ST_APPROVALS, id, "reading approvals");
    if (!approvals || json_object_set_new (row, "approvals", approvals) != 0) {
        json_decref (row);
        return NULL;
    }
    json_object_set_new (row, "approvers", s_deciders (approvals, "approve"));
    json_object_set_new (row, "denied_by", s_deciders (approvals, "deny"));
    json_object_set_new (row, "deny_reason", s_deny_reason (approvals));
    return row;
}

json_t *
store_get_entry (store_t *self, int64_t id)
{
    assert (self);
    return s_row_of (self, ST_ENTRY, id, "reading a request's entry");
}

int
store_ids_in_state (store_t *self, const char *state, json_t **ids)
{
    assert (self && state && ids);
    binder_t b = { store_stmt (self, ST_IDS), SQLITE_OK };
    store_bind_str (&b, 1, state);
    json_t *rows = store_bound (self, &b, "ids") ? NULL : store_rows (self, b.st, "listing ids");
    *ids = rows ? json_array () : NULL;
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        json_array_append (*ids, json_object_get (row, "id"));
    json_decref (rows);
    return *ids ? 0 : -1;
}

json_t *
store_received_data (store_t *self, int64_t id)
{
    assert (self);
    binder_t b = { store_stmt (self, ST_RECEIVED), SQLITE_OK };
    store_bind_int (&b, 1, id);
    json_t *rows = store_bound (self, &b, "received") ? NULL : store_rows (self, b.st, "reading an event");
    const char *text = json_string_value (json_object_get (json_array_get (rows, 0), "data"));
    json_error_t error;
    json_t *data = text ? json_loads (text, 0, &error) : NULL;
    json_decref (rows);
    return data;
}

//  Each event's data, stored as JSON text, as the JSON it is (null, logged, if it is not).
static json_t *
s_decode_data (json_t *events)
{
    size_t i;
    json_t *event;
    json_array_foreach (events, i, event) {
        const char *text = json_string_value (json_object_get (event, "data"));
        json_error_t error;
        json_t *data = text ? json_loads (text, JSON_ALLOW_NUL, &error) : NULL;
        if (!data)
            log_warn ("store: event %lld: data is not JSON", (long long) json_integer_value (
                      json_object_get (event, "seq")));
        json_object_set_new (event, "data", data ? data : json_null ());
    }
    return events;
}

json_t *
store_events_since (store_t *self, int64_t seq, int limit)
{
    assert (self);
    binder_t b = { store_stmt (self, ST_EVENTS), SQLITE_OK };
    store_bind_int (&b, 1, seq);
    store_bind_int (&b, 2, limit > 0 ? limit : -1);
    return s_decode_data (store_bound (self, &b, "events") ? NULL
                          : store_rows (self, b.st, "reading events"));
}

json_t *
store_request_events (store_t *self, int64_t id, const char *type)
{
    assert (self && type);
    binder_t b = { store_stmt (self, ST_REQUEST_EVENTS), SQLITE_OK };
    store_bind_int (&b, 1, id);
    store_bind_str (&b, 2, type);
    return s_decode_data (store_bound (self, &b, "events") ? NULL
                          : store_rows (self, b.st, "reading a request's events"));
}

int64_t
store_head_seq (store_t *self)
{
    assert (self);
    int64_t seq;
    char prev[65];
    return store_head (self, &seq, prev) ? -1 : seq;
}

json_t *
store_history (store_t *self, json_t *filters, int limit)
{
    assert (self);
    static const char *keys[] = { "principal", "session", "state", "since", "until" };
    binder_t b = { store_stmt (self, ST_HISTORY), SQLITE_OK };
    const char *key;
    json_t *value;
    json_object_foreach (filters, key, value) {
        size_t i = 0;
        while (i < COUNT (keys) && strcmp (key, keys[i]) != 0)
            i++;
        if (i == COUNT (keys) || !(json_is_string (value) || json_is_null (value))) {
            log_error ("store: history: unknown filter or not a string: '%s'", key);
            return NULL;
        }
        store_bind_json (&b, (int) i + 1, value);
    }
    store_bind_int (&b, 6, limit > 0 ? limit : -1);
    return store_bound (self, &b, "history") ? NULL : store_rows (self, b.st, "reading history");
}

//  Both walks run in one read transaction: one snapshot while the broker keeps appending.
static int
s_each (store_t *self, bool events, json_t *filters, store_each_fn *fn, void *arg)
{
    assert (self && fn);
    if (store_run (self, store_stmt (self, ST_BEGIN_READ), "reading"))
        return -1;
    int rc = query_each (&self->query, self->db, events, filters, fn, arg);
    return store_end (self, 0, "reading") != 0 && rc == 0 ? -1 : rc;
}

int
store_each (store_t *self, json_t *filters, store_each_fn *fn, void *arg)
{
    return s_each (self, false, filters, fn, arg);
}

int
store_each_event (store_t *self, json_t *filters, store_each_fn *fn, void *arg)
{
    return s_each (self, true, filters, fn, arg);
}

int
store_verify (store_t *self, json_t **report)
{
    return store_verify_head (self, NULL, report);
}

int
store_verify_head (store_t *self, const char *head, json_t **report)
{
    assert (self && report);
    *report = NULL;
    //  One read transaction: a consistent snapshot while the broker keeps appending.
    if (store_run (self, store_stmt (self, ST_BEGIN_READ), "verify"))
        return -1;
    int rc = verify_run (&self->verify, self->db, head, report);
    if (store_end (self, 0, "verify") != 0 && rc >= 0) {
        json_decref (*report);
        *report = NULL;
        rc = -1;
    }
    return rc;
}
