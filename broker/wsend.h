/*  broker/wsend.h: one message to a worker connection: the one place the broker writes to
    the worker socket, below the modules that speak to workers (workers.c, fleet.c). */
#ifndef RG_WSEND_H
#define RG_WSEND_H
#include "broker/broker.h"

//  Sends body (not consumed) as one frame to the worker connection `routing` (`name` for the
//  log). Never blocks; 0, or -1 (logged) when it could not be queued: a worker that is gone
//  or too slow loses the message, and its silence is judged by workers.c.
int wsend (broker_t *broker, zframe_t *routing, const char *name, json_t *body);

#endif
