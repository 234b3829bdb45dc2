/*  broker/decide.h: the policy in force and the output masker built from it. */
#ifndef RG_DECIDE_H
#define RG_DECIDE_H
#include "broker/broker.h"
#include "broker/state.h"

//  Loads the policy file (broker->cfg.policy_path) and builds the masker. -1 if the file is
//  bad (the error names file:line:col) or missing.
int decide_start (broker_t *broker);
void decide_stop (broker_t *broker);

//  Re-reads the policy file (SIGHUP). A bad file keeps the policy in force and logs why;
//  either way the outcome is recorded as a `policy_reloaded` / `policy_rejected` event.
void decide_reload (broker_t *broker);

//  The policy's decision on a `received` request: the event that applies it (EV_ALLOW,
//  EV_DENY or EV_REVIEW) and in *fields what that transition records (the caller owns
//  it). `row` has the stored request's principal, role, session, lang and code, and the
//  timeout_ms the submit asked for, if any; groups are the submitter's cert's. If max_timeout
//  is not NULL it receives the longest run the matching rule lets a submit ask for: its
//  timeout_ms, or the broker's --max-timeout-ms where it sets none. Changes nothing: the
//  caller checks the timeout asked and fires the event.
state_event_t decide_policy (broker_t *broker, json_t *row, const char *groups, json_t **fields,
                             int64_t *max_timeout);

//  Masks the text fields of a worker result in place (stdout, stderr, value, error.value,
//  error.traceback) before anything stores or returns them.
void decide_mask_result (broker_t *broker, json_t *result);

#endif
