/*  broker/backlog.h: the broker while its database will not take writes (see backlog.c). */
#ifndef RG_BACKLOG_H
#define RG_BACKLOG_H
#include "broker/broker.h"
#include "broker/state.h"

#define BACKLOG_RETRY_MS    250     //  the longest wait before a refused write is tried again
#define BACKLOG_BUSY_MS     50      //  how long one write waits for another process's lock
//  What a request that could not be recorded is told, with the code `busy`.
#define BACKLOG_BUSY_TEXT   "the database cannot be written now (see `store` in ping); nothing " \
                            "was recorded, retry later"

backlog_t *backlog_new (void);
void backlog_destroy (backlog_t **self_p);

//  True while the store refuses writes: submits are refused (`busy`), nothing is dispatched,
//  and the writes that must happen wait here, in order.
bool backlog_down (broker_t *broker);

//  Call after a store write returned -1: if the database failed it (store_fault), the broker
//  is down from now on (logged once). True if the broker is down.
bool backlog_check (broker_t *broker, const char *what);

//  Fires a transition now or, while the store is down (or if this write finds it down),
//  keeps it to fire later, in order. `fields` is not consumed, and must not change after the
//  call: the backlog may keep a reference. 0 if it fired or waits; -1 if the store refused
//  it on its merits (the request was not in `from`).
int backlog_fire (broker_t *broker, int64_t id, const char *from, state_event_t ev,
                  const char *actor, json_t *fields);

//  Groups the writes of what follows (a pass over a socket, the starts of a pass) in one
//  commit: true if a group was opened (not while the store is down). backlog_group_end
//  commits it and returns whether it did. If the commit failed, every write of the group made
//  through this module is kept here, in order, as if each had failed, and the answers to
//  long polls it would have given wait for them (notify_release); what the caller wrote
//  through the store itself is the caller's to undo (see pass.c, launch.c).
bool backlog_group_begin (broker_t *broker);
bool backlog_group_end (broker_t *broker);

//  Applies the decision (ev, fields: decide_policy's, not consumed) to request `row` (its
//  stored columns, not consumed). If the store refuses,
//  it is decided again, with the policy then in force, once the store is back: the decision
//  is written before anything else happens to the request. Returns the state it is in.
const char *backlog_decide (broker_t *broker, json_t *row, const char *groups, state_event_t ev,
                            json_t *fields);

//  Appends an event that belongs to no transition (worker_joined, session_ended...), now or
//  once the store is back. `data` is not consumed and must not change after the call.
void backlog_event (broker_t *broker, int64_t request_id, const char *type, const char *actor,
                    json_t *data);

//  Retries what waits, oldest first, 10 ms after the store went down, then twice as long
//  after each failure up to BACKLOG_RETRY_MS (a lock held by a short transaction costs little;
//  a long outage costs a write a few times a second). With nothing waiting, a probe write
//  finds out whether the store is back. Call on every pass of the loop; true when the store
//  just came back (queued work may start).
bool backlog_tick (broker_t *broker);

//  The poll timeout of the loop: at most cap, less when a retry is due sooner.
int backlog_timeout (broker_t *broker, int cap);

//  state_reenter, after a group that did not commit: or, if the row cannot be read now,
//  once the store answers again (kept in order with the writes; DOWN until then, so that
//  nothing of its session runs before it).
void backlog_reenter (broker_t *broker, int64_t id);

//  Refuses a client's write (cancel, approve, report...) that did not happen: `busy` if the
//  database is down or failed it, else `bad_state` (the request changed state meanwhile).
void backlog_refuse (broker_t *broker, caller_t *c, const char *what);

//  Holds the broker down for a reason a probe write cannot clear (the WAL cannot be copied
//  back into the main file, so each commit would grow it without bound), or, with why
//  NULL, ends that hold.
void backlog_hold (broker_t *broker, const char *why);

//  For `ping`: {"writable", "error" (while down), "since", "waiting"}.
json_t *backlog_stats (broker_t *broker);

//  Transitions out of `from` that wait (ping counts them with the requests still there).
size_t backlog_waiting_from (broker_t *broker, const char *from);

#endif
