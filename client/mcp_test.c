/*  client/mcp_test.c: self-test of the pure parts of `replgate mcp`: the line splitter and
    the message reader (client/jsonrpc.c), the tools' schemas, argument checks, broker
    messages, results and progress texts (client/mcp_tools.c). */
#include "client/jsonrpc.h"
#include "client/mcp.h"
#include "common/check.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int lines, overlong;
    char last[64];
} seen_t;

static void
s_seen (void *arg, const char *line, size_t len)
{
    seen_t *seen = (seen_t *) arg;
    if (!line) {
        seen->overlong++;
        return;
    }
    seen->lines++;
    snprintf (seen->last, sizeof seen->last, "%.*s", (int) (len < 63 ? len : 63), line);
}

static void
s_lines_test (void)
{
    jsonrpc_lines_t lines = { 0 };
    seen_t seen = { 0 };
    CHECK (jsonrpc_lines_feed (&lines, "ab\ncd", 5, s_seen, &seen) == 0);
    CHECK (seen.lines == 1 && strcmp (seen.last, "ab") == 0);
    CHECK (jsonrpc_lines_feed (&lines, "e\r\n\n", 4, s_seen, &seen) == 0);   //  a line in two pieces
    CHECK (seen.lines == 3 && strcmp (seen.last, "") == 0);
    char *big = (char *) malloc (JSONRPC_MAX_LINE);
    memset (big, 'x', JSONRPC_MAX_LINE);
    CHECK (jsonrpc_lines_feed (&lines, big, JSONRPC_MAX_LINE, s_seen, &seen) == 0);
    CHECK (seen.overlong == 0);                                   //  at the bound: still a line
    CHECK (jsonrpc_lines_feed (&lines, "x", 1, s_seen, &seen) == 0);
    CHECK (seen.overlong == 1 && lines.partial.len == 0);         //  past it: reported at once
    CHECK (jsonrpc_lines_feed (&lines, big, JSONRPC_MAX_LINE, s_seen, &seen) == 0);
    CHECK (seen.overlong == 1 && seen.lines == 3);                //  and the rest skipped
    CHECK (jsonrpc_lines_feed (&lines, "y\nz", 3, s_seen, &seen) == 0);
    CHECK (seen.lines == 3);
    jsonrpc_lines_end (&lines, s_seen, &seen);                    //  a last line without "\n"
    CHECK (seen.lines == 4 && strcmp (seen.last, "z") == 0);
    free (big);
}

static int
s_parse (const char *line, jsonrpc_kind_t kind, int code)
{
    jsonrpc_msg_t msg;
    jsonrpc_parse (line, strlen (line), &msg);
    int ok = msg.kind == kind && (kind != JSONRPC_BAD || msg.code == code);
    jsonrpc_msg_free (&msg);
    return ok;
}

static void
s_parse_test (void)
{
    CHECK (s_parse ("  \r", JSONRPC_BLANK, 0));
    CHECK (s_parse ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", JSONRPC_REQUEST, 0));
    CHECK (s_parse ("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":{}}", JSONRPC_REQUEST, 0));
    CHECK (s_parse ("{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":[1]}", JSONRPC_NOTIFICATION, 0));
    CHECK (s_parse ("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", JSONRPC_RESPONSE, 0));
    CHECK (s_parse ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":[1]}", JSONRPC_BAD, JSONRPC_INVALID_PARAMS));
    CHECK (s_parse ("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}", JSONRPC_BAD, JSONRPC_INVALID_REQUEST));
    CHECK (s_parse ("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}", JSONRPC_BAD, JSONRPC_INVALID_REQUEST));
    CHECK (s_parse ("{\"id\":1,\"method\":\"x\"}", JSONRPC_BAD, JSONRPC_INVALID_REQUEST));
    CHECK (s_parse ("{\"jsonrpc\":\"2.0\",\"id\":1}", JSONRPC_BAD, JSONRPC_INVALID_REQUEST));
    CHECK (s_parse ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}]", JSONRPC_BAD, JSONRPC_INVALID_REQUEST));
    CHECK (s_parse ("null", JSONRPC_BAD, JSONRPC_INVALID_REQUEST));
    CHECK (s_parse ("{\"a\":", JSONRPC_BAD, JSONRPC_PARSE_ERROR));
    CHECK (s_parse ("\"\xc3\x28\"", JSONRPC_BAD, JSONRPC_PARSE_ERROR));
    jsonrpc_msg_t msg;                                            //  the id is echoed when readable
    const char *old = "{\"jsonrpc\":\"1.0\",\"id\":\"k\",\"method\":\"x\"}";
    jsonrpc_parse (old, strlen (old), &msg);
    CHECK (msg.kind == JSONRPC_BAD && json_is_string (msg.id) && strcmp (json_string_value (msg.id), "k") == 0);
    jsonrpc_msg_free (&msg);
    json_t *error = jsonrpc_error (NULL, -1, "cut \xc3");             //  a message cut mid-character
    CHECK (error && json_is_null (json_object_get (error, "id")));
    CHECK (strcmp (json_string_value (json_object_get (json_object_get (error, "error"), "message")), "cut ") == 0);
    json_decref (error);
}

static int
s_plan (const char *tool, const char *args, const char *want_op, const char *why_has)
{
    json_t *in = args ? json_loads (args, 0, NULL) : NULL, *op = NULL;
    const char *name;
    tool_kind_t kind;
    int64_t wait_ms;
    char why[300] = "";
    int rc = mcp_tools_plan (tool, in, "dflt", &op, &name, &kind, &wait_ms, why, sizeof why);
    json_t *want = want_op ? json_loads (want_op, 0, NULL) : NULL;
    int ok = want ? rc == 0 && json_equal (op, want) : rc == -1 && strstr (why, why_has) != NULL;
    if (!ok)
        fprintf (stderr, "plan %s %s: rc %d, why '%s'\n", tool, args ? args : "-", rc, why);
    json_decref (in);
    json_decref (op);
    json_decref (want);
    return ok;
}

static void
s_tools_test (void)
{
    json_t *list = mcp_tools_list (), *tool;
    size_t i;
    CHECK (json_array_size (json_object_get (list, "tools")) == 7);
    json_array_foreach (json_object_get (list, "tools"), i, tool)     //  every schema is JSON
        CHECK (json_is_object (json_object_get (tool, "inputSchema")) && json_is_object (json_object_get (tool, "outputSchema"))
               && json_is_object (json_object_get (tool, "annotations")));
    json_decref (list);
    CHECK (s_plan ("python", "{\"code\":\"1\"}", "{\"op\":\"submit\",\"lang\":\"python\",\"code\":\"1\",\"session\":\"dflt\"}", NULL));
    CHECK (s_plan ("shell", "{\"code\":\"ls\",\"session\":\"s\",\"reason\":\"r\",\"timeout_s\":1.5}",
                   "{\"op\":\"submit\",\"lang\":\"shell\",\"code\":\"ls\",\"session\":\"s\",\"reason\":\"r\",\"timeout_ms\":1500}", NULL));
    CHECK (s_plan ("python", "{\"code\":\"1\",\"timeout_s\":0.0001}", "{\"op\":\"submit\",\"lang\":\"python\",\"code\":\"1\","
                   "\"session\":\"dflt\",\"timeout_ms\":1}", NULL));
    CHECK (s_plan ("result", "{\"id\":3}", "{\"op\":\"await\",\"id\":3}", NULL));
    CHECK (s_plan ("reset_session", "{\"session\":\"s\"}", "{\"op\":\"reset\",\"session\":\"s\",\"lang\":\"python\"}", NULL));
    CHECK (s_plan ("sessions", NULL, "{\"op\":\"sessions\"}", NULL));
    CHECK (s_plan ("nope", "{}", NULL, "unknown tool nope"));
    CHECK (s_plan (NULL, "{}", NULL, "unknown tool"));
    CHECK (s_plan ("python", "[]", NULL, "arguments must be an object"));
    CHECK (s_plan ("python", "{\"code\":true}", NULL, "code must be a string"));
    CHECK (s_plan ("python", "{\"code\":\"1\",\"timeout_s\":-1}", NULL, "timeout_s must be above 0"));
    CHECK (s_plan ("python", "{\"code\":\"1\",\"session\":\"\"}", NULL, "session must have at least 1 characters"));
    CHECK (s_plan ("result", "{\"id\":1,\"wait_s\":3601}", NULL, "wait_s must be at most 3600"));
    CHECK (s_plan ("result", "{\"id\":1.0}", NULL, "id must be an integer"));
    CHECK (s_plan ("cancel", "{\"id\":1,\"x\":1}", NULL, "unknown argument x"));
    CHECK (s_plan ("sessions", "{\"x\":1}", NULL, "unknown argument x"));
}

static int
s_text_is (json_t *result, const char *text, int error)
{
    json_t *content = json_array_get (json_object_get (result, "content"), 0);
    int ok = strcmp (json_string_value (json_object_get (content, "text")), text) == 0
          && json_is_true (json_object_get (result, "isError")) == (error != 0);
    if (!ok)
        fprintf (stderr, "text '%s'\n", json_string_value (json_object_get (content, "text")));
    json_decref (result);
    return ok;
}

static void
s_results_test (void)
{
    json_t *row = json_pack ("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "id", 4, "state", "done", "outcome", "ok",
                             "stdout", "out", "stderr", "err\n", "value", "42", "stdout_base64", "/w==",
                             "session_reset", 1);
    CHECK (s_text_is (mcp_tools_result ("python", row), "\xef\xbf\xbd\nstderr:\nerr\n42\n"
                      "[the session was reset: its earlier state is gone]", 0));
    json_object_set_new (row, "outcome", json_string ("timeout"));
    json_object_set_new (row, "reset_reason", json_string ("evicted"));
    json_object_del (row, "stdout_base64");
    CHECK (s_text_is (mcp_tools_result ("python", row), "out\nstderr:\nerr\n42\n[request ended: timeout]\n"
                      "[the session was reset (evicted): its earlier state is gone]", 1));
    json_decref (row);
    row = json_pack ("{s:i, s:s, s:s, s:s, s:s, s:s}", "id", 5, "state", "denied", "rule", "r",
                     "decision_message", "m", "denied_by", "alice", "deny_reason", "no");
    CHECK (s_text_is (mcp_tools_result ("python", row), "request 5 was denied by alice: no", 1));
    json_decref (row);
    row = json_pack ("{s:i, s:s}", "id", 6, "state", "cancelled");
    CHECK (s_text_is (mcp_tools_result ("cancel", row), "request 6 ended without running: cancelled", 0));
    CHECK (s_text_is (mcp_tools_result ("python", row), "request 6 ended without running: cancelled", 1));
    json_decref (row);
    row = json_pack ("{s:i, s:s, s:[{}], s:{s:i, s:s}}", "id", 7, "state", "pending_approval", "approvals",
                     "review", "quorum", 2, "expires_at", "2026-01-01T01:00:00.000Z");
    char text[200];
    mcp_tools_progress (row, 1767225600000 + 6 * 60000 + 59000, text, sizeof text);   //  00:06:59
    CHECK (strcmp (text, "request 7 waiting for approval: 1 of 2, 53 min left") == 0);
    mcp_tools_progress (row, 1767225600000 + 59 * 60000, text, sizeof text);
    CHECK (strcmp (text, "request 7 waiting for approval: 1 of 2, 60 s left") == 0);
    json_decref (row);
    row = json_pack ("{s:i, s:s, s:s}", "id", 8, "state", "running", "started_at", "2026-01-01T00:00:00.000Z");
    mcp_tools_progress (row, 1767225600000 + 12500, text, sizeof text);
    CHECK (strcmp (text, "request 8 running for 12 s") == 0);
    json_decref (row);
    json_t *sessions = json_pack ("{s:[]}", "sessions");
    CHECK (s_text_is (mcp_tools_result ("sessions", sessions), "no live sessions", 0));
    json_decref (sessions);
    sessions = json_pack ("{s:[{s:s, s:s, s:s, s:s, s:i, s:s, s:i}]}", "sessions", "session", "s", "lang", "shell",
                          "principal", "bob", "state", "idle", "execution_count", 3, "last_used", "T", "memory_kb", 9);
    CHECK (s_text_is (mcp_tools_result ("sessions", sessions), "s (shell, of bob): idle, 3 runs, last used T, 9 KiB", 0));
    json_decref (sessions);
}

int
mcp_test (void)
{
    s_lines_test ();
    s_parse_test ();
    s_tools_test ();
    s_results_test ();
    return 0;
}
