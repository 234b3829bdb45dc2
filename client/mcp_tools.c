/*  client/mcp_tools.c: the tools `replgate mcp` offers: each one's declaration (title,
    description, input and output JSON Schema), the check of a call's arguments against its
    input schema, the broker message a call becomes and the tool result an answer becomes.
    The input schema is the one statement of what a tool takes: tools/list sends it and
    client/jsonschema.c enforces it. */
#include "client/jsonschema.h"
#include "client/mcp.h"
#include "common/buf.h"
#include "common/states.h"
#include "common/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Schemas are JSON written with ' for " so they read as JSON here (s_json swaps them back):
//  no description may use an apostrophe.
#define SESSION_ARG "'session': {'type': 'string', 'minLength': 1, 'maxLength': 128, " \
    "'pattern': '^[A-Za-z0-9._:-]+$', 'description': 'The REPL session to run in (default: the " \
    "server default, usually default). Each session is its own interpreter; state survives " \
    "between calls of one session and is never shared between sessions.'}"
#define RUN_INPUT "{'type': 'object', 'properties': {" \
    "'code': {'type': 'string', 'description': 'The snippet to run.'}, " SESSION_ARG ", " \
    "'reason': {'type': 'string', 'maxLength': 4096, 'description': 'Why you run it: shown to " \
    "the human asked to approve it and kept in the audit record.'}, " \
    "'timeout_s': {'type': 'number', 'exclusiveMinimum': 0, 'description': 'Wall-clock limit " \
    "of the run in seconds (default and maximum: the policy and the broker say).'}}, " \
    "'required': ['code'], 'additionalProperties': false}"
#define ID_INPUT(what) "{'type': 'object', 'properties': {'id': {'type': 'integer', 'minimum': 1, " \
    "'description': '" what "'}}, 'required': ['id'], 'additionalProperties': false}"
#define ROW_OUTPUT "{'type': 'object', 'description': 'The request as the broker records it: " \
    "state, decision, outputs, value, error, timings, approvals.', 'properties': {" \
    "'id': {'type': 'integer'}, 'state': {'type': 'string'}, 'principal': {'type': 'string'}, " \
    "'session': {'type': 'string'}, 'lang': {'type': 'string'}}, " \
    "'required': ['id', 'state', 'principal', 'session', 'lang']}"
#define RUN_DESCRIPTION(lang, what) "Runs " lang " code in a persistent, sandboxed " what \
    " session behind a policy gate, and returns its result. " \
    "Some code needs a human to approve it first: the call then waits (with progress " \
    "notifications) for a bounded time; if still waiting, the result says so and gives the " \
    "request id to pass to the result tool later."

typedef struct {
    const char *name, *title;
    tool_kind_t kind;
    const char *op;             //  the broker op of its first message
    const char *description, *input, *output, *annotations;
} tool_t;

static const tool_t s_tools[] = {
    { "python", "Run Python", TOOL_RUN, "submit",
      RUN_DESCRIPTION ("Python", "python3") " The value of a trailing expression is returned, like a REPL.",
      RUN_INPUT, ROW_OUTPUT, "{'destructiveHint': true, 'openWorldHint': true}" },
    { "shell", "Run shell", TOOL_RUN, "submit",
      RUN_DESCRIPTION ("bash", "bash") " The working directory, variables and functions persist.",
      RUN_INPUT, ROW_OUTPUT, "{'destructiveHint': true, 'openWorldHint': true}" },
    { "result", "Request result", TOOL_RESULT, "await",
      "Returns a request submitted earlier (python or shell) by id, waiting up to wait_s "
      "seconds for it to finish or be decided.",
      "{'type': 'object', 'properties': {'id': {'type': 'integer', 'minimum': 1, 'description': "
      "'The request id.'}, 'wait_s': {'type': 'number', 'minimum': 0, 'maximum': 3600, 'default': 0, "
      "'description': 'How long to wait for it to finish (default 0: as it is now).'}}, "
      "'required': ['id'], 'additionalProperties': false}",
      ROW_OUTPUT, "{'readOnlyHint': true}" },
    { "cancel", "Cancel request", TOOL_OP, "cancel",
      "Withdraws a request of yours that is still queued or waiting for approval.",
      ID_INPUT ("The request id."), ROW_OUTPUT, "{'destructiveHint': false, 'idempotentHint': true}" },
    { "interrupt", "Interrupt request", TOOL_OP, "interrupt",
      "Interrupts a running snippet of yours (SIGINT, like Ctrl-C): it ends as interrupted "
      "and its session keeps its state.",
      ID_INPUT ("The request id."), ROW_OUTPUT, "{'destructiveHint': false}" },
    { "sessions", "List sessions", TOOL_OP, "sessions",
      "Lists your live REPL sessions: language, idle or running, last use, runs, memory.",
      "{'type': 'object', 'properties': {}, 'additionalProperties': false}",
      "{'type': 'object', 'properties': {'sessions': {'type': 'array', 'items': {'type': 'object'}}}, "
      "'required': ['sessions']}", "{'readOnlyHint': true}" },
    { "reset_session", "Reset session", TOOL_OP, "reset",
      "Gives one of your sessions a fresh interpreter: its variables, imports, functions and "
      "working directory are gone.",
      "{'type': 'object', 'properties': {" SESSION_ARG ", 'lang': {'type': 'string', 'enum': "
      "['python', 'shell'], 'default': 'python', 'description': 'The interpreter of the session.'}}, "
      "'required': ['session'], 'additionalProperties': false}",
      "{'type': 'object', 'properties': {'session': {'type': 'string'}, 'lang': {'type': 'string'}, "
      "'reset': {'type': 'boolean'}}, 'required': ['session', 'lang', 'reset']}",
      "{'destructiveHint': true, 'idempotentHint': true}" },
};
#define NTOOLS (sizeof s_tools / sizeof s_tools[0])

//  One of the JSON texts above as JSON (caller owns); NULL only if one is malformed, which
//  mcp_test catches.
static json_t *
s_json (const char *quoted)
{
    char *text = strdup (quoted);
    if (!text)
        return NULL;
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_t *value = json_loads (text, 0, NULL);
    free (text);
    return value;
}

static const tool_t *
s_tool (const char *name)
{
    for (size_t i = 0; name && i < NTOOLS; i++)
        if (strcmp (s_tools[i].name, name) == 0)
            return &s_tools[i];
    return NULL;
}

json_t *
mcp_tools_list (void)
{
    json_t *tools = json_array ();
    for (size_t i = 0; i < NTOOLS; i++) {
        const tool_t *t = &s_tools[i];
        json_t *annotations = s_json (t->annotations);
        if (annotations)
            json_object_set_new (annotations, "title", json_string (t->title));
        json_array_append_new (tools, json_pack ("{s:s, s:s, s:s, s:o*, s:o*, s:o*}", "name", t->name,
                                                 "title", t->title, "description", t->description,
                                                 "inputSchema", s_json (t->input),
                                                 "outputSchema", s_json (t->output),
                                                 "annotations", annotations));
    }
    return json_pack ("{s:o}", "tools", tools);
}

//  Checks args against the tool's input schema and returns them (a new object) with the
//  schema's defaults filled in; NULL with why.
static json_t *
s_arguments (const tool_t *t, json_t *args, char *why, size_t size)
{
    json_t *schema = s_json (t->input);
    json_t *out = !args ? json_object () : json_is_object (args) ? json_deep_copy (args) : NULL;
    if (!out || !schema)
        snprintf (why, size, out ? "out of memory" : "arguments must be an object");
    else
    if (jsonschema_check (schema, out, "arguments", why, size) == 0)
        jsonschema_defaults (schema, out);
    else {
        json_decref (out);
        out = NULL;
    }
    if (!schema) {
        json_decref (out);
        out = NULL;
    }
    json_decref (schema);
    return out;
}

int
mcp_tools_plan (const char *name, json_t *args, const char *session, json_t **op,
                const char **tool, tool_kind_t *kind, int64_t *wait_ms, char *why, size_t size)
{
    const tool_t *t = s_tool (name);
    if (!t) {
        snprintf (why, size, "unknown tool %.64s", name ? name : "(no name)");
        return -1;
    }
    char detail[240];
    json_t *in = s_arguments (t, args, detail, sizeof detail);
    if (!in) {
        snprintf (why, size, "invalid arguments for %s: %s", t->name, detail);
        return -1;
    }
    *tool = t->name;
    *kind = t->kind;
    *wait_ms = 0;
    *op = json_pack ("{s:s}", "op", t->op);
    if (t->kind == TOOL_RUN) {
        json_object_set_new (*op, "lang", json_string (strcmp (t->name, "python") == 0 ? "python" : "shell"));
        if (!json_object_get (in, "session"))
            json_object_set_new (in, "session", json_string (session));
        json_t *timeout = json_object_get (in, "timeout_s");
        if (timeout) {
            double ms = json_number_value (timeout) * 1000;
            //  Above the broker's range it is the broker's to refuse, naming its maximum.
            json_object_set_new (*op, "timeout_ms", json_integer (ms < 1 ? 1 : ms > 1e15 ? (json_int_t) 1e15
                                                                  : (json_int_t) (ms + 0.999)));
            json_object_del (in, "timeout_s");
        }
    }
    if (t->kind == TOOL_RESULT) {
        *wait_ms = (int64_t) (json_number_value (json_object_get (in, "wait_s")) * 1000);
        json_object_del (in, "wait_s");
    }
    json_object_update (*op, in);
    json_decref (in);
    return 0;
}

//  A stream of the row as text: decoded when the snippet printed bytes that are not UTF-8
//  (`<key>_base64`), each such byte then shown as U+FFFD.
static json_t *
s_stream (json_t *row, const char *key)
{
    char name[32];
    snprintf (name, sizeof name, "%s_base64", key);
    json_t *b64 = json_object_get (row, name);
    size_t n = 0;
    char *bytes = json_is_string (b64) ? base64_decode (json_string_value (b64), json_string_length (b64), &n) : NULL;
    json_t *text = bytes ? text_display (bytes, n) : json_incref (json_object_get (row, key));
    free (bytes);
    return json_is_string (text) ? text : (json_decref (text), NULL);
}

static void
s_part (buf_t *out, const char *label, json_t *text)
{
    const char *s = json_string_value (text);
    size_t n = json_string_length (text);
    if (!s || n == 0)
        return;
    if (out->len && out->data[out->len - 1] != '\n')
        buf_append (out, "\n", 1);
    if (label)
        buf_appendf (out, "%s:\n", label);
    buf_append (out, s, n);
}

static const char *
s_str (json_t *row, const char *key)
{
    return json_string_value (json_object_get (row, key));
}

//  What the snippet printed and returned, and how it ended if not plainly.
static void
s_done_text (buf_t *out, json_t *row)
{
    json_t *text = s_stream (row, "stdout");
    s_part (out, NULL, text);
    json_decref (text);
    text = s_stream (row, "stderr");
    s_part (out, "stderr", text);
    json_decref (text);
    s_part (out, NULL, json_object_get (row, "value"));
    s_part (out, NULL, json_object_get (row, "traceback"));
    if (!s_str (row, "traceback") && s_str (row, "error_name"))
        buf_appendf (out, "%s%s: %s", out->len ? "\n" : "", s_str (row, "error_name"),
                     s_str (row, "error_value") ? s_str (row, "error_value") : "");
    const char *outcome = s_str (row, "outcome"), *reset = s_str (row, "reset_reason");
    if (json_is_true (json_object_get (row, "stdout_truncated")) || json_is_true (json_object_get (row, "stderr_truncated")))
        buf_appendf (out, "%s[output truncated]", out->len ? "\n" : "");
    if (outcome && strcmp (outcome, "ok") != 0 && strcmp (outcome, "error") != 0)
        buf_appendf (out, "%s[request ended: %s]", out->len ? "\n" : "", outcome);
    if (json_is_true (json_object_get (row, "session_reset")))
        buf_appendf (out, "%s[the session was reset%s%s%s: its earlier state is gone]", out->len ? "\n" : "",
                     reset ? " (" : "", reset ? reset : "", reset ? ")" : "");
    if (out->len == 0)
        buf_appendf (out, "(no output)");
}

//  How a request that did not run ended, or why it is not finished.
static void
s_state_text (buf_t *out, json_t *row, const char *state, long long id)
{
    if (strcmp (state, "denied") == 0) {
        const char *rule = s_str (row, "rule"), *msg = s_str (row, "decision_message");
        const char *by = s_str (row, "denied_by"), *why = s_str (row, "deny_reason");
        buf_appendf (out, "request %lld was denied", id);
        if (by)             //  a human's reason first: it is what the agent must change
            buf_appendf (out, " by %s: %s", by, why ? why : "(no reason)");
        else
            buf_appendf (out, " by policy rule %s: %s", rule ? rule : "?", msg ? msg : "");
    }
    else
    if (states_is_terminal (state))
        buf_appendf (out, "request %lld ended without running: %s", id, state);
    else {
        char now[160];
        mcp_tools_progress (row, clock_wall_ms (), now, sizeof now);
        buf_appendf (out, "%s, still not finished. Call the result tool with {\"id\": %lld} to "
                     "wait for it%s.", now, id, strcmp (state, "running") == 0 ? "" : ", or cancel to withdraw it");
    }
}

static json_t *
s_result (buf_t *text, json_t *structured, bool error)
{
    json_t *result = json_pack ("{s:[{s:s, s:s%}], s:O*}", "content", "type", "text", "text",
                                text->data ? text->data : "", text->len, "structuredContent", structured);
    if (result && error)
        json_object_set_new (result, "isError", json_true ());
    buf_free (text);
    return result ? result : mcp_tools_failure ("(the result could not be built)");
}

static json_t *
s_sessions_result (json_t *reply)
{
    buf_t out = { 0 };
    json_t *sessions = json_object_get (reply, "sessions"), *s;
    size_t i;
    json_array_foreach (sessions, i, s)
        buf_appendf (&out, "%s (%s%s%s): %s, %lld runs, last used %s, %lld KiB\n",
                     s_str (s, "session") ? s_str (s, "session") : "?", s_str (s, "lang") ? s_str (s, "lang") : "?",
                     s_str (s, "principal") ? ", of " : "", s_str (s, "principal") ? s_str (s, "principal") : "",
                     s_str (s, "state") ? s_str (s, "state") : "?",
                     (long long) json_integer_value (json_object_get (s, "execution_count")),
                     s_str (s, "last_used") ? s_str (s, "last_used") : "?",
                     (long long) json_integer_value (json_object_get (s, "memory_kb")));
    if (out.len == 0)
        buf_appendf (&out, "no live sessions");
    else
        out.data[--out.len] = 0;    //  the last line's newline
    return s_result (&out, reply, false);
}

json_t *
mcp_tools_result (const char *tool, json_t *reply)
{
    buf_t out = { 0 };
    if (strcmp (tool, "sessions") == 0)
        return s_sessions_result (reply);
    if (strcmp (tool, "reset_session") == 0) {
        buf_appendf (&out, "session %s (%s) has a fresh interpreter: its earlier state is gone",
                     s_str (reply, "session") ? s_str (reply, "session") : "?",
                     s_str (reply, "lang") ? s_str (reply, "lang") : "?");
        return s_result (&out, reply, false);
    }
    const char *state = s_str (reply, "state");
    long long id = (long long) json_integer_value (json_object_get (reply, "id"));
    if (!state) {
        buf_appendf (&out, "the broker answered without a request state");
        return s_result (&out, NULL, true);
    }
    if (strcmp (tool, "interrupt") == 0 && strcmp (state, "running") == 0) {
        buf_appendf (&out, "request %lld: interrupt sent; it ends as interrupted and its session keeps "
                     "its state. Call the result tool with {\"id\": %lld} for its output.", id, id);
        return s_result (&out, reply, false);
    }
    if (strcmp (state, "done") == 0)
        s_done_text (&out, reply);
    else
        s_state_text (&out, reply, state, id);
    const char *outcome = s_str (reply, "outcome");
    bool failed = states_is_terminal (state) && (strcmp (state, "done") != 0 || !outcome || strcmp (outcome, "ok") != 0);
    //  Cancelling is what the cancel tool is for: a cancelled request is its success.
    if (strcmp (tool, "cancel") == 0 && strcmp (state, "cancelled") == 0)
        failed = false;
    return s_result (&out, reply, failed);
}

json_t *
mcp_tools_failure (const char *text)
{
    return json_pack ("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", text, "isError", 1);
}

void
mcp_tools_progress (json_t *row, int64_t now_ms, char *out, size_t size)
{
    const char *state = s_str (row, "state");
    long long id = (long long) json_integer_value (json_object_get (row, "id"));
    json_t *review = json_object_get (row, "review");
    if (state && strcmp (state, "pending_approval") == 0) {
        int64_t expires = time_parse_iso8601 (s_str (review, "expires_at"));
        long long left = expires < 0 ? -1 : (expires - now_ms) / 1000;
        char when[48] = "";
        if (left >= 120)
            snprintf (when, sizeof when, ", %lld min left", left / 60);
        else
        if (left >= 0)
            snprintf (when, sizeof when, ", %lld s left", left);
        snprintf (out, size, "request %lld waiting for approval: %zu of %lld%s", id,
                  json_array_size (json_object_get (row, "approvals")),
                  (long long) json_integer_value (json_object_get (review, "quorum")), when);
    }
    else
    if (state && strcmp (state, "running") == 0 && s_str (row, "started_at")) {
        int64_t started = time_parse_iso8601 (s_str (row, "started_at"));
        snprintf (out, size, "request %lld running for %lld s", id,
                  (long long) (started < 0 || now_ms < started ? 0 : (now_ms - started) / 1000));
    }
    else
        snprintf (out, size, "request %lld %s", id, state ? state : "in an unknown state");
}
