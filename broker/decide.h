/*  broker/decide.h: the policy in force and the output masker built from it. */
#ifndef RG_DECIDE_H
#define RG_DECIDE_H
#include "broker/broker.h"

//  Loads the policy file (broker->cfg.policy_path) and builds the masker. -1 if the file is
//  bad (the error names file:line:col) or missing.
int decide_start (broker_t *broker);
void decide_stop (broker_t *broker);

//  Re-reads the policy file (SIGHUP). A bad file keeps the policy in force and logs why;
//  either way the outcome is recorded as a `policy_reloaded` / `policy_rejected` event.
void decide_reload (broker_t *broker);

//  Moves a `received` request on by the policy: denied, pending_approval or queued (and
//  dispatched). `row` has the stored request's id, principal, role, session, lang and
//  code. Returns the state it moved to, or "received" if the transition failed.
const char *decide_request (broker_t *broker, json_t *row, const char *groups);

//  Masks the text fields of a worker result in place (stdout, stderr, value, error.value,
//  error.traceback) before anything stores or returns them.
void decide_mask_result (broker_t *broker, json_t *result);

#endif
