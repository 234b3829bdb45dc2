/*  broker/dispatch.c: which worker runs what.
    A session is (owner, lang, name): the principal that submitted is part of its key, so two
    principals that pick the same name never share an interpreter. A session is sticky to the
    worker that holds its interpreter, because the state lives there. When an interpreter ends
    between snippets (evicted, exited, its worker lost) its next job carries the reason, so
    its result says session_reset.
    Each session's requests wait in its own FIFO (runq.c), so its snippets run in submission
    order; a session waits while it runs one, or while its worker has no free slot. What
    starts next is taken from ready lists, never found by scanning the queue.
    Placement: a session no worker holds goes where its next job's labels (its rule's
    placement) all are, among live workers that are not draining: the most free slots, then
    the most memory. Such sessions wait per label set, so one no worker can take holds up
    no other; what a job waits for when nobody can take it is said by dispatch_waiting.
    This is a service: it changes no state in the store and sends nothing; workers.c asks it
    what to start, fires the transitions and speaks to the workers. */
#include "broker/dispatch.h"
#include "common/util.h"

struct _dispatch_t {
    zhashx_t *workers;      //  key -> worker_t
    runq_t *runq;           //  queued jobs per session, sessions bound to workers
    zhashx_t *running;      //  id as text -> job_t
    zhashx_t *ended;        //  session key -> why its interpreter ended (until it runs again)
};

static void
s_worker_destroy (void **item)
{
    worker_t *w = (worker_t *) *item;
    if (!w)
        return;
    zframe_destroy (&w->routing);
    json_decref (w->labels);
    free (w->key);
    free (w->name);
    free (w->sandbox);
    free (w->address);
    free (w->drain_by);
    free (w);
    *item = NULL;
}

dispatch_t *
dispatch_new (void)
{
    dispatch_t *self = (dispatch_t *) zmalloc (sizeof (dispatch_t));
    self->workers = zhashx_new ();
    zhashx_set_destructor (self->workers, s_worker_destroy);
    self->runq = runq_new ();
    self->running = zhashx_new ();
    zhashx_set_destructor (self->running, (zhashx_destructor_fn *) job_destroy);
    self->ended = zhashx_new ();
    zhashx_set_destructor (self->ended, (zhashx_destructor_fn *) zstr_free);
    return self;
}

void
dispatch_destroy (dispatch_t **self_p)
{
    dispatch_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->workers);
        runq_destroy (&self->runq);
        zhashx_destroy (&self->running);
        zhashx_destroy (&self->ended);
        free (self);
        *self_p = NULL;
    }
}

void
dispatch_session_ended (broker_t *broker, const char *key, const char *why)
{
    dispatch_t *self = broker->dispatch;
    if (zhashx_size (self->ended) >= 100000)
        zhashx_purge (self->ended);     //  a bound; losing old notes costs only a reason text
    zhashx_update (self->ended, key, strdup (why));
}

//  ----------------------------------------------------------------------------------------
//  The queue

void
dispatch_enqueue_row (broker_t *broker, json_t *row)
{
    const char *owner = json_string_value (json_object_get (row, "principal"));
    const char *session = json_string_value (json_object_get (row, "session"));
    const char *lang = json_string_value (json_object_get (row, "lang"));
    const char *code = json_string_value (json_object_get (row, "code"));
    if (owner && session && lang && code)
        runq_add (broker->dispatch->runq, job_new (json_integer_value (json_object_get (row, "id")),
                                                   owner, session, lang, code,
                                                   json_object_get (row, "limits")));
}

bool
dispatch_unqueue (broker_t *broker, int64_t id)
{
    job_t *job = runq_remove (broker->dispatch->runq, id);
    bool found = job != NULL;
    job_destroy (&job);
    return found;
}

bool
dispatch_fits (worker_t *w, const char *labels)
{
    for (const char *at = labels; *at; ) {
        size_t len = strcspn (at, ",");
        bool found = false;
        size_t i;
        json_t *have;
        json_array_foreach (w->labels, i, have)
            found |= json_string_length (have) == len && memcmp (json_string_value (have), at, len) == 0;
        if (!found)
            return false;
        at += len + (at[len] == ',');
    }
    return true;
}

//  Of the workers not draining that have `labels`, the one with the most free slots (then
//  the most memory), or NULL. With `any_slot` false, only one with a free slot now.
static worker_t *
s_best (dispatch_t *self, const char *labels, bool any_slot)
{
    worker_t *best = NULL;
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers)) {
        int free_slots = w->slots - w->running;
        if (w->draining || (!any_slot && free_slots <= 0) || !dispatch_fits (w, labels))
            continue;
        int best_free = best ? best->slots - best->running : 0;
        if (!best || free_slots > best_free
        ||  (free_slots == best_free && w->memory_mb > best->memory_mb))
            best = w;
    }
    return best;
}

bool
dispatch_placeable (broker_t *broker, const char *labels)
{
    return s_best (broker->dispatch, labels, true) != NULL;
}

//  The unbound session to start next: the longest waiting one of the label sets that some
//  worker can take now (one call per set, not per session).
typedef struct {
    dispatch_t *self;
    const char *key;
    worker_t *w;
    uint64_t order;
} s_pick_t;

static void
s_consider (const char *labels, const char *key, uint64_t order, void *arg)
{
    s_pick_t *pick = (s_pick_t *) arg;
    worker_t *w;
    if ((!pick->key || order < pick->order) && (w = s_best (pick->self, labels, false))) {
        pick->key = key;
        pick->w = w;
        pick->order = order;
    }
}

job_t *
dispatch_next (broker_t *broker, worker_t **w_p)
{
    dispatch_t *self = broker->dispatch;
    const char *key;
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers))
        if (!w->draining && w->running < w->slots && (key = runq_ready (self->runq, w->key))) {
            *w_p = w;
            return runq_head (self->runq, key);
        }
    s_pick_t pick = { self, NULL, NULL, 0 };
    runq_each_set (self->runq, s_consider, &pick);
    if (!pick.key)
        return NULL;
    *w_p = pick.w;
    return runq_head (self->runq, pick.key);
}

void
dispatch_each_labels (broker_t *broker, runq_count_fn *fn, void *arg)
{
    runq_each_labels (broker->dispatch->runq, fn, arg);
}

zlistx_t *
dispatch_queued_with (broker_t *broker, const char *labels)
{
    return runq_ids_with (broker->dispatch->runq, labels);
}

const char *
dispatch_waiting (broker_t *broker, int64_t id, char *buf, size_t size)
{
    dispatch_t *self = broker->dispatch;
    job_t *job = runq_job (self->runq, id);
    char key[RUNQ_KEY_MAX];
    if (!job)
        return NULL;
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    if (runq_bound (self->runq, key) || s_best (self, job->labels, true))
        return NULL;
    bool draining = false;
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers))
        draining |= dispatch_fits (w, job->labels);
    if (*job->labels)
        snprintf (buf, size, draining ? "the live workers with labels %s are draining"
                  : "no live worker has labels %s", job->labels);
    else
        snprintf (buf, size, "%s", draining ? "every live worker is draining" : "no live worker");
    return buf;
}

void
dispatch_start (broker_t *broker, job_t *job, worker_t *w, int64_t deadline)
{
    dispatch_t *self = broker->dispatch;
    char key[RUNQ_KEY_MAX], id[24];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    job = runq_start (self->runq, key, w->key);
    job->deadline = deadline;
    job->worker = strdup (w->key);
    w->running++;
    const char *why = (const char *) zhashx_lookup (self->ended, key);
    if (why) {
        job->reset_reason = strdup (why);
        zhashx_delete (self->ended, key);
    }
    snprintf (id, sizeof id, "%lld", (long long) job->id);
    zhashx_insert (self->running, id, job);
    char now[32];
    time_iso8601 (clock_wall_ms (), now, sizeof now);
    json_t *note = json_pack ("{s:s}", "last_used", now);
    runq_note (self->runq, key, note);
    json_decref (note);
}

//  ----------------------------------------------------------------------------------------
//  Running jobs

job_t *
dispatch_running (broker_t *broker, worker_t *w, int64_t id)
{
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    job_t *job = (job_t *) zhashx_lookup (broker->dispatch->running, key);
    return job && strcmp (job->worker, w->key) == 0 ? job : NULL;
}

zlistx_t *
dispatch_overdue (broker_t *broker, int64_t now)
{
    dispatch_t *self = broker->dispatch;
    zlistx_t *late = zlistx_new ();
    for (job_t *job = (job_t *) zhashx_first (self->running); job;
         job = (job_t *) zhashx_next (self->running))
        if (!job->orphan && now > job->deadline && zhashx_lookup (self->workers, job->worker))
            zlistx_add_end (late, job);
    return late;
}

void
dispatch_release (broker_t *broker, worker_t *w, job_t *job)
{
    char key[RUNQ_KEY_MAX], id[24];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    runq_done (broker->dispatch->runq, key);
    w->running--;
    snprintf (id, sizeof id, "%lld", (long long) job->id);
    zhashx_delete (broker->dispatch->running, id);
}

//  ----------------------------------------------------------------------------------------
//  Sessions

const char *
dispatch_bound (broker_t *broker, const char *key)
{
    return runq_bound (broker->dispatch->runq, key);
}

bool
dispatch_busy (broker_t *broker, const char *key)
{
    return runq_busy (broker->dispatch->runq, key);
}

void
dispatch_note (broker_t *broker, const char *key, json_t *fields)
{
    runq_note (broker->dispatch->runq, key, fields);
}

typedef struct {
    broker_t *broker;
    const char *owner;          //  NULL: everyone's
    const char *worker;         //  NULL: every worker's
    json_t *list;
} s_listing_t;

//  {lang, session, principal} of a session key, or NULL if the key is not one.
static json_t *
s_key_fields (const char *key)
{
    runq_key_parts_t p;
    return runq_key_split (key, &p) == 0
         ? json_pack ("{s:s%, s:s%, s:s%}", "lang", p.part [0], p.len [0], "session", p.part [1],
                      p.len [1], "principal", p.part [2], p.len [2])
         : NULL;
}

//  One entry of `sessions`.
static void
s_list_one (const char *key, const char *worker, bool busy, json_t *note, void *arg)
{
    s_listing_t *l = (s_listing_t *) arg;
    json_t *entry = s_key_fields (key);
    if (!entry || (l->owner && strcmp (json_string_value (json_object_get (entry, "principal")),
                                       l->owner) != 0)) {
        json_decref (entry);
        return;
    }
    worker_t *w = dispatch_worker (l->broker, worker);
    json_object_set_new (entry, "worker", json_string (w ? w->name : "?"));
    json_object_set_new (entry, "state", json_string (busy ? "running" : "idle"));
    static const char *fields[] = { "last_used", "execution_count", "memory_kb" };
    for (size_t i = 0; entry && i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = note ? json_object_get (note, fields[i]) : NULL;
        json_object_set (entry, fields[i], v ? v : json_null ());
    }
    if (entry)
        json_array_append_new (l->list, entry);
}

json_t *
dispatch_sessions (broker_t *broker, const char *owner)
{
    s_listing_t listing = { broker, owner, NULL, json_array () };
    runq_each_bound (broker->dispatch->runq, s_list_one, &listing);
    return listing.list;
}

//  One entry of dispatch_held.
static void
s_held_one (const char *key, const char *worker, bool busy, json_t *note, void *arg)
{
    s_listing_t *l = (s_listing_t *) arg;
    json_t *entry = strcmp (worker, l->worker) == 0 ? s_key_fields (key) : NULL;
    if (entry) {
        json_object_set_new (entry, "key", json_string (key));
        json_object_set_new (entry, "busy", json_boolean (busy));
        json_array_append_new (l->list, entry);
    }
}

json_t *
dispatch_held (broker_t *broker, worker_t *w)
{
    s_listing_t listing = { broker, NULL, w->key, json_array () };
    runq_each_bound (broker->dispatch->runq, s_held_one, &listing);
    return listing.list;
}

job_t *
dispatch_job (broker_t *broker, int64_t id)
{
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    return (job_t *) zhashx_lookup (broker->dispatch->running, key);
}

void
dispatch_unbind (broker_t *broker, const char *key)
{
    runq_unbind (broker->dispatch->runq, key);
}

//  ----------------------------------------------------------------------------------------
//  Workers

worker_t *
dispatch_worker (broker_t *broker, const char *key)
{
    return (worker_t *) zhashx_lookup (broker->dispatch->workers, key);
}

worker_t *
dispatch_worker_named (broker_t *broker, const char *name)
{
    zhashx_t *workers = broker->dispatch->workers;
    for (worker_t *w = (worker_t *) zhashx_first (workers); w; w = (worker_t *) zhashx_next (workers))
        if (strcmp (w->name, name) == 0)
            return w;
    return NULL;
}

worker_t *
dispatch_worker_add (broker_t *broker, const char *key, zframe_t *routing, const char *name,
                     const char *sandbox, int slots)
{
    worker_t *w = (worker_t *) zmalloc (sizeof (worker_t));
    w->key = strdup (key);
    w->routing = zframe_dup (routing);
    w->name = strdup (name);
    w->sandbox = strdup (sandbox ? sandbox : "none");
    w->slots = slots;
    w->last_seen = clock_mono_ms ();
    w->last_seen_wall = clock_wall_ms ();
    w->labels = json_array ();
    zhashx_insert (broker->dispatch->workers, key, w);
    runq_worker_add (broker->dispatch->runq, key);
    return w;
}

void
dispatch_worker_offer (worker_t *w, json_t *labels, int64_t memory_mb, const char *address)
{
    if (json_is_array (labels)) {
        json_decref (w->labels);
        w->labels = json_copy (labels);
    }
    w->memory_mb = memory_mb > 0 ? memory_mb : 0;
    free (w->address);
    w->address = address ? strdup (address) : NULL;
}

void
dispatch_adopt (broker_t *broker, worker_t *w, json_t *session)
{
    const char *owner = json_string_value (json_object_get (session, "owner"));
    const char *name = json_string_value (json_object_get (session, "session"));
    const char *lang = json_string_value (json_object_get (session, "lang"));
    char key[RUNQ_KEY_MAX];
    if (owner && name && lang) {
        runq_key (lang, name, owner, key, sizeof key);
        runq_adopt (broker->dispatch->runq, key, w->key);
    }
}

//  A snippet a worker still runs for an earlier broker or connection: it was recorded `lost`
//  then, but it occupies its slot and its session until the worker answers.
void
dispatch_adopt_orphan (broker_t *broker, worker_t *w, json_t *entry)
{
    dispatch_t *self = broker->dispatch;
    json_t *id = json_object_get (entry, "id");
    const char *owner = json_string_value (json_object_get (entry, "owner"));
    const char *sess = json_string_value (json_object_get (entry, "session"));
    const char *lang = json_string_value (json_object_get (entry, "lang"));
    if (!json_is_integer (id) || !owner || !sess || !lang)
        return;
    char key[24], bkey[RUNQ_KEY_MAX];
    snprintf (key, sizeof key, "%lld", (long long) json_integer_value (id));
    if (zhashx_lookup (self->running, key))
        return;
    job_t *job = job_new (json_integer_value (id), owner, sess, lang, "", NULL);
    job->worker = strdup (w->key);
    job->orphan = true;
    zhashx_insert (self->running, key, job);
    w->running++;
    runq_key (lang, sess, owner, bkey, sizeof bkey);
    runq_occupy (self->runq, bkey, w->key);
}

zlistx_t *
dispatch_worker_remove (broker_t *broker, worker_t *w, const char *note)
{
    dispatch_t *self = broker->dispatch;
    zlistx_t *lost = zlistx_new ();
    zlistx_set_destructor (lost, (zlistx_destructor_fn *) zstr_free);
    zlistx_t *ids = zhashx_keys (self->running);
    for (char *id = (char *) zlistx_first (ids); id; id = (char *) zlistx_next (ids)) {
        job_t *job = (job_t *) zhashx_lookup (self->running, id);
        if (strcmp (job->worker, w->key) != 0)
            continue;
        if (!job->orphan)
            zlistx_add_end (lost, strdup (id));
        zhashx_delete (self->running, id);
    }
    zlistx_destroy (&ids);
    zlistx_t *keys = runq_worker_remove (self->runq, w->key);
    for (char *k = (char *) zlistx_first (keys); k; k = (char *) zlistx_next (keys))
        dispatch_session_ended (broker, k, note);
    zlistx_destroy (&keys);
    char *key = strdup (w->key);    //  the destructor frees w->key during the delete
    zhashx_delete (self->workers, key);
    free (key);
    return lost;
}

zlistx_t *
dispatch_worker_keys (broker_t *broker)
{
    return zhashx_keys (broker->dispatch->workers);
}

typedef struct {
    broker_t *broker;
    json_int_t total;
    json_t *by_labels;
} s_unplaceable_t;

static void
s_count_unplaceable (const char *labels, size_t queued, void *arg)
{
    s_unplaceable_t *u = (s_unplaceable_t *) arg;
    if (!dispatch_placeable (u->broker, labels)) {
        u->total += (json_int_t) queued;
        json_object_set_new (u->by_labels, labels, json_integer ((json_int_t) queued));
    }
}

json_t *
dispatch_stats (broker_t *broker)
{
    dispatch_t *self = broker->dispatch;
    int slots = 0;
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers))
        slots += w->slots;
    json_int_t running = 0;
    for (job_t *job = (job_t *) zhashx_first (self->running); job;
         job = (job_t *) zhashx_next (self->running))
        running += !job->orphan;
    s_unplaceable_t u = { broker, 0, json_object () };
    runq_each_labels (self->runq, s_count_unplaceable, &u);
    return json_pack ("{s:i, s:i, s:I, s:I, s:I, s:o}", "workers", (int) zhashx_size (self->workers),
                      "slots", slots, "running", running,
                      "queued", (json_int_t) runq_size (self->runq), "unplaceable", u.total,
                      "unplaceable_by_labels", u.by_labels);
}
