/*  approver/link.h: the approver's two connections to the broker (CURVE, gateway key): one
    DEALER that only carries the event subscription, and one (client/conn.c) for calls, so a
    call never has to sort pushed events from its reply. A socket monitor on the subscription
    tells when the broker came back (a restart loses its subscribers), so the approver
    re-subscribes from the last event it handled. */
#ifndef RG_LINK_H
#define RG_LINK_H
#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _link_t link_t;

//  Neither cert is taken over. NULL if a socket cannot be made.
link_t *link_new (const char *endpoint, zcert_t *cert, zcert_t *server);
void link_destroy (link_t **self_p);

//  Makes a fresh subscription socket and subscribes from `since`. 0 or -1.
int link_subscribe (link_t *self, int64_t since);

//  The subscription socket's libzmq handle, for zmq_poll.
void *link_handle (link_t *self);

//  The next pushed event, without waiting; NULL if none. Replies are skipped.
json_t *link_next_event (link_t *self);

//  True once after the subscription connection was re-established (or refused): the caller
//  must subscribe again.
bool link_needs_resubscribe (link_t *self);

//  A request/reply call (rid matched). NULL on timeout; the call socket is then replaced, so
//  an unsent request cannot reach the broker later and surprise anyone.
json_t *link_call (link_t *self, json_t *req, int timeout_ms);

#endif
