/*  common/proto.c: validates client and worker frames against one table of message shapes.
    Each message type lists its fields with a type, whether it is required and its bounds;
    anything not in the table is an error, so new fields are a deliberate protocol change. */
#include "common/proto.h"
#include "common/egress_check.h"
#include "common/util.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

//  F_LABELS: an array of at most PROTO_MAX_LABELS labels (proto_label_valid). F_EGRESS and
//  F_EGRESS_TOTALS: a run's egress record (common/egress_check.h), checked entry by entry.
typedef enum { F_STR, F_INT, F_BOOL, F_OBJ, F_RID, F_ANY, F_NUM, F_ARR, F_LABELS, F_EGRESS,
               F_EGRESS_TOTALS } ftype_t;

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
    "ok", "error", "timeout", "oom", "killed", "output_limit", "interrupted", "egress_limit", NULL };
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
        { "egress", F_EGRESS, false, 0, NULL }, { "egress_totals", F_EGRESS_TOTALS, false, 0, NULL },
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
        { "stream", F_BOOL, false, 0, NULL }, { "network", F_OBJ, false, 0, NULL }, END } },
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

//  The egress record goes on the hash-chained log as it is: one bad entry refuses the result.
static int
s_check_egress (const field_t *f, json_t *value, proto_error_t *err)
{
    char why[sizeof err->message];
    const char *code = f->type == F_EGRESS ? egress_check_entries (value, why, sizeof why)
                                           : egress_check_totals (value, why, sizeof why);
    if (!code)
        return 0;
    s_fail (err, code, "%s", why);
    return -1;
}

//  Checks one present field's type and bounds; 0 if it conforms.
static int
s_check_field (const field_t *f, json_t *value, proto_error_t *err)
{
    if (f->type == F_EGRESS || f->type == F_EGRESS_TOTALS)
        return s_check_egress (f, value, err);
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
           const char *code, json_t *limits, json_t *network)
{
    return json_pack ("{s:s, s:I, s:s, s:s, s:s, s:s, s:O, s:O*}", "op", "run", "id", (json_int_t) id,
                      "owner", owner, "session", session, "lang", lang, "code", code,
                      "limits", limits, "network", network);
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
