/*  client/jsonrpc.h: JSON-RPC 2.0 as MCP's stdio transport carries it, one message a line:
    the line splitter (bounded: a line past JSONRPC_MAX_LINE is reported once and skipped),
    the message reader (a pure function from one line to a classified message or to the
    error its sender gets) and the writers of results, errors and notifications. */
#ifndef RG_JSONRPC_H
#define RG_JSONRPC_H
#include "common/buf.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

//  The error codes JSON-RPC 2.0 reserves, as `error.code`.
#define JSONRPC_PARSE_ERROR      -32700
#define JSONRPC_INVALID_REQUEST  -32600
#define JSONRPC_METHOD_NOT_FOUND -32601
#define JSONRPC_INVALID_PARAMS   -32602
#define JSONRPC_INTERNAL_ERROR   -32603

//  The longest line read; a longer one is answered JSONRPC_INVALID_REQUEST and dropped.
#define JSONRPC_MAX_LINE (4 * 1024 * 1024)

//  Splits a byte stream into lines. Zero it to start; jsonrpc_lines_free to end.
typedef struct {
    buf_t partial;              //  the start of a line whose newline has not come yet
    bool skipping;              //  the current line outgrew the bound: dropped to its newline
} jsonrpc_lines_t;

//  Called with each line, without its "\n" (a "\r" before it is left to the JSON reader,
//  which takes it for white space), or with line NULL once for a line that outgrew
//  JSONRPC_MAX_LINE, as soon as it does.
typedef void (jsonrpc_line_fn) (void *arg, const char *line, size_t len);

//  Feeds n bytes; calls fn for each line they complete. 0, or -1 out of memory.
int jsonrpc_lines_feed (jsonrpc_lines_t *self, const char *data, size_t n, jsonrpc_line_fn *fn, void *arg);
//  At the end of the stream: a last line without its newline still counts.
void jsonrpc_lines_end (jsonrpc_lines_t *self, jsonrpc_line_fn *fn, void *arg);
void jsonrpc_lines_free (jsonrpc_lines_t *self);

typedef enum {
    JSONRPC_BLANK,              //  only white space: nothing to answer
    JSONRPC_REQUEST,            //  method and id: it gets a reply
    JSONRPC_NOTIFICATION,       //  method, no id: it gets none
    JSONRPC_RESPONSE,           //  result or error: a reply to something we sent
    JSONRPC_BAD                 //  answer it with code and message (id may be NULL: null)
} jsonrpc_kind_t;

typedef struct {
    jsonrpc_kind_t kind;
    json_t *root;               //  the message as read (owned), NULL if it was not JSON
    json_t *id;                 //  in root: the request's id (string or integer), else NULL
    const char *method;         //  in root
    json_t *params;             //  in root: an object, NULL if none was sent
    int code;                   //  JSONRPC_BAD: the error to answer
    char message[256];
} jsonrpc_msg_t;

//  Reads one line into msg (every outcome fills it; release it with jsonrpc_msg_free).
//  Not JSON, or not UTF-8 -> JSONRPC_PARSE_ERROR; not a JSON-RPC 2.0 message, or a batch
//  (an array: MCP since 2025-06-18 has none) -> JSONRPC_INVALID_REQUEST; a request whose
//  params is not an object -> JSONRPC_INVALID_PARAMS with its id.
void jsonrpc_parse (const char *line, size_t len, jsonrpc_msg_t *msg);
void jsonrpc_msg_free (jsonrpc_msg_t *msg);

//  Messages to send (the caller owns each). id is not consumed (NULL writes null); result
//  and params are.
json_t *jsonrpc_result (json_t *id, json_t *result);
json_t *jsonrpc_error (json_t *id, int code, const char *message);
json_t *jsonrpc_notification (const char *method, json_t *params);

//  Writes msg (consumed) as one line to fd, waiting for room if fd does not block. 0, or
//  -1 with errno when fd is gone (EPIPE: the client stopped reading).
int jsonrpc_write (int fd, json_t *msg);

#endif
