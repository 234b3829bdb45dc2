/*  broker/workers.c: the worker socket, an event source of the broker.
    Workers announce themselves (`ready`, with the labels and memory they offer for
    placement), send results and the ends of interpreters between snippets
    (`session_closed`), and heartbeat. This module turns each into transitions through
    state.c (or backlog.c while the database refuses writes), and judges liveness: a worker
    is dead when *it* was silent for PROTO_SILENCE_MS, not when the broker was busy; a run
    its live worker never answers ends at its limit plus RUN_GRACE_MS by the broker's clock.
    launch.c starts the runs. */
#include "broker/workers.h"
#include "broker/backlog.h"
#include "broker/decide.h"
#include "broker/dispatch.h"
#include "broker/egress.h"
#include "broker/fleet.h"
#include "broker/refusals.h"
#include "broker/state.h"
#include "broker/stream.h"
#include "broker/wsend.h"
#include "common/proto.h"
#include "common/util.h"

//  Complaints about the worker socket, at most one logged a second: a garbage flood must
//  not become a log flood.
static lograte_t s_lograte;
static int64_t s_last_heartbeat;

static bool
s_may_log (void)
{
    return lograte_ok (&s_lograte, "worker socket complaints");
}

int
workers_send (broker_t *broker, worker_t *w, json_t *body)
{
    return wsend (broker, w->routing, w->name, body);
}

//  ----------------------------------------------------------------------------------------
//  Losing workers, ending runs without an answer

//  Marks a worker's running requests lost, unbinds its sessions and forgets it.
static void
s_worker_lost (broker_t *broker, worker_t *w, const char *why)
{
    log_warn ("worker %s lost: %s", w->name, why);
    fleet_left (broker, w, why);
    char note[200], *name = strdup (w->name);
    snprintf (note, sizeof note, "worker %.64s was lost (%.64s)", w->name, why);
    zlistx_t *ids = dispatch_worker_remove (broker, w, note);   //  w is gone after this
    json_t *fields = json_pack ("{s:s, s:s}", "worker", name, "message", why);
    for (char *id = (char *) zlistx_first (ids); id; id = (char *) zlistx_next (ids))
        backlog_fire (broker, atoll (id), "running", EV_LOSE, "broker", fields);
    json_decref (fields);
    zlistx_destroy (&ids);
    json_t *data = json_pack ("{s:s, s:s}", "worker", name, "why", why);
    backlog_event (broker, 0, "worker_lost", "broker", data);
    json_decref (data);
    free (name);
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
    json_t *close = proto_close (job->owner, job->session, job->lang);
    wsend (broker, w->routing, w->name, close);
    json_decref (close);
    char key[RUNQ_KEY_MAX];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    dispatch_unbind (broker, key);
    dispatch_release (broker, w, job);
    fleet_settle (broker, w);
}

//  A live worker that never answers a run: the run ends at its limit plus a grace, by the
//  broker's clock, as a timeout.
static void
s_expire_runs (broker_t *broker, int64_t now)
{
    zlistx_t *late = dispatch_overdue (broker, now);
    for (job_t *job = (job_t *) zlistx_first (late); job; job = (job_t *) zlistx_next (late))
        s_end_unanswered (broker, dispatch_worker (broker, job->worker), job, "timeout",
                          "WorkerTimeout", "the worker did not answer within the run's limit plus 2 s");
    zlistx_destroy (&late);
}

//  ----------------------------------------------------------------------------------------
//  Messages

static void
s_on_ready (broker_t *broker, zframe_t *routing, const char *key, json_t *msg, const char *principal,
            const char *address)
{
    const char *name = json_string_value (json_object_get (msg, "name"));
    char *drain_by = NULL;          //  a draining worker that reconnects goes on draining
    //  A name in use by a live connection is refused: a second worker (or a stale copy) must
    //  not evict the one that holds the sessions. A worker that really reconnected finds its
    //  old connection silent within PROTO_SILENCE_MS, and is then asked to announce itself again.
    //  Once the old connection is silent, whatever it ran can no longer be answered.
    worker_t *old = dispatch_worker_named (broker, name);
    if (!old)
        old = dispatch_worker (broker, key);
    if (old) {
        if (strcmp (old->key, key) != 0 && clock_mono_ms () - old->last_seen <= PROTO_SILENCE_MS) {
            if (s_may_log ())
                log_warn ("worker %s: a second connection announced the name of a live "
                          "worker; refused", name);
            return;
        }
        drain_by = old->draining ? strdup (old->drain_by) : NULL;
        s_worker_lost (broker, old, "reconnected");
    }
    worker_t *w = dispatch_worker_add (broker, key, routing, name,
                                       json_string_value (json_object_get (msg, "sandbox")),
                                       (int) json_integer_value (json_object_get (msg, "slots")));
    dispatch_worker_offer (w, json_object_get (msg, "labels"),
                           json_integer_value (json_object_get (msg, "memory_mb")), address);
    //  Re-adopt interpreters the worker still holds, so sessions keep their state.
    size_t i;
    json_t *s;
    json_array_foreach (json_object_get (msg, "sessions"), i, s)
        dispatch_adopt (broker, w, s);
    json_array_foreach (json_object_get (msg, "running"), i, s)
        dispatch_adopt_orphan (broker, w, s);
    json_t *data = json_pack ("{s:s, s:i, s:s, s:s, s:O, s:s?}", "worker", name, "slots", w->slots,
                              "sandbox", w->sandbox, "key", principal, "labels", w->labels,
                              "address", w->address);
    if (data && w->memory_mb)
        json_object_set_new (data, "memory_mb", json_integer (w->memory_mb));
    backlog_event (broker, 0, "worker_joined", principal, data);
    json_decref (data);
    log_info ("worker %s ready with %d slots (sandbox: %s, address: %s)", name, w->slots,
              w->sandbox, w->address ? w->address : "?");
    fleet_joined (broker, w, drain_by);
    free (drain_by);
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
    if (egress_fields (msg, fields) != 0)
        log_error ("out of memory: the egress totals of a result are not recorded");
    return fields;
}

//  The job request `id` runs as on worker w, or NULL (logged): a result for anything else
//  changes nothing.
static job_t *
s_job_on (broker_t *broker, worker_t *w, int64_t id)
{
    job_t *job = dispatch_running (broker, w, id);
    if (!job)
        log_warn ("worker %s: result for request %lld that it is not running, ignored", w->name,
                  (long long) id);
    return job;
}

//  What `sessions` shows of the interpreter: its count and its memory as the result says.
static void
s_note_session (broker_t *broker, job_t *job, json_t *result)
{
    char key[RUNQ_KEY_MAX];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    json_t *note = json_pack ("{s:O?, s:O?}", "execution_count",
                              json_object_get (result, "execution_count"), "memory_kb",
                              json_object_get (result, "max_rss_kb"));
    if (note)
        dispatch_note (broker, key, note);
    json_decref (note);
}

static void
s_on_result (broker_t *broker, worker_t *w, json_t *msg)
{
    job_t *job = s_job_on (broker, w, json_integer_value (json_object_get (msg, "id")));
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
        egress_record (broker, job->id, w->name, msg);
        if (backlog_fire (broker, job->id, "running", EV_FINISH, w->name, fields) != 0)
            log_error ("request %lld: result could not be recorded", (long long) job->id);
        json_decref (fields);
    }
    s_note_session (broker, job, msg);
    dispatch_release (broker, w, job);
    fleet_settle (broker, w);
}

//  A result frame we cannot accept still ends its request.
static void
s_on_refused_result (broker_t *broker, worker_t *w, int64_t id, const proto_error_t *err)
{
    job_t *job = s_job_on (broker, w, id);
    char why[400];
    snprintf (why, sizeof why, "the worker's result was refused (%s: %s)", err->code, err->message);
    if (job)
        s_end_unanswered (broker, w, job, "error", "ResultRefused", why);
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
    const char *bound = dispatch_bound (broker, key);
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
    //  An eviction is the worker's choice, not the interpreter's end: its own event type, so
    //  that "whose state did the worker drop, and when" is one query.
    bool evicted = reason && (strcmp (reason, "evicted") == 0 || strcmp (reason, "idle") == 0);
    backlog_event (broker, 0, evicted ? "evicted" : "session_ended", w->name, data);
    json_decref (data);
    dispatch_session_ended (broker, key, why);
    if (!dispatch_busy (broker, key))
        dispatch_unbind (broker, key);
    fleet_settle (broker, w);
}

void
workers_message (broker_t *broker, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    zframe_t *routing = zmsg_pop (msg);
    zframe_t *body = zmsg_last (msg);
    const char *role = body ? zframe_meta (body, "role") : NULL;
    const char *principal = body ? zframe_meta (body, "name") : NULL;
    if (!routing || !body || zmsg_size (msg) != 1 || !role || strcmp (role, "worker") != 0) {
        //  Only worker keys speak here; anything else is dropped without an answer, and
        //  counted toward a `rejected` event like a client's refusals: a key probing the
        //  worker socket leaves a trace.
        if (s_may_log ())
            log_warn ("worker socket: message from a non-worker key (%s), dropped",
                      principal ? principal : "?");
        if (routing)
            refusals_note (broker, routing, principal ? principal : "?", PROTO_E_FORBIDDEN,
                           zmsg_content_size (msg));
        goto done;
    }
    char *key = zframe_strhex (routing);
    proto_error_t err;
    json_t *m = NULL;
    worker_t *w = dispatch_worker (broker, key);
    if (proto_parse_worker (zframe_data (body), zframe_size (body), &m, &err) != 0) {
        if (s_may_log ())
            log_warn ("worker %s: bad message (%s: %s), ignored", principal, err.code, err.message);
        int64_t id = s_result_id ((const char *) zframe_data (body), zframe_size (body));
        if (w && id > 0)
            s_on_refused_result (broker, w, id, &err);
        free (key);
        goto done;
    }
    const char *op = json_string_value (json_object_get (m, "op"));
    if (strcmp (op, "ready") == 0)
        s_on_ready (broker, routing, key, m, principal, zframe_meta (body, "Peer-Address"));
    else if (!w) {
        //  A connection we do not know (its ready was refused, or came before our restart):
        //  ask it to announce itself.
        json_t *ask = proto_announce ();
        wsend (broker, routing, principal, ask);
        json_decref (ask);
    }
    else {
        w->last_seen = clock_mono_ms ();
        w->last_seen_wall = clock_wall_ms ();
        if (strcmp (op, "result") == 0)
            s_on_result (broker, w, m);
        else if (strcmp (op, "session_closed") == 0)
            s_on_closed (broker, w, m);
        else if (strcmp (op, "output") == 0 && dispatch_running (broker, w, json_integer_value (
                     json_object_get (m, "id"))))
            stream_chunk (broker, json_integer_value (json_object_get (m, "id")), m);
    }
    json_decref (m);
    free (key);
done:
    zframe_destroy (&routing);
    zmsg_destroy (msg_p);
}

void
workers_drop (broker_t *broker, zframe_t *routing, const char *why)
{
    char *key = zframe_strhex (routing);
    worker_t *w = dispatch_worker (broker, key);
    if (w)
        s_worker_lost (broker, w, why);
    free (key);
}

void
workers_tick (broker_t *broker)
{
    int64_t now = clock_mono_ms ();
    bool beat = now - s_last_heartbeat >= PROTO_HEARTBEAT_MS;
    if (beat)
        s_last_heartbeat = now;
    json_t *hb = proto_heartbeat ();
    //  A worker is dead when it was silent, not when we were busy: while messages wait on the
    //  socket (our loop was stalled by a slow write), nobody is judged.
    bool unread = zsock_events (broker->workers) & ZMQ_POLLIN;
    zlistx_t *keys = dispatch_worker_keys (broker);
    for (char *k = (char *) zlistx_first (keys); k; k = (char *) zlistx_next (keys)) {
        worker_t *w = dispatch_worker (broker, k);
        if (now - w->last_seen > PROTO_SILENCE_MS && !unread)
            s_worker_lost (broker, w, "silent for 3 s");
        else if (beat)
            wsend (broker, w->routing, w->name, hb);
    }
    zlistx_destroy (&keys);
    s_expire_runs (broker, now);
    fleet_tick (broker);
    json_decref (hb);
}
