/*  broker/runq.h: queued requests, one FIFO per session, and the sessions ready to run.
    A pure data structure (no store, no sockets): dispatch.c asks it what to start next and
    tells it what started and ended. Every operation costs O(1) but runq_worker_remove and
    the walks (runq_each_*, runq_ids_with); runq_each_set costs one call per label set. */
#ifndef RG_RUNQ_H
#define RG_RUNQ_H
#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t id;
    char *owner;            //  the submitting principal
    char *session;
    char *lang;
    char *code;
    json_t *limits;         //  from the policy rule, or NULL
    char *labels;           //  the labels its worker must have, sorted, comma-separated
                            //  ("" for none): limits.labels in canonical form
    char *worker;           //  key of the worker running it (running jobs only)
    bool orphan;            //  sent by an earlier connection or broker: already `lost`, but
                            //  its slot stays busy until the worker answers
    char *reset_reason;     //  why the session's state was gone when this job started
    int64_t deadline;       //  monotonic ms: its limit plus RUN_GRACE_MS (running jobs)
    void *handle;           //  its place in its session's queue while queued
} job_t;

//  A job for request id; copies every string, holds a reference on limits (may be NULL),
//  whose `labels` (an array of strings) become the job's label set.
job_t *job_new (int64_t id, const char *owner, const char *session, const char *lang,
                const char *code, json_t *limits);
void job_destroy (job_t **self_p);

//  The session key of (lang, session, owner). Unambiguous although a principal's name may
//  hold any byte: lang and session never hold 0x1f, and the owner comes last.
#define RUNQ_KEY_MAX 512
void runq_key (const char *lang, const char *session, const char *owner, char *buf, size_t size);
//  The parts of a key runq_key made, each a span of key (lang, session, owner): 0, or -1 when
//  key is not one.
typedef struct {
    const char *part [3];
    size_t len [3];
} runq_key_parts_t;
int runq_key_split (const char *key, runq_key_parts_t *parts);

typedef struct _runq_t runq_t;

runq_t *runq_new (void);
void runq_destroy (runq_t **self_p);

//  Queues a job in its session's queue, in id order: a new job goes last, one put back
//  (its start or cancel did not commit) before its session's later jobs. Takes the job.
void runq_add (runq_t *self, job_t *job);
//  Takes queued request id out of its queue; the caller owns the job. NULL if not queued.
job_t *runq_remove (runq_t *self, int64_t id);
//  Requests queued, over all sessions.
size_t runq_size (runq_t *self);
//  The queued job of request id (still the runq's), or NULL.
job_t *runq_job (runq_t *self, int64_t id);
//  Calls fn for every label set with queued requests, with their count.
typedef void (runq_count_fn) (const char *labels, size_t queued, void *arg);
void runq_each_labels (runq_t *self, runq_count_fn *fn, void *arg);
//  The ids of the queued requests of a label set (walks the queue; caller destroys the list).
zlistx_t *runq_ids_with (runq_t *self, const char *labels);

//  The key of the session to start next on `worker` (bound there, idle, with a queued job),
//  or, with worker NULL, of the longest waiting session that no worker holds, whatever its
//  labels. NULL if none. The key stays the runq's.
const char *runq_ready (runq_t *self, const char *worker);
//  Sessions no worker holds wait in one FIFO per label set (their head job's), so that a job
//  no worker can take never holds up one behind it. fn is called once per label set that has
//  one waiting, with the longest waiting session's key and its place in the order all
//  unbound sessions arrived in (smaller: waiting longer).
typedef void (runq_set_fn) (const char *labels, const char *key, uint64_t order, void *arg);
void runq_each_set (runq_t *self, runq_set_fn *fn, void *arg);
//  The head job of session `key`, without taking it. NULL if its queue is empty.
job_t *runq_head (runq_t *self, const char *key);
//  Takes the head job of session `key` to run on `worker`: the session is bound there (if it
//  was not) and busy until runq_done. The caller owns the job.
job_t *runq_start (runq_t *self, const char *key, const char *worker);
//  The session's run ended: its next job may start.
void runq_done (runq_t *self, const char *key);

//  The worker holding session `key`'s interpreter, or NULL.
const char *runq_bound (runq_t *self, const char *key);
bool runq_busy (runq_t *self, const char *key);
//  The worker announced it holds this session's interpreter: bound there unless bound already.
void runq_adopt (runq_t *self, const char *key, const char *worker);
//  A run it still holds from before occupies the session (only if bound to that worker).
void runq_occupy (runq_t *self, const char *key, const char *worker);
//  The interpreter is gone: the session's next job goes to whichever worker is free.
void runq_unbind (runq_t *self, const char *key);

//  What is known of a bound session's interpreter (last_used, execution_count, memory_kb):
//  fields (not consumed) are merged into its note, which goes when the interpreter does.
//  Nothing happens for a session no worker holds.
void runq_note (runq_t *self, const char *key, json_t *fields);
//  Calls fn for every session a worker holds (its note may be NULL: adopted, never run).
//  fn must not change the runq.
typedef void (runq_each_fn) (const char *key, const char *worker, bool busy, json_t *note,
                             void *arg);
void runq_each_bound (runq_t *self, runq_each_fn *fn, void *arg);

//  A worker joined: sessions bound to it can become ready.
void runq_worker_add (runq_t *self, const char *worker);
//  A worker left: every session bound to it is unbound (its queued jobs wait for another
//  worker). Returns the keys of those sessions (caller destroys the list).
zlistx_t *runq_worker_remove (runq_t *self, const char *worker);

int runq_test (void);

#endif
