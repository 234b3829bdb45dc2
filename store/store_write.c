/*  store/store_write.c: the writes of a request's life: submissions, state transitions
    (and the fields each may set), approvals and standalone events, each in one transaction
    on the connection of store.c. Retention is store_prune.c. The contract is store.h. */
#include "store/store_int.h"
#include "common/states.h"
#include "common/util.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Fields a transition may set, in the order of their statement's parameters (?2, ?3, ...).
//  F_BYTES: what a snippet printed; TEXT when it is plain text, else a BLOB of the bytes.
typedef enum { F_TEXT, F_INT, F_REAL, F_BOOL, F_SCALAR, F_JSON, F_BYTES } field_kind_t;
static const char *s_kind_name[] = { "a string", "an integer", "a number", "a boolean",
                                     "a string or an integer", "an object", "a string" };
typedef struct {
    const char *name;
    field_kind_t kind;
    bool large;         //  recorded in the event as <name>_sha256 only
    int sha_param;      //  parameter of its <name>_sha256 column, 0 if none
} field_t;

//  received -> denied sets the first 3, -> queued also limits, -> pending_approval all 5.
static const field_t s_decision_fields[] = {
    { "rule", F_TEXT, false, 0 }, { "decision_message", F_TEXT, false, 0 },
    { "policy_sha256", F_TEXT, false, 0 }, { "limits", F_JSON, false, 0 },
    { "review", F_JSON, false, 0 },
};
static const field_t s_worker_fields[] = { { "worker", F_TEXT, false, 0 } };
static const field_t s_result_fields[] = {
    { "outcome", F_TEXT, false, 0 }, { "exit_code", F_INT, false, 0 },
    { "signal", F_SCALAR, false, 0 }, { "stdout", F_BYTES, true, 29 },
    { "stderr", F_BYTES, true, 30 }, { "stdout_truncated", F_BOOL, false, 0 },
    { "stderr_truncated", F_BOOL, false, 0 }, { "value", F_TEXT, true, 0 },
    { "error_name", F_TEXT, false, 0 }, { "error_value", F_TEXT, false, 0 },
    { "traceback", F_TEXT, true, 0 }, { "wall_ms", F_REAL, false, 0 },
    { "cpu_ms", F_REAL, false, 0 }, { "max_rss_kb", F_INT, false, 0 },
    { "execution_count", F_INT, false, 0 }, { "session_reset", F_BOOL, false, 0 },
    { "sandbox", F_TEXT, false, 0 }, { "value_truncated", F_BOOL, false, 0 },
    { "error_name_truncated", F_BOOL, false, 0 }, { "error_value_truncated", F_BOOL, false, 0 },
    { "traceback_truncated", F_BOOL, false, 0 }, { "reset_reason", F_TEXT, false, 0 },
    { "session_cpu_ms", F_REAL, false, 0 }, { "egress_connections", F_INT, false, 0 },
    { "egress_denied", F_INT, false, 0 }, { "egress_bytes_out", F_INT, false, 0 },
    { "egress_bytes_in", F_INT, false, 0 },
};

//  --------------------------------------------------------------------------------------
//  Submissions.

static const char *
s_required (json_t *req, const char *key)
{
    const char *value = json_string_value (json_object_get (req, key));
    if (!value)
        log_error ("store: submit: '%s' must be a string", key);
    return value;
}

static bool
s_optional_ok (json_t *req, const char *key)
{
    json_t *v = json_object_get (req, key);
    if (!v || json_is_null (v) || json_is_string (v))
        return true;
    log_error ("store: '%s' must be a string or null", key);
    return false;
}

//  Looks (principal, key) up. 1 found (*id set), 0 not, -1 error.
static int
s_find_key (store_t *self, const char *principal, const char *key, int64_t *id)
{
    binder_t b = { store_stmt (self, ST_KEY_FIND), SQLITE_OK };
    store_bind_str (&b, 1, principal);
    store_bind_str (&b, 2, key);
    if (store_bound (self, &b, "submit"))
        return -1;
    int rc = sqlite3_step (b.st);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64 (b.st, 0);
    else if (rc != SQLITE_DONE) {
        log_error ("store: looking up idempotency key: %s", sqlite3_errmsg (self->db));
        store_failed (self, rc);
    }
    sqlite3_reset (b.st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int
s_insert_request (store_t *self, json_t *req, const char *sha[2], const char *at, int64_t *id)
{
    json_t *code = json_object_get (req, "code");
    binder_t b = { store_stmt (self, ST_REQUEST_ADD), SQLITE_OK };
    store_bind_str (&b, 1, json_string_value (json_object_get (req, "principal")));
    store_bind_str (&b, 2, json_string_value (json_object_get (req, "role")));
    store_bind_str (&b, 3, json_string_value (json_object_get (req, "session")));
    store_bind_str (&b, 4, json_string_value (json_object_get (req, "lang")));
    store_bind_text (&b, 5, json_string_value (code), json_string_length (code));
    store_bind_str (&b, 6, sha[0]);
    store_bind_str (&b, 7, sha[1]);
    store_bind_str (&b, 8, json_string_value (json_object_get (req, "reason")));
    store_bind_str (&b, 9, json_string_value (json_object_get (req, "key")));
    store_bind_str (&b, 10, at);
    if (store_bound (self, &b, "submit") || store_run (self, b.st, "inserting a request"))
        return -1;
    *id = sqlite3_last_insert_rowid (self->db);
    return 0;
}

int
store_submit (store_t *self, json_t *req, int64_t *id, bool *duplicate)
{
    assert (self && req && id && duplicate);
    *duplicate = false;
    const char *principal = s_required (req, "principal"), *role = s_required (req, "role"),
               *session = s_required (req, "session"), *lang = s_required (req, "lang"),
               *key = json_string_value (json_object_get (req, "key"));
    json_t *code = json_object_get (req, "code");
    if (!principal || !role || !session || !lang || !s_required (req, "code")
    ||  !s_optional_ok (req, "reason") || !s_optional_ok (req, "key") || !s_optional_ok (req, "groups")
    ||  !(json_object_get (req, "timeout_ms") == NULL || json_is_integer (json_object_get (req, "timeout_ms")))
    ||  store_writable (self, "submit"))
        return -1;
    char code_sha[65], bind_sha[65], at[32];
    sha256_hex (json_string_value (code), json_string_length (code), code_sha);
    bind_sha256 (lang, session, json_string_value (code), json_string_length (code), bind_sha);
    if (store_begin (self))
        return -1;
    int rc = key ? s_find_key (self, principal, key, id) : 0;
    if (rc == 1) {                  //  a retry: the first submission stands, nothing is written
        *duplicate = true;
        return store_end (self, 1, "submit") == 1 ? 0 : -1;
    }
    store_now (at);
    const char *sha[2] = { code_sha, bind_sha };
    if (rc == 0)
        rc = s_insert_request (self, req, sha, at, id);
    json_t *data = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:O?, s:O?}", "principal", principal,
                              "role", role, "session", session, "lang", lang, "code_sha256",
                              code_sha, "bind_sha256", bind_sha, "reason",
                              json_object_get (req, "reason"), "key", json_object_get (req, "key"));
    //  The cert's groups at submission: the policy may match on them, and a broker that
    //  restarts before deciding must decide as the connection would have.
    if (data && json_is_string (json_object_get (req, "groups")))
        json_object_set (data, "groups", json_object_get (req, "groups"));
    //  The run timeout asked for, which the decision applies (after a restart too).
    if (data && json_is_integer (json_object_get (req, "timeout_ms")))
        json_object_set (data, "timeout_ms", json_object_get (req, "timeout_ms"));
    if (rc == 0)
        rc = data ? store_append (self, *id, "received", principal, data, at) : -1;
    json_decref (data);
    return store_end (self, rc, "submit");
}

//  --------------------------------------------------------------------------------------
//  Transitions.

//  A field's value: flat in fields, or for error_* / traceback inside an "error" object
//  as the worker sends it. NULL if absent or null.
static json_t *
s_field (json_t *fields, const char *name)
{
    json_t *v = json_object_get (fields, name);
    json_t *error = json_object_get (fields, "error");
    if (!v && json_is_object (error)) {
        if (s_streq (name, "error_name")) v = json_object_get (error, "name");
        if (s_streq (name, "error_value")) v = json_object_get (error, "value");
        if (s_streq (name, "traceback")) v = json_object_get (error, "traceback");
    }
    return json_is_null (v) ? NULL : v;
}

static bool
s_kind_ok (field_kind_t kind, json_t *v)
{
    switch (kind) {
        case F_TEXT: case F_BYTES: return json_is_string (v);
        case F_INT: return json_is_integer (v);
        case F_REAL: return json_is_number (v);
        case F_BOOL: return json_is_boolean (v);
        case F_JSON: return json_is_object (v);
        default: return json_is_string (v) || json_is_integer (v);
    }
}

//  Binds one field at param and records it, or its sha256, in the event data. Reals are
//  recorded as reals so the event equals what the REAL column reads back.
static int
s_set_field (binder_t *b, const field_t *f, int param, json_t *v, json_t *data)
{
    if (v && !s_kind_ok (f->kind, v)) {
        log_error ("store: field '%s' must be %s", f->name, s_kind_name[f->kind]);
        return -1;
    }
    json_t *note = v ? json_incref (v) : json_null ();
    char key[64], sha[65];
    snprintf (key, sizeof key, "%s%s", f->name, f->large ? "_sha256" : "");
    if (f->large) {
        json_decref (note);
        if (v)
            sha256_hex (json_string_value (v), json_string_length (v), sha);
        note = v ? json_string (sha) : json_null ();    //  its column is bound by the caller
    }
    else if (v && f->kind == F_REAL) {
        json_decref (note);
        note = json_real (json_number_value (v));
        v = note;
    }
    if (v && f->kind == F_JSON) {       //  the column holds the canonical text of the event's object
        char *text = event_data_text (v);
        if (b->rc == SQLITE_OK)
            b->rc = text ? sqlite3_bind_text (b->st, param, text, -1, SQLITE_TRANSIENT)
                         : SQLITE_NOMEM;
        free (text);
    }
    else if (v && f->kind == F_BYTES
         &&  !text_is_plain (json_string_value (v), json_string_length (v))) {
        if (b->rc == SQLITE_OK)     //  kept as they are: NUL, bytes that are not UTF-8
            b->rc = sqlite3_bind_blob64 (b->st, param, json_string_value (v),
                                         json_string_length (v), SQLITE_TRANSIENT);
    }
    else
        store_bind_json (b, param, v);
    return json_object_set_new (data, key, note);
}

//  A transition's move (from, to, at) and its fields (count of them, in table order; none
//  for ST_STATE_SET), in one statement: see STATE_MOVE in store.c.
typedef struct {
    int64_t id;
    const char *from, *to, *at;
} move_t;

//  Runs the transition's UPDATE: 0, or -1 if a field is bad, the database failed, or the row
//  is not in m->from (logged).
static int
s_move (store_t *self, const move_t *m, stmt_id_t which, const field_t *table, size_t count,
        json_t *fields, json_t *data)
{
    binder_t b = { store_stmt (self, which), SQLITE_OK };
    store_bind_int (&b, 1, m->id);
    store_bind_str (&b, 92, m->from);
    store_bind_str (&b, 93, m->to);
    store_bind_str (&b, 94, m->at);
    store_bind_int (&b, 95, states_is_terminal (m->to));   //  a terminal state stamps finished_at
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = s_set_field (&b, &table[i], (int) i + 2, s_field (fields, table[i].name), data);
    //  <name>_sha256 columns take the hash from the event data, which outlives the step.
    for (size_t i = 0; rc == 0 && i < count; i++)
        if (table[i].sha_param) {
            char key[64];
            snprintf (key, sizeof key, "%s_sha256", table[i].name);
            store_bind_str (&b, table[i].sha_param, json_string_value (json_object_get (data, key)));
        }
    if (rc == 0 && (store_bound (self, &b, "transition") || store_run (self, b.st, "changing state")))
        rc = -1;
    if (rc == 0 && sqlite3_changes (self->db) != 1) {
        log_warn ("store: request %lld is not %s (absent or moved on): %s -> %s refused",
                  (long long) m->id, m->from, m->from, m->to);
        rc = -1;
    }
    return rc;
}

//  reason / message go only into the event.
static int
s_notes (json_t *fields, json_t *data)
{
    static const char *keys[] = { "reason", "message" };
    for (size_t i = 0; i < COUNT (keys); i++) {
        json_t *v = json_object_get (fields, keys[i]);
        if (v && !json_is_null (v) && !json_is_string (v)) {
            log_error ("store: '%s' must be a string", keys[i]);
            return -1;
        }
        if (json_is_string (v))
            json_object_set (data, keys[i], v);
    }
    return 0;
}

//  How many egress entries the worker left out past its 1000 (egress_dropped): a note of the
//  `done` event, not a column (the four totals are), so an auditor reading the events of a
//  request knows they are not all of its connections.
static int
s_egress_dropped (json_t *fields, json_t *data)
{
    json_t *v = json_object_get (fields, "egress_dropped");
    if (!v || json_is_null (v))
        return 0;
    if (!json_is_integer (v) || json_integer_value (v) < 0) {
        log_error ("store: 'egress_dropped' must be an integer >= 0");
        return -1;
    }
    return json_object_set (data, "egress_dropped", v);
}

//  The body of a transition; the caller holds the transaction.
static int
s_transit (store_t *self, int64_t id, const char *from, const char *to, const char *actor,
           json_t *fields, const char *at)
{
    const move_t m = { id, from, to, at };
    json_t *data = json_pack ("{s:s, s:s}", "from", from, "to", to);
    int rc = data ? s_notes (fields, data) : -1;
    if (rc == 0 && s_streq (from, "received"))
        rc = s_move (self, &m, ST_DECISION_SET, s_decision_fields, s_streq (to, "denied") ? 3
                     : s_streq (to, "queued") ? 4 : 5, fields, data);
    else if (rc == 0 && s_streq (to, "running"))
        rc = s_move (self, &m, ST_WORKER_SET, s_worker_fields, COUNT (s_worker_fields), fields, data);
    else if (rc == 0 && s_streq (to, "done")) {
        rc = s_move (self, &m, ST_RESULT_SET, s_result_fields, COUNT (s_result_fields), fields, data);
        if (rc == 0)
            rc = s_egress_dropped (fields, data);
    }
    else if (rc == 0)
        rc = s_move (self, &m, ST_STATE_SET, NULL, 0, fields, data);
    if (rc == 0)
        rc = store_append (self, id, to, actor, data, at);
    json_decref (data);
    return rc;
}

static int
s_edge_ok (int64_t id, const char *from, const char *to)
{
    if (states_edge_legal (from, to))
        return 0;
    log_error ("store: request %lld: %s -> %s is not a transition of the state machine",
               (long long) id, from ? from : "(null)", to ? to : "(null)");
    return -1;
}

int
store_transition (store_t *self, int64_t id, const char *from, const char *to,
                  const char *actor, json_t *fields)
{
    assert (self && actor);
    if (store_writable (self, "transition") || s_edge_ok (id, from, to) || store_begin (self))
        return -1;
    char at[32];
    store_now (at);
    return store_end (self, s_transit (self, id, from, to, actor, fields, at), "transition");
}

//  --------------------------------------------------------------------------------------
//  Approvals and standalone events.

static int
s_approval_check (json_t *a)
{
    const char *via = json_string_value (json_object_get (a, "via"));
    const char *decision = json_string_value (json_object_get (a, "decision"));
    if (!json_is_string (json_object_get (a, "approver"))
    ||  !(s_streq (via, "cli") || s_streq (via, "slack"))
    ||  !(s_streq (decision, "approve") || s_streq (decision, "deny"))) {
        log_error ("store: an approval needs approver, via (cli|slack), decision (approve|deny)");
        return -1;
    }
    return s_optional_ok (a, "on_behalf_of") && s_optional_ok (a, "reason")
        && s_optional_ok (a, "slack_user") ? 0 : -1;
}

//  0 if request id is in `state`, else -1 (logged).
static int
s_state_is (store_t *self, int64_t id, const char *state)
{
    binder_t b = { store_stmt (self, ST_STATE_GET), SQLITE_OK };
    store_bind_int (&b, 1, id);
    if (store_bound (self, &b, "state"))
        return -1;
    int rc = sqlite3_step (b.st);
    bool match = rc == SQLITE_ROW && s_streq ((const char *) sqlite3_column_text (b.st, 0), state);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        log_error ("store: reading request %lld: %s", (long long) id, sqlite3_errmsg (self->db));
        store_failed (self, rc);
    }
    else if (!match)
        log_warn ("store: request %lld is not %s", (long long) id, state);
    sqlite3_reset (b.st);
    return match ? 0 : -1;
}

static int
s_insert_approval (store_t *self, int64_t id, json_t *a, const char *at)
{
    binder_t b = { store_stmt (self, ST_APPROVAL_ADD), SQLITE_OK };
    store_bind_int (&b, 1, id);
    store_bind_json (&b, 2, json_object_get (a, "approver"));
    store_bind_json (&b, 3, json_object_get (a, "via"));
    store_bind_json (&b, 4, json_object_get (a, "on_behalf_of"));
    store_bind_json (&b, 5, json_object_get (a, "decision"));
    store_bind_json (&b, 6, json_object_get (a, "reason"));
    store_bind_str (&b, 7, at);
    store_bind_json (&b, 8, json_object_get (a, "slack_user"));
    return store_bound (self, &b, "approval") ? -1 : store_run (self, b.st, "recording an approval");
}

int
store_approve (store_t *self, int64_t id, json_t *approval, const char *to, json_t *fields)
{
    assert (self && approval);
    if (store_writable (self, "approve") || s_approval_check (approval)
    ||  (to && s_edge_ok (id, "pending_approval", to)) || store_begin (self))
        return -1;
    char at[32];
    store_now (at);
    const char *approver = json_string_value (json_object_get (approval, "approver"));
    json_t *data = json_pack ("{s:s, s:O, s:O?, s:O, s:O?}", "approver", approver,
                              "via", json_object_get (approval, "via"),
                              "on_behalf_of", json_object_get (approval, "on_behalf_of"),
                              "decision", json_object_get (approval, "decision"),
                              "reason", json_object_get (approval, "reason"));
    //  Only when given, so approvals from the command line keep their v1 form.
    json_t *slack_user = json_object_get (approval, "slack_user");
    if (data && json_is_string (slack_user))
        json_object_set (data, "slack_user", slack_user);
    int rc = data ? s_state_is (self, id, "pending_approval") : -1;
    if (rc == 0)
        rc = s_insert_approval (self, id, approval, at);
    if (rc == 0)
        rc = store_append (self, id, "approval", approver, data, at);
    if (rc == 0 && to)
        rc = s_transit (self, id, "pending_approval", to, approver, fields, at);
    json_decref (data);
    return store_end (self, rc, "approve");
}

int
store_event (store_t *self, int64_t request_id, const char *type, const char *actor,
             json_t *data)
{
    assert (self && type && actor);
    if (states_is_known (type) || s_streq (type, "approval") || s_streq (type, "pruned")
    ||  (data && !json_is_object (data))) {
        log_error ("store: event '%s': the type is reserved or the data is not an object", type);
        return -1;
    }
    if (store_writable (self, "event") || store_begin (self))
        return -1;
    char at[32];
    store_now (at);
    json_t *empty = data ? NULL : json_object ();
    int rc = store_append (self, request_id, type, actor, data ? data : empty, at);
    json_decref (empty);
    return store_end (self, rc, "event");
}
