/*  broker/refusals.h: refused client messages, counted per connection and recorded as at
    most one `rejected` event per connection (ROUTER routing id + principal) per second.
    A flood of garbage must not become a flood of audit rows: each event carries the count
    of refusals it stands for, the first one's code and size, and the principal; never a
    byte of what was sent. The table is capped; past the cap every other connection shares
    one overflow entry, so memory stays bounded whatever a client does. */
#ifndef RG_REFUSALS_H
#define RG_REFUSALS_H
#include "broker/broker.h"

#define REFUSALS_WINDOW_MS  1000
#define REFUSALS_MAX        4096

refusals_t *refusals_new (void);
void refusals_destroy (refusals_t **self_p);

//  Counts one refusal of `size` bytes with error `code` (a PROTO_E_* string: static) on
//  connection `routing` of `principal`. The first refusal of a quiet connection is recorded
//  at once; the rest of its window when refusals_tick closes it. True if this connection
//  got no rate-limited answer for a window: callers that answer at most once a second
//  (a revoked key) reply only then; the others always reply and ignore it.
bool refusals_note (broker_t *broker, zframe_t *routing, const char *principal,
                    const char *code, size_t size);

//  Records the windows that are over and forgets connections that went quiet.
void refusals_tick (broker_t *broker);

//  Records every pending count now (at shutdown).
void refusals_flush (broker_t *broker);

int refusals_test (void);
#endif
