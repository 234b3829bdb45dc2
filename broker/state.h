/*  broker/state.h: the request state machine (see the notes at the top of state.c). */
#ifndef RG_STATE_H
#define RG_STATE_H
#include "broker/broker.h"

typedef enum {
    EV_ALLOW,       //  policy allowed it
    EV_DENY,        //  policy denied it, or an approver denied it
    EV_REVIEW,      //  policy parked it for approval
    EV_QUORUM,      //  enough approvals arrived
    EV_EXPIRE,      //  the approval time to live ran out
    EV_CANCEL,      //  the owner or an admin cancelled it
    EV_DISPATCH,    //  a worker slot took it
    EV_FINISH,      //  the worker sent its result
    EV_LOSE,        //  the worker died, or the broker restarted, while it ran
} state_event_t;

//  Moves request `id` from state `from` on event `ev`, in one transaction that also appends
//  the event (store_transition). `fields` (may be NULL, not consumed) carries what the
//  transition records. Returns 0 and sets *to; -1 if the table has no such transition or the
//  store refused (the request is then unchanged). Terminal transitions wake waiters.
int state_fire (broker_t *broker, int64_t id, const char *from, state_event_t ev,
                const char *actor, json_t *fields, const char **to);

//  Records one approver's decision (store_approve) and, when `ev` is not -1, moves the
//  request out of pending_approval on that event (EV_QUORUM or EV_DENY) in the same
//  transaction. Same contract as state_fire otherwise.
int state_fire_approval (broker_t *broker, int64_t id, int ev, json_t *approval,
                         json_t *fields, const char **to);

//  Re-enters the state a stored row is in, as after a restart (queued: on the run queue;
//  pending_approval: its expiry tracked); nothing for other states. `row` (store_get's, or
//  at least STORE_ENTRY_COLUMNS) is not consumed.
void state_resume (broker_t *broker, json_t *row);

//  state_resume from request id's stored row, read now. 0, or -1 if it could not be read (no
//  such request, or the store failed: store_fault says which).
int state_reenter (broker_t *broker, int64_t id);

//  Undoes the entry actions of request id, whose transitions' commit failed after all (a
//  group rolled back): off the run queue, its expiry no longer tracked.
void state_unwind (broker_t *broker, int64_t id);

//  True if the table moves a request in state `from` on event `ev` (NULL: false).
bool state_can_fire (const char *from, state_event_t ev);

int state_table_test (void);

#endif
