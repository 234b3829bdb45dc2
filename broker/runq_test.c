/*  broker/runq_test.c: the self-test of broker/runq.c: queue order, the ready lists,
    session stickiness, label sets and what a worker's leaving does. */
#include "broker/runq.h"
#include "common/check.h"
#include <string.h>

static job_t *
s_job (int64_t id, const char *session, const char *owner)
{
    return job_new (id, owner, session, "python", "1", NULL);
}

//  Counts the bound sessions whose note holds execution_count 1 and memory_kb 900.
static void
s_count_noted (const char *key, const char *worker, bool busy, json_t *note, void *arg)
{
    (void) key;
    if (strcmp (worker, "w1") == 0 && !busy && note
    &&  json_integer_value (json_object_get (note, "execution_count")) == 1
    &&  json_integer_value (json_object_get (note, "memory_kb")) == 900)
        (*(int *) arg)++;
}

//  Collects runq_each_set into {labels: [key, order]}.
static void
s_collect_set (const char *labels, const char *key, uint64_t order, void *arg)
{
    json_object_set_new ((json_t *) arg, labels, json_pack ("[s, I]", key, (json_int_t) order));
}

static void
s_collect_count (const char *labels, size_t queued, void *arg)
{
    json_object_set_new ((json_t *) arg, labels, json_integer ((json_int_t) queued));
}

//  Unbound sessions wait per label set (their head job's), in one order across sets: a set
//  no worker can take holds up no other.
static void
s_test_label_sets (void)
{
    runq_t *q = runq_new ();
    json_t *gpu = json_pack ("{s:[s, s, s]}", "labels", "gpu", "big", "gpu");
    job_t *job = job_new (1, "alice", "g", "python", "1", gpu);
    CHECK (strcmp (job->labels, "big,gpu") == 0);
    runq_add (q, job);
    runq_add (q, s_job (2, "p", "alice"));
    runq_add (q, job_new (3, "bob", "g", "python", "1", gpu));
    char ag[RUNQ_KEY_MAX], ap[RUNQ_KEY_MAX], bg[RUNQ_KEY_MAX];
    runq_key ("python", "g", "alice", ag, sizeof ag);
    runq_key ("python", "p", "alice", ap, sizeof ap);
    runq_key ("python", "g", "bob", bg, sizeof bg);
    CHECK (strcmp (runq_ready (q, NULL), ag) == 0);
    json_t *sets = json_object (), *counts = json_object ();
    runq_each_set (q, s_collect_set, sets);
    runq_each_labels (q, s_collect_count, counts);
    CHECK (json_object_size (sets) == 2);
    CHECK (strcmp (json_string_value (json_array_get (json_object_get (sets, "big,gpu"), 0)), ag) == 0);
    CHECK (strcmp (json_string_value (json_array_get (json_object_get (sets, ""), 0)), ap) == 0);
    CHECK (json_integer_value (json_array_get (json_object_get (sets, "big,gpu"), 1))
           < json_integer_value (json_array_get (json_object_get (sets, ""), 1)));
    CHECK (json_integer_value (json_object_get (counts, "big,gpu")) == 2
           && json_integer_value (json_object_get (counts, "")) == 1);
    zlistx_t *ids = runq_ids_with (q, "big,gpu");
    CHECK (zlistx_size (ids) == 2 && runq_job (q, 3) && strcmp (runq_job (q, 3)->labels, "big,gpu") == 0);
    zlistx_destroy (&ids);
    //  The label-less session starts although the gpu ones came first.
    runq_worker_add (q, "w1");
    job = runq_start (q, ap, "w1");
    CHECK (job && job->id == 2);
    job_destroy (&job);
    //  A session moves to the set of its new head: alice's next job needs no labels.
    runq_add (q, s_job (4, "g", "alice"));
    job = runq_remove (q, 1);
    job_destroy (&job);
    json_object_clear (sets);
    runq_each_set (q, s_collect_set, sets);
    CHECK (strcmp (json_string_value (json_array_get (json_object_get (sets, ""), 0)), ag) == 0);
    CHECK (strcmp (json_string_value (json_array_get (json_object_get (sets, "big,gpu"), 0)), bg) == 0);
    CHECK (strcmp (runq_ready (q, NULL), bg) == 0);     //  bob's waits longer than alice's move
    //  A set left empty is gone.
    job = runq_remove (q, 3);
    job_destroy (&job);
    json_object_clear (sets);
    json_object_clear (counts);
    runq_each_set (q, s_collect_set, sets);
    runq_each_labels (q, s_collect_count, counts);
    CHECK (json_object_size (sets) == 1 && json_object_get (sets, ""));
    CHECK (json_object_size (counts) == 1 && json_integer_value (json_object_get (counts, "")) == 1);
    json_decref (sets);
    json_decref (counts);
    json_decref (gpu);
    runq_destroy (&q);
}

int
runq_test (void)
{
    runq_t *q = runq_new ();
    char a[RUNQ_KEY_MAX], b[RUNQ_KEY_MAX];
    runq_key ("python", "s", "alice", a, sizeof a);
    runq_key ("python", "s", "bob", b, sizeof b);
    CHECK (strcmp (a, b) != 0);
    //  A principal's name may hold the separator: the owner is the rest of the key.
    runq_key_parts_t p;
    runq_key ("shell", "ops", "eve\x1fx", b, sizeof b);
    CHECK (runq_key_split (b, &p) == 0 && p.len [0] == 5 && strncmp (p.part [0], "shell", 5) == 0
           && p.len [1] == 3 && strncmp (p.part [1], "ops", 3) == 0
           && p.len [2] == 5 && strcmp (p.part [2], "eve\x1fx") == 0);
    CHECK (runq_key_split ("python\x1fno-owner", &p) == -1 && runq_key_split ("", &p) == -1);
    runq_key ("python", "s", "bob", b, sizeof b);
    for (int64_t id = 1; id <= 3; id++)
        runq_add (q, s_job (id, "s", id == 2 ? "bob" : "alice"));
    CHECK (runq_size (q) == 3);
    //  Nothing bound: the oldest waiting session comes first; a busy session waits.
    CHECK (runq_ready (q, NULL) && strcmp (runq_ready (q, NULL), a) == 0);
    runq_worker_add (q, "w1");
    job_t *job = runq_start (q, a, "w1");
    CHECK (job && job->id == 1 && runq_busy (q, a) && strcmp (runq_bound (q, a), "w1") == 0);
    job_destroy (&job);
    CHECK (strcmp (runq_ready (q, NULL), b) == 0);
    CHECK (runq_ready (q, "w1") == NULL);       //  alice's session runs: job 3 waits its turn
    runq_done (q, a);
    CHECK (runq_ready (q, "w1") && strcmp (runq_ready (q, "w1"), a) == 0);
    //  Notes live with the interpreter: merged while bound, gone when it is unbound.
    int seen = 0;
    json_t *note = json_pack ("{s:i}", "execution_count", 1);
    runq_note (q, a, note);
    json_object_set_new (note, "memory_kb", json_integer (900));
    runq_note (q, a, note);
    runq_note (q, b, note);                     //  bob's session is bound nowhere: no note
    json_decref (note);
    runq_each_bound (q, s_count_noted, &seen);
    CHECK (seen == 1);
    //  Cancelling the queued job takes the session out of the ready list.
    job = runq_remove (q, 3);
    CHECK (job && job->id == 3 && runq_size (q) == 1 && runq_ready (q, "w1") == NULL);
    job_destroy (&job);
    CHECK (runq_remove (q, 3) == NULL);
    //  The worker leaves: its sessions are unbound, their queued jobs wait for any worker.
    runq_add (q, s_job (4, "s", "alice"));
    CHECK (strcmp (runq_ready (q, "w1"), a) == 0);
    zlistx_t *keys = runq_worker_remove (q, "w1");
    CHECK (zlistx_size (keys) == 1 && strcmp ((char *) zlistx_first (keys), a) == 0);
    zlistx_destroy (&keys);
    seen = 0;
    runq_each_bound (q, s_count_noted, &seen);
    CHECK (seen == 0);
    CHECK (runq_bound (q, a) == NULL && runq_ready (q, "w1") == NULL);
    CHECK (strcmp (runq_ready (q, NULL), b) == 0);
    job = runq_start (q, b, "w2");              //  no ready list for w2: bound nowhere
    CHECK (job && job->id == 2 && runq_bound (q, b) == NULL);
    job_destroy (&job);
    runq_done (q, b);                           //  bob's session is forgotten: nothing left
    CHECK (runq_bound (q, b) == NULL && !runq_busy (q, b));
    //  Adoption: a worker that still holds an interpreter gets that session's jobs.
    runq_worker_add (q, "w2");
    runq_adopt (q, a, "w2");
    CHECK (strcmp (runq_ready (q, "w2"), a) == 0 && runq_ready (q, NULL) == NULL);
    runq_occupy (q, a, "w2");
    CHECK (runq_ready (q, "w2") == NULL && runq_busy (q, a));
    runq_unbind (q, a);
    runq_done (q, a);
    CHECK (strcmp (runq_ready (q, NULL), a) == 0);
    //  Many queued in one session: each start costs the same (no scan), order kept.
    for (int64_t id = 100; id < 10100; id++)
        runq_add (q, s_job (id, "s", "alice"));
    runq_worker_add (q, "w3");
    int64_t want = 4;
    bool ordered = true;
    while ((job = runq_start (q, a, "w3"))) {
        ordered = ordered && job->id == want;
        want = want == 4 ? 100 : want + 1;
        job_destroy (&job);
        runq_done (q, a);
    }
    CHECK (ordered && want == 10100 && runq_size (q) == 0);
    //  A start that did not commit puts its job back: it runs before its session's later jobs.
    runq_add (q, s_job (20001, "s", "alice"));
    runq_add (q, s_job (20002, "s", "alice"));
    job = runq_start (q, a, "w3");
    CHECK (job && job->id == 20001);
    runq_done (q, a);
    runq_add (q, job);
    job = runq_start (q, a, "w3");
    CHECK (job && job->id == 20001);
    job_destroy (&job);
    runq_done (q, a);
    job = runq_start (q, a, "w3");
    CHECK (job && job->id == 20002 && runq_size (q) == 0);
    job_destroy (&job);
    runq_destroy (&q);
    CHECK (q == NULL);
    s_test_label_sets ();
    return 0;
}
