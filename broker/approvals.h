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

//  The parked requests whose time to live ran out, ids as text (the caller destroys the
//  list); they are no longer tracked.
zlistx_t *approvals_due (broker_t *broker);

//  Client op `pending`: a page of the parked requests.
void approvals_pending (broker_t *broker, caller_t *c, json_t *msg);

//  What an approve or deny comes to, once vetted.
typedef struct {
    json_t *approval;       //  the approvals row to record (owned; NULL when tampered)
    bool deny;              //  the request is denied, by the decider or because tampered
    bool quorum;            //  this approval completes the quorum: the request runs
    bool tampered;          //  the stored code no longer hashes to what was submitted
    const char *message;    //  why it is denied (msg's reason, or the tampering)
} verdict_t;

//  Vets caller c's approve (or deny) of request msg.id against the rules at the top of
//  approvals.c: 0 with *v filled (the caller fires it and frees v->approval), or -1 with the
//  refusal's code and why (static texts). Changes nothing.
int approvals_vet (broker_t *broker, caller_t *c, json_t *msg, bool approve, verdict_t *v,
                   const char **code, const char **why);

int approvals_test (void);

#endif
