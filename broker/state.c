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
       (The writes of one pass of the loop commit together, as one group, each with its own
       event; see pass.c, launch.c and backlog.c.)
       The UPDATE is conditional on the state the caller saw, so a stale caller changes nothing.
    3. Nothing about a transition is told to anyone (reply, worker `run`, subscriber event)
       before its transaction committed.
    4. Terminal states (denied, expired, cancelled, done, lost) have no outgoing transitions.
    5. At most one request per (session, lang) is `running`; `running` requests are exactly
       the ones some live worker was sent (dispatch.c keeps that map, workers.c sends).
    6. After a broker restart, `running` requests become `lost` (their worker's answer can no
       longer be trusted to reach us) and `queued` ones are queued again in id order.
    7. What a transition does in memory (the run queue, approval tracking, waiters) is done
       here, after its commit, from the table's exit and entry actions, and nowhere else; a
       restart re-enters states through state_resume, a group that failed to commit is
       undone through state_unwind. */
#include "broker/state.h"
#include "broker/approvals.h"
#include "broker/dispatch.h"
#include "broker/notify.h"
#include "common/check.h"
#include "common/states.h"
#include "common/util.h"

//  What a transition does in memory once it committed, besides the row and its event.
//  Exit actions undo what entering `from` did; entry actions prepare `to`.
enum {
    X_FORGET  = 1,      //  exit pending_approval: stop tracking its expiry (approvals.c)
    X_UNQUEUE = 2,      //  exit queued without running: off the run queue (dispatch.c)
    N_ENQUEUE = 4,      //  enter queued: on the run queue, in its session's order
    N_TRACK   = 8,      //  enter pending_approval: track its expiry and bound hash
    N_NOTIFY  = 16,     //  enter a terminal state: answer whoever waits on it (notify.c)
};

typedef struct {
    const char *from;
    state_event_t ev;
    const char *to;
    int actions;
} transition_t;

//  Leaving `queued` by EV_DISPATCH has no exit action: the dispatcher fired it for the job
//  it is taking off the queue itself.
static const transition_t s_table[] = {
    { "received",         EV_ALLOW,    "queued",           N_ENQUEUE },
    { "received",         EV_DENY,     "denied",           N_NOTIFY },
    { "received",         EV_REVIEW,   "pending_approval", N_TRACK },
    { "pending_approval", EV_QUORUM,   "queued",           X_FORGET | N_ENQUEUE },
    { "pending_approval", EV_DENY,     "denied",           X_FORGET | N_NOTIFY },
    { "pending_approval", EV_EXPIRE,   "expired",          X_FORGET | N_NOTIFY },
    { "pending_approval", EV_CANCEL,   "cancelled",        X_FORGET | N_NOTIFY },
    { "queued",           EV_CANCEL,   "cancelled",        X_UNQUEUE | N_NOTIFY },
    { "queued",           EV_DISPATCH, "running",          0 },
    { "running",          EV_FINISH,   "done",             N_NOTIFY },
    { "running",          EV_LOSE,     "lost",             N_NOTIFY },
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

//  Runs what the transition does besides the store's part, which committed already.
static void
s_act (broker_t *broker, int64_t id, int actions)
{
    if (actions & X_FORGET)
        approvals_forget (broker, id);
    if (actions & X_UNQUEUE)
        dispatch_unqueue (broker, id);
    if (actions & (N_ENQUEUE | N_TRACK))
        state_reenter (broker, id);     //  what the entry needs, as stored
    if (actions & N_NOTIFY)
        notify_finished (broker, id);
}

void
state_resume (broker_t *broker, json_t *row)
{
    const char *state = json_string_value (json_object_get (row, "state"));
    if (state && strcmp (state, "queued") == 0)
        dispatch_enqueue_row (broker, row);
    else if (state && strcmp (state, "pending_approval") == 0)
        approvals_track (broker, row);
}

int
state_reenter (broker_t *broker, int64_t id)
{
    json_t *row = store_get_entry (broker->store, id);
    if (!row)
        return -1;
    state_resume (broker, row);
    json_decref (row);
    return 0;
}

void
state_unwind (broker_t *broker, int64_t id)
{
    dispatch_unqueue (broker, id);
    approvals_forget (broker, id);
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
    if (t)
        s_act (broker, id, t->actions);
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
    s_act (broker, id, t->actions);
    return 0;
}

//  --------------------------------------------------------------------------------------
//  Self-test: the events drive exactly the shared edges, each (state, event) at most once.

int
state_table_test (void)
{
    for (size_t i = 0; i < TABLE; i++) {
        const transition_t *t = &s_table[i];
        CHECK (states_edge_legal (t->from, t->to));
        CHECK (s_lookup (t->from, t->ev) == t);
        //  The actions follow the states: whatever enters queued is enqueued, whatever
        //  leaves pending_approval is forgotten, every terminal state is announced.
        CHECK (!(t->actions & N_ENQUEUE) == !!strcmp (t->to, "queued"));
        CHECK (!(t->actions & N_TRACK) == !!strcmp (t->to, "pending_approval"));
        CHECK (!(t->actions & X_FORGET) == !!strcmp (t->from, "pending_approval"));
        CHECK (!(t->actions & N_NOTIFY) == !states_is_terminal (t->to));
        CHECK (!(t->actions & X_UNQUEUE) == (strcmp (t->from, "queued") || t->ev == EV_DISPATCH));
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
