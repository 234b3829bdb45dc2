/*  broker/backlog.c: the broker while its database will not take writes.

    The record is the gate's promise, so the broker fails closed. When a write fails because
    of the database (another process holds its lock past BACKLOG_BUSY_MS, the disk is full,
    an I/O error, a read-only file), the broker is DOWN:
    - submits are refused with `busy` before anything is written, and nothing is dispatched
      (queued requests stay queued, in memory as in the database);
    - the writes that must still happen (a result that arrived, requests lost with their
      worker, a decision, a worker's joining) wait here, in the order they happened;
    - the oldest is tried again after 10 ms, then after twice as long each time up to
      BACKLOG_RETRY_MS (with nothing waiting, a probe write that records nothing); once one
      commits, the rest follow in order and the broker is UP.
    The loop keeps serving meanwhile: a write waits at most BACKLOG_BUSY_MS for a lock, never
    for as long as its holder keeps it, so pings, heartbeats and reads are answered. ping
    says which state, since when, why, and how much waits; and because a waiting transition
    is counted with the requests still in its `from` state, ping and the database agree.
    A write refused on its merits (the request was not in the state we saw) is not a fault
    of the store and changes nothing here. */
#include "broker/backlog.h"
#include "broker/decide.h"
#include "broker/notify.h"
#include "common/proto.h"
#include "common/util.h"
#include <sqlite3.h>

typedef enum { B_FIRE, B_DECIDE, B_EVENT, B_REENTER } kind_t;

typedef struct {
    kind_t kind;
    int64_t id;             //  the request (0: an event of none); B_REENTER: the one to read
    const char *from;       //  B_FIRE: a state name from the table (static)
    state_event_t ev;
    char *actor;            //  B_FIRE, B_EVENT; B_DECIDE: the submitter's groups or NULL
    char *type;             //  B_EVENT
    json_t *data;           //  B_FIRE: fields; B_DECIDE: the row; B_EVENT: data
} entry_t;

struct _backlog_t {
    zlistx_t *entries;      //  entry_t, oldest first
    zlistx_t *journal;      //  entry_t: the writes of the open group, should it roll back
    bool down;
    char error[160];        //  why, while down
    char hold[200];         //  a reason to stay down that only its cause can end, or ""
    char since[32];         //  when it went down (ISO-8601)
    int64_t last_try;       //  monotonic ms
    int retry_ms;           //  the wait after last_try before the next try
};

static void
s_entry_destroy (void **item)
{
    entry_t *e = (entry_t *) *item;
    if (e) {
        free (e->actor);
        free (e->type);
        json_decref (e->data);
        free (e);
        *item = NULL;
    }
}

backlog_t *
backlog_new (void)
{
    backlog_t *self = (backlog_t *) zmalloc (sizeof (backlog_t));
    self->entries = zlistx_new ();
    zlistx_set_destructor (self->entries, s_entry_destroy);
    self->journal = zlistx_new ();
    zlistx_set_destructor (self->journal, s_entry_destroy);
    return self;
}

void
backlog_destroy (backlog_t **self_p)
{
    backlog_t *self = *self_p;
    if (self) {
        if (zlistx_size (self->entries))
            log_error ("stopping with %zu writes the database never took (see the log above)",
                       zlistx_size (self->entries));
        zlistx_destroy (&self->entries);
        zlistx_destroy (&self->journal);
        free (self);
        *self_p = NULL;
    }
}

bool
backlog_down (broker_t *broker)
{
    //  Also while kept writes are being written back: nothing may overtake them.
    backlog_t *self = broker->backlog;
    return self->down || self->hold[0] || zlistx_size (self->entries);
}

void
backlog_hold (broker_t *broker, const char *why)
{
    backlog_t *self = broker->backlog;
    if (why && !self->hold[0]) {
        snprintf (self->hold, sizeof self->hold, "checkpoint: %s", why);
        if (!self->down)
            time_iso8601 (clock_wall_ms (), self->since, sizeof self->since);
        log_error ("the database file cannot be written (%s): refusing new work until it can",
                   self->hold);
    }
    else if (!why && self->hold[0]) {
        log_info ("the database file can be written again");
        self->hold[0] = 0;
    }
}

//  DOWN from now, for `what` (with SQLite's error, if fault is one); first try in 10 ms.
static void
s_go_down (backlog_t *self, const char *what, int fault)
{
    self->down = true;
    self->last_try = clock_mono_ms ();
    self->retry_ms = 10;
    snprintf (self->error, sizeof self->error, "%s%s%s", what, fault ? ": " : "",
              fault ? sqlite3_errstr (fault) : "");
    time_iso8601 (clock_wall_ms (), self->since, sizeof self->since);
}

bool
backlog_check (broker_t *broker, const char *what)
{
    backlog_t *self = broker->backlog;
    int fault = store_fault (broker->store);
    if (!fault || self->down)
        return backlog_down (broker);
    s_go_down (self, what, fault);
    log_error ("the database refuses writes (%s): refusing new work, keeping what must be "
               "written, retrying", self->error);
    return true;
}

static entry_t *
s_fire_entry (int64_t id, const char *from, state_event_t ev, const char *actor, json_t *fields)
{
    entry_t *e = (entry_t *) zmalloc (sizeof (entry_t));
    e->kind = B_FIRE;
    e->id = id;
    e->from = from;
    e->ev = ev;
    e->actor = strdup (actor);
    e->data = fields ? json_incref (fields) : NULL;     //  a result's outputs are not copied
    return e;
}

static entry_t *
s_event_entry (int64_t id, const char *type, const char *actor, json_t *data)
{
    entry_t *e = (entry_t *) zmalloc (sizeof (entry_t));
    e->kind = B_EVENT;
    e->id = id;
    e->type = strdup (type);
    e->actor = strdup (actor);
    e->data = data ? json_incref (data) : NULL;
    return e;
}

//  A write that succeeded inside a group is journaled: if the group rolls back, it is kept.
static void
s_written (broker_t *broker, entry_t *e)
{
    if (store_in_group (broker->store))
        zlistx_add_end (broker->backlog->journal, e);
    else
        s_entry_destroy ((void **) &e);
}

int
backlog_fire (broker_t *broker, int64_t id, const char *from, state_event_t ev,
              const char *actor, json_t *fields)
{
    if (!backlog_down (broker)) {
        if (state_fire (broker, id, from, ev, actor, fields, NULL) == 0) {
            if (store_in_group (broker->store))
                s_written (broker, s_fire_entry (id, from, ev, actor, fields));
            return 0;
        }
        if (!backlog_check (broker, "recording a transition"))
            return -1;
    }
    zlistx_add_end (broker->backlog->entries, s_fire_entry (id, from, ev, actor, fields));
    return 0;
}

bool
backlog_group_begin (broker_t *broker)
{
    return !backlog_down (broker) && store_group_begin (broker->store) == 0;
}

bool
backlog_group_end (broker_t *broker)
{
    backlog_t *self = broker->backlog;
    bool committed = store_group_end (broker->store, true) == 0;
    if (!committed) {
        //  Nothing of the group was written: its writes are kept, before anything that
        //  failed inside it, and written again in order once the store takes them.
        //  No SQLite code to name, maybe: still, nothing was written.
        if (!backlog_check (broker, "committing a group"))
            s_go_down (self, "committing a group failed", 0);
        while (zlistx_last (self->journal))
            zlistx_add_start (self->entries, zlistx_detach_cur (self->journal));
    }
    zlistx_purge (self->journal);
    notify_release (broker, committed);
    return committed;
}

//  Applies a decision (ev, fields) to a `received` request: the state it moved to, or
//  "received" if the transition failed.
static const char *
s_apply (broker_t *broker, json_t *row, state_event_t ev, json_t *fields)
{
    const char *to = "received";
    state_fire (broker, json_integer_value (json_object_get (row, "id")), "received", ev,
                "broker", fields, &to);
    return to;
}

//  Decides again, with the policy in force now: a decision that waited for the store.
static const char *
s_decide (broker_t *broker, json_t *row, const char *groups)
{
    json_t *fields = NULL;
    state_event_t ev = decide_policy (broker, row, groups, &fields, NULL);
    const char *to = s_apply (broker, row, ev, fields);
    json_decref (fields);
    return to;
}

const char *
backlog_decide (broker_t *broker, json_t *row, const char *groups, state_event_t ev,
                json_t *fields)
{
    if (!backlog_down (broker)) {
        const char *to = s_apply (broker, row, ev, fields);
        if (strcmp (to, "received") != 0 || !backlog_check (broker, "recording a decision"))
            return to;
    }
    entry_t *e = (entry_t *) zmalloc (sizeof (entry_t));
    e->kind = B_DECIDE;
    e->id = json_integer_value (json_object_get (row, "id"));
    e->actor = groups ? strdup (groups) : NULL;
    e->data = json_deep_copy (row);
    zlistx_add_end (broker->backlog->entries, e);
    return "received";
}

void
backlog_event (broker_t *broker, int64_t request_id, const char *type, const char *actor,
               json_t *data)
{
    if (!backlog_down (broker)) {
        if (store_event (broker->store, request_id, type, actor, data) == 0) {
            if (store_in_group (broker->store))
                s_written (broker, s_event_entry (request_id, type, actor, data));
            return;
        }
        if (!backlog_check (broker, "appending an event"))
            return;
    }
    zlistx_add_end (broker->backlog->entries, s_event_entry (request_id, type, actor, data));
}

void
backlog_reenter (broker_t *broker, int64_t id)
{
    backlog_t *self = broker->backlog;
    if (state_reenter (broker, id) == 0)
        return;
    entry_t *e = (entry_t *) zmalloc (sizeof (entry_t));
    e->kind = B_REENTER;
    e->id = id;
    zlistx_add_end (self->entries, e);
    if (!self->down) {
        s_go_down (self, "reading a request back", store_fault (broker->store));
        log_error ("request %lld cannot be read back (%s): refusing new work until it can",
                   (long long) id, self->error);
    }
}

//  Does a B_REENTER entry once the store takes writes again: 0 done, -1 it still fails. A
//  row that is not there (the store works, and names no fault) is given up, logged.
static int
s_reenter_again (broker_t *broker, int64_t id)
{
    if (store_probe (broker->store) != 0)
        return -1;
    if (state_reenter (broker, id) == 0)
        return 0;
    if (store_fault (broker->store))
        return -1;
    log_error ("request %lld: no row to read back; nothing of it is in memory", (long long) id);
    return 0;
}

void
backlog_refuse (broker_t *broker, caller_t *c, const char *what)
{
    if (backlog_down (broker) || backlog_check (broker, what))
        broker_refuse (broker, c, PROTO_E_BUSY, BACKLOG_BUSY_TEXT);
    else
        broker_refuse (broker, c, PROTO_E_BAD_STATE, "the request changed state meanwhile");
}

//  Writes one waiting entry: 0 done (or refused on its merits: nothing more to do), -1 the
//  store still fails.
static int
s_write (broker_t *broker, entry_t *e)
{
    int rc;
    if (e->kind == B_FIRE)
        rc = state_fire (broker, e->id, e->from, e->ev, e->actor, e->data, NULL);
    else if (e->kind == B_EVENT)
        rc = store_event (broker->store, e->id, e->type, e->actor, e->data);
    else if (e->kind == B_REENTER)
        return s_reenter_again (broker, e->id);
    else
        rc = strcmp (s_decide (broker, e->data, e->actor), "received") == 0 ? -1 : 0;
    return rc == 0 || !store_fault (broker->store) ? 0 : -1;
}

bool
backlog_tick (broker_t *broker)
{
    backlog_t *self = broker->backlog;
    int64_t now = clock_mono_ms ();
    if (!(self->down || zlistx_size (self->entries)) || now - self->last_try < self->retry_ms)
        return false;
    self->last_try = now;
    self->retry_ms = self->retry_ms * 2 > BACKLOG_RETRY_MS ? BACKLOG_RETRY_MS : self->retry_ms * 2;
    //  Nothing to write: a probe tells whether writes commit again.
    if (zlistx_size (self->entries) == 0 && store_probe (broker->store) != 0)
        return false;
    //  Written oldest first; a request decided here is queued but starts only once all are
    //  written (backlog_down holds the dispatcher while any waits).
    entry_t *e;
    while ((e = (entry_t *) zlistx_first (self->entries))) {
        if (s_write (broker, e) != 0) {
            self->down = true;
            return false;
        }
        zlistx_delete (self->entries, zlistx_cursor (self->entries));
    }
    self->down = false;
    log_info ("the database takes writes again (down since %s: %s)", self->since, self->error);
    self->error[0] = 0;
    return true;
}

int
backlog_timeout (broker_t *broker, int cap)
{
    backlog_t *self = broker->backlog;
    if (!(self->down || zlistx_size (self->entries)))
        return cap;
    int64_t wait = self->last_try + self->retry_ms - clock_mono_ms ();
    return wait < 0 ? 0 : wait < cap ? (int) wait : cap;
}

json_t *
backlog_stats (broker_t *broker)
{
    backlog_t *self = broker->backlog;
    json_t *stats = json_pack ("{s:b, s:I}", "writable", !backlog_down (broker),
                               "waiting", (json_int_t) zlistx_size (self->entries));
    if (backlog_down (broker)) {
        json_object_set_new (stats, "error", json_string (self->hold[0] ? self->hold : self->error));
        json_object_set_new (stats, "since", json_string (self->since));
    }
    return stats;
}

size_t
backlog_waiting_from (broker_t *broker, const char *from)
{
    size_t n = 0;
    zlistx_t *entries = broker->backlog->entries;
    for (entry_t *e = (entry_t *) zlistx_first (entries); e; e = (entry_t *) zlistx_next (entries))
        if ((e->kind == B_FIRE && strcmp (e->from, from) == 0)
        ||  (e->kind == B_DECIDE && strcmp (from, "received") == 0))
            n++;
    return n;
}
