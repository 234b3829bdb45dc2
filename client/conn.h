/*  client/conn.h: a CURVE-authenticated DEALER connection to the broker with request/reply
    matching by `rid`. Used by the CLI and the approver; one connection, one caller thread. */
#ifndef RG_CONN_H
#define RG_CONN_H
#include "common/zmtp.h"
#include <jansson.h>
#include <poll.h>

typedef struct _conn_t conn_t;

//  Connects to endpoint (tcp://HOST:PORT or ipc://PATH) with keys (copied; see
//  common/certfile.h); the connection is made, and made again if lost, as calls need it.
//  Returns NULL if the endpoint is not one of those. Makes no czmq or libzmq call.
conn_t *conn_new (const char *endpoint, const zmtp_keys_t *keys);
void conn_destroy (conn_t **self_p);

//  Sends `req` (not consumed; a fresh `rid` is set on it) and waits up to timeout_ms for the
//  reply carrying the same rid, discarding stale replies and events. Returns the reply (caller
//  owns) or NULL on timeout: the broker is down, or it refused our key (it never answers then).
//  An `await`, `status` or `ping` is sent again if its connection is lost and a new one opens
//  before its answer (a broker restart); no other op is.
json_t *conn_call (conn_t *self, json_t *req, int timeout_ms);

//  Receives the next message (reply or pushed event) within timeout_ms; NULL on timeout.
json_t *conn_recv (conn_t *self, int timeout_ms);

//  Sends `req` (not consumed; a fresh `rid` is set on it and copied into rid) and returns at
//  once: for a caller with several requests in flight, which tells replies apart itself (the
//  reply is the message from conn_recv with this rid and no `op`). 0, or -1 if not sent.
int conn_send (conn_t *self, json_t *req, char rid[40]);

//  For a caller that polls the connection with other descriptors: fills pfd and returns the
//  longest it may wait (ms, -1: no limit). After each poll, conn_handle with what it said
//  (once a turn, whatever poll returned), then conn_take for each message it read (see
//  zmtp_poll_item and zmtp_handle).
int conn_poll_item (conn_t *self, struct pollfd *pfd);
void conn_handle (conn_t *self, short revents);
//  The next message conn_handle read, or NULL; no system call.
json_t *conn_take (conn_t *self);

//  From now on conn_recv (and so conn_call) returns NULL at once while fd is readable: a
//  wait ends on a signal even if it came just before the poll (the handler writes to fd).
void conn_wake_on (conn_t *self, int fd);

//  Why the last connection to the broker ended (refused, closed in the handshake...), or
//  NULL if none has: for the message of a call that got no answer.
const char *conn_why (conn_t *self);

//  Pushed messages (with an `op`: output, event) that conn_call meets while it waits go to
//  fn (not consumed) instead of being dropped. fn NULL: dropped again.
typedef void (conn_push_fn) (void *arg, json_t *msg);
void conn_on_push (conn_t *self, conn_push_fn *fn, void *arg);

#endif
