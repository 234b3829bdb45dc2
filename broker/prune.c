/*  broker/prune.c: retention (`replgate prune --before T`) as an operation of the broker,
    which is the database's only writer: every `pruned` event's actor is the admin key that
    asked, and no second process ever holds the write lock while the broker waits for it.

    One prune runs at a time, one batch (STORE_PRUNE_BATCH requests, one transaction) per pass
    of the loop, so a prune of years of history holds the loop one batch at a time and the
    loop's other work goes on in between. The admin is answered once a batch comes back short
    (nothing left). While the database refuses writes the prune waits with everything else;
    a batch the database fails for another reason ends it with what was pruned so far. */
#include "broker/prune.h"
#include "broker/backlog.h"
#include "common/proto.h"
#include "common/util.h"

struct _prune_t {
    zframe_t *routing;          //  who asked; NULL when no prune runs
    json_t *rid;
    char *actor;
    char before[32];
    int64_t count;              //  requests pruned so far
};

prune_t *
prune_new (void)
{
    prune_t *self = calloc (1, sizeof *self);
    assert (self);
    return self;
}

static void
s_end (prune_t *self)
{
    zframe_destroy (&self->routing);
    json_decref (self->rid);
    self->rid = NULL;
    zstr_free (&self->actor);
    self->count = 0;
}

void
prune_destroy (prune_t **self_p)
{
    if (!*self_p)
        return;
    s_end (*self_p);
    free (*self_p);
    *self_p = NULL;
}

void
prune_start (broker_t *broker, caller_t *c, json_t *msg)
{
    prune_t *self = broker->prune;
    int64_t before = time_parse_iso8601 (json_string_value (json_object_get (msg, "before")));
    if (strcmp (c->role, "admin") != 0)
        broker_refuse (broker, c, PROTO_E_FORBIDDEN, "only admin keys may prune");
    else if (before < 0)
        broker_refuse (broker, c, PROTO_E_BAD_VALUE, "field 'before' must be a time as "
                       "2026-11-28T00:00:00.000Z");
    else if (self->routing)
        broker_refuse (broker, c, PROTO_E_BUSY, "a prune is under way; retry when it is done");
    else {
        self->routing = zframe_dup (c->routing);
        self->rid = json_incref (c->rid);
        self->actor = strdup (c->principal);
        assert (self->actor);
        time_iso8601 (before, self->before, sizeof self->before);
        log_info ("%s prunes requests that finished before %s", c->principal, self->before);
    }
}

void
prune_step (broker_t *broker)
{
    prune_t *self = broker->prune;
    if (!self->routing || backlog_down (broker))
        return;
    int64_t n = 0;
    if (store_prune_batch (broker->store, self->before, self->actor, &n) != 0) {
        if (backlog_check (broker, "prune"))
            return;             //  the database is down: the batch is tried again once it is back
        log_warn ("prune before %s ended after %lld requests: the store refused a batch",
                  self->before, (long long) self->count);
        broker_send_client (broker, self->routing, proto_reply_error (self->rid, PROTO_E_INTERNAL,
                            "the store refused a batch; what was pruned before it stays pruned"));
        s_end (self);
        return;
    }
    self->count += n;
    if (n == STORE_PRUNE_BATCH)
        return;
    log_info ("pruned %lld requests that finished before %s", (long long) self->count, self->before);
    broker_send_client (broker, self->routing, proto_reply_ok (self->rid, json_pack (
        "{s:I, s:s}", "pruned", (json_int_t) self->count, "before", self->before)));
    s_end (self);
}

bool
prune_busy (broker_t *broker)
{
    return broker->prune->routing != NULL;
}
