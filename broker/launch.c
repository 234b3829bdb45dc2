/*  broker/launch.c: starting runs, in the commit of the pass that freed them.

    dispatch.c answers "start job X on worker W" until nothing more can start. Each start is
    `queued -> running` in the store, fired inside the open group: the pass's (pass.c), so
    that a submit, its decision and its start commit together, or a group of its own after
    the loop's timers. No worker gets its `run` before that commit, since a run the record
    does not show must never begin.
    In memory a start is made at once (dispatch_start): the dispatcher's next answer counts
    the slot and the session's turn it took. If the commit fails, nothing of it was written:
    each job is released and queued again from its stored row, in its session's place (the
    run queue keeps id order), and its session keeps the note of why its state was gone. The
    broker is down then (backlog.c): they start once writes commit again. */
#include "broker/launch.h"
#include "broker/backlog.h"
#include "broker/dispatch.h"
#include "broker/state.h"
#include "broker/stream.h"
#include "broker/wsend.h"
#include "common/proto.h"
#include "common/util.h"

//  The session of job is bound to w, but job needs labels w lacks (the rule that matched
//  it asks for a placement the earlier snippets' did not): its interpreter on w ends, and
//  the session goes where its job fits, starting over (recorded, and said in its result).
static void
s_move (broker_t *broker, worker_t *w, job_t *job)
{
    char key[RUNQ_KEY_MAX], why[512];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    snprintf (why, sizeof why, "moved: its next snippet needs labels %.300s, which worker %.64s "
              "lacks", job->labels, w->name);
    json_t *close = proto_close (job->owner, job->session, job->lang);
    wsend (broker, w->routing, w->name, close);
    json_decref (close);
    dispatch_unbind (broker, key);
    dispatch_session_ended (broker, key, why);
    json_t *data = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", job->owner, "session",
                              job->session, "lang", job->lang, "worker", w->name, "reason", why);
    backlog_event (broker, 0, "session_closed", "broker", data);
    json_decref (data);
}

//  Starts job on w: `queued -> running` in the store's open group, and in memory. Returns
//  the `run` to send once the group committed, or NULL if it did not start: the job does not
//  fit w (s_move), the store is down (the job stays queued) or the request was no longer
//  queued (the job is forgotten).
static json_t *
s_start (broker_t *broker, worker_t *w, job_t *job)
{
    if (!dispatch_fits (w, job->labels)) {
        s_move (broker, w, job);
        return NULL;
    }
    json_t *fields = json_pack ("{s:s}", "worker", w->name);
    int rc = state_fire (broker, job->id, "queued", EV_DISPATCH, "broker", fields, NULL);
    json_decref (fields);
    if (rc != 0) {
        if (!backlog_check (broker, "starting a request"))
            dispatch_unqueue (broker, job->id);         //  cancelled meanwhile
        return NULL;
    }
    json_t *limits = json_pack ("{s:i, s:i}", "timeout_ms", broker->cfg.timeout_ms,
                                "output_bytes", broker->cfg.output_bytes);
    if (json_is_object (job->limits))
        json_object_update (limits, job->limits);
    json_object_del (limits, "labels");         //  where it runs, not how: the broker's
    //  The network grant is the run's own field, beside its limits (the worker's proxy).
    json_t *network = json_incref (json_object_get (limits, "network"));
    json_object_del (limits, "network");
    json_t *run = proto_run (job->id, job->owner, job->session, job->lang, job->code, limits,
                             json_is_object (network) ? network : NULL);
    json_decref (network);
    if (stream_wanted (broker, job->id))
        json_object_set_new (run, "stream", json_true ());
    json_t *timeout = json_object_get (limits, "timeout_ms");
    dispatch_start (broker, job, w, clock_mono_ms () + json_integer_value (timeout) + RUN_GRACE_MS);
    json_decref (limits);
    return run;
}

//  A start that did not commit: the job is queued again as the record has it.
static void
s_put_back (broker_t *broker, worker_t *w, job_t *job)
{
    int64_t id = job->id;
    char key[RUNQ_KEY_MAX];
    runq_key (job->lang, job->session, job->owner, key, sizeof key);
    if (job->reset_reason)
        dispatch_session_ended (broker, key, job->reset_reason);
    dispatch_release (broker, w, job);
    backlog_reenter (broker, id);
}

typedef struct {
    int64_t id;
    char *worker;               //  its worker's key
    json_t *run;
} start_t;

static void
s_start_destroy (void **item)
{
    start_t *s = (start_t *) *item;
    if (s) {
        free (s->worker);
        json_decref (s->run);
        free (s);
        *item = NULL;
    }
}

zlistx_t *
launch_fire (broker_t *broker)
{
    //  Nothing starts while the store refuses writes, nor outside a group.
    if (backlog_down (broker) || !store_in_group (broker->store))
        return NULL;
    zlistx_t *starts = zlistx_new ();
    zlistx_set_destructor (starts, s_start_destroy);
    worker_t *w;
    job_t *job;
    while (!backlog_down (broker) && (job = dispatch_next (broker, &w))) {
        int64_t id = job->id;
        json_t *run = s_start (broker, w, job);
        if (run) {
            start_t *s = (start_t *) zmalloc (sizeof (start_t));
            *s = (start_t) { .id = id, .worker = strdup (w->key), .run = run };
            zlistx_add_end (starts, s);
        }
    }
    return starts;
}

void
launch_send (broker_t *broker, zlistx_t **starts_p, bool committed)
{
    zlistx_t *starts = *starts_p;
    for (start_t *s = starts ? (start_t *) zlistx_first (starts) : NULL; s;
         s = (start_t *) zlistx_next (starts)) {
        worker_t *w = dispatch_worker (broker, s->worker);
        job_t *job = w ? dispatch_running (broker, w, s->id) : NULL;
        if (committed && w)
            wsend (broker, w->routing, w->name, s->run);
        else if (job)
            s_put_back (broker, w, job);
    }
    zlistx_destroy (starts_p);
}

void
launch_ready (broker_t *broker)
{
    if (backlog_down (broker) || store_in_group (broker->store) || !backlog_group_begin (broker))
        return;
    zlistx_t *starts = launch_fire (broker);
    launch_send (broker, &starts, backlog_group_end (broker));
}
