/*  broker/dispatch.h: workers, the run queue and sticky sessions, keyed by (owner, lang, name). */
#ifndef RG_DISPATCH_H
#define RG_DISPATCH_H
#include "broker/broker.h"

dispatch_t *dispatch_new (void);
void dispatch_destroy (dispatch_t **self_p);

//  Queues a request that is already `queued` in the store, then tries to run what can run.
//  `limits` (may be NULL, not consumed) are the sandbox limits its policy rule set; they
//  override the broker's defaults in the `run` sent to the worker.
void dispatch_enqueue (broker_t *broker, int64_t id, const char *owner, const char *session,
                       const char *lang, const char *code, json_t *limits);

//  Same, from the request's stored row (which must be `queued`).
void dispatch_enqueue_row (broker_t *broker, json_t *row);

//  Forgets a queued request (after it was cancelled). True if it was in the queue.
bool dispatch_unqueue (broker_t *broker, int64_t id);

//  Handles one message from the worker socket (takes ownership of msg).
void dispatch_worker_message (broker_t *broker, zmsg_t **msg_p);

//  Declares the worker on this connection lost at once (its key was revoked): its running
//  requests become `lost`, its sessions are placed anew. Nothing if no worker is there.
void dispatch_drop_worker (broker_t *broker, zframe_t *routing, const char *why);

//  Starts whatever queued work can start now (the store just took writes again).
void dispatch_pump (broker_t *broker);

//  Sends heartbeats and declares silent workers dead (their running requests become `lost`).
void dispatch_tick (broker_t *broker);

//  Counts for `ping`: workers, free slots, queued and running requests.
json_t *dispatch_stats (broker_t *broker);

#endif
