/*  broker/prune.h: retention as an admin operation of the broker (see prune.c). */
#ifndef RG_PRUNE_H
#define RG_PRUNE_H
#include "broker/broker.h"

prune_t *prune_new (void);
void prune_destroy (prune_t **self_p);

//  The `prune` op (admin keys only): {"before": T}, T an ISO-8601 time as the store writes
//  them. Starts removing the bodies of requests that finished before T; the caller is
//  answered {"pruned": N, "before": T} once nothing is left. One prune at a time: another
//  while one runs is refused `busy`.
void prune_start (broker_t *broker, caller_t *c, json_t *msg);

//  One batch of the prune under way, if any and the store takes writes. Call on every pass
//  of the loop, outside any group.
void prune_step (broker_t *broker);

//  True while a prune has batches left (the loop must not sleep).
bool prune_busy (broker_t *broker);

#endif
