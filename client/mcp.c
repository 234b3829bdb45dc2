/*  client/mcp.c: `replgate mcp`, a Model Context Protocol server on stdio for agents.
    One process, one broker connection (the key's principal makes every call), one loop:
    poll over stdin and the broker connection. Each tools/call becomes broker messages sent
    without waiting (conn_send) and matched to their answers by rid, so any number of calls
    are in flight at once and a parked one never holds up the rest. A run is a submit that
    the broker holds at most FIRST_SLICE_MS, then `await` long polls of SLICE_MS (held by
    the broker without blocking anyone else): each slice that ends with the request parked,
    queued or running sends a progress notification when the call asked for them, so an
    approval shows within one slice, and bounds how long a dead broker goes unnoticed.
    Stdout carries JSON-RPC only; logs go to stderr. At the end of stdin it exits 0 at once,
    cancelling nothing: requests in flight go on in the broker, and `replgate wait ID` or
    the `result` tool of a later session picks them up. */
#include "client/cli.h"
#include "client/jsonrpc.h"
#include "client/mcp.h"
#include "common/states.h"
#include "common/util.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST_SLICE_MS 1000     //  a warm snippet is answered within it, in one round trip
#define SLICE_MS 5000           //  then one await (and one progress notification) per slice
#define GRACE_MS 5000           //  an answer later than its wait plus this: no broker
#define MAX_CALLS 256           //  tool calls in flight at once
#define PROTOCOL_LATEST "2025-06-18"
#define PROTOCOL_OLDER "2025-03-26"
#define SERVER_VERSION "0.1.0"  //  the release, as the broker's `ping` gives it

typedef struct _call_t call_t;
struct _call_t {
    call_t *next;
    json_t *rpc_id;             //  the tools/call's id; NULL once the client cancelled it
    json_t *token;              //  its _meta.progressToken, or NULL: no progress wanted
    const char *tool;           //  the tool's static name
    tool_kind_t kind;
    char rid[40];               //  the broker message in flight, "" when none
    int64_t answer_by;          //  monotonic ms: no answer by then means no broker
    int64_t id;                 //  the broker's request id, once an answer gave it
    bool running;               //  the last answer said `running`
    int64_t wait_until;         //  monotonic ms: a run stops waiting while parked, a result always
    double progress;            //  the last progress value sent
    const char *abort_op;       //  after a cancellation: the "cancel" or "interrupt" in flight
    int aborts;
};

typedef struct {
    conn_t *conn;
    call_t *calls;
    size_t ncalls;
    int64_t approval_wait_ms;
    const char *session;        //  of runs that name none
    jsonrpc_lines_t lines;
    bool gone;                  //  stdout was closed: nobody reads the answers
} server_t;

static void
s_out (server_t *self, json_t *msg)
{
    if (self->gone)
        json_decref (msg);
    else
    if (jsonrpc_write (STDOUT_FILENO, msg) != 0) {
        log_error ("mcp: cannot write to stdout: %s", strerror (errno));
        self->gone = true;
    }
}

static void
s_call_destroy (server_t *self, call_t *call)
{
    for (call_t **p = &self->calls; *p; p = &(*p)->next)
        if (*p == call) {
            *p = call->next;
            self->ncalls--;
            break;
        }
    json_decref (call->rpc_id);
    json_decref (call->token);
    free (call);
}

//  Answers the call with result (consumed), unless the client cancelled it, and ends it.
static void
s_finish (server_t *self, call_t *call, json_t *result)
{
    if (call->rpc_id)
        s_out (self, jsonrpc_result (call->rpc_id, result));
    else
        json_decref (result);
    s_call_destroy (self, call);
}

//  Sends op (consumed) for the call; the broker may hold it wait_ms before answering.
static void
s_send (server_t *self, call_t *call, json_t *op, int64_t wait_ms)
{
    int rc = op ? conn_send (self->conn, op, call->rid) : -1;
    json_decref (op);
    call->answer_by = clock_mono_ms () + wait_ms + GRACE_MS;
    if (rc != 0) {
        call->rid[0] = 0;
        s_finish (self, call, mcp_tools_failure ("cannot send to the broker"));
    }
}

//  The client cancelled a run whose request is known: a running snippet is interrupted, a
//  queued or parked one cancelled (the other op follows if the state moved meanwhile).
static void
s_abort (server_t *self, call_t *call)
{
    call->abort_op = call->running ? "interrupt" : "cancel";
    s_send (self, call, json_pack ("{s:s, s:I}", "op", call->abort_op, "id", (json_int_t) call->id), 0);
}

static void
s_abort_answer (server_t *self, call_t *call, json_t *reply)
{
    json_t *error = json_object_get (reply, "error");
    const char *code = json_string_value (json_object_get (error, "code"));
    if (code && strcmp (code, "bad_state") == 0 && ++call->aborts < 3) {
        call->running = strcmp (call->abort_op, "cancel") == 0;
        s_abort (self, call);
        return;
    }
    if (code)
        log_warn ("mcp: request %lld: %s after the client cancelled: %s: %s", (long long) call->id,
                  call->abort_op, code, json_string_value (json_object_get (error, "message")));
    s_call_destroy (self, call);
}

static void
s_progress (server_t *self, call_t *call, json_t *row)
{
    if (!call->token || !call->rpc_id)
        return;
    char text[200];
    mcp_tools_progress (row, clock_wall_ms (), text, sizeof text);
    call->progress += 1;
    s_out (self, jsonrpc_notification ("notifications/progress", json_pack (
        "{s:O, s:f, s:s}", "progressToken", call->token, "progress", call->progress, "message", text)));
}

//  A request row for a run or result call: answer it, or wait one more slice.
static void
s_row (server_t *self, call_t *call, json_t *row)
{
    const char *state = json_string_value (json_object_get (row, "state"));
    call->id = json_integer_value (json_object_get (row, "id"));
    call->running = state && strcmp (state, "running") == 0;
    bool bounded = call->kind == TOOL_RESULT || (state && strcmp (state, "pending_approval") == 0);
    int64_t now = clock_mono_ms ();
    if (!call->rpc_id && states_is_terminal (state))
        s_call_destroy (self, call);    //  cancelled, but it ended before it could be stopped
    else
    if (!call->rpc_id)
        s_abort (self, call);           //  cancelled before the submit was answered
    else
    if (!state || states_is_terminal (state) || (bounded && now >= call->wait_until))
        s_finish (self, call, mcp_tools_result (call->tool, row));
    else {
        s_progress (self, call, row);
        int64_t slice = bounded && call->wait_until - now < SLICE_MS ? call->wait_until - now : SLICE_MS;
        s_send (self, call, json_pack ("{s:s, s:I, s:I}", "op", "await", "id", (json_int_t) call->id,
                                       "timeout_ms", (json_int_t) slice), slice);
    }
}

//  A refusal: arguments the broker would not take are the caller's to fix (a JSON-RPC error,
//  as for those the input schema catches); anything else is the tool's failure.
static void
s_refused (server_t *self, call_t *call, json_t *reply)
{
    json_t *error = json_object_get (reply, "error");
    const char *code = json_string_value (json_object_get (error, "code"));
    const char *message = json_string_value (json_object_get (error, "message"));
    char text[600];
    snprintf (text, sizeof text, "%s: %s", code ? code : "error", message ? message : "(no message)");
    static const char *arguments[] = { "bad_value", "bad_type", "missing_field", "unknown_key", "too_large", NULL };
    bool bad_arguments = false;
    for (int i = 0; code && arguments[i]; i++)
        bad_arguments |= strcmp (code, arguments[i]) == 0 && call->id == 0;
    if (!call->rpc_id)
        s_call_destroy (self, call);
    else
    if (bad_arguments) {
        s_out (self, jsonrpc_error (call->rpc_id, JSONRPC_INVALID_PARAMS, text));
        s_call_destroy (self, call);
    }
    else {
        char failure[700];
        snprintf (failure, sizeof failure, "%s: %s",
                  code && strcmp (code, "unknown_op") == 0 ? "the broker does not offer this tool yet"
                                                           : "refused by the broker", text);
        s_finish (self, call, mcp_tools_failure (failure));
    }
}

static void
s_answer (server_t *self, json_t *reply)
{
    const char *rid = json_string_value (json_object_get (reply, "rid"));
    if (!rid || json_object_get (reply, "op"))
        return;                     //  a pushed frame (event, output): not asked for here
    call_t *call = self->calls;
    while (call && strcmp (call->rid, rid) != 0)
        call = call->next;
    if (!call)
        return;                     //  a late answer to a call that ended
    call->rid[0] = 0;
    json_object_del (reply, "rid");
    if (call->abort_op)
        s_abort_answer (self, call, reply);
    else
    if (!json_is_true (json_object_get (reply, "ok")))
        s_refused (self, call, reply);
    else {
        json_object_del (reply, "ok");
        if (call->kind == TOOL_OP)
            s_finish (self, call, mcp_tools_result (call->tool, reply));
        else
            s_row (self, call, reply);
    }
}

//  Calls whose broker message went unanswered past its time: the broker is down or
//  refuses our key (it never answers then).
static void
s_expire (server_t *self)
{
    int64_t now = clock_mono_ms ();
    for (call_t *call = self->calls, *next; call; call = next) {
        next = call->next;
        if (!call->rid[0] || now < call->answer_by)
            continue;
        if (call->abort_op || !call->rpc_id)
            s_call_destroy (self, call);
        else {
            char text[300];
            snprintf (text, sizeof text, "no answer from the broker (is it running? is the key trusted?)");
            if (call->id)
                snprintf (text + strlen (text), sizeof text - strlen (text), "; request %lld was "
                          "recorded: the result tool can fetch it later", (long long) call->id);
            s_finish (self, call, mcp_tools_failure (text));
        }
    }
}

static void
s_tools_call (server_t *self, json_t *id, json_t *params)
{
    char why[300];
    json_t *op = NULL;
    const char *tool;
    tool_kind_t kind;
    int64_t wait_ms;
    json_t *token = json_object_get (json_object_get (params, "_meta"), "progressToken");
    if (self->ncalls >= MAX_CALLS) {
        snprintf (why, sizeof why, "%d tool calls are in flight; wait for one to finish", MAX_CALLS);
        s_out (self, jsonrpc_error (id, JSONRPC_INTERNAL_ERROR, why));
        return;
    }
    if (mcp_tools_plan (json_string_value (json_object_get (params, "name")), json_object_get (params, "arguments"),
                        self->session, &op, &tool, &kind, &wait_ms, why, sizeof why) != 0) {
        s_out (self, jsonrpc_error (id, JSONRPC_INVALID_PARAMS, why));
        return;
    }
    call_t *call = (call_t *) calloc (1, sizeof (call_t));
    if (!call) {
        json_decref (op);
        s_out (self, jsonrpc_error (id, JSONRPC_INTERNAL_ERROR, "out of memory"));
        return;
    }
    call->rpc_id = json_incref (id);
    call->token = json_is_string (token) || json_is_integer (token) ? json_incref (token) : NULL;
    call->tool = tool;
    call->kind = kind;
    call->next = self->calls;
    self->calls = call;
    self->ncalls++;
    int64_t now = clock_mono_ms (), first = 0;
    if (kind == TOOL_RUN) {
        call->wait_until = now + self->approval_wait_ms;
        json_object_set_new (op, "wait_ms", json_integer (first = FIRST_SLICE_MS));
    }
    if (kind == TOOL_RESULT) {
        call->wait_until = now + wait_ms;
        json_object_set_new (op, "timeout_ms", json_integer (first = wait_ms < SLICE_MS ? wait_ms : SLICE_MS));
    }
    s_send (self, call, op, first);
}

static void
s_cancelled (server_t *self, json_t *params)
{
    json_t *id = json_object_get (params, "requestId");
    call_t *call = self->calls;
    while (call && !(call->rpc_id && id && json_equal (call->rpc_id, id)))
        call = call->next;
    if (!call)
        return;                     //  unknown, or answered already: nothing to stop
    json_decref (call->rpc_id);
    call->rpc_id = NULL;            //  no answer goes to a cancelled request
    if (call->kind != TOOL_RUN)
        s_call_destroy (self, call);    //  only the waiting stops
    else
    if (call->id && !call->abort_op)
        s_abort (self, call);       //  else the submit's answer starts it
}

static void
s_initialize (server_t *self, json_t *id, json_t *params)
{
    const char *asked = json_string_value (json_object_get (params, "protocolVersion"));
    if (!asked) {
        s_out (self, jsonrpc_error (id, JSONRPC_INVALID_PARAMS, "protocolVersion is missing"));
        return;
    }
    //  A version we do not speak is answered with ours; the client decides whether to go on.
    const char *version = strcmp (asked, PROTOCOL_OLDER) == 0 ? PROTOCOL_OLDER : PROTOCOL_LATEST;
    s_out (self, jsonrpc_result (id, json_pack (
        "{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", version,
        "capabilities", "tools", "listChanged", 0,
        "serverInfo", "name", "replgate", "title", "replgate", "version", SERVER_VERSION,
        "instructions", "Runs Python and shell snippets in persistent sandboxed sessions behind "
        "replgate's policy gate, as this server's agent key; every call is recorded in an audit "
        "log and some wait for a human's approval.")));
}

static void
s_line (void *arg, const char *line, size_t len)
{
    server_t *self = (server_t *) arg;
    if (!line) {
        char why[80];
        snprintf (why, sizeof why, "message too large: over %d bytes", JSONRPC_MAX_LINE);
        s_out (self, jsonrpc_error (NULL, JSONRPC_INVALID_REQUEST, why));
        return;
    }
    jsonrpc_msg_t msg;
    jsonrpc_parse (line, len, &msg);
    const char *method = msg.method;
    if (msg.kind == JSONRPC_BAD)
        s_out (self, jsonrpc_error (msg.id, msg.code, msg.message));
    else
    if (msg.kind == JSONRPC_NOTIFICATION && strcmp (method, "notifications/cancelled") == 0)
        s_cancelled (self, msg.params);
    else
    if (msg.kind != JSONRPC_REQUEST)
        ;                           //  other notifications, responses, blank lines
    else
    if (strcmp (method, "initialize") == 0)
        s_initialize (self, msg.id, msg.params);
    else
    if (strcmp (method, "ping") == 0)
        s_out (self, jsonrpc_result (msg.id, json_object ()));
    else
    if (strcmp (method, "tools/list") == 0)
        s_out (self, jsonrpc_result (msg.id, mcp_tools_list ()));
    else
    if (strcmp (method, "tools/call") == 0)
        s_tools_call (self, msg.id, msg.params);
    else {
        char why[200];
        snprintf (why, sizeof why, "method not found: %.120s", method);
        s_out (self, jsonrpc_error (msg.id, JSONRPC_METHOD_NOT_FOUND, why));
    }
    jsonrpc_msg_free (&msg);
}

//  "600", "600s", "10m", "1h" as ms in *ms: 0 to a day. -1 for anything else.
static int
s_duration (const char *text, int64_t *ms)
{
    char *end;
    errno = 0;
    double value = text ? strtod (text, &end) : -1;
    if (!text || end == text || errno || value < 0)
        return -1;
    double unit = strcmp (end, "") == 0 || strcmp (end, "s") == 0 ? 1000 : strcmp (end, "m") == 0 ? 60000
                : strcmp (end, "h") == 0 ? 3600000 : -1;
    if (unit < 0 || value * unit > 86400000.0)
        return -1;
    *ms = (int64_t) (value * unit);
    return 0;
}

//  Reads what stdin has; false at its end (or when it fails), when the server stops.
static bool
s_read (server_t *self)
{
    char chunk[64 * 1024];
    ssize_t n = read (STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n < 0)
        log_error ("mcp: cannot read stdin: %s", strerror (errno));
    if (n <= 0) {
        jsonrpc_lines_end (&self->lines, s_line, self);
        return false;
    }
    if (jsonrpc_lines_feed (&self->lines, chunk, (size_t) n, s_line, self) != 0) {
        log_error ("mcp: out of memory reading stdin");
        return false;
    }
    return true;
}

static long
s_poll_timeout (server_t *self)
{
    int64_t first = INT64_MAX, now = clock_mono_ms ();
    for (call_t *call = self->calls; call; call = call->next)
        if (call->rid[0] && call->answer_by < first)
            first = call->answer_by;
    return first == INT64_MAX ? -1 : first <= now ? 0 : (long) (first - now);
}

int
cmd_mcp (cli_t *cli)
{
    server_t self = { .session = cli->session ? cli->session : "default", .approval_wait_ms = 600000 };
    if (cli->approval_wait && s_duration (cli->approval_wait, &self.approval_wait_ms) != 0) {
        fprintf (stderr, "replgate mcp: --approval-wait takes seconds, or N followed by s, m or h, "
                 "up to a day (got '%s')\n", cli->approval_wait);
        return EXIT_USAGE;
    }
    if (cli->argc != 0) {
        fprintf (stderr, "replgate mcp: takes no arguments; an MCP client starts it and speaks on its stdin\n");
        return EXIT_USAGE;
    }
    int rc = 0;
    self.conn = cli_connect (cli, "agent", &rc);
    if (!self.conn)
        return rc;
    signal (SIGPIPE, SIG_IGN);      //  a client gone shows as EPIPE on the next write
    bool open = true;
    while (open && !self.gone) {
        struct pollfd items[2] = { { .fd = STDIN_FILENO, .events = POLLIN } };
        int timeout = (int) s_poll_timeout (&self), link = conn_poll_item (self.conn, &items[1]);
        if (link >= 0 && (timeout < 0 || link < timeout))
            timeout = link;
        if (poll (items, 2, timeout) < 0 && errno != EINTR) {
            log_error ("mcp: poll: %s", strerror (errno));
            rc = 1;
            break;
        }
        //  Each time round, not only when the socket says so: the connection also moves on
        //  its own timers (a reconnect) and may hold a message read with an earlier one.
        conn_handle (self.conn, items[1].revents);
        json_t *reply;
        while (!self.gone && (reply = conn_take (self.conn))) {
            s_answer (&self, reply);
            json_decref (reply);
        }
        if (items[0].revents & (POLLIN | POLLERR | POLLHUP))
            open = s_read (&self);
        s_expire (&self);
    }
    while (self.calls)
        s_call_destroy (&self, self.calls);
    jsonrpc_lines_free (&self.lines);
    conn_destroy (&self.conn);
    return rc || self.gone ? 1 : 0;
}
