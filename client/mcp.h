/*  client/mcp.h: the tools of `replgate mcp` (client/mcp_tools.c), which the server loop
    (client/mcp.c) serves: their declarations for tools/list, the broker message each call
    becomes, and the tool result each broker answer becomes. */
#ifndef RG_MCP_H
#define RG_MCP_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

//  How a tool call proceeds once its first broker message is answered.
typedef enum {
    TOOL_RUN,                   //  submit, then await until terminal (bounded while parked)
    TOOL_RESULT,                //  await until terminal or the caller's wait_s
    TOOL_OP                     //  one message, one answer
} tool_kind_t;

//  The tools/list result (caller owns).
json_t *mcp_tools_list (void);

//  Checks a tools/call of `name` with `args` (NULL: none) against the tool's input schema
//  and turns it into the broker message to send first (*op, caller owns; no rid, no wait
//  fields). *tool is the tool's static name, *kind how it proceeds, *wait_ms how long a
//  `result` call may wait. `session` is the session of a run that names none. -1 with why
//  (the message of a JSONRPC_INVALID_PARAMS error) when the tool is unknown or the
//  arguments do not fit; nothing is to be sent then.
int mcp_tools_plan (const char *name, json_t *args, const char *session, json_t **op,
                    const char **tool, tool_kind_t *kind, int64_t *wait_ms, char *why, size_t size);

//  The tools/call result (caller owns) for the broker's answer to `tool`: a request row,
//  its sessions, a reset. Text for the model, structuredContent for code (the answer
//  itself), isError when the snippet failed, was denied or ended without running.
json_t *mcp_tools_result (const char *tool, json_t *reply);

//  A tool result that is only a failure's text (isError); caller owns.
json_t *mcp_tools_failure (const char *text);

//  What a request that is not terminal is doing, for a progress notification:
//  "request 12 waiting for approval: 1 of 2, 54 min left". now_ms: wall clock.
void mcp_tools_progress (json_t *row, int64_t now_ms, char *out, size_t size);

int mcp_test (void);
#endif
