/*  broker/pass.c: one pass of the broker's loop, written in one commit.

    A pass reads up to 64 messages from the worker socket, then up to 64 from the client
    socket, then starts what can start (launch.c). What they write (results, submits and
    the policy's decisions, approvals, cancels, reports, events, starts) commits in one
    transaction: each write keeps its own event and hash, and the commit is paid once a
    pass, not once a write. A lone snippet's submit, decision and start share one.
    Nothing is told before that commit. Replies given meanwhile wait here (pass_hold, from
    broker_send_client), and so does what a submit does once it is on record (pass_after:
    its stream, its long poll, its answer); long polls wait in notify.c, `run`s in launch.c.
    After the commit they go out in order.
    If it fails, nothing of the pass was written:
    - the writes made through backlog.c (results, requests lost with their worker, the
      events of revocations, drains, interrupts) record what took effect already:
      backlog.c keeps them and writes them later, and their answers stand;
    - a client message that wrote through the store itself (pass_wrote: submit, cancel,
      approve, deny, report) is answered `busy`, as if the store had refused it then, and
      what its transition did in memory (queued, parked, unqueued, forgotten) is set back
      to what the record says: state_unwind, then backlog_reenter from the stored row (a
      submit has none; a row that cannot be read now is read once the store answers);
    - starts are queued again (launch.c).
    The broker is down then (backlog.c): nothing is dispatched until writes commit again. */
#include "broker/pass.h"
#include "broker/backlog.h"
#include "broker/outbox.h"
#include "broker/state.h"
#include "common/proto.h"

typedef struct {            //  a client message of the pass that wrote through the store
    uint64_t seq;           //  its number in the pass
    zframe_t *routing;      //  its connection
    json_t *rid;
    int64_t id;             //  the request it changed in memory, or 0
    bool refused;           //  answered `busy` already
} message_t;

typedef struct {            //  a held reply, or something to do after the commit
    uint64_t seq;           //  the message under way when it was held (0: none)
    zmsg_t *reply;
    pass_fn *fn;
    void *arg;
} item_t;

struct _pass_t {
    bool open;
    uint64_t seq;           //  the client message under way, numbered from 1 (0: none)
    zlistx_t *messages;     //  message_t, in order: only those that wrote, so that a
                            //  read costs no record
    zlistx_t *items;        //  item_t, in order
};

static void
s_message_destroy (void **item)
{
    message_t *m = (message_t *) *item;
    if (m) {
        zframe_destroy (&m->routing);
        json_decref (m->rid);
        free (m);
        *item = NULL;
    }
}

static void
s_item_destroy (void **item)
{
    item_t *it = (item_t *) *item;
    if (it) {
        zmsg_destroy (&it->reply);
        free (it);
        *item = NULL;
    }
}

pass_t *
pass_new (void)
{
    pass_t *self = (pass_t *) zmalloc (sizeof (pass_t));
    self->messages = zlistx_new ();
    zlistx_set_destructor (self->messages, s_message_destroy);
    self->items = zlistx_new ();
    zlistx_set_destructor (self->items, s_item_destroy);
    return self;
}

void
pass_destroy (pass_t **self_p)
{
    if (*self_p) {
        zlistx_destroy (&(*self_p)->items);
        zlistx_destroy (&(*self_p)->messages);
        free (*self_p);
        *self_p = NULL;
    }
}

bool
pass_begin (broker_t *broker)
{
    pass_t *self = broker->pass;
    self->open = backlog_group_begin (broker);
    self->seq = 0;
    return self->open;
}

bool
pass_open (broker_t *broker)
{
    return broker->pass && broker->pass->open;
}

void
pass_next (broker_t *broker)
{
    pass_t *self = broker->pass;
    if (self->open)
        self->seq++;
}

void
pass_wrote (broker_t *broker, caller_t *c, int64_t id)
{
    pass_t *self = broker->pass;
    message_t *last = (message_t *) zlistx_last (self->messages);
    if (!self->open || !self->seq || (last && last->seq == self->seq))
        return;
    message_t *m = (message_t *) zmalloc (sizeof (message_t));
    m->seq = self->seq;
    zlistx_add_end (self->messages, m);
    m->routing = zframe_dup (c->routing);
    m->rid = c->rid ? json_incref (c->rid) : NULL;
    m->id = id;
}

static item_t *
s_item (pass_t *self)
{
    item_t *it = (item_t *) zmalloc (sizeof (item_t));
    it->seq = self->seq;
    zlistx_add_end (self->items, it);
    return it;
}

void
pass_hold (broker_t *broker, zmsg_t **msg_p)
{
    s_item (broker->pass)->reply = *msg_p;
    *msg_p = NULL;
}

void
pass_after (broker_t *broker, pass_fn *fn, void *arg)
{
    item_t *it = s_item (broker->pass);
    it->fn = fn;
    it->arg = arg;
}

//  A request whose transition rolled back: its place in memory is the record's again.
static void
s_undo (broker_t *broker, int64_t id)
{
    state_unwind (broker, id);
    backlog_reenter (broker, id);
}

//  Sends a held reply, or (the pass did not commit and it answers message m, which wrote)
//  the `busy` that message gets instead.
static void
s_send (broker_t *broker, item_t *it, message_t *m, bool committed)
{
    if (committed || !m || !zframe_eq (zmsg_first (it->reply), m->routing)) {
        outbox_send (broker, &it->reply);
        return;
    }
    if (m->refused)
        return;                         //  one answer a message
    m->refused = true;
    broker_send_client (broker, m->routing, proto_reply_error (m->rid, PROTO_E_BUSY, BACKLOG_BUSY_TEXT));
}

bool
pass_end (broker_t *broker)
{
    pass_t *self = broker->pass;
    if (!self->open)
        return true;
    self->open = false;                 //  from here on, replies go out
    bool committed = backlog_group_end (broker);
    message_t *m;
    if (!committed)
        for (m = (message_t *) zlistx_first (self->messages); m; m = (message_t *) zlistx_next (self->messages))
            if (m->id)
                s_undo (broker, m->id);
    //  Items and messages are both in the pass's order: walk them side by side.
    m = (message_t *) zlistx_first (self->messages);
    item_t *it;
    while ((it = (item_t *) zlistx_first (self->items))) {
        while (m && m->seq < it->seq)
            m = (message_t *) zlistx_next (self->messages);
        if (it->fn)
            it->fn (broker, it->arg, committed);
        else
            s_send (broker, it, m && m->seq == it->seq ? m : NULL, committed);
        zlistx_delete (self->items, zlistx_cursor (self->items));
    }
    zlistx_purge (self->messages);
    self->seq = 0;
    return committed;
}
