/*  broker/notify.c: long polls and event subscribers.
    A long poll is a parked reply: the loop never blocks on a client. Subscribers are pushed
    events from the hash-chained log itself, so a reconnecting client resumes from its last seq
    and misses nothing. An agent key is pushed only the events of its own requests; approver
    and admin keys get every event.

    Subscribers cost nothing while nothing happens: a pass reads the head seq once and stops
    if no cursor is behind it. When there is news, one query from the lowest cursor serves
    every subscriber from memory. A send that fails because the peer is gone drops the
    subscription; one that fails because the peer's pipe is full leaves its cursor where it
    was, so the same events are offered again later (after 20 ms, doubling while the pipe
    stays full: a reader that stopped must not have a batch re-read for it every pass). */
#include "broker/notify.h"
#include "broker/stream.h"
#include "common/proto.h"
#include "common/util.h"
#include <errno.h>

#define SUBS_MAX      10000     //  subscriptions held at once; more are refused (too_many)
//  Per key: a gone agent subscription is only noticed when a push to it fails, and an agent
//  is pushed only its own requests' events, so one key's leaked subscriptions must not be
//  able to fill the table for everyone else.
#define SUBS_PER_KEY  1000
#define SUBS_BATCH    256       //  events read by one query
#define SUBS_QUERIES  4         //  queries per pass: a long backlog is paced, not swallowed
#define SUBS_PASS_MS  20        //  at most one pass per this many ms
#define SUBS_RETRY_MAX_MS 500   //  longest wait before offering a full pipe events again

typedef struct _waiter_t waiter_t;
struct _waiter_t {
    zframe_t *routing;
    json_t *rid;
    int64_t id;             //  request waited on
    int64_t deadline;       //  monotonic ms
    void *handle;           //  in notify_t.waits
    waiter_t *next;         //  the next waiter on the same request
};

typedef struct {
    zframe_t *routing;      //  the connection: one subscription each
    char *key;              //  routing id in hex, its key in the index
    char *principal;
    char *pubkey;           //  the key it authenticated with: a revoked key loses it
    bool sees_all;          //  approver and admin keys; others see only their own requests
    int64_t cursor;         //  last seq pushed, or passed over as not theirs
    int64_t retry_at;       //  its pipe was full: left alone until then (monotonic ms)
    int64_t retry_ms;       //  the wait before retry_at; 0 while its sends go through
    bool gone;              //  its peer is gone: removed at the end of the pass
    void *handle;           //  in notify_t.subs
} sub_t;

struct _notify_t {
    //  Long polls, earliest deadline first, and indexed by request: a finished request and
    //  the next deadline are found without walking every poll (10,000 may wait).
    zlistx_t *waits;        //  of waiter_t (owned), ordered by deadline
    zhashx_t *by_id;        //  request id as text -> first waiter_t on it (not owned)
    zlistx_t *held;         //  ids (as text) that ended inside an uncommitted group
    zlistx_t *subs;         //  of sub_t, subscribers (owned)
    zhashx_t *by_key;       //  routing hex -> sub_t (not owned)
    zhashx_t *per_key;      //  principal -> subscriptions it holds (a count, never 0)
    int64_t last_push;      //  monotonic ms of the last subscriber pass
    int64_t floor;          //  no ready cursor is below this (may be below the least one)
    int64_t wake;           //  earliest retry_at of a full pipe (INT64_MAX if none)
    int64_t now;            //  the time of the pass under way
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

static int
s_by_deadline (const void *a, const void *b)
{
    int64_t x = ((const waiter_t *) a)->deadline, y = ((const waiter_t *) b)->deadline;
    return x < y ? -1 : x > y;
}

static void
s_sub_destroy (void **item)
{
    sub_t *sub = (sub_t *) *item;
    if (sub) {
        zframe_destroy (&sub->routing);
        free (sub->key);
        free (sub->principal);
        free (sub->pubkey);
        free (sub);
        *item = NULL;
    }
}

notify_t *
notify_new (void)
{
    notify_t *self = (notify_t *) zmalloc (sizeof (notify_t));
    self->waits = zlistx_new ();
    zlistx_set_comparator (self->waits, s_by_deadline);
    self->by_id = zhashx_new ();
    self->held = zlistx_new ();
    zlistx_set_destructor (self->held, (zlistx_destructor_fn *) zstr_free);
    self->subs = zlistx_new ();
    self->by_key = zhashx_new ();
    self->per_key = zhashx_new ();
    self->wake = INT64_MAX;
    zlistx_set_destructor (self->waits, s_waiter_destroy);
    zlistx_set_destructor (self->subs, s_sub_destroy);
    return self;
}

void
notify_destroy (notify_t **self_p)
{
    if (*self_p) {
        zhashx_destroy (&(*self_p)->by_id);
        zlistx_destroy (&(*self_p)->held);
        zlistx_destroy (&(*self_p)->waits);
        zhashx_destroy (&(*self_p)->by_key);
        zhashx_destroy (&(*self_p)->per_key);
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
    notify_t *self = broker->notify;
    waiter_t *w = s_waiter_new (routing, rid);
    w->id = id;
    w->deadline = deadline_ms;
    //  Searched from the end: deadlines mostly arrive in order, so this is O(1) then.
    w->handle = zlistx_insert (self->waits, w, false);
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    w->next = (waiter_t *) zhashx_lookup (self->by_id, key);
    zhashx_update (self->by_id, key, w);
}

//  Ends the long polls on request id: each answered with the request as it is now, or
//  (answer false) forgotten.
static void
s_end_waits (broker_t *broker, int64_t id, bool answer)
{
    notify_t *self = broker->notify;
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    waiter_t *w = (waiter_t *) zhashx_lookup (self->by_id, key);
    zhashx_delete (self->by_id, key);
    while (w) {
        waiter_t *next = w->next;
        if (answer)
            notify_reply_request (broker, w->routing, w->rid, id);
        zlistx_delete (self->waits, w->handle);
        w = next;
    }
}

void
notify_finished (broker_t *broker, int64_t id)
{
    notify_t *self = broker->notify;
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    if (store_in_group (broker->store)) {       //  not committed yet: nobody is told
        zlistx_add_end (self->held, strdup (key));
        return;
    }
    stream_end (broker, id);            //  its last output goes before its answer
    s_end_waits (broker, id, true);
}

void
notify_forget (broker_t *broker, int64_t id)
{
    s_end_waits (broker, id, false);
}

void
notify_release (broker_t *broker, bool committed)
{
    zlistx_t *held = broker->notify->held;
    if (!zlistx_size (held))
        return;
    broker->notify->held = zlistx_new ();
    zlistx_set_destructor (broker->notify->held, (zlistx_destructor_fn *) zstr_free);
    for (char *id = (char *) zlistx_first (held); committed && id; id = (char *) zlistx_next (held))
        notify_finished (broker, atoll (id));
    zlistx_destroy (&held);
}

//  Answers the waiter whose deadline passed (the first of the list) and forgets it.
static void
s_expire (broker_t *broker, waiter_t *w)
{
    notify_t *self = broker->notify;
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) w->id);
    waiter_t *first = (waiter_t *) zhashx_lookup (self->by_id, key);
    if (first == w) {
        if (w->next)
            zhashx_update (self->by_id, key, w->next);
        else
            zhashx_delete (self->by_id, key);
    }
    else
        for (waiter_t *p = first; p; p = p->next)
            if (p->next == w) {
                p->next = w->next;
                break;
            }
    notify_reply_request (broker, w->routing, w->rid, w->id);
    zlistx_delete (self->waits, w->handle);
}

//  Subscriptions `principal` holds.
static size_t
s_held (notify_t *self, const char *principal)
{
    return (size_t) (uintptr_t) zhashx_lookup (self->per_key, principal);
}

static void
s_count (notify_t *self, const char *principal, int delta)
{
    size_t held = s_held (self, principal) + (size_t) delta;
    if (held)
        zhashx_update (self->per_key, principal, (void *) (uintptr_t) held);
    else
        zhashx_delete (self->per_key, principal);
}

//  A new subscription for the caller's connection, or NULL (logged) if a bound is reached.
static sub_t *
s_sub_new (notify_t *self, caller_t *c, char *key)
{
    if (zlistx_size (self->subs) >= SUBS_MAX || s_held (self, c->principal) >= SUBS_PER_KEY) {
        log_warn ("subscription from %s refused: %zu held in all, %zu by this key (bounds %d, %d)",
                  c->principal, zlistx_size (self->subs), s_held (self, c->principal),
                  SUBS_MAX, SUBS_PER_KEY);
        return NULL;
    }
    sub_t *sub = (sub_t *) zmalloc (sizeof (sub_t));
    sub->routing = zframe_dup (c->routing);
    sub->key = key;
    sub->principal = strdup (c->principal);
    sub->pubkey = strdup (c->pubkey ? c->pubkey : "");
    sub->sees_all = streq (c->role, "approver") || streq (c->role, "admin");
    sub->handle = zlistx_add_end (self->subs, sub);
    zhashx_insert (self->by_key, sub->key, sub);
    s_count (self, sub->principal, 1);
    return sub;
}

void
notify_forget_key (broker_t *broker, const char *pubkey)
{
    for (sub_t *sub = (sub_t *) zlistx_first (broker->notify->subs); sub;
         sub = (sub_t *) zlistx_next (broker->notify->subs))
        if (streq (sub->pubkey, pubkey))
            sub->gone = true;       //  no further push; removed at the next sweep
}

int
notify_subscribe (broker_t *broker, caller_t *c, int64_t since)
{
    notify_t *self = broker->notify;
    char *key = zframe_strhex (c->routing);
    sub_t *sub = (sub_t *) zhashx_lookup (self->by_key, key);
    if (sub)
        free (key);         //  the same connection again: its one subscription starts over
    else if (!(sub = s_sub_new (self, c, key))) {
        free (key);
        return -1;
    }
    sub->cursor = since;
    sub->retry_at = sub->retry_ms = 0;
    sub->gone = false;
    if (since < self->floor)
        self->floor = since;
    self->last_push = 0;    //  push the backlog on this loop pass
    return 0;
}

//  One event of a batch, serialized only if someone may see it.
typedef struct {
    int64_t seq;
    const char *owner;      //  principal of its request, NULL if about none (owned by json)
    json_t *event;          //  borrowed from the batch
    char *text;             //  {"op":"event", ...} without owner, made on first use
} item_t;

//  The text pushed for an item: the event as the log holds it, owner stripped (it is ours,
//  not the record's). NULL if it cannot be made (logged).
static const char *
s_item_text (item_t *item)
{
    if (!item->text) {
        json_t *copy = json_copy (item->event);
        if (copy && json_object_del (copy, "owner") == 0
        &&  json_object_set_new (copy, "op", json_string ("event")) == 0)
            item->text = json_dumps (copy, JSON_COMPACT);
        json_decref (copy);
        if (!item->text)
            log_error ("event %lld: cannot serialize it for subscribers", (long long) item->seq);
    }
    return item->text;
}

int
notify_push (broker_t *broker, zframe_t *routing, const char *text)
{
    void *handle = zsock_resolve (broker->clients);
    if (zmq_send (handle, zframe_data (routing), zframe_size (routing), ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1
    ||  zmq_send (handle, text, strlen (text), ZMQ_DONTWAIT) == -1)
        return zmq_errno ();
    return 0;
}

static bool
s_may_see (sub_t *sub, item_t *item)
{
    return sub->sees_all || (item->owner && streq (item->owner, sub->principal));
}

//  A full pipe: the subscriber is offered the same events again later, ever less often
//  while it stays full.
static void
s_retry_later (sub_t *sub, int64_t now)
{
    sub->retry_ms = sub->retry_ms ? sub->retry_ms * 2 : SUBS_PASS_MS;
    if (sub->retry_ms > SUBS_RETRY_MAX_MS)
        sub->retry_ms = SUBS_RETRY_MAX_MS;
    sub->retry_at = now + sub->retry_ms;
}

static bool
s_ready (notify_t *self, sub_t *sub)
{
    return !sub->gone && sub->retry_at <= self->now;
}

//  Moves one subscriber's cursor along the batch, pushing what it may see. Stops at a full
//  pipe (cursor kept there, retried later) or a gone peer (marked for removal).
static void
s_deliver (broker_t *broker, sub_t *sub, item_t *items, size_t count)
{
    if (count == 0 || sub->cursor < items[0].seq - 1)
        return;             //  the batch starts past its cursor: serving it would leave a gap
    for (size_t i = 0; i < count; i++) {
        if (items[i].seq <= sub->cursor)
            continue;
        if (s_may_see (sub, &items[i])) {
            const char *text = s_item_text (&items[i]);
            int rc = text ? notify_push (broker, sub->routing, text) : EAGAIN;
            if (rc == EAGAIN) {
                s_retry_later (sub, broker->notify->now);
                return;
            }
            if (rc != 0) {
                sub->gone = true;
                return;
            }
            sub->retry_ms = 0;
        }
        sub->cursor = items[i].seq;
    }
}

//  The least cursor of the subscribers ready to serve (not gone, pipe not full), or `head`
//  if none is behind it.
static int64_t
s_least_cursor (notify_t *self, int64_t head)
{
    int64_t least = head;
    for (sub_t *sub = (sub_t *) zlistx_first (self->subs); sub; sub = (sub_t *) zlistx_next (self->subs))
        if (s_ready (self, sub) && sub->cursor < least)
            least = sub->cursor;
    return least;
}

//  Reads the events after `from` once and offers them to every subscriber to serve. Returns
//  how many events were read (0 at the end of the log or on error).
static size_t
s_fan_out (broker_t *broker, int64_t from)
{
    notify_t *self = broker->notify;
    json_t *events = store_events_since (broker->store, from, SUBS_BATCH);
    size_t count = json_array_size (events);
    item_t *items = count ? (item_t *) zmalloc (count * sizeof (item_t)) : NULL;
    for (size_t i = 0; i < count; i++) {
        json_t *event = json_array_get (events, i);
        items[i].seq = json_integer_value (json_object_get (event, "seq"));
        items[i].owner = json_string_value (json_object_get (event, "owner"));
        items[i].event = event;
    }
    for (sub_t *sub = (sub_t *) zlistx_first (self->subs); sub; sub = (sub_t *) zlistx_next (self->subs))
        if (s_ready (self, sub))
            s_deliver (broker, sub, items, count);
    for (size_t i = 0; i < count; i++)
        free (items[i].text);
    free (items);
    json_decref (events);
    return count;
}

//  Removes the subscriptions whose peer is gone; recomputes the floor of the ready ones and
//  when the first full pipe is due again.
static void
s_sweep (notify_t *self, int64_t head)
{
    size_t dropped = 0;
    int64_t floor = head;
    self->wake = INT64_MAX;
    sub_t *sub = (sub_t *) zlistx_first (self->subs);
    while (sub) {
        sub_t *next = (sub_t *) zlistx_next (self->subs);
        if (sub->gone) {
            s_count (self, sub->principal, -1);
            zhashx_delete (self->by_key, sub->key);
            zlistx_delete (self->subs, sub->handle);
            dropped++;
        }
        else if (sub->retry_at > self->now) {
            if (sub->retry_at < self->wake)
                self->wake = sub->retry_at;
        }
        else if (sub->cursor < floor)
            floor = sub->cursor;
        sub = next;
    }
    self->floor = floor;
    if (dropped)
        log_info ("%zu subscriber%s gone, dropped; %zu left", dropped, dropped == 1 ? "" : "s",
                  zlistx_size (self->subs));
}

//  One subscriber pass: nothing but a head read unless a ready cursor is behind the head or
//  a full pipe is due for another try.
static void
s_serve (broker_t *broker, int64_t now)
{
    notify_t *self = broker->notify;
    int64_t head = store_head_seq (broker->store);
    if (head < 0 || (self->floor >= head && now < self->wake))
        return;
    self->now = now;
    int64_t from = s_least_cursor (self, head);
    for (int q = 0; q < SUBS_QUERIES && from < head; q++) {
        if (s_fan_out (broker, from) == 0)
            break;
        from = s_least_cursor (self, head);
    }
    s_sweep (self, head);
}

void
notify_tick (broker_t *broker)
{
    notify_t *self = broker->notify;
    int64_t now = clock_mono_ms ();
    waiter_t *w;
    while ((w = (waiter_t *) zlistx_first (self->waits)) && w->deadline <= now)
        s_expire (broker, w);
    //  Subscribers are served from the log at most every SUBS_PASS_MS: queries per pass, not
    //  per event or per subscriber.
    if (zlistx_size (self->subs) == 0 || now - self->last_push < SUBS_PASS_MS)
        return;
    self->last_push = now;
    s_serve (broker, now);
}

int
notify_timeout (broker_t *broker, int cap)
{
    int64_t now = clock_mono_ms ();
    int64_t best = cap;
    waiter_t *w = (waiter_t *) zlistx_first (broker->notify->waits);
    if (w && w->deadline - now < best)
        best = w->deadline - now;
    if (zlistx_size (broker->notify->subs) && best > SUBS_PASS_MS)
        best = SUBS_PASS_MS;
    return best < 0 ? 0 : (int) best;
}
