/*  approver/bridge.h: the approver's two connections to the broker (CURVE, gateway key): one
    that only carries the event subscription, and one (client/conn.c) for calls, so a call
    never has to sort pushed events from its reply. Both are common/zmtp.c connections (no
    libzmq). When the subscription's connection completes a handshake after its first, the
    broker came back (a restart loses its subscribers), so the approver re-subscribes from
    the last event it handled. */
#ifndef RG_BRIDGE_H
#define RG_BRIDGE_H
#include "common/zmtp.h"
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _bridge_t bridge_t;

//  keys are copied. NULL if the endpoint is not valid.
bridge_t *bridge_new (const char *endpoint, const zmtp_keys_t *keys);
void bridge_destroy (bridge_t **self_p);

//  Makes a fresh subscription connection and subscribes from `since`. 0 or -1.
int bridge_subscribe (bridge_t *self, int64_t since);

//  What to give poll(2) for the subscription, and the longest the caller may wait (ms, -1:
//  no limit); after the poll, bridge_handle with what it said, once a turn, before
//  bridge_needs_resubscribe and bridge_next_event (see zmtp_poll_item and zmtp_handle).
int bridge_poll_item (bridge_t *self, struct pollfd *pfd);
void bridge_handle (bridge_t *self, short revents);

//  The next pushed event, without waiting; NULL if none. Replies are skipped. Each call
//  also moves the connection along (reads, writes, the handshake, a reconnect).
json_t *bridge_next_event (bridge_t *self);

//  True once after the subscription connection was re-established: the caller must
//  subscribe again. Logs (once each) how the connection was lost or refused.
bool bridge_needs_resubscribe (bridge_t *self);

//  A request/reply call (rid matched). NULL on timeout; the call connection is then
//  replaced, so an unsent request cannot reach the broker later and surprise anyone.
json_t *bridge_call (bridge_t *self, json_t *req, int timeout_ms);

#endif
