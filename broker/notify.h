/*  broker/notify.h: clients waiting on the broker: long polls (`await`, `submit` with wait_ms)
    and event subscribers. Both hold only the client's routing id, never a blocked call. */
#ifndef RG_NOTIFY_H
#define RG_NOTIFY_H
#include "broker/broker.h"

notify_t *notify_new (void);
void notify_destroy (notify_t **self_p);

//  Parks a long poll on request `id`: the client gets the request row when it reaches a
//  terminal state, or as it is at `deadline_ms` (monotonic). Copies routing and rid.
void notify_wait (broker_t *broker, zframe_t *routing, json_t *rid, int64_t id, int64_t deadline_ms);

//  Answers every long poll on `id` with the request as it is now. Inside an uncommitted store
//  group the answer waits for notify_release: nobody hears of what may yet roll back.
void notify_finished (broker_t *broker, int64_t id);

//  Forgets the long polls on `id` without answering them (their request was never recorded:
//  whoever asked is answered otherwise).
void notify_forget (broker_t *broker, int64_t id);

//  The group ended: answers what ended inside it (committed), or forgets it (rolled back;
//  whatever writes it again answers then).
void notify_release (broker_t *broker, bool committed);

//  Subscribes the caller's connection to the events with seq > since, pushed as
//  {"op":"event",...}: all of them to approver and admin keys, to any other key only those of
//  its own requests. A connection holds one subscription: subscribing again moves it to the
//  new `since`. -1 (nothing changed) if SUBS_MAX subscriptions are held already.
int notify_subscribe (broker_t *broker, caller_t *c, int64_t since);

//  Answers long polls whose deadline passed and pushes new events to subscribers.
void notify_tick (broker_t *broker);

//  Ends every subscription made with this public key (it was revoked): nothing more is
//  pushed to them.
void notify_forget_key (broker_t *broker, const char *pubkey);

//  Milliseconds until the nearest long-poll deadline (at most `cap`).
int notify_timeout (broker_t *broker, int cap);

//  Pushes text to a client connection now, never queueing it: 0, or why the send failed:
//  EAGAIN if the peer's pipe is full, EHOSTUNREACH if it is gone (the socket is
//  ROUTER_MANDATORY, so neither passes silently).
int notify_push (broker_t *broker, zframe_t *routing, const char *text);

//  Sends the request row of `id` (merged into an ok reply) to a client; not_found if absent.
void notify_reply_request (broker_t *broker, zframe_t *routing, json_t *rid, int64_t id);

#endif
