/*  broker/runq.c: queued requests per session, and the ready lists dispatch picks from.

    A session exists here while it is bound to a worker (that worker holds its interpreter)
    or has queued jobs. Invariant, restored by s_settle after every change: a session waits
    in exactly one ready list when it has a queued job and is not busy (the list of the
    worker it is bound to, or the unbound list of its head job's label set), and in none
    otherwise. So finding what can start never scans the queue: with 10,000 requests queued,
    an event costs what it costs with one (the queue used to be one FIFO rescanned on every
    event). Unbound sessions wait per label set so that a job no worker can take (its labels
    are nowhere) never holds up the ones behind it; a stamp taken on entering a list keeps
    their common order across sets. */
#include "broker/runq.h"

typedef struct {
    char *key;
    zlistx_t *jobs;         //  job_t, FIFO, owned
    char *worker;           //  key of the worker holding the interpreter, or NULL
    bool busy;              //  one of its jobs runs
    zlistx_t *list;         //  the ready list it waits in, or NULL
    void *handle;           //  its place there
    char *set;              //  the label set of the unbound list it waits in, or NULL
    uint64_t order;         //  when it entered its list
    json_t *note;           //  what is known of its interpreter (runq_note), or NULL
} session_t;

struct _runq_t {
    zhashx_t *sessions;     //  key -> session_t
    zhashx_t *ready;        //  worker key -> zlistx_t of session_t (not owned)
    zhashx_t *unbound;      //  label set -> zlistx_t of session_t (not owned) that no worker
                            //  holds, oldest first; a set is here while one waits
    zhashx_t *queued;       //  id as text -> job_t (not owned: its session's queue owns it)
    zhashx_t *counts;       //  label set -> size_t * queued requests with it
    uint64_t order;         //  the last stamp given
};

//  The canonical label set of a job's limits: its labels sorted, without repeats, joined
//  by commas (labels hold none). "" for none.
static char *
s_label_set (json_t *limits)
{
    json_t *labels = json_object_get (limits, "labels");
    size_t n = json_array_size (labels), len = 1, count = 0;
    const char **sorted = (const char **) calloc (n + 1, sizeof (char *));
    for (size_t i = 0; sorted && i < n; i++) {
        const char *label = json_string_value (json_array_get (labels, i));
        if (!label)
            continue;
        size_t at = count++;
        while (at > 0 && strcmp (sorted[at - 1], label) > 0) {
            sorted[at] = sorted[at - 1];
            at--;
        }
        sorted[at] = label;
        len += strlen (label) + 1;
    }
    char *set = (char *) zmalloc (len);
    for (size_t i = 0; sorted && i < count; i++)
        if (i == 0 || strcmp (sorted[i], sorted[i - 1]) != 0) {
            if (*set)
                strcat (set, ",");
            strcat (set, sorted[i]);
        }
    free (sorted);
    return set;
}

job_t *
job_new (int64_t id, const char *owner, const char *session, const char *lang,
         const char *code, json_t *limits)
{
    job_t *self = (job_t *) zmalloc (sizeof (job_t));
    self->id = id;
    self->owner = strdup (owner);
    self->session = strdup (session);
    self->lang = strdup (lang);
    self->code = strdup (code);
    self->limits = json_is_object (limits) ? json_incref (limits) : NULL;
    self->labels = s_label_set (self->limits);
    return self;
}

void
job_destroy (job_t **self_p)
{
    job_t *self = *self_p;
    if (self) {
        free (self->owner);
        free (self->session);
        free (self->lang);
        free (self->code);
        json_decref (self->limits);
        free (self->worker);
        free (self->reset_reason);
        free (self->labels);
        free (self);
        *self_p = NULL;
    }
}

void
runq_key (const char *lang, const char *session, const char *owner, char *buf, size_t size)
{
    snprintf (buf, size, "%s\x1f%s\x1f%s", lang, session, owner);
}

int
runq_key_split (const char *key, runq_key_parts_t *parts)
{
    const char *sep1 = strchr (key, 0x1f), *sep2 = sep1 ? strchr (sep1 + 1, 0x1f) : NULL;
    if (!sep2)
        return -1;
    *parts = (runq_key_parts_t) { { key, sep1 + 1, sep2 + 1 },
                                  { (size_t) (sep1 - key), (size_t) (sep2 - sep1 - 1), strlen (sep2 + 1) } };
    return 0;
}

static void
s_session_destroy (void **item)
{
    session_t *s = (session_t *) *item;
    if (s) {
        zlistx_destroy (&s->jobs);
        json_decref (s->note);
        free (s->key);
        free (s->worker);
        free (s->set);
        free (s);
        *item = NULL;
    }
}

static void
s_list_destroy (void **item)
{
    zlistx_destroy ((zlistx_t **) item);
}

runq_t *
runq_new (void)
{
    runq_t *self = (runq_t *) zmalloc (sizeof (runq_t));
    self->sessions = zhashx_new ();
    zhashx_set_destructor (self->sessions, s_session_destroy);
    self->ready = zhashx_new ();
    zhashx_set_destructor (self->ready, s_list_destroy);
    self->unbound = zhashx_new ();
    zhashx_set_destructor (self->unbound, s_list_destroy);
    self->queued = zhashx_new ();
    self->counts = zhashx_new ();
    zhashx_set_destructor (self->counts, (zhashx_destructor_fn *) zstr_free);
    return self;
}

void
runq_destroy (runq_t **self_p)
{
    runq_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->queued);
        zhashx_destroy (&self->ready);          //  the lists own no sessions
        zhashx_destroy (&self->unbound);
        zhashx_destroy (&self->counts);
        zhashx_destroy (&self->sessions);       //  the sessions own the jobs
        free (self);
        *self_p = NULL;
    }
}

//  Takes the session out of the ready list it waits in; an unbound set left empty goes.
static void
s_leave (runq_t *self, session_t *s)
{
    if (s->list) {
        zlistx_detach (s->list, s->handle);
        if (s->set && zlistx_size (s->list) == 0)
            zhashx_delete (self->unbound, s->set);
    }
    s->list = NULL;
    s->handle = NULL;
    zstr_free (&s->set);
}

//  The unbound list of a label set, made on first use.
static zlistx_t *
s_unbound (runq_t *self, const char *set)
{
    zlistx_t *list = (zlistx_t *) zhashx_lookup (self->unbound, set);
    if (!list) {
        list = zlistx_new ();
        zhashx_insert (self->unbound, set, list);
    }
    return list;
}

//  Restores the invariant for one session after any change to it; forgets a session that
//  is neither bound nor has anything queued.
static void
s_settle (runq_t *self, session_t *s)
{
    if (s->worker && !zhashx_lookup (self->ready, s->worker))
        zstr_free (&s->worker);         //  bound to a worker we do not know: it holds nothing
    job_t *head = s->busy ? NULL : (job_t *) zlistx_first (s->jobs);
    bool same_set = s->set && head && !s->worker && strcmp (s->set, head->labels) == 0;
    zlistx_t *want = !head ? NULL : s->worker ? (zlistx_t *) zhashx_lookup (self->ready, s->worker)
                   : same_set ? s->list : s_unbound (self, head->labels);
    if (s->list != want) {
        s_leave (self, s);
        s->list = want;
        s->set = want && !s->worker ? strdup (head->labels) : NULL;
        s->order = ++self->order;
        s->handle = want ? zlistx_add_end (want, s) : NULL;
    }
    if (!s->worker && !s->busy && zlistx_size (s->jobs) == 0)
        zhashx_delete (self->sessions, s->key);
}

//  Counts a job of label set `set` in (+1) or out (-1) of the queue.
static void
s_count (runq_t *self, const char *set, int delta)
{
    size_t *n = (size_t *) zhashx_lookup (self->counts, set);
    if (!n) {
        n = (size_t *) zmalloc (sizeof (size_t));
        zhashx_insert (self->counts, set, n);
    }
    *n += delta;
    if (*n == 0)
        zhashx_delete (self->counts, set);
}

//  A session's jobs run in id order, which is the order they were submitted in.
static int
s_job_order (const void *a, const void *b)
{
    int64_t x = ((const job_t *) a)->id, y = ((const job_t *) b)->id;
    return x < y ? -1 : x > y;
}

static session_t *
s_session (runq_t *self, const char *key, bool create)
{
    session_t *s = (session_t *) zhashx_lookup (self->sessions, key);
    if (!s && create) {
        s = (session_t *) zmalloc (sizeof (session_t));
        s->key = strdup (key);
        s->jobs = zlistx_new ();
        zlistx_set_destructor (s->jobs, (zlistx_destructor_fn *) job_destroy);
        zlistx_set_comparator (s->jobs, s_job_order);
        zhashx_insert (self->sessions, key, s);
    }
    return s;
}

void
runq_add (runq_t *self, job_t *job)
{
    char key[RUNQ_KEY_MAX], id[24];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    session_t *s = s_session (self, key, true);
    //  Searched from the end: a new job goes last at once, one put back (a start or a cancel
    //  whose commit failed) before the later ones of its session.
    job->handle = zlistx_insert (s->jobs, job, false);
    snprintf (id, sizeof id, "%lld", (long long) job->id);
    zhashx_update (self->queued, id, job);
    s_count (self, job->labels, 1);
    s_settle (self, s);
}

job_t *
runq_remove (runq_t *self, int64_t id)
{
    char key[RUNQ_KEY_MAX], text[24];
    snprintf (text, sizeof text, "%lld", (long long) id);
    job_t *job = (job_t *) zhashx_lookup (self->queued, text);
    if (!job)
        return NULL;
    zhashx_delete (self->queued, text);
    s_count (self, job->labels, -1);
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    session_t *s = s_session (self, key, false);
    zlistx_detach (s->jobs, job->handle);
    job->handle = NULL;
    s_settle (self, s);
    return job;
}

size_t
runq_size (runq_t *self)
{
    return zhashx_size (self->queued);
}

job_t *
runq_job (runq_t *self, int64_t id)
{
    char text[24];
    snprintf (text, sizeof text, "%lld", (long long) id);
    return (job_t *) zhashx_lookup (self->queued, text);
}

void
runq_each_labels (runq_t *self, runq_count_fn *fn, void *arg)
{
    for (size_t *n = (size_t *) zhashx_first (self->counts); n;
         n = (size_t *) zhashx_next (self->counts))
        fn ((const char *) zhashx_cursor (self->counts), *n, arg);
}

zlistx_t *
runq_ids_with (runq_t *self, const char *labels)
{
    zlistx_t *ids = zlistx_new ();
    zlistx_set_destructor (ids, (zlistx_destructor_fn *) zstr_free);
    for (job_t *job = (job_t *) zhashx_first (self->queued); job;
         job = (job_t *) zhashx_next (self->queued))
        if (strcmp (job->labels, labels) == 0)
            zlistx_add_end (ids, strdup ((const char *) zhashx_cursor (self->queued)));
    return ids;
}

void
runq_each_set (runq_t *self, runq_set_fn *fn, void *arg)
{
    for (zlistx_t *list = (zlistx_t *) zhashx_first (self->unbound); list;
         list = (zlistx_t *) zhashx_next (self->unbound)) {
        session_t *s = (session_t *) zlistx_first (list);
        if (s)
            fn ((const char *) zhashx_cursor (self->unbound), s->key, s->order, arg);
    }
}

const char *
runq_ready (runq_t *self, const char *worker)
{
    if (worker) {
        zlistx_t *list = (zlistx_t *) zhashx_lookup (self->ready, worker);
        session_t *s = list ? (session_t *) zlistx_first (list) : NULL;
        return s ? s->key : NULL;
    }
    session_t *best = NULL;
    for (zlistx_t *list = (zlistx_t *) zhashx_first (self->unbound); list;
         list = (zlistx_t *) zhashx_next (self->unbound)) {
        session_t *s = (session_t *) zlistx_first (list);
        if (s && (!best || s->order < best->order))
            best = s;
    }
    return best ? best->key : NULL;
}

job_t *
runq_head (runq_t *self, const char *key)
{
    session_t *s = s_session (self, key, false);
    return s ? (job_t *) zlistx_first (s->jobs) : NULL;
}

job_t *
runq_start (runq_t *self, const char *key, const char *worker)
{
    session_t *s = s_session (self, key, false);
    job_t *job = s ? (job_t *) zlistx_first (s->jobs) : NULL;
    if (!job)
        return NULL;
    zlistx_detach (s->jobs, job->handle);
    job->handle = NULL;
    char id[24];
    snprintf (id, sizeof id, "%lld", (long long) job->id);
    zhashx_delete (self->queued, id);
    s_count (self, job->labels, -1);
    if (!s->worker)
        s->worker = strdup (worker);
    s->busy = true;
    s_settle (self, s);
    return job;
}

void
runq_done (runq_t *self, const char *key)
{
    session_t *s = s_session (self, key, false);
    if (s) {
        s->busy = false;
        s_settle (self, s);
    }
}

const char *
runq_bound (runq_t *self, const char *key)
{
    session_t *s = s_session (self, key, false);
    return s ? s->worker : NULL;
}

bool
runq_busy (runq_t *self, const char *key)
{
    session_t *s = s_session (self, key, false);
    return s && s->busy;
}

void
runq_adopt (runq_t *self, const char *key, const char *worker)
{
    session_t *s = s_session (self, key, true);
    if (!s->worker)
        s->worker = strdup (worker);
    s_settle (self, s);
}

void
runq_occupy (runq_t *self, const char *key, const char *worker)
{
    session_t *s = s_session (self, key, false);
    if (s && s->worker && strcmp (s->worker, worker) == 0) {
        s->busy = true;
        s_settle (self, s);
    }
}

void
runq_unbind (runq_t *self, const char *key)
{
    session_t *s = s_session (self, key, false);
    if (s) {
        zstr_free (&s->worker);
        json_decref (s->note);
        s->note = NULL;
        s_settle (self, s);
    }
}

void
runq_note (runq_t *self, const char *key, json_t *fields)
{
    session_t *s = s_session (self, key, false);
    if (!s || !s->worker)
        return;
    if (!s->note)
        s->note = json_object ();
    json_object_update (s->note, fields);
}

void
runq_each_bound (runq_t *self, runq_each_fn *fn, void *arg)
{
    for (session_t *s = (session_t *) zhashx_first (self->sessions); s;
         s = (session_t *) zhashx_next (self->sessions))
        if (s->worker)
            fn (s->key, s->worker, s->busy, s->note, arg);
}

void
runq_worker_add (runq_t *self, const char *worker)
{
    if (!zhashx_lookup (self->ready, worker))
        zhashx_insert (self->ready, worker, zlistx_new ());
}

zlistx_t *
runq_worker_remove (runq_t *self, const char *worker)
{
    zlistx_t *keys = zlistx_new ();
    zlistx_set_destructor (keys, (zlistx_destructor_fn *) zstr_free);
    zlistx_t *bound = zlistx_new ();
    for (session_t *s = (session_t *) zhashx_first (self->sessions); s;
         s = (session_t *) zhashx_next (self->sessions))
        if (s->worker && strcmp (s->worker, worker) == 0)
            zlistx_add_end (bound, s);
    //  Settled after the walk: settling may forget a session, changing the table walked.
    for (session_t *s = (session_t *) zlistx_first (bound); s; s = (session_t *) zlistx_next (bound)) {
        zlistx_add_end (keys, strdup (s->key));
        zstr_free (&s->worker);
        json_decref (s->note);
        s->note = NULL;
        s->busy = false;            //  its run, if any, ended with the worker
        s_settle (self, s);
    }
    zlistx_destroy (&bound);
    zhashx_delete (self->ready, worker);
    return keys;
}
