/*  broker/egress.h: a run's egress record, from the worker's result to the store (see
    egress.c). */
#ifndef RG_BROKER_EGRESS_H
#define RG_BROKER_EGRESS_H
#include "broker/broker.h"

//  Sets, in the `done` fields of a result, the request columns of its egress_totals
//  (egress_connections, egress_denied, egress_bytes_out, egress_bytes_in) and egress_dropped
//  (an event note). A result without totals (a run without a grant) sets nothing, so the
//  columns stay NULL. result was checked by proto_parse_worker. 0, or -1 out of memory.
int egress_fields (json_t *result, json_t *fields);

//  Appends one `egress` event of request id per entry of the result's `egress` (actor: the
//  worker's name), in order, through the backlog: call it right before the `done`
//  transition, in the same group, so the connections come before the end on the chain and
//  a failed commit keeps (and retries) them in that order.
void egress_record (broker_t *broker, int64_t id, const char *worker, json_t *result);

int egress_record_test (void);
#endif
