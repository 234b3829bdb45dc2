/*  approver/flow.h: what the approver does: broker events become Slack messages and message
    updates; Slack clicks become approve/deny calls on behalf of the mapped principal. */
#ifndef RG_FLOW_H
#define RG_FLOW_H
#include "approver/config.h"
#include "approver/deliver.h"
#include "approver/bridge.h"
#include "approver/payload.h"
#include "approver/state.h"

typedef struct _flow_t flow_t;

//  None of the arguments is taken over; they must outlive the flow.
flow_t *flow_new (config_t *config, state_t *state, bridge_t *bridge);
void flow_destroy (flow_t **self_p);

//  Posts a message for every pending request not posted yet (the `pending` op). 0 or -1
//  (broker unreachable: try again later).
int flow_catch_up (flow_t *self);

//  Handles a batch of pushed events (an array, oldest first) and records the last seq in the
//  same transaction as the messages they caused. 0, or -1 if the broker could not be asked
//  about a request: nothing was recorded, re-subscribe from the last seq and retry.
int flow_events (flow_t *self, json_t *events);

//  Acts on one verified click.
void flow_click (flow_t *self, const click_t *click);

//  deliver_fail_fn: a final message update that could not go through response_url is
//  re-posted through the webhook; every give-up is logged with its request.
void flow_delivery_failed (void *arg, json_t *job, const deliver_reply_t *reply);

int flow_test (void);
#endif
