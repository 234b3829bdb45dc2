/*  broker/pass.h: one pass of the broker's loop, written in one commit (see pass.c). */
#ifndef RG_PASS_H
#define RG_PASS_H
#include "broker/broker.h"

pass_t *pass_new (void);
void pass_destroy (pass_t **self_p);

//  Opens the pass: what its messages write commits together at pass_end. False (nothing
//  opened: each write commits alone) while the store is down.
bool pass_begin (broker_t *broker);
//  True while a pass is open: replies wait for its commit.
bool pass_open (broker_t *broker);
//  A new client message: the replies sent from now on are its own.
void pass_next (broker_t *broker);
//  The current message (caller c) wrote through the store itself: if the pass does not
//  commit, it is answered `busy` instead, and what it did in memory to request id (0: none)
//  is undone from the record.
void pass_wrote (broker_t *broker, caller_t *c, int64_t id);
//  Keeps a reply (routing copied, msg taken) until the pass ends.
void pass_hold (broker_t *broker, zmsg_t **msg_p);

//  What to do once the pass ended: fn (broker, arg, committed) runs then, in order with the
//  held replies, and owns arg.
typedef void (pass_fn) (broker_t *broker, void *arg, bool committed);
void pass_after (broker_t *broker, pass_fn *fn, void *arg);

//  Commits the pass, then sends what waited. If the commit failed: see pass_wrote. Returns
//  whether it committed (true if no pass was open).
bool pass_end (broker_t *broker);

int pass_test (void);

#endif
