/*  broker/launch.h: starting runs, in the commit of the pass that freed them (see launch.c). */
#ifndef RG_LAUNCH_H
#define RG_LAUNCH_H
#include "broker/broker.h"

//  Starts whatever queued work can start now, in the store's open group: `queued ->
//  running` fired and the job taken in memory. Returns the starts (NULL: none, the store is
//  down or no group is open), for launch_send once the group ended.
zlistx_t *launch_fire (broker_t *broker);
//  Sends the `run`s of the starts if their group committed; else queues their jobs again as
//  the record has them. Destroys the list.
void launch_send (broker_t *broker, zlistx_t **starts_p, bool committed);

//  Both, in a group of its own. Call after anything that may have queued work or freed a
//  slot outside a pass (the loop does, after its timers).
void launch_ready (broker_t *broker);

#endif
