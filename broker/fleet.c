/*  broker/fleet.c: the workers as a fleet, an event source beside workers.c. It owns the
    admin ops `workers` (who is there, how loaded, in which state) and `drain` (a worker
    takes no new sessions, finishes its runs, closes its sessions and is told when it holds
    nothing), the list of workers that left (the last FLEET_GONE_MAX, for an hour), and the
    end of queued requests whose labels no worker taking new sessions has had for
    --placement-wait-ms. Placement itself is dispatch.c's; this module only reads it. */
#include "broker/fleet.h"
#include "broker/backlog.h"
#include "broker/wsend.h"
#include "common/proto.h"
#include "common/util.h"

typedef struct {
    int64_t at;                 //  monotonic ms it left
    json_t *entry;              //  its `workers` entry, state lost
} s_gone_t;

struct _fleet_t {
    zlistx_t *gone;             //  s_gone_t, oldest first
    zhashx_t *absent;           //  label set -> int64_t *: monotonic ms since when no live
                                //  worker taking new sessions has it (queued sets only)
};

static void
s_gone_destroy (void **item)
{
    s_gone_t *g = (s_gone_t *) *item;
    if (g) {
        json_decref (g->entry);
        free (g);
        *item = NULL;
    }
}

fleet_t *
fleet_new (void)
{
    fleet_t *self = (fleet_t *) zmalloc (sizeof (fleet_t));
    self->gone = zlistx_new ();
    zlistx_set_destructor (self->gone, s_gone_destroy);
    self->absent = zhashx_new ();
    zhashx_set_destructor (self->absent, (zhashx_destructor_fn *) zstr_free);
    return self;
}

void
fleet_destroy (fleet_t **self_p)
{
    fleet_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->gone);
        zhashx_destroy (&self->absent);
        free (self);
        *self_p = NULL;
    }
}

//  ----------------------------------------------------------------------------------------
//  `workers`

//  The listing entry of a connected worker holding `sessions` sessions.
static json_t *
s_entry (worker_t *w, size_t sessions)
{
    char seen[32];
    time_iso8601 (w->last_seen_wall, seen, sizeof seen);
    json_t *entry = json_pack ("{s:s, s:s?, s:O, s:i, s:i, s:s, s:I, s:s, s:s, s:b}",
                               "name", w->name, "address", w->address, "labels", w->labels,
                               "slots", w->slots, "running", w->running, "sandbox", w->sandbox,
                               "sessions", (json_int_t) sessions, "last_heartbeat", seen,
                               "state", w->draining ? "draining" : "live", "drained", w->drained);
    if (entry)
        json_object_set_new (entry, "memory_mb", w->memory_mb ? json_integer (w->memory_mb)
                                                              : json_null ());
    return entry;
}

//  Forgets the workers that left more than FLEET_GONE_MS ago.
static void
s_expire_gone (fleet_t *self)
{
    int64_t now = clock_mono_ms ();
    s_gone_t *g;
    while ((g = (s_gone_t *) zlistx_first (self->gone)) && now - g->at > FLEET_GONE_MS)
        zlistx_delete (self->gone, zlistx_cursor (self->gone));
}

void
fleet_workers (broker_t *broker, caller_t *c, json_t *msg)
{
    (void) msg;
    if (strcmp (c->role, "admin") != 0)
        return broker_refuse (broker, c, PROTO_E_FORBIDDEN, "only admin keys list workers");
    //  Sessions per worker name, from one pass over the bound sessions.
    json_t *sessions = dispatch_sessions (broker, NULL), *per = json_object (), *s;
    size_t i;
    json_array_foreach (sessions, i, s) {
        const char *name = json_string_value (json_object_get (s, "worker"));
        json_object_set_new (per, name, json_integer (json_integer_value (json_object_get (per, name)) + 1));
    }
    json_t *list = json_array ();
    zlistx_t *keys = dispatch_worker_keys (broker);
    for (char *k = (char *) zlistx_first (keys); k; k = (char *) zlistx_next (keys)) {
        worker_t *w = dispatch_worker (broker, k);
        json_array_append_new (list, s_entry (w, (size_t) json_integer_value (json_object_get (per, w->name))));
    }
    zlistx_destroy (&keys);
    s_expire_gone (broker->fleet);
    for (s_gone_t *g = (s_gone_t *) zlistx_first (broker->fleet->gone); g;
         g = (s_gone_t *) zlistx_next (broker->fleet->gone))
        json_array_append (list, g->entry);
    json_decref (sessions);
    json_decref (per);
    broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_pack ("{s:o}", "workers", list)));
}

void
fleet_left (broker_t *broker, worker_t *w, const char *why)
{
    fleet_t *self = broker->fleet;
    char now[32];
    time_iso8601 (clock_wall_ms (), now, sizeof now);
    json_t *entry = s_entry (w, 0);
    if (!entry)
        return;
    json_object_set_new (entry, "state", json_string ("lost"));
    json_object_set_new (entry, "running", json_integer (0));
    json_object_set_new (entry, "lost_at", json_string (now));
    json_object_set_new (entry, "why", json_string (why));
    s_gone_t *g = (s_gone_t *) zmalloc (sizeof (s_gone_t));
    g->at = clock_mono_ms ();
    g->entry = entry;
    zlistx_add_end (self->gone, g);
    while (zlistx_size (self->gone) > FLEET_GONE_MAX) {
        zlistx_first (self->gone);
        zlistx_delete (self->gone, zlistx_cursor (self->gone));
    }
}

//  ----------------------------------------------------------------------------------------
//  Draining

//  Closes an idle session of draining worker w (held: its dispatch_held entry): the
//  interpreter ends there, the session's next snippet is placed anew and says why.
static void
s_close_drained (broker_t *broker, worker_t *w, json_t *held)
{
    const char *key = json_string_value (json_object_get (held, "key"));
    json_t *close = proto_close (json_string_value (json_object_get (held, "principal")),
                                 json_string_value (json_object_get (held, "session")),
                                 json_string_value (json_object_get (held, "lang")));
    wsend (broker, w->routing, w->name, close);
    json_decref (close);
    char why[160];
    snprintf (why, sizeof why, "drained: worker %.64s was drained", w->name);
    dispatch_unbind (broker, key);
    dispatch_session_ended (broker, key, why);
    json_t *data = json_pack ("{s:O, s:O, s:O, s:s, s:s}", "principal", json_object_get (held, "principal"),
                              "session", json_object_get (held, "session"), "lang",
                              json_object_get (held, "lang"), "worker", w->name, "reason", "drained");
    backlog_event (broker, 0, "session_closed", w->drain_by, data);
    json_decref (data);
}

void
fleet_settle (broker_t *broker, worker_t *w)
{
    if (!w->draining || w->drained)
        return;
    json_t *held = dispatch_held (broker, w), *s;
    size_t i, busy = 0;
    json_array_foreach (held, i, s)
        if (json_is_true (json_object_get (s, "busy")))
            busy++;
        else
            s_close_drained (broker, w, s);
    json_decref (held);
    if (busy || w->running)
        return;
    json_t *drained = proto_drained ();
    wsend (broker, w->routing, w->name, drained);
    json_decref (drained);
    w->drained = true;
    json_t *data = json_pack ("{s:s}", "worker", w->name);
    backlog_event (broker, 0, "worker_drained", w->drain_by, data);
    json_decref (data);
    log_info ("worker %s drained: it holds nothing any more", w->name);
}

//  Marks w draining for `by` and tells it so.
static void
s_start_drain (broker_t *broker, worker_t *w, const char *by)
{
    w->draining = true;
    free (w->drain_by);
    w->drain_by = strdup (by);
    json_t *drain = proto_drain ();
    wsend (broker, w->routing, w->name, drain);
    json_decref (drain);
}

void
fleet_drain (broker_t *broker, caller_t *c, json_t *msg)
{
    if (strcmp (c->role, "admin") != 0)
        return broker_refuse (broker, c, PROTO_E_FORBIDDEN, "only admin keys drain workers");
    const char *name = json_string_value (json_object_get (msg, "name"));
    worker_t *w = dispatch_worker_named (broker, name);
    if (!w)
        return broker_refuse (broker, c, PROTO_E_NOT_FOUND, "no live worker of that name");
    if (!w->draining) {
        s_start_drain (broker, w, c->principal);
        json_t *data = json_pack ("{s:s, s:i}", "worker", w->name, "running", w->running);
        backlog_event (broker, 0, "worker_draining", c->principal, data);
        json_decref (data);
        log_info ("worker %s draining (asked by %s)", w->name, c->principal);
        fleet_settle (broker, w);
    }
    json_t *held = dispatch_held (broker, w);
    json_t *entry = s_entry (w, json_array_size (held));
    json_decref (held);
    broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_pack ("{s:o}", "worker", entry)));
}

void
fleet_joined (broker_t *broker, worker_t *w, const char *drain_by)
{
    fleet_t *self = broker->fleet;
    for (s_gone_t *g = (s_gone_t *) zlistx_first (self->gone); g; ) {
        bool same = strcmp (json_string_value (json_object_get (g->entry, "name")), w->name) == 0;
        void *cursor = zlistx_cursor (self->gone);
        g = (s_gone_t *) zlistx_next (self->gone);
        if (same)
            zlistx_delete (self->gone, cursor);
    }
    if (drain_by) {
        s_start_drain (broker, w, drain_by);
        fleet_settle (broker, w);
    }
}

//  ----------------------------------------------------------------------------------------
//  Requests no worker can take

typedef struct {
    broker_t *broker;
    int64_t now;
    zhashx_t *absent;           //  the new table of absent sets
    zlistx_t *expired;          //  label sets absent for too long
} s_scan_t;

//  One label set with queued requests: its clock runs while no worker can take it.
//  Label-less requests wait for any worker as long as it takes, as they always did.
static void
s_scan_set (const char *labels, size_t queued, void *arg)
{
    s_scan_t *scan = (s_scan_t *) arg;
    if (!*labels || dispatch_placeable (scan->broker, labels))
        return;
    int64_t *was = (int64_t *) zhashx_lookup (scan->broker->fleet->absent, labels);
    int64_t *since = (int64_t *) zmalloc (sizeof (int64_t));
    *since = was ? *was : scan->now;
    zhashx_insert (scan->absent, labels, since);
    if (scan->now - *since >= scan->broker->cfg.placement_wait_ms)
        zlistx_add_end (scan->expired, strdup (labels));
}

//  Cancels the queued requests of a label set no worker has had for too long.
static void
s_cancel_set (broker_t *broker, const char *labels)
{
    char why[400];
    snprintf (why, sizeof why, "no live worker taking new sessions has had labels %.300s for "
              "%d ms (--placement-wait-ms); it never ran", labels, broker->cfg.placement_wait_ms);
    json_t *fields = json_pack ("{s:s}", "message", why);
    zlistx_t *ids = dispatch_queued_with (broker, labels);
    for (char *id = (char *) zlistx_first (ids); id; id = (char *) zlistx_next (ids))
        if (backlog_fire (broker, atoll (id), "queued", EV_CANCEL, "broker", fields) != 0)
            log_warn ("request %s: could not cancel it (no longer queued?)", id);
    log_warn ("cancelled %zu queued requests: %s", zlistx_size (ids), why);
    zlistx_destroy (&ids);
    json_decref (fields);
    zhashx_delete (broker->fleet->absent, labels);
}

void
fleet_tick (broker_t *broker)
{
    zlistx_t *keys = dispatch_worker_keys (broker);
    for (char *k = (char *) zlistx_first (keys); k; k = (char *) zlistx_next (keys))
        fleet_settle (broker, dispatch_worker (broker, k));
    zlistx_destroy (&keys);
    //  The table is made anew from the sets queued now, so sets no longer queued are forgotten.
    s_scan_t scan = { broker, clock_mono_ms (), zhashx_new (), zlistx_new () };
    zhashx_set_destructor (scan.absent, (zhashx_destructor_fn *) zstr_free);
    zlistx_set_destructor (scan.expired, (zlistx_destructor_fn *) zstr_free);
    dispatch_each_labels (broker, s_scan_set, &scan);
    zhashx_destroy (&broker->fleet->absent);
    broker->fleet->absent = scan.absent;
    //  While the store refuses writes nothing is cancelled: the clocks go on.
    for (char *set = (char *) zlistx_first (scan.expired); set && !backlog_down (broker);
         set = (char *) zlistx_next (scan.expired))
        s_cancel_set (broker, set);
    zlistx_destroy (&scan.expired);
}
