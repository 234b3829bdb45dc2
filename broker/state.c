/*  broker/state.c: the request state machine, driven from one table.

    NOTES ON THE REQUEST STATES

    received --policy--> denied                                   (terminal)
       |----> pending_approval --quorum--> queued
       |          |--any deny--> denied  |--ttl--> expired  |--cancel--> cancelled
       '----> queued --dispatch--> running --> done
                  '--cancel--> cancelled       '--worker lost / broker restart--> lost

    The states and their edges are common/states.c's; s_table says which event drives each
    edge, and state_table_test checks that the two tables name the same edges.

    Invariants
    1. A request's state changes only through state_fire, which looks the (state, event) pair up
       in s_table; a pair that is not in the table changes nothing and is an error.
    2. Every transition is one SQLite transaction: the row's state and the fields the
       transition records are updated, and exactly one event is appended to the hash chain.
       (A submit and the policy's decision on it commit together, as one group: each keeps
       its own event; see s_record in clients.c.)
       The UPDATE is conditional on the state the caller saw, so a stale caller changes nothing.
    3. Nothing about a transition is told to anyone (reply, worker `run`, subscriber event)
       before its transaction committed.
    4. Terminal states (denied, expired, cancelled, done, lost) have no outgoing transitions.
    5. At most one request per (session, lang) is `running`; `running` requests are exactly
       the ones some live worker was sent (dispatch.c keeps that map).
    6. After a broker restart, `running` requests become `lost` (their worker's answer can no
       longer be trusted to reach us) and `queued` ones are queued again in id order.
*/
#include "broker/state.h"
#include "broker/notify.h"
#include "common/check.h"
#include "common/states.h"
#include "common/util.h"

typedef struct {
    const char *from;
    state_event_t ev;
    const char *to;
} transition_t;

static const transition_t s_table[] = {
    { "received",         EV_ALLOW,    "queued" },
    { "received",         EV_DENY,     "denied" },
    { "received",         EV_REVIEW,   "pending_approval" },
    { "pending_approval", EV_QUORUM,   "queued" },
    { "pending_approval", EV_DENY,     "denied" },
    { "pending_approval", EV_EXPIRE,   "expired" },
    { "pending_approval", EV_CANCEL,   "cancelled" },
    { "queued",           EV_CANCEL,   "cancelled" },
    { "queued",           EV_DISPATCH, "running" },
    { "running",          EV_FINISH,   "done" },
    { "running",          EV_LOSE,     "lost" },
};

#define TABLE (sizeof s_table / sizeof s_table[0])

static const transition_t *
s_lookup (const char *from, state_event_t ev)
{
    for (size_t i = 0; i < TABLE; i++)
        if (s_table[i].ev == ev && strcmp (s_table[i].from, from) == 0)
            return &s_table[i];
    return NULL;
}

bool
state_can_fire (const char *from, state_event_t ev)
{
    return from && s_lookup (from, ev);
}

int
state_fire_approval (broker_t *broker, int64_t id, int ev, json_t *approval,
                     json_t *fields, const char **to)
{
    const transition_t *t = ev < 0 ? NULL : s_lookup ("pending_approval", (state_event_t) ev);
    if (ev >= 0 && !t)
        return -1;
    if (store_approve (broker->store, id, approval, t ? t->to : NULL, fields) != 0)
        return -1;
    if (to)
        *to = t ? t->to : "pending_approval";
    if (t && states_is_terminal (t->to))
        notify_finished (broker, id);
    return 0;
}

int
state_fire (broker_t *broker, int64_t id, const char *from, state_event_t ev,
            const char *actor, json_t *fields, const char **to)
{
    const transition_t *t = s_lookup (from, ev);
    if (!t)
        return -1;
    if (store_transition (broker->store, id, t->from, t->to, actor, fields) != 0) {
        log_warn ("request %lld: %s -> %s refused by the store", (long long) id, t->from, t->to);
        return -1;
    }
    if (to)
        *to = t->to;
    if (states_is_terminal (t->to))
        notify_finished (broker, id);
    return 0;
}

//  --------------------------------------------------------------------------------------
//  Self-test: the events drive exactly the shared edges, each (state, event) at most once.

int
state_table_test (void)
{
    for (size_t i = 0; i < TABLE; i++) {
        CHECK (states_edge_legal (s_table[i].from, s_table[i].to));
        CHECK (s_lookup (s_table[i].from, s_table[i].ev) == &s_table[i]);
    }
    const char *from, *to;
    for (size_t e = 0; states_edge (e, &from, &to) == 0; e++) {
        bool driven = false;
        for (size_t i = 0; i < TABLE; i++)
            driven |= strcmp (s_table[i].from, from) == 0 && strcmp (s_table[i].to, to) == 0;
        CHECK (driven);
    }
    CHECK (state_can_fire ("queued", EV_CANCEL) && !state_can_fire ("running", EV_CANCEL));
    CHECK (!state_can_fire (NULL, EV_CANCEL));
    return 0;
}
