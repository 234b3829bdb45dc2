/*  broker/dispatch_test.c: the dispatcher driven without sockets or a store: queue order,
    session stickiness, placement on the least loaded worker, orphan adoption, what a
    worker's loss leaves behind, and placement by label (draining workers take nothing). */
#include "broker/dispatch.h"
#include "common/check.h"
#include "common/util.h"

//  Queues request id of (owner, session); labels: the placement its rule asks for, or NULL.
static void
s_queue_on (broker_t *b, int64_t id, const char *owner, const char *session, const char *labels)
{
    json_t *row = json_pack ("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t) id, "principal", owner,
                             "session", session, "lang", "python", "code", "1");
    if (labels)
        json_object_set_new (row, "limits", json_pack ("{s:i, s:[s]}", "timeout_ms", 5, "labels", labels));
    dispatch_enqueue_row (b, row);
    json_decref (row);
}

static void
s_queue (broker_t *b, int64_t id, const char *owner, const char *session)
{
    s_queue_on (b, id, owner, session, NULL);
}

//  Starts what dispatch_next offers, as workers.c would (without the store); returns the
//  ids started, in order, as "id@worker" separated by spaces.
static void
s_start_all (broker_t *b, char *out, size_t size)
{
    worker_t *w;
    job_t *job;
    size_t at = 0;
    out[0] = 0;
    while ((job = dispatch_next (b, &w))) {
        at += snprintf (out + at, size - at, "%s%lld@%s", at ? " " : "", (long long) job->id, w->name);
        dispatch_start (b, job, w, clock_mono_ms () + 1000);
    }
}

static void
s_finish (broker_t *b, const char *worker, int64_t id)
{
    worker_t *w = dispatch_worker_named (b, worker);
    job_t *job = w ? dispatch_running (b, w, id) : NULL;
    CHECK (job != NULL);
    if (job)
        dispatch_release (b, w, job);
}

static worker_t *
s_add_labelled (broker_t *b, const char *key, zframe_t *routing, int slots, const char *label,
                int64_t memory_mb)
{
    worker_t *w = dispatch_worker_add (b, key, routing, key, "none", slots);
    json_t *labels = label ? json_pack ("[s, s]", label, "x") : NULL;
    dispatch_worker_offer (w, labels, memory_mb, "10.0.0.1");
    json_decref (labels);
    return w;
}

//  A job runs only where every label of its rule is; one no worker can take says why it
//  waits and holds up nobody; among those that fit, the most free slots, then memory win.
static void
s_test_placement (void)
{
    broker_t b = { .dispatch = dispatch_new () };
    char started[256], why[256];
    zframe_t *r = zframe_new ("r", 1);
    s_queue (&b, 1, "alice", "a");
    CHECK (strcmp (dispatch_waiting (&b, 1, why, sizeof why), "no live worker") == 0);
    s_add_labelled (&b, "plain", r, 2, NULL, 0);
    s_queue_on (&b, 2, "alice", "g", "gpu");
    s_queue (&b, 3, "bob", "b");
    CHECK (dispatch_waiting (&b, 1, why, sizeof why) == NULL);
    CHECK (strcmp (dispatch_waiting (&b, 2, why, sizeof why), "no live worker has labels gpu") == 0);
    json_t *stats = dispatch_stats (&b);
    CHECK (json_integer_value (json_object_get (stats, "unplaceable")) == 1);
    CHECK (json_integer_value (json_object_get (json_object_get (stats, "unplaceable_by_labels"), "gpu")) == 1);
    json_decref (stats);
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "1@plain 3@plain") == 0);   //  not held up by the gpu job
    //  Two gpu workers with the same free slots: the one with more memory takes it.
    s_add_labelled (&b, "gpu-small", r, 1, "gpu", 1024);
    s_add_labelled (&b, "gpu-big", r, 1, "gpu", 65536);
    CHECK (dispatch_placeable (&b, "gpu") && !dispatch_placeable (&b, "gpu,tpu"));
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "2@gpu-big") == 0);
    CHECK (dispatch_fits (dispatch_worker_named (&b, "gpu-big"), "gpu,x")
           && !dispatch_fits (dispatch_worker_named (&b, "plain"), "gpu"));
    //  A draining worker takes no new session: the gpu one left waits for gpu-big's slot.
    dispatch_worker_named (&b, "gpu-small")->draining = true;
    s_queue_on (&b, 4, "carol", "g", "gpu");
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "") == 0 && dispatch_waiting (&b, 4, why, sizeof why) == NULL);
    dispatch_worker_named (&b, "gpu-big")->draining = true;
    CHECK (strcmp (dispatch_waiting (&b, 4, why, sizeof why),
                   "the live workers with labels gpu are draining") == 0);
    //  The most free slots before the most memory: wide (4 free) over plain (2 free, more memory).
    s_finish (&b, "plain", 1);
    s_finish (&b, "plain", 3);
    dispatch_worker_named (&b, "plain")->memory_mb = 8192;
    s_add_labelled (&b, "wide", r, 4, NULL, 0);
    s_queue (&b, 5, "dave", "d");
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "5@wide") == 0);
    zframe_destroy (&r);
    dispatch_destroy (&b.dispatch);
}

int
dispatch_test (void)
{
    broker_t b = { .dispatch = dispatch_new () };
    char started[256];
    zframe_t *r1 = zframe_new ("r1", 2), *r2 = zframe_new ("r2", 2);
    //  Nothing runs without a worker; queued work waits in order.
    s_queue (&b, 1, "alice", "s");
    s_queue (&b, 2, "alice", "s");
    s_queue (&b, 3, "bob", "s");
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "") == 0);
    //  One worker, two slots: alice's session runs one at a time, bob's beside it.
    dispatch_worker_add (&b, "k1", r1, "w1", "none", 2);
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "1@w1 3@w1") == 0);
    char alice[RUNQ_KEY_MAX];
    runq_key ("python", "s", "alice", alice, sizeof alice);
    CHECK (dispatch_busy (&b, alice) && strcmp (dispatch_bound (&b, alice), "k1") == 0);
    //  A second worker joins: alice's next snippet still waits for hers (sticky), and a new
    //  session goes to the least loaded worker.
    dispatch_worker_add (&b, "k2", r2, "w2", "none", 2);
    s_queue (&b, 4, "carol", "t");
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "4@w2") == 0);
    s_finish (&b, "w1", 1);
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "2@w1") == 0);
    //  A cancelled queued request is gone; an unknown one is not found.
    s_queue (&b, 5, "alice", "s");
    CHECK (dispatch_unqueue (&b, 5) && !dispatch_unqueue (&b, 5));
    //  The interpreter of a busy session ended: its next job carries the reason.
    s_queue (&b, 6, "alice", "s");
    dispatch_session_ended (&b, alice, "interpreter exited (exit status 1)");
    s_finish (&b, "w1", 2);
    worker_t *w;
    job_t *job = dispatch_next (&b, &w);
    CHECK (job && job->id == 6);
    dispatch_start (&b, job, w, clock_mono_ms () + 1000);
    CHECK (job->reset_reason && strstr (job->reset_reason, "exit status 1"));
    //  Overdue runs are reported by the broker's clock.
    zlistx_t *late = dispatch_overdue (&b, clock_mono_ms () + 5000);
    CHECK (zlistx_size (late) == 3);            //  3, 4 and 6
    zlistx_destroy (&late);
    //  w1 is lost: the runs it had (3, 6) need their end recorded; its sessions are unbound
    //  and their next jobs may go anywhere.
    s_queue (&b, 7, "alice", "s");
    zlistx_t *lost = dispatch_worker_remove (&b, dispatch_worker_named (&b, "w1"), "w1 was lost");
    CHECK (zlistx_size (lost) == 2);
    zlistx_destroy (&lost);
    CHECK (dispatch_bound (&b, alice) == NULL && dispatch_worker_named (&b, "w1") == NULL);
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "7@w2") == 0);
    //  A worker that comes back with a run from before: the run is an orphan (its end was
    //  recorded already), it occupies a slot and its session until the worker answers.
    dispatch_worker_add (&b, "k3", r1, "w3", "none", 1);
    json_t *orphan = json_pack ("{s:i, s:s, s:s, s:s}", "id", 3, "owner", "bob", "session", "s",
                                "lang", "python");
    json_t *held = json_pack ("{s:s, s:s, s:s}", "owner", "bob", "session", "s", "lang", "python");
    worker_t *w3 = dispatch_worker_named (&b, "w3");
    dispatch_adopt (&b, w3, held);
    dispatch_adopt_orphan (&b, w3, orphan);
    s_queue (&b, 8, "bob", "s");
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "") == 0);          //  bob's session is busy with the orphan
    json_t *stats = dispatch_stats (&b);
    CHECK (json_integer_value (json_object_get (stats, "running")) == 2);   //  4, 7: not 3
    CHECK (json_integer_value (json_object_get (stats, "queued")) == 1);
    json_decref (stats);
    s_finish (&b, "w3", 3);
    s_start_all (&b, started, sizeof started);
    CHECK (strcmp (started, "8@w3") == 0);      //  sticky to the worker that holds it
    json_decref (orphan);
    json_decref (held);
    zframe_destroy (&r1);
    zframe_destroy (&r2);
    dispatch_destroy (&b.dispatch);
    CHECK (b.dispatch == NULL);
    s_test_placement ();
    return 0;
}
