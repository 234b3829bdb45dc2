/*  broker/approvals.h: the approval workflow: who may decide, the quorum, expiry, and the
    binding of an approval to the exact bytes that were submitted. */
#ifndef RG_APPROVALS_H
#define RG_APPROVALS_H
#include "broker/broker.h"

approvals_t *approvals_new (void);
void approvals_destroy (approvals_t **self_p);

//  Starts tracking a request that was just parked (or found parked at start-up): its expiry
//  (from row.review.expires_at) and the bind hash of what was submitted (row.bind_sha256).
void approvals_track (broker_t *broker, json_t *row);

//  Stops tracking a request (cancelled).
void approvals_forget (broker_t *broker, int64_t id);

//  Expires parked requests whose time to live ran out.
void approvals_tick (broker_t *broker);

//  Client ops: `pending`, `approve`, `deny`.
void approvals_pending (broker_t *broker, caller_t *c, json_t *msg);
void approvals_decide (broker_t *broker, caller_t *c, json_t *msg, bool approve);

#endif
