/*  approver/bridge.h: the approver's two connections to the broker (CURVE, gateway key): one
    DEALER that only carries the event subscription, and one (client/conn.c) for calls, so a
    call never has to sort pushed events from its reply. A socket monitor on the subscription
    tells when the broker came back (a restart loses its subscribers), so the approver
    re-subscribes from the last event it handled. */
#ifndef RG_BRIDGE_H
#define RG_BRIDGE_H
#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _bridge_t bridge_t;

//  Neither cert is taken over. NULL if a socket cannot be made.
bridge_t *bridge_new (const char *endpoint, zcert_t *cert, zcert_t *server);
void bridge_destroy (bridge_t **self_p);

//  Makes a fresh subscription socket and subscribes from `since`. 0 or -1.
int bridge_subscribe (bridge_t *self, int64_t since);

//  The subscription socket's libzmq handle, for zmq_poll.
void *bridge_handle (bridge_t *self);

//  The next pushed event, without waiting; NULL if none. Replies are skipped.
json_t *bridge_next_event (bridge_t *self);

//  True once after the subscription connection was re-established (or refused): the caller
//  must subscribe again.
bool bridge_needs_resubscribe (bridge_t *self);

//  A request/reply call (rid matched). NULL on timeout; the call socket is then replaced, so
//  an unsent request cannot reach the broker later and surprise anyone.
json_t *bridge_call (bridge_t *self, json_t *req, int timeout_ms);

#endif
