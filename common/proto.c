/*  common/proto.c: validates client and worker frames against one table of message shapes.
    Each message type lists its fields with a type, whether it is required and its bounds;
    anything not in the table is an error, so new fields are a deliberate protocol change. */
#include "common/proto.h"
#include "common/check.h"
#include "common/util.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

//  F_LABELS: an array of at most PROTO_MAX_LABELS labels (proto_label_valid).
typedef enum { F_STR, F_INT, F_BOOL, F_OBJ, F_RID, F_ANY, F_NUM, F_ARR, F_LABELS } ftype_t;

typedef struct {
    const char *name;
    ftype_t type;
    bool required;
    long long max;              //  strings: max bytes; ints: max value (min is 0); 0 = no bound
    const char *const *oneof;   //  strings: allowed values, NULL-terminated
} field_t;

typedef struct {
    const char *op;
    field_t fields[32];
} shape_t;

static const char *const s_langs[] = { "python", "shell", NULL };
//  Events a gateway may add to the record (a closed list: the log is not a free-for-all).
static const char *const s_report_types[] = { "delivery_failed", NULL };
static const char *const s_outcomes[] = {
    "ok", "error", "timeout", "oom", "killed", "output_limit", "interrupted", NULL };
static const char *const s_streams[] = { "stdout", "stderr", NULL };

#define RID         { "rid", F_RID, false, 0, NULL }
#define OP          { "op", F_STR, true, 0, NULL }
#define ID          { "id", F_INT, true, 0, NULL }
#define END         { NULL, 0, false, 0, NULL }

static const shape_t s_client_shapes[] = {
    { "submit", { OP, RID,
        { "lang", F_STR, true, 0, s_langs },
        { "code", F_STR, true, PROTO_MAX_FRAME, NULL },
        { "session", F_STR, true, PROTO_MAX_SESSION, NULL },
        { "reason", F_STR, false, PROTO_MAX_REASON, NULL },
        { "key", F_STR, false, PROTO_MAX_KEY, NULL },
        { "wait_ms", F_INT, false, 3600000, NULL },
        { "timeout_ms", F_INT, false, PROTO_MAX_TIMEOUT_MS, NULL },
        { "stream", F_BOOL, false, 0, NULL }, END } },
    { "status", { OP, RID, ID, END } },
    { "result", { OP, RID, ID, END } },
    { "await", { OP, RID, ID, { "timeout_ms", F_INT, false, 3600000, NULL }, END } },
    { "cancel", { OP, RID, ID, END } },
    { "interrupt", { OP, RID, ID, END } },
    { "sessions", { OP, RID, END } },
    { "reset", { OP, RID, { "session", F_STR, true, PROTO_MAX_SESSION, NULL },
        { "lang", F_STR, true, 0, s_langs }, END } },
    { "close", { OP, RID, { "session", F_STR, true, PROTO_MAX_SESSION, NULL },
        { "lang", F_STR, true, 0, s_langs }, END } },
    { "pending", { OP, RID, { "session", F_STR, false, PROTO_MAX_SESSION, NULL },
        { "limit", F_INT, false, PROTO_PENDING_LIMIT, NULL }, { "after", F_INT, false, 0, NULL },
        END } },
    { "approve", { OP, RID, ID, { "reason", F_STR, false, PROTO_MAX_REASON, NULL },
        { "on_behalf_of", F_STR, false, PROTO_MAX_KEY, NULL },
        { "slack_user", F_STR, false, PROTO_MAX_KEY, NULL }, END } },
    { "deny", { OP, RID, ID, { "reason", F_STR, false, PROTO_MAX_REASON, NULL },
        { "on_behalf_of", F_STR, false, PROTO_MAX_KEY, NULL },
        { "slack_user", F_STR, false, PROTO_MAX_KEY, NULL }, END } },
    { "subscribe", { OP, RID, { "since", F_INT, false, 0, NULL }, END } },
    { "ping", { OP, RID, END } },
    { "report", { OP, RID, { "id", F_INT, false, 0, NULL },
        { "type", F_STR, true, 0, s_report_types }, { "detail", F_OBJ, false, 0, NULL }, END } },
    { "revoke", { OP, RID, { "name", F_STR, true, 128, NULL }, END } },
    { "prune", { OP, RID, { "before", F_STR, true, 64, NULL }, END } },
    { "workers", { OP, RID, END } },
    { "drain", { OP, RID, { "name", F_STR, true, 128, NULL }, END } },
    { NULL, { END } }
};

static const shape_t s_worker_shapes[] = {
    { "ready", { OP, { "name", F_STR, true, 128, NULL }, { "languages", F_ARR, false, 0, NULL },
        { "slots", F_INT, true, 1024, NULL }, { "sandbox", F_STR, false, 64, NULL },
        { "sessions", F_ARR, false, 0, NULL }, { "running", F_ARR, false, 0, NULL },
        { "labels", F_LABELS, false, 0, NULL }, { "memory_mb", F_INT, false, PROTO_MAX_MEMORY_MB, NULL },
        END } },
    { "heartbeat", { OP, END } },
    { "result", { OP, ID, { "session", F_STR, true, PROTO_MAX_SESSION, NULL },
        { "lang", F_STR, true, 0, s_langs }, { "owner", F_STR, false, PROTO_MAX_KEY, NULL },
        { "value_truncated", F_BOOL, false, 0, NULL },
        { "error_name_truncated", F_BOOL, false, 0, NULL },
        { "error_value_truncated", F_BOOL, false, 0, NULL },
        { "traceback_truncated", F_BOOL, false, 0, NULL },
        { "outcome", F_STR, true, 0, s_outcomes },
        { "exit_code", F_ANY, false, 0, NULL }, { "signal", F_ANY, false, 0, NULL },
        { "stdout", F_STR, false, 0, NULL }, { "stderr", F_STR, false, 0, NULL },
        { "stdout_base64", F_STR, false, 0, NULL }, { "stderr_base64", F_STR, false, 0, NULL },
        { "stdout_truncated", F_BOOL, false, 0, NULL },
        { "stderr_truncated", F_BOOL, false, 0, NULL },
        { "value", F_ANY, false, 0, NULL }, { "error", F_ANY, false, 0, NULL },
        { "wall_ms", F_NUM, false, 0, NULL }, { "cpu_ms", F_NUM, false, 0, NULL },
        { "session_cpu_ms", F_NUM, false, 0, NULL },
        { "max_rss_kb", F_NUM, false, 0, NULL }, { "execution_count", F_NUM, false, 0, NULL },
        { "session_reset", F_BOOL, false, 0, NULL }, { "sandbox", F_STR, false, 64, NULL },
        END } },
    { "session_closed", { OP, { "session", F_STR, true, PROTO_MAX_SESSION, NULL },
        { "lang", F_STR, true, 0, s_langs }, { "owner", F_STR, true, PROTO_MAX_KEY, NULL },
        { "reason", F_STR, false, 64, NULL }, { "exit_code", F_INT, false, 255, NULL },
        { "signal", F_INT, false, 64, NULL }, END } },
    { "output", { OP, ID, { "stream", F_STR, true, 0, s_streams }, { "seq", F_INT, true, 0, NULL },
        { "data", F_STR, false, 0, NULL }, { "data_base64", F_STR, false, 0, NULL }, END } },
    { NULL, { END } }
};

//  What the broker sends a worker: each message proto_run, proto_close, proto_heartbeat and
//  proto_announce build must pass (proto_test checks it).
static const shape_t s_broker_shapes[] = {
    { "run", { OP, ID, { "owner", F_STR, true, PROTO_MAX_KEY, NULL },
        { "session", F_STR, true, PROTO_MAX_SESSION, NULL }, { "lang", F_STR, true, 0, s_langs },
        { "code", F_STR, true, PROTO_MAX_FRAME, NULL }, { "limits", F_OBJ, true, 0, NULL },
        { "stream", F_BOOL, false, 0, NULL }, END } },
    { "interrupt", { OP, ID, { "owner", F_STR, true, PROTO_MAX_KEY, NULL },
        { "session", F_STR, true, PROTO_MAX_SESSION, NULL }, { "lang", F_STR, true, 0, s_langs },
        END } },
    { "close", { OP, { "owner", F_STR, true, PROTO_MAX_KEY, NULL },
        { "session", F_STR, true, PROTO_MAX_SESSION, NULL }, { "lang", F_STR, true, 0, s_langs },
        END } },
    { "heartbeat", { OP, END } },
    { "announce", { OP, END } },
    { "drain", { OP, END } },
    { "drained", { OP, END } },
    { NULL, { END } }
};

static void
s_fail (proto_error_t *err, const char *code, const char *fmt, const char *arg)
{
    err->code = code;
    char raw[sizeof err->message];
    snprintf (raw, sizeof raw, fmt, arg);
    //  A quoted key or op cut at 64 bytes (or the message at its size) can split a UTF-8
    //  character: the reply must stay valid JSON, so the split end is dropped.
    bool lost;
    size_t n = utf8_repair (raw, strlen (raw), err->message, sizeof err->message - 1, true, &lost);
    err->message[n] = 0;
}

static const field_t *
s_field (const shape_t *shape, const char *name)
{
    for (const field_t *f = shape->fields; f->name; f++)
        if (strcmp (f->name, name) == 0)
            return f;
    return NULL;
}

//  An array of labels: at most PROTO_MAX_LABELS, each proto_label_valid.
static int
s_check_labels (const field_t *f, json_t *value, proto_error_t *err)
{
    if (json_array_size (value) > PROTO_MAX_LABELS) {
        s_fail (err, PROTO_E_BAD_VALUE, "field '%s' holds more than 16 labels", f->name);
        return -1;
    }
    size_t i;
    json_t *label;
    json_array_foreach (value, i, label)
        if (!proto_label_valid (json_string_value (label))) {
            s_fail (err, PROTO_E_BAD_VALUE, "field '%s' must hold labels of 1-64 of A-Z a-z 0-9 . _ -",
                    f->name);
            return -1;
        }
    return 0;
}

//  Checks one present field's type and bounds; 0 if it conforms.
static int
s_check_field (const field_t *f, json_t *value, proto_error_t *err)
{
    bool ok;
    switch (f->type) {
        case F_STR:  ok = json_is_string (value); break;
        case F_INT:  ok = json_is_integer (value); break;
        case F_NUM:  ok = json_is_number (value) || json_is_null (value); break;   //  null: unknown
        case F_BOOL: ok = json_is_boolean (value); break;
        case F_OBJ:  ok = json_is_object (value); break;
        case F_ARR:  ok = json_is_array (value); break;
        case F_LABELS: ok = json_is_array (value); break;
        case F_RID:  ok = (json_is_string (value) && json_string_length (value) <= 64)
                       || json_is_integer (value); break;
        case F_ANY:  ok = true; break;
        default:     ok = false; break;
    }
    if (!ok) {
        s_fail (err, PROTO_E_BAD_TYPE, "field '%s' has the wrong type", f->name);
        return -1;
    }
    if (f->type == F_STR) {
        if (f->max && (long long) json_string_length (value) > f->max) {
            s_fail (err, PROTO_E_BAD_VALUE, "field '%s' is too long", f->name);
            return -1;
        }
        if (f->oneof) {
            const char *const *v = f->oneof;
            while (*v && strcmp (*v, json_string_value (value)) != 0)
                v++;
            if (!*v) {
                s_fail (err, PROTO_E_BAD_VALUE, "field '%s' has an unknown value", f->name);
                return -1;
            }
        }
    }
    if (f->type == F_LABELS && s_check_labels (f, value, err))
        return -1;
    if (f->type == F_INT) {
        json_int_t n = json_integer_value (value);
        if (n < 0 || (f->max && n > f->max)) {
            //  The bound is part of the answer: a caller learns what it may ask for.
            char what [PROTO_MAX_KEY + 64];
            if (f->max)
                snprintf (what, sizeof what, "%s' is out of range: 0 to the maximum %lld", f->name,
                          f->max);
            else
                snprintf (what, sizeof what, "%s' must not be negative", f->name);
            s_fail (err, PROTO_E_BAD_VALUE, "field '%s", what);
            return -1;
        }
    }
    return 0;
}

//  A worker `result` may carry accounting fields a newer worker added: they are ignored rather
//  than refused, because refusing would drop the result of a snippet that already ran.
static bool
s_open (const shape_t *shape)
{
    const shape_t *end = s_worker_shapes + sizeof s_worker_shapes / sizeof s_worker_shapes[0];
    for (const shape_t *w = s_worker_shapes; w < end; w++)
        if (w == shape)
            return strcmp (shape->op, "result") == 0;
    return false;
}

static int
s_check_shape (const shape_t *shape, json_t *msg, proto_error_t *err)
{
    const char *key;
    json_t *value;
    json_object_foreach (msg, key, value) {
        const field_t *f = s_field (shape, key);
        if (!f && s_open (shape))
            continue;
        if (!f) {
            s_fail (err, PROTO_E_UNKNOWN_KEY, "unknown field '%.64s'", key);
            return -1;
        }
        if (s_check_field (f, value, err))
            return -1;
    }
    for (const field_t *f = shape->fields; f->name; f++)
        if (f->required && !json_object_get (msg, f->name)) {
            s_fail (err, PROTO_E_MISSING, "missing field '%s'", f->name);
            return -1;
        }
    json_t *session = json_object_get (msg, "session");
    if (session && !proto_session_valid (json_string_value (session))) {
        s_fail (err, PROTO_E_BAD_VALUE, "%s", "field 'session' must be 1-128 of A-Z a-z 0-9 . _ : -");
        return -1;
    }
    return 0;
}

static int
s_parse (const shape_t *shapes, const void *data, size_t size, size_t max, size_t flags,
         json_t **msg, json_t **rid, proto_error_t *err)
{
    *msg = NULL;
    if (rid)
        *rid = NULL;
    if (size > max) {
        char limit[32];
        snprintf (limit, sizeof limit, "%zu", max);
        s_fail (err, PROTO_E_TOO_LARGE, "frame is larger than %s bytes", limit);
        return -1;
    }
    if (!utf8_valid (data, size)) {
        s_fail (err, PROTO_E_BAD_UTF8, "%s", "frame is not valid UTF-8");
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb (data, size, JSON_REJECT_DUPLICATES | flags, &jerr);
    if (!root) {
        s_fail (err, PROTO_E_BAD_JSON, "not JSON: %s", jerr.text);
        return -1;
    }
    if (!json_is_object (root)) {
        json_decref (root);
        s_fail (err, PROTO_E_NOT_OBJECT, "%s", "a message must be a JSON object");
        return -1;
    }
    json_t *r = json_object_get (root, "rid");
    if (rid && r && ((json_is_string (r) && json_string_length (r) <= 64) || json_is_integer (r)))
        *rid = json_incref (r);
    const char *op = json_string_value (json_object_get (root, "op"));
    const shape_t *shape = shapes;
    while (op && shape->op && strcmp (shape->op, op) != 0)
        shape++;
    if (!op || !shape->op) {
        s_fail (err, op ? PROTO_E_UNKNOWN_OP : PROTO_E_MISSING,
                op ? "unknown op '%.64s'" : "missing field '%s'", op ? op : "op");
        json_decref (root);
        return -1;
    }
    if (s_check_shape (shape, root, err)) {
        json_decref (root);
        return -1;
    }
    *msg = root;
    return 0;
}

int
proto_parse_client (const void *data, size_t size, json_t **msg, json_t **rid, proto_error_t *err)
{
    return s_parse (s_client_shapes, data, size, PROTO_MAX_FRAME, 0, msg, rid, err);
}

int
proto_parse_worker (const void *data, size_t size, json_t **msg, proto_error_t *err)
{
    //  A result carries what a snippet printed, and a snippet may print NUL (U+0000 is valid
    //  UTF-8): refusing it would strand the request. The store keeps text NUL-free.
    return s_parse (s_worker_shapes, data, size, PROTO_MAX_WORKER_FRAME, JSON_ALLOW_NUL, msg,
                    NULL, err);
}

int
proto_parse_broker (const void *data, size_t size, json_t **msg, proto_error_t *err)
{
    return s_parse (s_broker_shapes, data, size, PROTO_MAX_WIRE, 0, msg, NULL, err);
}

//  --------------------------------------------------------------------------------------
//  The worker link's messages, built in one place so that each end sends what the other's
//  reader takes.

json_t *
proto_run (int64_t id, const char *owner, const char *session, const char *lang,
           const char *code, json_t *limits)
{
    return json_pack ("{s:s, s:I, s:s, s:s, s:s, s:s, s:O}", "op", "run", "id", (json_int_t) id,
                      "owner", owner, "session", session, "lang", lang, "code", code,
                      "limits", limits);
}

json_t *
proto_close (const char *owner, const char *session, const char *lang)
{
    return json_pack ("{s:s, s:s, s:s, s:s}", "op", "close", "owner", owner, "session", session,
                      "lang", lang);
}

json_t *
proto_interrupt (int64_t id, const char *owner, const char *session, const char *lang)
{
    return json_pack ("{s:s, s:I, s:s, s:s, s:s}", "op", "interrupt", "id", (json_int_t) id,
                      "owner", owner, "session", session, "lang", lang);
}

json_t *
proto_output (int64_t id, const char *stream, int64_t seq, const char *data, size_t size)
{
    json_t *text = json_stringn (data, size);
    if (text && memchr (data, 0, size) == NULL)
        return json_pack ("{s:s, s:I, s:s, s:I, s:o}", "op", "output", "id", (json_int_t) id,
                          "stream", stream, "seq", (json_int_t) seq, "data", text);
    json_decref (text);
    char *b64 = base64_encode (data, size);
    json_t *out = json_pack ("{s:s, s:I, s:s, s:I, s:s}", "op", "output", "id", (json_int_t) id,
                             "stream", stream, "seq", (json_int_t) seq, "data_base64", b64 ? b64 : "");
    free (b64);
    return out;
}

json_t *
proto_heartbeat (void)
{
    return json_pack ("{s:s}", "op", "heartbeat");
}

json_t *
proto_announce (void)
{
    return json_pack ("{s:s}", "op", "announce");
}

json_t *
proto_ready (const char *name, int slots, const char *sandbox, json_t *sessions, json_t *running)
{
    return json_pack ("{s:s, s:s, s:[s,s], s:i, s:s, s:o, s:o}", "op", "ready", "name", name,
                      "languages", "python", "shell", "slots", slots, "sandbox", sandbox,
                      "sessions", sessions, "running", running);
}

int
proto_ready_capacity (json_t *ready, json_t *labels, int64_t memory_mb)
{
    if (labels && json_object_set (ready, "labels", labels) != 0)
        return -1;
    if (memory_mb > 0 && json_object_set_new (ready, "memory_mb", json_integer (memory_mb)) != 0)
        return -1;
    return 0;
}

json_t *
proto_drain (void)
{
    return json_pack ("{s:s}", "op", "drain");
}

json_t *
proto_drained (void)
{
    return json_pack ("{s:s}", "op", "drained");
}

json_t *
proto_held (const char *owner, const char *session, const char *lang, int64_t running_id)
{
    json_t *held = json_pack ("{s:s, s:s, s:s}", "owner", owner, "session", session, "lang", lang);
    if (held && running_id > 0)
        json_object_set_new (held, "id", json_integer (running_id));
    return held;
}

json_t *
proto_session_closed (const char *owner, const char *session, const char *lang,
                      const char *reason, int exit_code, int signal)
{
    json_t *msg = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "op", "session_closed", "owner", owner,
                             "session", session, "lang", lang, "reason", reason);
    if (msg && signal > 0)
        json_object_set_new (msg, "signal", json_integer (signal));
    else if (msg && exit_code >= 0)
        json_object_set_new (msg, "exit_code", json_integer (exit_code));
    return msg;
}

//  True if name is 1..max bytes, each a letter, a digit, '.', '_', '-' or one of `extra`.
static bool
s_name_valid (const char *name, size_t max, const char *extra)
{
    size_t n = name ? strlen (name) : 0;
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        ||  c == '.' || c == '_' || c == '-' || (c && strchr (extra, c))))
            return false;
    }
    return true;
}

int
proto_session_valid (const char *name)
{
    return s_name_valid (name, PROTO_MAX_SESSION, ":");
}

int
proto_label_valid (const char *label)
{
    return s_name_valid (label, PROTO_MAX_LABEL, "");
}

static char *
s_dump (json_t *reply)
{
    char *text = json_dumps (reply, JSON_COMPACT);
    json_decref (reply);
    return text;
}

char *
proto_reply_ok (json_t *rid, json_t *body)
{
    json_t *reply = json_object ();
    if (rid)
        json_object_set (reply, "rid", rid);
    json_object_set_new (reply, "ok", json_true ());
    if (body) {
        json_object_update (reply, body);
        json_decref (body);
    }
    return s_dump (reply);
}

char *
proto_reply_error (json_t *rid, const char *code, const char *message)
{
    json_t *reply = json_object ();
    if (rid)
        json_object_set (reply, "rid", rid);
    json_object_set_new (reply, "ok", json_false ());
    json_object_set_new (reply, "error", json_pack ("{s:s, s:s}", "code", code, "message", message));
    return s_dump (reply);
}

//  -------------------------------------------------------------------------
//  Self-test

static const char *
s_code_of (const char *text)
{
    static proto_error_t err;
    json_t *msg, *rid;
    if (proto_parse_client (text, strlen (text), &msg, &rid, &err) == 0) {
        json_decref (msg);
        json_decref (rid);
        return "ok";
    }
    json_decref (rid);
    return err.code;
}

//  0 if msg (consumed), serialized, passes the reader (the broker's for a worker's message,
//  the worker's for the broker's); the reader's code otherwise.
static const char *
s_round_trip (json_t *msg, bool to_worker)
{
    char *text = json_dumps (msg, JSON_COMPACT);
    json_decref (msg);
    json_t *back = NULL;
    proto_error_t err = { "ok", "" };
    int rc = to_worker ? proto_parse_broker (text, strlen (text), &back, &err)
                       : proto_parse_worker (text, strlen (text), &back, &err);
    json_decref (back);
    free (text);
    return rc == 0 ? "ok" : err.code;
}

//  A ready's labels and memory pass the broker's reader; bad labels are refused by name.
static void
s_test_capacity (void)
{
    json_t *labels = json_pack ("[s, s]", "gpu", "big-mem.2_x");
    json_t *ready = proto_ready ("w1", 2, "none", json_array (), json_array ());
    CHECK (proto_ready_capacity (ready, labels, 65536) == 0);
    CHECK (strcmp (s_round_trip (json_incref (ready), false), "ok") == 0);
    const char *bad[] = { "", "a b", "a,b", "\u00e9", NULL };
    for (size_t i = 0; bad[i]; i++) {
        char text[128];
        snprintf (text, sizeof text, "{\"op\":\"ready\",\"name\":\"w\",\"slots\":1,"
                  "\"labels\":[\"ok\",\"%s\"]}", bad[i]);
        json_t *msg = NULL;
        proto_error_t err;
        CHECK (proto_parse_worker (text, strlen (text), &msg, &err) == -1
               && strcmp (err.code, PROTO_E_BAD_VALUE) == 0 && strstr (err.message, "labels"));
    }
    json_array_clear (labels);
    for (int i = 0; i < PROTO_MAX_LABELS + 1; i++)
        json_array_append_new (labels, json_sprintf ("l%d", i));
    json_object_set (ready, "labels", labels);
    CHECK (strcmp (s_round_trip (json_incref (ready), false), PROTO_E_BAD_VALUE) == 0);
    json_object_set_new (ready, "labels", json_pack ("[i]", 7));
    CHECK (strcmp (s_round_trip (json_incref (ready), false), PROTO_E_BAD_VALUE) == 0);
    json_object_set_new (ready, "labels", json_string ("gpu"));
    CHECK (strcmp (s_round_trip (json_incref (ready), false), PROTO_E_BAD_TYPE) == 0);
    json_object_del (ready, "labels");
    json_object_set_new (ready, "memory_mb", json_integer (-1));
    CHECK (strcmp (s_round_trip (ready, false), PROTO_E_BAD_VALUE) == 0);
    json_decref (labels);
    CHECK (proto_label_valid ("gpu") && !proto_label_valid ("g:pu") && !proto_label_valid (NULL));
}

//  Each end sends what the other end's reader takes, and the worker's reader refuses what
//  the broker never sends.
static void
s_test_link (void)
{
    json_t *limits = json_pack ("{s:i, s:i}", "timeout_ms", 1000, "output_bytes", 4096);
    CHECK (strcmp (s_round_trip (proto_run (7, "alice", "s1", "python", "1", limits), true), "ok") == 0);
    json_decref (limits);
    CHECK (strcmp (s_round_trip (proto_close ("alice", "s1", "shell"), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_heartbeat (), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_announce (), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_heartbeat (), false), "ok") == 0);
    json_t *held = json_pack ("[o]", proto_held ("alice", "s1", "python", 0));
    json_t *running = json_pack ("[o]", proto_held ("alice", "s2", "shell", 9));
    CHECK (strcmp (s_round_trip (proto_ready ("w1", 4, "namespaces", held, running), false), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_session_closed ("alice", "s1", "python", "exited", 1, 0),
                                 false), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_session_closed ("alice", "s1", "python", "exited", -1, 9),
                                 false), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_drain (), true), "ok") == 0);
    CHECK (strcmp (s_round_trip (proto_drained (), true), "ok") == 0);
    s_test_capacity ();
    CHECK (strcmp (s_round_trip (json_pack ("{s:s}", "op", "exec"), true), PROTO_E_UNKNOWN_OP) == 0);
    CHECK (strcmp (s_round_trip (json_pack ("{s:s, s:i}", "op", "heartbeat", "x", 1), true),
                   PROTO_E_UNKNOWN_KEY) == 0);
    CHECK (strcmp (s_round_trip (json_pack ("{s:s, s:i, s:s, s:s, s:s, s:{}}", "op", "run", "id", 1,
                                            "owner", "a", "session", "s", "lang", "python", "limits"),
                                 true), PROTO_E_MISSING) == 0);
}

int
proto_test (void)
{
    s_test_link ();
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"submit\",\"rid\":\"a\",\"lang\":\"python\",\"code\":\"1\","
                              "\"session\":\"s1\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("not json"), PROTO_E_BAD_JSON) == 0);
    CHECK (strcmp (s_code_of ("[1,2]"), PROTO_E_NOT_OBJECT) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"fly\"}"), PROTO_E_UNKNOWN_OP) == 0);
    CHECK (strcmp (s_code_of ("{\"rid\":1}"), PROTO_E_MISSING) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\",\"evil\":1}"), PROTO_E_UNKNOWN_KEY) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"status\",\"id\":\"7\"}"), PROTO_E_BAD_TYPE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"status\",\"id\":-7}"), PROTO_E_BAD_VALUE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"status\"}"), PROTO_E_MISSING) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"submit\",\"lang\":\"perl\",\"code\":\"1\",\"session\":\"s\"}"),
                   PROTO_E_BAD_VALUE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"submit\",\"lang\":\"shell\",\"code\":\"1\",\"session\":\"a b\"}"),
                   PROTO_E_BAD_VALUE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\",\"op\":\"ping\"}"), PROTO_E_BAD_JSON) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\",\"rid\":\"\xff\"}"), PROTO_E_BAD_UTF8) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"ping\",\"rid\":\"\\u0000\"}"), PROTO_E_BAD_JSON) == 0);
    CHECK (strcmp (s_code_of (""), PROTO_E_BAD_JSON) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"revoke\",\"name\":\"bob\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"revoke\",\"name\":5}"), PROTO_E_BAD_TYPE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"revoke\"}"), PROTO_E_MISSING) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"prune\",\"before\":\"2026-11-28T00:00:00.000Z\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"prune\",\"before\":1}"), PROTO_E_BAD_TYPE) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"prune\",\"before\":\"x\",\"actor\":\"me\"}"), PROTO_E_UNKNOWN_KEY) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"workers\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"workers\",\"name\":\"w\"}"), PROTO_E_UNKNOWN_KEY) == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"drain\",\"name\":\"w1\"}"), "ok") == 0);
    CHECK (strcmp (s_code_of ("{\"op\":\"drain\"}"), PROTO_E_MISSING) == 0);

    //  The rid survives a failed parse so the error reply can echo it.
    proto_error_t err;
    json_t *msg, *rid;
    const char *bad = "{\"op\":\"status\",\"rid\":\"r9\"}";
    CHECK (proto_parse_client (bad, strlen (bad), &msg, &rid, &err) == -1);
    CHECK (rid && strcmp (json_string_value (rid), "r9") == 0);
    char *reply = proto_reply_error (rid, err.code, err.message);
    CHECK (strstr (reply, "\"rid\":\"r9\"") && strstr (reply, "\"missing_field\""));
    free (reply);
    json_decref (rid);

    //  Frames above the limit are refused before they are parsed.
    size_t big = PROTO_MAX_FRAME + 1;
    char *huge = calloc (1, big);
    memset (huge, ' ', big);
    CHECK (proto_parse_client (huge, big, &msg, &rid, &err) == -1
           && strcmp (err.code, PROTO_E_TOO_LARGE) == 0);
    free (huge);

    //  Every prefix of a valid message is refused cleanly: the parser never asserts.
    const char *good = "{\"op\":\"submit\",\"lang\":\"python\",\"code\":\"x\",\"session\":\"s\"}";
    int refused = 0;
    for (size_t n = 0; n < strlen (good); n++)
        if (proto_parse_client (good, n, &msg, &rid, &err) == -1) {
            refused++;
            json_decref (rid);
        }
    CHECK (refused == (int) strlen (good));

    const char *w = "{\"op\":\"result\",\"id\":3,\"session\":\"s\",\"lang\":\"python\",\"outcome\":\"ok\"}";
    CHECK (proto_parse_worker (w, strlen (w), &msg, &err) == 0);
    json_decref (msg);
    //  A worker result may carry NUL (a snippet printed it); a client frame may not.
    const char *nul = "{\"op\":\"result\",\"id\":3,\"session\":\"s\",\"lang\":\"shell\","
                      "\"outcome\":\"ok\",\"stdout\":\"a\\u0000b\"}";
    CHECK (proto_parse_worker (nul, strlen (nul), &msg, &err) == 0
           && json_string_length (json_object_get (msg, "stdout")) == 3);
    json_decref (msg);
    const char *closed = "{\"op\":\"session_closed\",\"session\":\"s\",\"lang\":\"shell\"}";
    CHECK (proto_parse_worker (closed, strlen (closed), &msg, &err) == -1
           && strcmp (err.code, PROTO_E_MISSING) == 0);
    //  An unknown key cut inside a character still gives a valid UTF-8 message.
    char split[128];
    snprintf (split, sizeof split, "{\"op\":\"ping\",\"%s\":1}",
              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9");
    CHECK (proto_parse_client (split, strlen (split), &msg, &rid, &err) == -1
           && strcmp (err.code, PROTO_E_UNKNOWN_KEY) == 0 && utf8_valid (err.message, strlen (err.message)));
    json_decref (rid);
    char *reply2 = proto_reply_error (NULL, err.code, err.message);
    CHECK (reply2 && strstr (reply2, "\"unknown_key\""));
    free (reply2);
    CHECK (proto_session_valid ("agent-1.work:main_2"));
    CHECK (!proto_session_valid (""));
    CHECK (!proto_session_valid ("../etc"  "/x"));
    return 0;
}
