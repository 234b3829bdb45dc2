/*  broker/outbox.h: replies a client connection could not take yet (see outbox.c). */
#ifndef RG_OUTBOX_H
#define RG_OUTBOX_H
#include "broker/broker.h"

typedef struct _outbox_t outbox_t;

outbox_t *outbox_new (void);
void outbox_destroy (outbox_t **self_p);

//  Sends msg (routing frame first) to a client connection, or keeps it behind that
//  connection's backlog when its pipe is full. Takes msg. A peer that is gone loses it.
void outbox_send (broker_t *broker, zmsg_t **msg_p);

//  True while replies to this connection wait: its new requests are refused (`busy`).
bool outbox_backlogged (broker_t *broker, zframe_t *routing);

//  Sends what the connections can take now, in order; call on every pass of the loop.
void outbox_flush (broker_t *broker);

//  Replies waiting, over all connections.
size_t outbox_size (broker_t *broker);

#endif
