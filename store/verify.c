/*  store/verify.c: the canonical form and hash of an event, and store_verify's re-checking
    of the whole database (the schema, in verify_schema.c; the chain, then each request
    against its events, then rows that vanished). It only reads, and only base tables: a
    view is a definition anyone with the file can change. store_read.c holds the read
    transaction. The form is in store.h. */
#include "store/verify.h"
#include "common/states.h"
#include "store/store.h"
#include "store/schema.h"
#include "common/util.h"
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)

//  Columns whose value is fixed by the events (they start null unless an event sets them),
//  in the order they are compared.
static const char *s_columns[] = {
    "principal", "role", "session", "lang", "code_sha256", "bind_sha256", "reason", "idem_key",
    "submitted_at", "rule", "decision_message", "policy_sha256", "queued_at", "worker",
    "started_at", "finished_at", "outcome", "exit_code", "signal", "stdout_truncated",
    "stderr_truncated", "stdout_sha256", "stderr_sha256", "error_name", "error_value", "wall_ms",
    "cpu_ms", "max_rss_kb", "execution_count", "session_reset", "sandbox", "pruned_at",
    "value_truncated", "error_name_truncated", "error_value_truncated", "traceback_truncated",
    "reset_reason", "session_cpu_ms", "egress_connections", "egress_denied", "egress_bytes_out",
    "egress_bytes_in",
};
//  JSON objects kept as canonical text; the events hold the objects.
static const char *s_json_columns[] = { "limits", "review" };
//  Large texts: the events hold only <name>_sha256.
static const char *s_hashed[] = { "code", "stdout", "stderr", "value", "traceback" };
static const char *s_approval_keys[] = { "approver", "via", "on_behalf_of", "slack_user",
                                         "decision", "reason", "at" };
#define COUNT(a) (sizeof (a) / sizeof (a)[0])

static bool
s_in (const char *name, const char **list, size_t count)
{
    for (size_t i = 0; name && i < count; i++)
        if (strcmp (name, list[i]) == 0)
            return true;
    return false;
}

//  --------------------------------------------------------------------------------------
//  The canonical form.

char *
event_data_text (const json_t *data)
{
    return json_dumps (data, DUMP_FLAGS);
}

//  Hashes s as the canonical form writes a string: as it is, quoted, when it is printable
//  ASCII with nothing to escape (timestamps, types and principals nearly always are), else as
//  jansson encodes it. 0, or -1 if it is not valid UTF-8 or memory ran out.
static int
s_hash_string (crypto_hash_sha256_state *h, const char *s)
{
    const char *p = s;
    while (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
        p++;
    if (!*p) {
        crypto_hash_sha256_update (h, (const unsigned char *) "\"", 1);
        crypto_hash_sha256_update (h, (const unsigned char *) s, (size_t) (p - s));
        crypto_hash_sha256_update (h, (const unsigned char *) "\"", 1);
        return 0;
    }
    json_t *str = json_string (s);
    char *text = str ? json_dumps (str, JSON_ENCODE_ANY | DUMP_FLAGS) : NULL;
    json_decref (str);
    if (text)
        crypto_hash_sha256_update (h, (const unsigned char *) text, strlen (text));
    free (text);
    return text ? 0 : -1;
}

static void
s_hash_raw (crypto_hash_sha256_state *h, const char *text)
{
    crypto_hash_sha256_update (h, (const unsigned char *) text, strlen (text));
}

//  The canonical event is the object {actor, at, data, request_id, seq, type} dumped with
//  sorted keys: streamed into the hash in that order, with data's text as stored, so that
//  neither the event nor its text is built, and data is dumped once (by the caller).
int
event_hash_text (const char *prev_hash, int64_t seq, const char *at, int64_t request_id,
                 const char *type, const char *actor, const char *data_text, char hash[65])
{
    if (!at || !type || !actor || !data_text)
        return -1;
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init (&h);
    s_hash_raw (&h, prev_hash);
    s_hash_raw (&h, "{\"actor\":");
    int rc = s_hash_string (&h, actor);
    s_hash_raw (&h, ",\"at\":");
    rc |= s_hash_string (&h, at);
    s_hash_raw (&h, ",\"data\":");
    s_hash_raw (&h, data_text);
    char numbers[64];
    if (request_id)
        snprintf (numbers, sizeof numbers, ",\"request_id\":%lld,\"seq\":%lld,\"type\":",
                  (long long) request_id, (long long) seq);
    else
        snprintf (numbers, sizeof numbers, ",\"request_id\":null,\"seq\":%lld,\"type\":",
                  (long long) seq);
    s_hash_raw (&h, numbers);
    rc |= s_hash_string (&h, type);
    s_hash_raw (&h, "}");
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final (&h, digest);
    if (rc == 0)
        sodium_bin2hex (hash, 65, digest, sizeof digest);
    return rc;
}

int
event_hash (const char *prev_hash, int64_t seq, const char *at, int64_t request_id,
            const char *type, const char *actor, json_t *data, char hash[65])
{
    char *text = event_data_text (data);
    int rc = event_hash_text (prev_hash, seq, at, request_id, type, actor, text, hash);
    free (text);
    return rc;
}

//  --------------------------------------------------------------------------------------
//  Statements.

static const char *s_sql[] = {
    "SELECT seq, at, request_id, type, actor, data, prev_hash, hash FROM events ORDER BY seq",
    "SELECT * FROM requests ORDER BY id",
    "SELECT seq, at, type, data FROM events WHERE request_id = ?1 ORDER BY seq",
    "SELECT id, approver, via, on_behalf_of, slack_user, decision, reason, at FROM approvals"
    " WHERE request_id = ?1 ORDER BY id",
    "SELECT e.seq, e.request_id FROM events e WHERE e.type = 'received' AND NOT EXISTS"
    " (SELECT 1 FROM requests r WHERE r.id = e.request_id) ORDER BY e.seq LIMIT 1",
};

int
verify_prepare (verify_t *self, sqlite3 *db)
{
    sqlite3_stmt **slots[] = { &self->events, &self->requests, &self->request_events,
                               &self->approvals, &self->orphans };
    for (size_t i = 0; i < COUNT (slots); i++)
        if (sqlite3_prepare_v3 (db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, slots[i], NULL)
            != SQLITE_OK) {
            log_error ("verify: cannot prepare \"%s\": %s", s_sql[i], sqlite3_errmsg (db));
            verify_finalize (self);
            return -1;
        }
    return 0;
}

void
verify_finalize (verify_t *self)
{
    sqlite3_stmt **slots[] = { &self->events, &self->requests, &self->request_events,
                               &self->approvals, &self->orphans };
    for (size_t i = 0; i < COUNT (slots); i++) {
        sqlite3_finalize (*slots[i]);
        *slots[i] = NULL;
    }
}

//  --------------------------------------------------------------------------------------
//  Pass 1: the chain.

static json_t *
s_bad (const char *table, int64_t row, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (why, sizeof why, fmt, ap);
    va_end (ap);
    return json_pack ("{s:s, s:I, s:s}", "table", table, "row", (json_int_t) row, "why", why);
}

static const char *
s_text (sqlite3_stmt *st, int i)
{
    return (const char *) sqlite3_column_text (st, i);
}

//  Checks the event in st's current row; NULL if it is sound.
static json_t *
s_check_event (sqlite3_stmt *st, int64_t expect, const char *prev)
{
    int64_t seq = sqlite3_column_int64 (st, 0);
    const char *at = s_text (st, 1), *type = s_text (st, 3), *actor = s_text (st, 4);
    const char *text = s_text (st, 5), *prev_hash = s_text (st, 6), *hash = s_text (st, 7);
    int rtype = sqlite3_column_type (st, 2);
    if (seq != expect)
        return s_bad ("events", seq, "seq %lld where %lld was expected: events were deleted, "
                      "inserted or renumbered", (long long) seq, (long long) expect);
    if (!prev_hash || strcmp (prev_hash, prev) != 0)
        return s_bad ("events", seq, "prev_hash is not the hash of the event before it");
    if (!at || !type || !actor || !hash || (rtype != SQLITE_NULL && rtype != SQLITE_INTEGER))
        return s_bad ("events", seq, "a column is missing or of the wrong type");
    json_error_t error;
    json_t *data = text ? json_loads (text, JSON_ALLOW_NUL, &error) : NULL;
    char *canonical = json_is_object (data) ? event_data_text (data) : NULL;
    bool canonical_ok = canonical && strcmp (canonical, text) == 0;
    char computed[65] = "";
    if (canonical_ok)
        event_hash_text (prev_hash, seq, at, rtype == SQLITE_NULL ? 0 : sqlite3_column_int64 (st, 2),
                         type, actor, text, computed);
    free (canonical);
    json_decref (data);
    if (!canonical_ok)
        return s_bad ("events", seq, "data is not a JSON object in canonical form");
    if (strcmp (computed, hash) != 0)
        return s_bad ("events", seq, "hash does not match the event's contents");
    return NULL;
}

//  A saved head holds if an event of the sound part of the chain has exactly that hash.
static void
s_saved_head (json_t *report, const char *head, int64_t found, int64_t count, json_t **bad)
{
    if (found)
        json_object_set_new (report, "since_head", json_pack ("{s:s, s:I, s:I}", "hash", head,
                             "seq", (json_int_t) found, "events_after",
                             (json_int_t) (count - found)));
    else if (!*bad)
        *bad = s_bad ("events", 0, "no event has the saved head hash %.64s: the history "
                      "before it was rewritten, or the chain cut short", head);
}

static int
s_chain (verify_t *self, sqlite3 *db, const char *head, json_t *report, json_t **bad)
{
    sqlite3_stmt *st = self->events;
    sqlite3_reset (st);
    char prev[65] = VERIFY_GENESIS;
    int64_t expect = 1, count = 0, found = 0, last = 0;
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        count++;
        if (!*bad)
            *bad = s_check_event (st, expect, prev);
        if (head && !*bad && !found && s_text (st, 7) && strcmp (s_text (st, 7), head) == 0)
            found = sqlite3_column_int64 (st, 0);
        last = sqlite3_column_int64 (st, 0);
        expect = last + 1;                              //  one gap is reported once
        snprintf (prev, sizeof prev, "%s", s_text (st, 7) ? s_text (st, 7) : "");
        json_t *at = json_string (s_text (st, 1) ? s_text (st, 1) : "");
        if (count == 1)
            json_object_set (report, "first_at", at);
        json_object_set_new (report, "last_at", at);
    }
    if (rc != SQLITE_DONE)
        log_error ("verify: reading events: %s", sqlite3_errmsg (db));
    sqlite3_reset (st);
    json_object_set_new (report, "events", json_integer (count));
    json_object_set_new (report, "head", count ? json_string (prev) : json_null ());
    json_object_set_new (report, "head_seq", json_integer (last));
    if (head && rc == SQLITE_DONE)
        s_saved_head (report, head, found, count, bad);
    return rc == SQLITE_DONE ? 0 : -1;
}

//  --------------------------------------------------------------------------------------
//  Pass 2: each request against its events. A walk folds the events into what the row
//  must hold.

typedef struct {
    int64_t id;
    char state[32];             //  "" until the received event
    json_t *expect;             //  column -> value the events recorded
    json_t *hashes;             //  large column -> its recorded sha256 (or null)
    json_t *approvals;          //  approval events, as the approvals rows must read
    bool pruned;                //  a pruned event blanked its bodies
    json_t *bad;
} walk_t;

static void
s_walk_received (walk_t *w, json_t *data, const char *at)
{
    static const char *keys[] = { "principal", "role", "session", "lang", "code_sha256",
                                  "bind_sha256", "reason" };
    for (size_t i = 0; i < COUNT (keys); i++) {
        json_t *v = json_object_get (data, keys[i]);
        json_object_set (w->expect, keys[i], v ? v : json_null ());
    }
    json_t *key = json_object_get (data, "key");
    json_object_set (w->expect, "idem_key", key ? key : json_null ());
    json_object_set_new (w->expect, "submitted_at", json_string (at));
    json_t *code = json_object_get (data, "code_sha256");
    json_object_set (w->hashes, "code", code ? code : json_null ());
    snprintf (w->state, sizeof w->state, "received");
}

static void
s_walk_transition (walk_t *w, const char *type, json_t *data, const char *at)
{
    const char *key;
    json_t *v;
    json_object_foreach (data, key, v) {
        if (strcmp (key, "reason") == 0 || strcmp (key, "message") == 0)
            continue;           //  notes of the transition, not the submission's reason
        char name[64];
        size_t len = strlen (key);
        if (len > 7 && len < sizeof name && strcmp (key + len - 7, "_sha256") == 0) {
            snprintf (name, sizeof name, "%.*s", (int) (len - 7), key);
            if (s_in (name, s_hashed, COUNT (s_hashed)))
                json_object_set (w->hashes, name, v);
        }
        if (s_in (key, s_columns, COUNT (s_columns))
        ||  s_in (key, s_json_columns, COUNT (s_json_columns)))
            json_object_set (w->expect, key, v);
    }
    //  As a transition stamps them (STATE_MOVE in store.c); pending_approval has none.
    const char *stamp = strcmp (type, "queued") == 0 ? "queued_at"
                      : strcmp (type, "running") == 0 ? "started_at"
                      : states_is_terminal (type) ? "finished_at" : NULL;
    if (stamp)
        json_object_set_new (w->expect, stamp, json_string (at));
    snprintf (w->state, sizeof w->state, "%s", type);
}

//  Pruning comes once, after the end, and must have removed what the chain had recorded:
//  a body altered before it was pruned shows here as a hash its events never recorded.
static void
s_walk_pruned (walk_t *w, int64_t seq, const char *at, json_t *data)
{
    if (w->pruned || !states_is_terminal (w->state)) {
        w->bad = s_bad ("events", seq, "request %lld pruned while %s", (long long) w->id,
                        w->pruned ? "already pruned" : w->state);
        return;
    }
    for (size_t i = 0; i < COUNT (s_hashed); i++) {
        char key[64];
        snprintf (key, sizeof key, "%s_sha256", s_hashed[i]);
        json_t *had = json_object_get (w->hashes, s_hashed[i]);
        json_t *removed = json_object_get (data, key);
        if (!json_equal (had ? had : json_null (), removed ? removed : json_null ())) {
            w->bad = s_bad ("events", seq, "request %lld: the %s pruned is not the one its "
                            "events recorded (altered before pruning)", (long long) w->id,
                            s_hashed[i]);
            return;
        }
    }
    w->pruned = true;
    json_object_set_new (w->expect, "pruned_at", json_string (at));
}

//  Folds one event (seq, at, type, data) of the request into w, or sets w->bad.
static void
s_walk_event (walk_t *w, int64_t seq, const char *at, const char *type, json_t *data)
{
    bool received = strcmp (type, "received") == 0;
    if (received != (w->state[0] == '\0'))
        w->bad = s_bad ("events", seq, "event %s of request %lld %s", type, (long long) w->id,
                        received ? "repeats its received event" : "comes before its received");
    else if (received)
        s_walk_received (w, data, at);
    else if (states_is_known (type)) {
        const char *from = json_string_value (json_object_get (data, "from"));
        const char *to = json_string_value (json_object_get (data, "to"));
        if (!from || strcmp (from, w->state) != 0 || !to || strcmp (to, type) != 0
        ||  !states_edge_legal (from, to))
            w->bad = s_bad ("events", seq, "transition %s -> %s of request %lld, which was %s",
                            from ? from : "?", to ? to : "?", (long long) w->id, w->state);
        else
            s_walk_transition (w, type, data, at);
    }
    else if (strcmp (type, "pruned") == 0)
        s_walk_pruned (w, seq, at, data);
    //  A connection of a run is recorded with its result, before the run's end: one anywhere
    //  else was not written by the broker.
    else if (strcmp (type, "egress") == 0 && strcmp (w->state, "running") != 0)
        w->bad = s_bad ("events", seq, "egress event of request %lld, which was %s",
                        (long long) w->id, w->state);
    else if (strcmp (type, "approval") == 0) {
        json_t *a = json_deep_copy (data);
        json_object_set_new (a, "at", json_string (at));
        json_object_set_new (a, "seq", json_integer (seq));
        json_array_append_new (w->approvals, a);
    }
}

static int
s_walk_events (verify_t *self, sqlite3 *db, walk_t *w)
{
    sqlite3_stmt *st = self->request_events;
    sqlite3_reset (st);
    int rc = sqlite3_bind_int64 (st, 1, w->id);
    while (rc == SQLITE_OK && !w->bad && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        json_error_t error;
        const char *text = s_text (st, 3);
        json_t *data = text ? json_loads (text, JSON_ALLOW_NUL, &error) : NULL;
        if (!data || !s_text (st, 1) || !s_text (st, 2))    //  the chain pass saw it whole
            w->bad = s_bad ("events", sqlite3_column_int64 (st, 0), "unreadable event");
        else
            s_walk_event (w, sqlite3_column_int64 (st, 0), s_text (st, 1), s_text (st, 2), data);
        json_decref (data);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE)
        log_error ("verify: reading the events of request %lld: %s", (long long) w->id,
                   sqlite3_errmsg (db));
    sqlite3_reset (st);
    return rc == SQLITE_OK || rc == SQLITE_DONE ? 0 : -1;
}

//  The large texts hash to what the events recorded (NULL where they recorded null).
static json_t *
s_compare_hashes (walk_t *w, json_t *row)
{
    for (size_t i = 0; i < COUNT (s_hashed); i++) {
        json_t *text = json_object_get (row, s_hashed[i]);
        const char *want = json_string_value (json_object_get (w->hashes, s_hashed[i]));
        char sha[65] = "";
        if (json_is_string (text))
            sha256_hex (json_string_value (text), json_string_length (text), sha);
        bool ok = want ? json_is_string (text) && strcmp (sha, want) == 0 : json_is_null (text);
        if (w->pruned)          //  what prune leaves: code '' (NOT NULL), the rest NULL
            ok = i == 0 ? json_is_string (text) && json_string_length (text) == 0
                        : json_is_null (text);
        if (!ok)
            return s_bad ("requests", w->id, "%s does not hash to the %s_sha256 its events "
                          "recorded", s_hashed[i], s_hashed[i]);
    }
    return NULL;
}

//  A JSON column holds exactly the canonical text of the object its event recorded.
static json_t *
s_compare_json (walk_t *w, json_t *row)
{
    for (size_t i = 0; i < COUNT (s_json_columns); i++) {
        json_t *want = json_object_get (w->expect, s_json_columns[i]);
        const char *have = json_string_value (json_object_get (row, s_json_columns[i]));
        char *text = json_is_object (want) ? event_data_text (want) : NULL;
        bool ok = text ? have && strcmp (have, text) == 0
                       : json_is_null (json_object_get (row, s_json_columns[i]));
        free (text);
        if (!ok)
            return s_bad ("requests", w->id, "%s differs from what its events recorded",
                          s_json_columns[i]);
    }
    return NULL;
}

static json_t *
s_compare_row (walk_t *w, json_t *row)
{
    json_t *bad = s_compare_hashes (w, row);
    if (!bad)
        bad = s_compare_json (w, row);
    for (size_t i = 0; !bad && i < COUNT (s_columns); i++) {
        json_t *want = json_object_get (w->expect, s_columns[i]);
        if (!json_equal (json_object_get (row, s_columns[i]), want ? want : json_null ()))
            bad = s_bad ("requests", w->id, "%s differs from what its events recorded",
                         s_columns[i]);
    }
    const char *state = json_string_value (json_object_get (row, "state"));
    if (!bad && (!state || strcmp (state, w->state) != 0))
        bad = s_bad ("requests", w->id, "state is %s but its last transition says %s",
                     state ? state : "?", w->state);
    return bad;
}

//  The approvals rows are exactly the approval events, in order.
static json_t *
s_compare_approvals (verify_t *self, sqlite3 *db, walk_t *w, int *rc)
{
    sqlite3_stmt *st = self->approvals;
    sqlite3_reset (st);
    *rc = sqlite3_bind_int64 (st, 1, w->id);
    json_t *bad = NULL;
    size_t i = 0;
    while (*rc == SQLITE_OK && !bad && (*rc = sqlite3_step (st)) == SQLITE_ROW) {
        json_t *row = store_row_json (st, true), *event = json_array_get (w->approvals, i++);
        for (size_t k = 0; row && !bad && k < COUNT (s_approval_keys); k++) {
            json_t *want = event ? json_object_get (event, s_approval_keys[k]) : NULL;
            if (!event || !json_equal (json_object_get (row, s_approval_keys[k]),
                                       want ? want : json_null ()))
                bad = s_bad ("approvals", json_integer_value (json_object_get (row, "id")),
                             "%s", event ? "differs from its approval event"
                                         : "has no approval event");
        }
        json_decref (row);
        *rc = SQLITE_OK;
    }
    if (*rc != SQLITE_OK && *rc != SQLITE_DONE)
        log_error ("verify: reading approvals: %s", sqlite3_errmsg (db));
    sqlite3_reset (st);
    json_t *missing = json_array_get (w->approvals, i);
    if (!bad && missing)
        bad = s_bad ("requests", w->id, "the approval in event %lld has no approvals row",
                     (long long) json_integer_value (json_object_get (missing, "seq")));
    *rc = *rc == SQLITE_OK || *rc == SQLITE_DONE ? 0 : -1;
    return bad;
}

static int
s_check_request (verify_t *self, sqlite3 *db, json_t *row, json_t **bad)
{
    walk_t w = { json_integer_value (json_object_get (row, "id")), "", json_object (),
                 json_object (), json_array (), false, NULL };
    int rc = s_walk_events (self, db, &w);
    if (rc == 0 && !w.bad && !w.state[0])
        w.bad = s_bad ("requests", w.id, "no received event: the row was not written by "
                       "replgate");
    if (rc == 0 && !w.bad)
        w.bad = s_compare_row (&w, row);
    if (rc == 0 && !w.bad)
        w.bad = s_compare_approvals (self, db, &w, &rc);
    *bad = w.bad;
    json_decref (w.expect);
    json_decref (w.hashes);
    json_decref (w.approvals);
    return rc;
}

static int
s_requests (verify_t *self, sqlite3 *db, json_t *report, json_t **bad)
{
    sqlite3_stmt *st = self->requests;
    sqlite3_reset (st);
    int64_t count = 0;
    int rc = SQLITE_DONE, err = 0;
    while (!*bad && !err && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        json_t *row = store_row_json (st, true);
        count++;
        err = row ? s_check_request (self, db, row, bad) : -1;
        json_decref (row);
    }
    if (!*bad && !err && rc != SQLITE_DONE) {
        log_error ("verify: reading requests: %s", sqlite3_errmsg (db));
        err = -1;
    }
    sqlite3_reset (st);
    json_object_set_new (report, "requests", json_integer (count));
    return err;
}

//  --------------------------------------------------------------------------------------
//  Pass 3: rows that vanished, then the report.

static int
s_orphans (verify_t *self, sqlite3 *db, json_t **bad)
{
    sqlite3_stmt *st = self->orphans;
    sqlite3_reset (st);
    int rc = sqlite3_step (st);
    if (rc == SQLITE_ROW)
        *bad = s_bad ("requests", sqlite3_column_int64 (st, 1), "row missing, though event "
                      "%lld received it", (long long) sqlite3_column_int64 (st, 0));
    else if (rc != SQLITE_DONE)
        log_error ("verify: looking for missing requests: %s", sqlite3_errmsg (db));
    sqlite3_reset (st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int
verify_run (verify_t *self, sqlite3 *db, const char *head, json_t **report)
{
    *report = json_pack ("{s:b, s:I, s:I, s:n, s:n, s:n, s:I, s:i}", "ok", 1, "events",
                         (json_int_t) 0, "requests", (json_int_t) 0, "first_at", "last_at",
                         "head", "head_seq", (json_int_t) 0, "schema_version", schema_version ());
    json_t *bad = NULL, *schema = NULL;
    int rc = *report ? verify_schema (db, &schema) : -1;
    if (rc == 0)
        json_object_set_new (*report, "schema", schema);
    if (rc == 0)
        rc = s_chain (self, db, head, *report, &bad);
    if (rc == 0 && !bad)
        rc = s_requests (self, db, *report, &bad);
    if (rc == 0 && !bad)
        rc = s_orphans (self, db, &bad);
    if (rc != 0) {
        json_decref (bad);
        json_decref (*report);
        *report = NULL;
        return -1;
    }
    if (!bad && json_array_size (schema) == 0)
        return 0;
    json_object_set_new (*report, "ok", json_false ());
    if (bad)
        json_object_set_new (*report, "bad", bad);
    return 1;
}
