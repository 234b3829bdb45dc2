/*  client/jsonrpc.c: JSON-RPC 2.0 framing for `replgate mcp`: lines in, messages out. */
#include "client/jsonrpc.h"
#include "common/util.h"
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  A line bigger than this, once handled, gives its room back instead of keeping it.
#define KEEP_ROOM (64 * 1024)

int
jsonrpc_lines_feed (jsonrpc_lines_t *self, const char *data, size_t n, jsonrpc_line_fn *fn, void *arg)
{
    while (n > 0) {
        const char *nl = (const char *) memchr (data, '\n', n);
        size_t take = nl ? (size_t) (nl - data) : n;
        if (self->skipping)
            ;                       //  the rest of a line already answered as too large
        else
        if (self->partial.len + take > JSONRPC_MAX_LINE) {
            buf_free (&self->partial);
            self->skipping = true;
            fn (arg, NULL, 0);
        }
        else
        if (nl && self->partial.len == 0)
            fn (arg, data, take);   //  a whole line in data: no copy
        else
        if (buf_append (&self->partial, data, take) != 0)
            return -1;
        else
        if (nl) {
            fn (arg, self->partial.data, self->partial.len);
            if (self->partial.alloc > KEEP_ROOM)
                buf_free (&self->partial);
            self->partial.len = 0;
        }
        if (nl) {
            self->skipping = false;
            take++;
        }
        data += take;
        n -= take;
    }
    return 0;
}

void
jsonrpc_lines_end (jsonrpc_lines_t *self, jsonrpc_line_fn *fn, void *arg)
{
    if (self->partial.len > 0 && !self->skipping)
        fn (arg, self->partial.data, self->partial.len);
    jsonrpc_lines_free (self);
}

void
jsonrpc_lines_free (jsonrpc_lines_t *self)
{
    buf_free (&self->partial);
    self->skipping = false;
}

static void
s_bad (jsonrpc_msg_t *msg, int code, const char *message)
{
    msg->kind = JSONRPC_BAD;
    msg->code = code;
    snprintf (msg->message, sizeof msg->message, "%s", message);
}

void
jsonrpc_parse (const char *line, size_t len, jsonrpc_msg_t *msg)
{
    memset (msg, 0, sizeof *msg);
    size_t blank = 0;
    while (blank < len && (line[blank] == ' ' || line[blank] == '\t' || line[blank] == '\r'))
        blank++;
    if (blank == len) {
        msg->kind = JSONRPC_BLANK;
        return;
    }
    json_error_t error;
    //  Any value, so that a number or a string is an invalid request rather than bad JSON.
    msg->root = json_loadb (line, len, JSON_DECODE_ANY, &error);
    if (!msg->root) {
        s_bad (msg, JSONRPC_PARSE_ERROR, "parse error");
        snprintf (msg->message, sizeof msg->message, "parse error: %s (at byte %d)", error.text,
                  error.position);
        return;
    }
    if (json_is_array (msg->root))
        return s_bad (msg, JSONRPC_INVALID_REQUEST, "batches are not supported: send one message a line");
    if (!json_is_object (msg->root))
        return s_bad (msg, JSONRPC_INVALID_REQUEST, "a message is a JSON object");
    json_t *id = json_object_get (msg->root, "id");
    if (id && (json_is_string (id) || json_is_integer (id)))
        msg->id = id;               //  known from here on, so even an error reply can echo it
    const char *version = json_string_value (json_object_get (msg->root, "jsonrpc"));
    if (!version || strcmp (version, "2.0") != 0)
        return s_bad (msg, JSONRPC_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
    if (id && !msg->id)
        return s_bad (msg, JSONRPC_INVALID_REQUEST, "id must be a string or an integer");
    json_t *method = json_object_get (msg->root, "method");
    if (!method) {
        if (json_object_get (msg->root, "result") || json_object_get (msg->root, "error"))
            msg->kind = JSONRPC_RESPONSE;
        else
            s_bad (msg, JSONRPC_INVALID_REQUEST, "method is missing");
        return;
    }
    if (!json_is_string (method))
        return s_bad (msg, JSONRPC_INVALID_REQUEST, "method must be a string");
    msg->method = json_string_value (method);
    json_t *params = json_object_get (msg->root, "params");
    if (json_is_object (params))
        msg->params = params;
    if (!id)
        msg->kind = JSONRPC_NOTIFICATION;
    else
    if (params && !msg->params)
        s_bad (msg, JSONRPC_INVALID_PARAMS, "params must be an object");
    else
        msg->kind = JSONRPC_REQUEST;
}

void
jsonrpc_msg_free (jsonrpc_msg_t *msg)
{
    json_decref (msg->root);
    memset (msg, 0, sizeof *msg);
}

json_t *
jsonrpc_result (json_t *id, json_t *result)
{
    return json_pack ("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null (), "result", result);
}

json_t *
jsonrpc_error (json_t *id, int code, const char *message)
{
    //  A message may quote what the client sent, cut to size in the middle of a character.
    char fixed[512];
    bool lost;
    size_t n = utf8_repair (message, strlen (message), fixed, sizeof fixed - 1, true, &lost);
    fixed[n] = 0;
    return json_pack ("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null (),
                      "error", "code", code, "message", fixed);
}

json_t *
jsonrpc_notification (const char *method, json_t *params)
{
    return json_pack ("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params);
}

int
jsonrpc_write (int fd, json_t *msg)
{
    char *text = msg ? json_dumps (msg, JSON_COMPACT) : NULL;
    json_decref (msg);
    size_t len = text ? strlen (text) : 0;
    char *line = text ? (char *) realloc (text, len + 1) : NULL;
    if (!line) {
        free (text);
        errno = ENOMEM;
        return -1;
    }
    line[len++] = '\n';             //  JSON text never holds a raw newline: one message a line
    size_t done = 0;
    while (done < len) {
        ssize_t n = write (fd, line + done, len - done);
        if (n >= 0)
            done += (size_t) n;
        else
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            poll (&p, 1, -1);
        }
        else
        if (errno != EINTR)
            break;
    }
    free (line);
    return done == len ? 0 : -1;
}
