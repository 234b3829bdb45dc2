/*  broker/dispatch.c: which worker runs what.
    A session is (owner, lang, name): the principal that submitted is part of its key, so two
    principals that pick the same name never share an interpreter. A session is sticky to the
    worker that holds its interpreter, because the state lives there. When an interpreter ends
    between snippets (evicted, exited, its worker lost) the broker records a `session_ended`
    event and the session's next result says session_reset with the reason.
    Each session's requests wait in its own FIFO (runq.c), so its snippets run in submission
    order; a session waits while it runs one, or while its worker has no free slot. What
    starts next is taken from ready lists, never found by scanning the queue. */
#include "broker/dispatch.h"
#include "broker/backlog.h"
#include "broker/decide.h"
#include "broker/runq.h"
#include "broker/state.h"
#include "common/proto.h"
#include "common/util.h"

typedef struct {
    char *key;              //  routing id as hex: routing ids change on reconnect
    zframe_t *routing;
    char *name;
    char *sandbox;
    int slots;
    int running;
    int64_t last_seen;      //  monotonic ms of the last message from it
} worker_t;

struct _dispatch_t {
    zhashx_t *workers;      //  key -> worker_t
    runq_t *runq;           //  queued jobs per session, sessions bound to workers
    zhashx_t *running;      //  id as text -> job_t
    zhashx_t *ended;        //  session key -> why its interpreter ended (until it runs again)
    int64_t last_heartbeat;
    lograte_t lograte;      //  complaints about the worker socket, at most one a second
};

static void
s_worker_destroy (void **item)
{
    worker_t *w = (worker_t *) *item;
    if (!w)
        return;
    zframe_destroy (&w->routing);
    free (w->key);
    free (w->name);
    free (w->sandbox);
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

//  Remembers that a session's interpreter ended, so its next result can say so.
static void
s_session_ended (dispatch_t *self, const char *key, const char *why)
{
    if (zhashx_size (self->ended) >= 100000)
        zhashx_purge (self->ended);     //  a bound; losing old notes costs only a reason text
    zhashx_update (self->ended, key, strdup (why));
}

static int
s_send_worker (broker_t *broker, worker_t *w, json_t *body)
{
    char *text = json_dumps (body, JSON_COMPACT);
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, zframe_data (w->routing), zframe_size (w->routing));
    zmsg_addstr (msg, text);
    free (text);
    int rc = zmsg_send (&msg, broker->workers);
    if (rc != 0) {
        log_warn ("worker %s: send failed: %s", w->name, zmq_strerror (zmq_errno ()));
        zmsg_destroy (&msg);
    }
    return rc;
}

//  The worker with a free slot and the fewest running requests, or NULL.
static worker_t *
s_least_loaded (dispatch_t *self)
{
    worker_t *best = NULL;
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers))
        if (w->running < w->slots && (!best || w->running < best->running))
            best = w;
    return best;
}

//  Starts the head job of session `key` on worker w: moves it to running in the store, then
//  sends it. False if it could not start: the store is down (the job stays queued, the
//  pump stops) or the request was no longer queued (the job is forgotten).
static bool
s_start (broker_t *broker, worker_t *w, const char *key)
{
    dispatch_t *self = broker->dispatch;
    job_t *job = runq_head (self->runq, key);
    json_t *fields = json_pack ("{s:s}", "worker", w->name);
    int rc = state_fire (broker, job->id, "queued", EV_DISPATCH, "broker", fields, NULL);
    json_decref (fields);
    if (rc != 0) {
        if (!backlog_check (broker, "starting a request")) {
            job = runq_remove (self->runq, job->id);    //  cancelled meanwhile
            job_destroy (&job);
        }
        return false;
    }
    job = runq_start (self->runq, key, w->key);
    json_t *run = json_pack ("{s:s, s:I, s:s, s:s, s:s, s:s, s:{s:i, s:i}}",
                             "op", "run", "id", (json_int_t) job->id, "owner", job->owner,
                             "session", job->session, "lang", job->lang, "code", job->code,
                             "limits",
                             "timeout_ms", broker->cfg.timeout_ms,
                             "output_bytes", broker->cfg.output_bytes);
    if (json_is_object (job->limits))
        json_object_update (json_object_get (run, "limits"), job->limits);
    s_send_worker (broker, w, run);
    json_t *timeout = json_object_get (json_object_get (run, "limits"), "timeout_ms");
    job->deadline = clock_mono_ms () + json_integer_value (timeout) + RUN_GRACE_MS;
    json_decref (run);
    w->running++;
    job->worker = strdup (w->key);
    const char *why = (const char *) zhashx_lookup (self->ended, key);
    if (why) {
        job->reset_reason = strdup (why);
        zhashx_delete (self->ended, key);
    }
    char id[24];
    snprintf (id, sizeof id, "%lld", (long long) job->id);
    zhashx_insert (self->running, id, job);
    return true;
}

//  Starts what can start now: first the sessions each worker already holds, while it has
//  free slots, then sessions no worker holds, on the least loaded. Each start is a lookup
//  in a ready list (runq.c), never a scan of the queue. Nothing starts while the store
//  refuses writes: a run the record does not show must never begin.
static void
s_pump (broker_t *broker)
{
    dispatch_t *self = broker->dispatch;
    if (store_in_group (broker->store))
        return;                 //  what queued it is not committed yet: dispatch_pump follows
    const char *key;
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers))
        while (w->running < w->slots && (key = runq_ready (self->runq, w->key)))
            if (backlog_down (broker) || (!s_start (broker, w, key) && backlog_down (broker)))
                return;
    worker_t *w;
    while ((key = runq_ready (self->runq, NULL)) && (w = s_least_loaded (self)))
        if (backlog_down (broker) || (!s_start (broker, w, key) && backlog_down (broker)))
            return;
}

void
dispatch_pump (broker_t *broker)
{
    s_pump (broker);
}

void
dispatch_enqueue (broker_t *broker, int64_t id, const char *owner, const char *session,
                  const char *lang, const char *code, json_t *limits)
{
    runq_add (broker->dispatch->runq, job_new (id, owner, session, lang, code, limits));
    s_pump (broker);
}

void
dispatch_enqueue_row (broker_t *broker, json_t *row)
{
    const char *owner = json_string_value (json_object_get (row, "principal"));
    const char *session = json_string_value (json_object_get (row, "session"));
    const char *lang = json_string_value (json_object_get (row, "lang"));
    const char *code = json_string_value (json_object_get (row, "code"));
    if (owner && session && lang && code)
        dispatch_enqueue (broker, json_integer_value (json_object_get (row, "id")), owner, session,
                          lang, code, json_object_get (row, "limits"));
}

bool
dispatch_unqueue (broker_t *broker, int64_t id)
{
    job_t *job = runq_remove (broker->dispatch->runq, id);
    job_destroy (&job);
    return job != NULL;
}

//  Marks a worker's running requests lost, unbinds its sessions and forgets it.
static void
s_worker_lost (broker_t *broker, worker_t *w, const char *why)
{
    dispatch_t *self = broker->dispatch;
    log_warn ("worker %s lost: %s", w->name, why);
    zlistx_t *ids = zhashx_keys (self->running);
    for (char *id = (char *) zlistx_first (ids); id; id = (char *) zlistx_next (ids)) {
        job_t *job = (job_t *) zhashx_lookup (self->running, id);
        if (strcmp (job->worker, w->key) != 0)
            continue;
        if (job->orphan) {
            zhashx_delete (self->running, id);
            continue;
        }
        json_t *fields = json_pack ("{s:s, s:s}", "worker", w->name, "message", why);
        backlog_fire (broker, job->id, "running", EV_LOSE, "broker", fields);
        json_decref (fields);
        zhashx_delete (self->running, id);
    }
    zlistx_destroy (&ids);
    zlistx_t *keys = runq_worker_remove (self->runq, w->key);
    char note[200];
    snprintf (note, sizeof note, "worker %.64s was lost (%.64s)", w->name, why);
    for (char *k = (char *) zlistx_first (keys); k; k = (char *) zlistx_next (keys))
        s_session_ended (self, k, note);
    zlistx_destroy (&keys);
    json_t *data = json_pack ("{s:s, s:s}", "worker", w->name, "why", why);
    backlog_event (broker, 0, "worker_lost", "broker", data);
    json_decref (data);
    char *key = strdup (w->key);    //  the destructor frees w->key during the delete
    zhashx_delete (self->workers, key);
    free (key);
}

//  Complaints about the worker socket: a garbage flood must not become a log flood.
static bool
s_may_log (dispatch_t *self)
{
    return lograte_ok (&self->lograte, "worker socket complaints");
}

//  A snippet a worker still runs for an earlier broker or connection: it was recorded `lost`
//  then, but it occupies its slot and its session until the worker answers.
static void
s_adopt_orphan (dispatch_t *self, worker_t *w, json_t *entry)
{
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
    job_t *job = (job_t *) zmalloc (sizeof (job_t));
    job->id = json_integer_value (id);
    job->owner = strdup (owner);
    job->session = strdup (sess);
    job->lang = strdup (lang);
    job->code = strdup ("");
    job->worker = strdup (w->key);
    job->orphan = true;
    zhashx_insert (self->running, key, job);
    w->running++;
    runq_key (lang, sess, owner, bkey, sizeof bkey);
    runq_occupy (self->runq, bkey, w->key);
}

static void
s_on_ready (broker_t *broker, zframe_t *routing, const char *key, json_t *msg, const char *principal)
{
    dispatch_t *self = broker->dispatch;
    const char *name = json_string_value (json_object_get (msg, "name"));
    //  A name in use by a live connection is refused: a second worker (or a stale copy) must
    //  not evict the one that holds the sessions. A worker that really reconnected finds its
    //  old connection silent within PEER_DEAD_MS, and is then asked to announce itself again.
    //  Once the old connection is silent, whatever it ran can no longer be answered.
    int64_t now = clock_mono_ms ();
    for (worker_t *old = (worker_t *) zhashx_first (self->workers); old;
         old = (worker_t *) zhashx_next (self->workers))
        if (strcmp (old->name, name) == 0 || strcmp (old->key, key) == 0) {
            if (strcmp (old->key, key) != 0 && now - old->last_seen <= PEER_DEAD_MS) {
                if (s_may_log (self))
                    log_warn ("worker %s: a second connection announced the name of a live "
                              "worker; refused", name);
                return;
            }
            s_worker_lost (broker, old, "reconnected");
            break;
        }
    worker_t *w = (worker_t *) zmalloc (sizeof (worker_t));
    w->key = strdup (key);
    w->routing = zframe_dup (routing);
    w->name = strdup (name);
    const char *sandbox = json_string_value (json_object_get (msg, "sandbox"));
    w->sandbox = strdup (sandbox ? sandbox : "none");
    w->slots = (int) json_integer_value (json_object_get (msg, "slots"));
    w->last_seen = clock_mono_ms ();
    zhashx_insert (self->workers, key, w);
    runq_worker_add (self->runq, key);
    //  Re-adopt interpreters the worker still holds, so sessions keep their state.
    size_t i;
    json_t *s;
    json_array_foreach (json_object_get (msg, "sessions"), i, s) {
        const char *owner = json_string_value (json_object_get (s, "owner"));
        const char *sess = json_string_value (json_object_get (s, "session"));
        const char *lang = json_string_value (json_object_get (s, "lang"));
        char bkey[RUNQ_KEY_MAX];
        if (!owner || !sess || !lang)
            continue;
        runq_key (lang, sess, owner, bkey, sizeof bkey);
        runq_adopt (self->runq, bkey, key);
    }
    json_array_foreach (json_object_get (msg, "running"), i, s)
        s_adopt_orphan (self, w, s);
    json_t *data = json_pack ("{s:s, s:i, s:s, s:s}", "worker", name, "slots", w->slots,
                              "sandbox", w->sandbox, "key", principal);
    backlog_event (broker, 0, "worker_joined", principal, data);
    json_decref (data);
    log_info ("worker %s ready with %d slots (sandbox: %s)", name, w->slots, w->sandbox);
}

//  Flattens a worker result into the columns the store records.
static json_t *
s_result_fields (json_t *msg)
{
    static const char *copy[] = { "outcome", "exit_code", "signal", "stdout", "stderr",
        "stdout_truncated", "stderr_truncated", "value", "value_truncated",
        "error_name_truncated", "error_value_truncated", "traceback_truncated",
        "wall_ms", "cpu_ms", "session_cpu_ms", "max_rss_kb", "execution_count", "session_reset",
        "sandbox" };
    json_t *fields = json_object ();
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
        json_t *v = json_object_get (msg, copy[i]);
        if (v && !json_is_null (v))
            json_object_set (fields, copy[i], v);
    }
    json_t *error = json_object_get (msg, "error");
    if (json_is_object (error)) {
        json_t *v;
        if ((v = json_object_get (error, "name")) && json_is_string (v))
            json_object_set (fields, "error_name", v);
        if ((v = json_object_get (error, "value")) && json_is_string (v))
            json_object_set (fields, "error_value", v);
        if ((v = json_object_get (error, "traceback")) && json_is_string (v))
            json_object_set (fields, "traceback", v);
    }
    //  What a snippet printed is stored byte for byte: binary output arrives in base64 and is
    //  kept as bytes (the store makes them a BLOB). The other texts are the interpreter's
    //  words about the run: a NUL there is shown as U+FFFD.
    const char *key;
    json_t *v;
    json_object_foreach (fields, key, v)
        if (json_is_string (v) && memchr (json_string_value (v), 0, json_string_length (v))
        &&  strcmp (key, "stdout") != 0 && strcmp (key, "stderr") != 0)
            json_object_set_new (fields, key, text_display (json_string_value (v),
                                                            json_string_length (v)));
    static const char *streams[] = { "stdout", "stderr" };
    for (size_t i = 0; i < 2; i++) {
        char name[32];
        snprintf (name, sizeof name, "%s_base64", streams[i]);
        json_t *b64 = json_object_get (msg, name);
        size_t n = 0;
        char *bytes = json_is_string (b64) && !json_object_get (fields, streams[i])
                    ? base64_decode (json_string_value (b64), json_string_length (b64), &n) : NULL;
        if (bytes)
            json_object_set_new (fields, streams[i], json_stringn_nocheck (bytes, n));
        free (bytes);
    }
    return fields;
}

//  Frees the job's slot and its session's turn; the job is gone afterwards.
static void
s_release (dispatch_t *self, worker_t *w, job_t *job)
{
    char key[RUNQ_KEY_MAX], id[24];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    runq_done (self->runq, key);
    w->running--;
    snprintf (id, sizeof id, "%lld", (long long) job->id);
    zhashx_delete (self->running, id);
}

//  The job request `id` runs as on worker w, or NULL (logged): a result for anything else
//  changes nothing.
static job_t *
s_job_on (dispatch_t *self, worker_t *w, int64_t id)
{
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    job_t *job = (job_t *) zhashx_lookup (self->running, key);
    if (!job || strcmp (job->worker, w->key) != 0) {
        log_warn ("worker %s: result for request %s that it is not running, ignored", w->name, key);
        return NULL;
    }
    return job;
}

static void
s_on_result (broker_t *broker, worker_t *w, json_t *msg)
{
    job_t *job = s_job_on (broker->dispatch, w, json_integer_value (json_object_get (msg, "id")));
    if (!job)
        return;
    if (job->orphan)
        log_info ("worker %s: late result for request %lld, already recorded as lost", w->name,
                  (long long) job->id);
    else {
        decide_mask_result (broker, msg);
        json_t *fields = s_result_fields (msg);
        if (job->reset_reason) {
            json_object_set_new (fields, "session_reset", json_true ());
            json_object_set_new (fields, "reset_reason", json_string (job->reset_reason));
        }
        if (backlog_fire (broker, job->id, "running", EV_FINISH, w->name, fields) != 0)
            log_error ("request %lld: result could not be recorded", (long long) job->id);
        json_decref (fields);
    }
    s_release (broker->dispatch, w, job);
}

//  Ends a running job without the worker's answer (`outcome`, an error `name` and `why`),
//  and starts its session over: whatever the worker did with it is not to be trusted with
//  the next snippet. The job is gone afterwards.
static void
s_end_unanswered (broker_t *broker, worker_t *w, job_t *job, const char *outcome,
                  const char *name, const char *why)
{
    if (!job->orphan) {
        json_t *fields = json_pack ("{s:s, s:b, s:s, s:{s:s, s:s, s:s}}", "outcome", outcome,
                                    "session_reset", 1, "reset_reason", why, "error",
                                    "name", name, "value", why, "traceback", "");
        if (backlog_fire (broker, job->id, "running", EV_FINISH, "broker", fields) != 0)
            log_error ("request %lld: its end (%s) could not be recorded", (long long) job->id, name);
        json_decref (fields);
    }
    json_t *close = json_pack ("{s:s, s:s, s:s, s:s}", "op", "close", "owner", job->owner,
                               "session", job->session, "lang", job->lang);
    s_send_worker (broker, w, close);
    json_decref (close);
    char key[RUNQ_KEY_MAX];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    runq_unbind (broker->dispatch->runq, key);
    s_release (broker->dispatch, w, job);
}

//  A result frame we cannot accept still ends its request.
static void
s_on_refused_result (broker_t *broker, worker_t *w, int64_t id, const proto_error_t *err)
{
    job_t *job = s_job_on (broker->dispatch, w, id);
    char why[400];
    snprintf (why, sizeof why, "the worker's result was refused (%s: %s)", err->code, err->message);
    if (job)
        s_end_unanswered (broker, w, job, "error", "ResultRefused", why);
}

//  A live worker that never answers a run: the run ends at its limit plus a grace, by the
//  broker's clock, as a timeout.
static void
s_expire_runs (broker_t *broker, int64_t now)
{
    dispatch_t *self = broker->dispatch;
    zlistx_t *ids = zhashx_keys (self->running);
    for (char *id = (char *) zlistx_first (ids); id; id = (char *) zlistx_next (ids)) {
        job_t *job = (job_t *) zhashx_lookup (self->running, id);
        worker_t *w = job ? (worker_t *) zhashx_lookup (self->workers, job->worker) : NULL;
        if (w && !job->orphan && now > job->deadline)
            s_end_unanswered (broker, w, job, "timeout", "WorkerTimeout",
                              "the worker did not answer within the run's limit plus 2 s");
    }
    zlistx_destroy (&ids);
}

//  The request id of a result frame that failed to parse: results start {"op":"result","id":N
//  as the worker writes them. 0 if the frame does not.
static int64_t
s_result_id (const char *data, size_t size)
{
    static const char head[] = "{\"op\":\"result\",\"id\":";
    size_t n = sizeof head - 1;
    if (size <= n || memcmp (data, head, n) != 0)
        return 0;
    int64_t id = 0;
    for (size_t i = n; i < size && i < n + 18 && data[i] >= '0' && data[i] <= '9'; i++)
        id = id * 10 + (data[i] - '0');
    return id;
}

//  An interpreter ended between snippets: on the record, and its session's next result
//  will say it started over.
static void
s_on_closed (broker_t *broker, worker_t *w, json_t *msg)
{
    const char *owner = json_string_value (json_object_get (msg, "owner"));
    const char *session = json_string_value (json_object_get (msg, "session"));
    const char *lang = json_string_value (json_object_get (msg, "lang"));
    const char *reason = json_string_value (json_object_get (msg, "reason"));
    char key[RUNQ_KEY_MAX], why[160];
    runq_key (lang, session, owner, key, sizeof key);
    const char *bound = runq_bound (broker->dispatch->runq, key);
    if (!bound || strcmp (bound, w->key) != 0)
        return;                 //  not a session of ours on that worker: nothing to record
    json_t *code = json_object_get (msg, "exit_code"), *sig = json_object_get (msg, "signal");
    if (sig)
        snprintf (why, sizeof why, "interpreter %.64s (signal %d)", reason ? reason : "ended",
                  (int) json_integer_value (sig));
    else if (code)
        snprintf (why, sizeof why, "interpreter %.64s (exit status %d)", reason ? reason : "ended",
                  (int) json_integer_value (code));
    else
        snprintf (why, sizeof why, "interpreter %.64s", reason ? reason : "ended");
    json_t *data = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:O?, s:O?}", "principal", owner,
                              "session", session, "lang", lang, "worker", w->name, "reason", why,
                              "exit_code", code, "signal", sig);
    backlog_event (broker, 0, "session_ended", w->name, data);
    json_decref (data);
    s_session_ended (broker->dispatch, key, why);
    if (!runq_busy (broker->dispatch->runq, key))
        runq_unbind (broker->dispatch->runq, key);
}

void
dispatch_worker_message (broker_t *broker, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    zframe_t *routing = zmsg_pop (msg);
    zframe_t *body = zmsg_last (msg);
    const char *role = body ? zframe_meta (body, "role") : NULL;
    const char *principal = body ? zframe_meta (body, "name") : NULL;
    if (!routing || !body || zmsg_size (msg) != 1 || !role || strcmp (role, "worker") != 0) {
        //  Only worker keys speak here; anything else is dropped without an answer.
        if (s_may_log (broker->dispatch))
            log_warn ("worker socket: message from a non-worker key (%s), dropped",
                      principal ? principal : "?");
        goto done;
    }
    char *key = zframe_strhex (routing);
    proto_error_t err;
    json_t *m = NULL;
    worker_t *w = (worker_t *) zhashx_lookup (broker->dispatch->workers, key);
    if (proto_parse_worker (zframe_data (body), zframe_size (body), &m, &err) != 0) {
        if (s_may_log (broker->dispatch))
            log_warn ("worker %s: bad message (%s: %s), ignored", principal, err.code, err.message);
        int64_t id = s_result_id ((const char *) zframe_data (body), zframe_size (body));
        if (w && id > 0)
            s_on_refused_result (broker, w, id, &err);
        free (key);
        goto done;
    }
    const char *op = json_string_value (json_object_get (m, "op"));
    if (strcmp (op, "ready") == 0)
        s_on_ready (broker, routing, key, m, principal);
    else if (!w) {
        //  A connection we do not know (its ready was refused, or came before our restart):
        //  ask it to announce itself.
        json_t *ask = json_pack ("{s:s}", "op", "announce");
        worker_t probe = { .routing = routing, .name = (char *) principal };
        s_send_worker (broker, &probe, ask);
        json_decref (ask);
    }
    else {
        w->last_seen = clock_mono_ms ();
        if (strcmp (op, "result") == 0)
            s_on_result (broker, w, m);
        else if (strcmp (op, "session_closed") == 0)
            s_on_closed (broker, w, m);
    }
    json_decref (m);
    free (key);
    s_pump (broker);
done:
    zframe_destroy (&routing);
    zmsg_destroy (msg_p);
}

void
dispatch_drop_worker (broker_t *broker, zframe_t *routing, const char *why)
{
    char *key = zframe_strhex (routing);
    worker_t *w = (worker_t *) zhashx_lookup (broker->dispatch->workers, key);
    if (w)
        s_worker_lost (broker, w, why);
    free (key);
}

void
dispatch_tick (broker_t *broker)
{
    dispatch_t *self = broker->dispatch;
    int64_t now = clock_mono_ms ();
    bool beat = now - self->last_heartbeat >= HEARTBEAT_MS;
    if (beat)
        self->last_heartbeat = now;
    json_t *hb = json_pack ("{s:s}", "op", "heartbeat");
    //  A worker is dead when it was silent, not when we were busy: while messages wait on the
    //  socket (our loop was stalled by a slow write), nobody is judged.
    bool unread = zsock_events (broker->workers) & ZMQ_POLLIN;
    zlistx_t *keys = zhashx_keys (self->workers);
    for (char *k = (char *) zlistx_first (keys); k; k = (char *) zlistx_next (keys)) {
        worker_t *w = (worker_t *) zhashx_lookup (self->workers, k);
        if (now - w->last_seen > PEER_DEAD_MS && !unread)
            s_worker_lost (broker, w, "silent for 3 s");
        else if (beat)
            s_send_worker (broker, w, hb);
    }
    zlistx_destroy (&keys);
    s_expire_runs (broker, now);
    json_decref (hb);
    s_pump (broker);
}

json_t *
dispatch_stats (broker_t *broker)
{
    dispatch_t *self = broker->dispatch;
    int slots = 0;
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers))
        slots += w->slots;
    //  Counted as the database has them: a result or a loss that waits to be written is
    //  still `running` there, an undecided submit still `received`.
    size_t running = backlog_waiting_from (broker, "running");
    for (job_t *job = (job_t *) zhashx_first (self->running); job;
         job = (job_t *) zhashx_next (self->running))
        running += !job->orphan;
    return json_pack ("{s:i, s:i, s:I, s:I, s:I}", "workers", (int) zhashx_size (self->workers),
                      "slots", slots, "running", (json_int_t) running,
                      "queued", (json_int_t) runq_size (self->runq),
                      "received", (json_int_t) backlog_waiting_from (broker, "received"));
}
