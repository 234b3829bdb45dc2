/*  broker/control.h: client operations on live interpreters and runs (see control.c). */
#ifndef RG_CONTROL_H
#define RG_CONTROL_H
#include "broker/broker.h"

//  `interrupt` {id}: SIGINT to a running snippet (its owner or an admin).
void control_interrupt (broker_t *broker, caller_t *c, json_t *msg);
//  `sessions`: the interpreters the caller holds (an admin: everyone's).
void control_sessions (broker_t *broker, caller_t *c, json_t *msg);
//  `reset` / `close` {session, lang}: the caller's interpreter ends, its slot is freed and
//  its next snippet starts a fresh one; recorded as `session_reset` / `session_closed`.
void control_reset (broker_t *broker, caller_t *c, json_t *msg);
void control_close (broker_t *broker, caller_t *c, json_t *msg);

#endif
