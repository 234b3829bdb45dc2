/*  broker/dispatch_test.c: the dispatcher driven without sockets or a store: queue order,
    session stickiness, placement on the least loaded worker, orphan adoption, and what a
    worker's loss leaves behind. */
#include "broker/dispatch.h"
#include "common/check.h"
#include "common/util.h"

static void
s_queue (broker_t *b, int64_t id, const char *owner, const char *session)
{
    json_t *row = json_pack ("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t) id, "principal", owner,
                             "session", session, "lang", "python", "code", "1");
    dispatch_enqueue_row (b, row);
    json_decref (row);
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
    return 0;
}
