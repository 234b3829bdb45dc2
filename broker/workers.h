/*  broker/workers.h: the worker socket (see workers.c). */
#ifndef RG_WORKERS_H
#define RG_WORKERS_H
#include "broker/broker.h"
#include "broker/dispatch.h"

//  Handles one message from the worker socket (takes ownership of msg).
void workers_message (broker_t *broker, zmsg_t **msg_p);

//  Declares the worker on this connection lost at once (its key was revoked): its running
//  requests become `lost`, its sessions are placed anew. Nothing if no worker is there.
void workers_drop (broker_t *broker, zframe_t *routing, const char *why);

//  Sends body (not consumed) to worker w; 0, or -1 (logged) when it could not be queued.
int workers_send (broker_t *broker, worker_t *w, json_t *body);

//  Sends heartbeats, declares silent workers dead (their running requests become `lost`),
//  and ends runs their live worker never answered.
void workers_tick (broker_t *broker);

#endif
