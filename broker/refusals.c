/*  broker/refusals.c: refused client messages, aggregated per connection into at most one
    `rejected` event a second. Only codes, sizes, counts and the principal are kept: the
    message itself (which may be anything an attacker chose) never reaches the record. */
#include "broker/refusals.h"
#include "broker/backlog.h"
#include "common/check.h"
#include "common/util.h"
#include <unistd.h>

//  A routing id is at most 255 bytes; the principal only tells sockets apart (a connection
//  has one principal), so a long one is cut without merging two connections.
#define KEY_MAX  (2 * 255 + 1 + 64 + 1)

typedef struct {
    char *principal;
    int64_t opened;             //  monotonic ms: the current window began
    int64_t answered;           //  monotonic ms of the last rate-limited answer
    int64_t count;              //  refusals in this window not recorded yet
    int64_t bytes;              //  their total size
    int64_t first_at;           //  wall ms of the first of them
    const char *code;           //  the first one's code (static)
    size_t size;                //  and size
} entry_t;

struct _refusals_t {
    zhashx_t *entries;          //  "ROUTING-HEX/principal" -> entry_t
    entry_t *overflow;          //  every connection past REFUSALS_MAX, while any is active
};

static entry_t *
s_entry_new (const char *principal, int64_t now)
{
    entry_t *e = (entry_t *) zmalloc (sizeof (entry_t));
    e->principal = strdup (principal ? principal : "");
    e->opened = now;
    e->answered = now - REFUSALS_WINDOW_MS;
    return e;
}

static void
s_entry_destroy (void **item)
{
    entry_t *e = (entry_t *) *item;
    if (e) {
        free (e->principal);
        free (e);
        *item = NULL;
    }
}

refusals_t *
refusals_new (void)
{
    refusals_t *self = (refusals_t *) zmalloc (sizeof (refusals_t));
    self->entries = zhashx_new ();
    zhashx_set_destructor (self->entries, s_entry_destroy);
    return self;
}

void
refusals_destroy (refusals_t **self_p)
{
    if (*self_p) {
        refusals_t *self = *self_p;
        zhashx_destroy (&self->entries);
        s_entry_destroy ((void **) &self->overflow);
        free (self);
        *self_p = NULL;
    }
}

static void
s_count (entry_t *e, const char *code, size_t size)
{
    if (e->count++ == 0) {
        e->code = code;
        e->size = size;
        e->first_at = clock_wall_ms ();
    }
    e->bytes += (int64_t) size;
}

//  Appends the window's `rejected` event and starts counting afresh.
static void
s_record (broker_t *broker, entry_t *e, bool overflow)
{
    //  While the database refuses writes the counts go on (bounded, per connection) and are
    //  recorded once it takes them: a refused flood must not grow a WAL nothing can empty.
    if (backlog_down (broker))
        return;
    char first_at[32];
    time_iso8601 (e->first_at, first_at, sizeof first_at);
    json_t *data = json_pack ("{s:s, s:I, s:I, s:I, s:s, s:s}", "code", e->code,
                              "size", (json_int_t) e->size, "count", (json_int_t) e->count,
                              "bytes", (json_int_t) e->bytes, "principal", e->principal,
                              "first_at", first_at);
    if (overflow)
        json_object_set_new (data, "overflow", json_true ());
    //  The overflow entry speaks for many connections: the broker is its actor.
    //  Written now, or kept in order if this write finds the store down (backlog.c).
    backlog_event (broker, 0, "rejected", overflow ? "broker" : e->principal, data);
    json_decref (data);
    e->count = e->bytes = 0;
    e->code = NULL;
}

static void
s_key (char *key, zframe_t *routing, const char *principal)
{
    static const char hex[] = "0123456789ABCDEF";
    const byte *data = routing ? zframe_data (routing) : NULL;
    size_t n = routing ? zframe_size (routing) : 0, at = 0;
    for (size_t i = 0; i < n && i < 255; i++) {
        key[at++] = hex[data[i] >> 4];
        key[at++] = hex[data[i] & 15];
    }
    snprintf (key + at, KEY_MAX - at, "/%.64s", principal ? principal : "");
}

//  The entry of a connection; a new one (fresh set) while the table has room, else the
//  shared overflow entry.
static entry_t *
s_entry_for (refusals_t *self, zframe_t *routing, const char *principal, int64_t now,
             bool *fresh, bool *overflow)
{
    char key[KEY_MAX];
    s_key (key, routing, principal);
    entry_t *e = (entry_t *) zhashx_lookup (self->entries, key);
    *fresh = *overflow = false;
    if (e)
        return e;
    if (zhashx_size (self->entries) < REFUSALS_MAX) {
        e = s_entry_new (principal, now);
        zhashx_insert (self->entries, key, e);
        *fresh = true;
        return e;
    }
    *overflow = true;
    if (!self->overflow) {
        self->overflow = s_entry_new (principal, now);
        *fresh = true;
    }
    return self->overflow;
}

bool
refusals_note (broker_t *broker, zframe_t *routing, const char *principal, const char *code,
               size_t size)
{
    int64_t now = clock_mono_ms ();
    bool fresh, overflow;
    entry_t *e = s_entry_for (broker->refusals, routing, principal, now, &fresh, &overflow);
    s_count (e, code, size);
    if (fresh)                  //  a quiet connection's first refusal is on record at once
        s_record (broker, e, overflow);
    if (now - e->answered < REFUSALS_WINDOW_MS)
        return false;
    e->answered = now;
    return true;
}

//  Closes the window of e if it is over: records its count, or says it went quiet (true).
static bool
s_close_window (broker_t *broker, entry_t *e, bool overflow, int64_t now)
{
    if (now - e->opened < REFUSALS_WINDOW_MS)
        return false;
    if (e->count == 0)
        return true;
    s_record (broker, e, overflow);
    e->opened = now;
    return false;
}

void
refusals_tick (broker_t *broker)
{
    refusals_t *self = broker->refusals;
    int64_t now = clock_mono_ms ();
    zlistx_t *quiet = NULL;
    for (entry_t *e = (entry_t *) zhashx_first (self->entries); e;
         e = (entry_t *) zhashx_next (self->entries)) {
        if (!s_close_window (broker, e, false, now))
            continue;
        if (!quiet) {
            quiet = zlistx_new ();
            zlistx_set_destructor (quiet, (czmq_destructor *) zstr_free);
        }
        zlistx_add_end (quiet, strdup ((const char *) zhashx_cursor (self->entries)));
    }
    for (char *key = quiet ? (char *) zlistx_first (quiet) : NULL; key; key = (char *) zlistx_next (quiet))
        zhashx_delete (self->entries, key);
    zlistx_destroy (&quiet);
    if (self->overflow && s_close_window (broker, self->overflow, true, now))
        s_entry_destroy ((void **) &self->overflow);
}

void
refusals_flush (broker_t *broker)
{
    refusals_t *self = broker->refusals;
    if (!self)
        return;
    for (entry_t *e = (entry_t *) zhashx_first (self->entries); e;
         e = (entry_t *) zhashx_next (self->entries))
        if (e->count > 0)
            s_record (broker, e, false);
    if (self->overflow && self->overflow->count > 0)
        s_record (broker, self->overflow, true);
}

//  -------------------------------------------------------------------------
//  Self-test

//  Sum of `count` over the `rejected` events; *events gets how many there are.
static int64_t
s_recorded (store_t *store, int *events, bool *overflow)
{
    json_t *all = store_events_since (store, 0, 0);
    int64_t sum = 0;
    size_t i;
    json_t *ev;
    bool quoted = false;
    *events = 0;
    json_array_foreach (all, i, ev) {
        json_t *data = json_object_get (ev, "data");
        if (strcmp (json_string_value (json_object_get (ev, "type")), "rejected") != 0)
            continue;
        (*events)++;
        sum += json_integer_value (json_object_get (data, "count"));
        if (json_is_true (json_object_get (data, "overflow")))
            *overflow = true;
        quoted |= json_object_get (data, "message") != NULL;
    }
    CHECK (!quoted);            //  no error text: it may quote the garbage
    json_decref (all);
    return sum;
}

int
refusals_test (void)
{
    char dir[] = "/tmp/replgate-refusals-XXXXXX", path[256];
    CHECK (mkdtemp (dir) != NULL);
    snprintf (path, sizeof path, "%s/t.db", dir);
    broker_t b = { .store = store_new (path, 0), .refusals = refusals_new (),
                   .backlog = backlog_new () };
    CHECK (b.store && b.refusals);
    zframe_t *one = zframe_new ("\0\1\2\3\4", 5), *two = zframe_new ("\0\1\2\3\5", 5);
    //  A burst on one connection: the first is recorded at once, the rest in one event.
    CHECK (refusals_note (&b, one, "mallory", "bad_json", 10));
    int events;
    bool overflow = false;
    int answers = 0;            //  rate-limited answers: the first one only
    for (int i = 0; i < 999; i++)
        answers += refusals_note (&b, one, "mallory", i % 2 ? "bad_utf8" : "unknown_key", 20);
    CHECK (answers == 0);
    CHECK (s_recorded (b.store, &events, &overflow) == 1 && events == 1);
    CHECK (refusals_note (&b, two, "mallory", "bad_json", 10));     //  another connection
    refusals_tick (&b);                                             //  windows still open
    CHECK (s_recorded (b.store, &events, &overflow) == 2 && events == 2);
    refusals_flush (&b);
    CHECK (s_recorded (b.store, &events, &overflow) == 1001 && events == 3 && !overflow);
    json_t *last = store_events_since (b.store, 2, 1);
    json_t *data = json_object_get (json_array_get (last, 0), "data");
    CHECK (json_integer_value (json_object_get (data, "count")) == 999);
    CHECK (strcmp (json_string_value (json_object_get (data, "code")), "unknown_key") == 0);
    CHECK (json_integer_value (json_object_get (data, "bytes")) == 999 * 20);
    json_decref (last);
    //  Past the cap, new connections share one overflow entry: memory stays bounded.
    for (uint32_t i = 0; i < REFUSALS_MAX + 100; i++) {
        zframe_t *r = zframe_new (&i, sizeof i);
        refusals_note (&b, r, "flood", "bad_json", 1);
        zframe_destroy (&r);
    }
    CHECK (zhashx_size (b.refusals->entries) == REFUSALS_MAX && b.refusals->overflow);
    refusals_flush (&b);
    CHECK (s_recorded (b.store, &events, &overflow) == 1001 + REFUSALS_MAX + 100 && overflow);
    zframe_destroy (&one);
    zframe_destroy (&two);
    refusals_destroy (&b.refusals);
    CHECK (b.refusals == NULL);
    backlog_destroy (&b.backlog);
    store_destroy (&b.store);
    CHECK (check_remove_dir (dir) == 0);
    return 0;
}
