/*  broker/notify.c: long polls and event subscribers.
    A long poll is a parked reply: the loop never blocks on a client. Subscribers are pushed
    events from the hash-chained log itself, so a reconnecting client resumes from its last seq
    and misses nothing. */
#include "broker/notify.h"
#include "common/proto.h"
#include "common/util.h"

typedef struct {
    zframe_t *routing;
    json_t *rid;
    int64_t id;             //  request waited on (long polls)
    int64_t deadline;       //  monotonic ms (long polls)
    int64_t cursor;         //  last event seq pushed (subscribers)
} waiter_t;

struct _notify_t {
    zlistx_t *waits;        //  of waiter_t, long polls
    zlistx_t *subs;         //  of waiter_t, subscribers
    int64_t last_push;      //  monotonic ms of the last subscriber pass
};

static void
s_waiter_destroy (void **item)
{
    waiter_t *w = (waiter_t *) *item;
    if (w) {
        zframe_destroy (&w->routing);
        json_decref (w->rid);
        free (w);
        *item = NULL;
    }
}

static waiter_t *
s_waiter_new (zframe_t *routing, json_t *rid)
{
    waiter_t *w = (waiter_t *) zmalloc (sizeof (waiter_t));
    w->routing = zframe_dup (routing);
    w->rid = rid ? json_incref (rid) : NULL;
    return w;
}

notify_t *
notify_new (void)
{
    notify_t *self = (notify_t *) zmalloc (sizeof (notify_t));
    self->waits = zlistx_new ();
    self->subs = zlistx_new ();
    zlistx_set_destructor (self->waits, s_waiter_destroy);
    zlistx_set_destructor (self->subs, s_waiter_destroy);
    return self;
}

void
notify_destroy (notify_t **self_p)
{
    if (*self_p) {
        zlistx_destroy (&(*self_p)->waits);
        zlistx_destroy (&(*self_p)->subs);
        free (*self_p);
        *self_p = NULL;
    }
}

void
notify_reply_request (broker_t *broker, zframe_t *routing, json_t *rid, int64_t id)
{
    json_t *row = store_get (broker->store, id);
    if (row)
        broker_send_client (broker, routing, proto_reply_ok (rid, row));
    else
        broker_send_client (broker, routing,
                            proto_reply_error (rid, PROTO_E_NOT_FOUND, "no such request"));
}

void
notify_wait (broker_t *broker, zframe_t *routing, json_t *rid, int64_t id, int64_t deadline_ms)
{
    waiter_t *w = s_waiter_new (routing, rid);
    w->id = id;
    w->deadline = deadline_ms;
    zlistx_add_end (broker->notify->waits, w);
}

void
notify_finished (broker_t *broker, int64_t id)
{
    zlistx_t *waits = broker->notify->waits;
    waiter_t *w = (waiter_t *) zlistx_first (waits);
    while (w) {
        void *cursor = zlistx_cursor (waits);
        waiter_t *next = (waiter_t *) zlistx_next (waits);
        if (w->id == id) {
            notify_reply_request (broker, w->routing, w->rid, id);
            zlistx_delete (waits, cursor);
        }
        w = next;
    }
}

void
notify_subscribe (broker_t *broker, zframe_t *routing, json_t *rid, int64_t since)
{
    waiter_t *w = s_waiter_new (routing, rid);
    w->cursor = since;
    zlistx_add_end (broker->notify->subs, w);
    broker->notify->last_push = 0;     //  push the backlog on this loop pass
}

//  Pushes up to one batch of events to one subscriber; false if the subscriber is gone.
static bool
s_push (broker_t *broker, waiter_t *w)
{
    json_t *events = store_events_since (broker->store, w->cursor, 256);
    if (!events)
        return true;
    size_t i;
    json_t *event;
    bool alive = true;
    json_array_foreach (events, i, event) {
        json_object_set_new (event, "op", json_string ("event"));
        json_int_t seq = json_integer_value (json_object_get (event, "seq"));
        zmsg_t *msg = zmsg_new ();
        zmsg_addmem (msg, zframe_data (w->routing), zframe_size (w->routing));
        char *text = json_dumps (event, JSON_COMPACT);
        zmsg_addstr (msg, text);
        free (text);
        if (zmsg_send (&msg, broker->clients) != 0) {
            zmsg_destroy (&msg);
            alive = false;
            break;
        }
        w->cursor = seq;
    }
    json_decref (events);
    return alive;
}

void
notify_tick (broker_t *broker)
{
    notify_t *self = broker->notify;
    int64_t now = clock_mono_ms ();
    waiter_t *w = (waiter_t *) zlistx_first (self->waits);
    while (w) {
        void *cursor = zlistx_cursor (self->waits);
        waiter_t *next = (waiter_t *) zlistx_next (self->waits);
        if (w->deadline <= now) {
            notify_reply_request (broker, w->routing, w->rid, w->id);
            zlistx_delete (self->waits, cursor);
        }
        w = next;
    }
    //  Subscribers are served from the log at most every 20 ms: a query per pass, not per event.
    if (zlistx_size (self->subs) == 0 || now - self->last_push < 20)
        return;
    self->last_push = now;
    w = (waiter_t *) zlistx_first (self->subs);
    while (w) {
        void *cursor = zlistx_cursor (self->subs);
        waiter_t *next = (waiter_t *) zlistx_next (self->subs);
        if (!s_push (broker, w)) {
            log_info ("subscriber gone, dropped");
            zlistx_delete (self->subs, cursor);
        }
        w = next;
    }
}

int
notify_timeout (broker_t *broker, int cap)
{
    int64_t now = clock_mono_ms ();
    int64_t best = cap;
    for (waiter_t *w = (waiter_t *) zlistx_first (broker->notify->waits); w;
         w = (waiter_t *) zlistx_next (broker->notify->waits))
        if (w->deadline - now < best)
            best = w->deadline - now;
    if (zlistx_size (broker->notify->subs) && best > 20)
        best = 20;
    return best < 0 ? 0 : (int) best;
}
