/*  broker/dispatch.h: which worker runs what (see dispatch.c). A service: it keeps the
    workers' slots, the run queue (runq.c), the running jobs and which worker holds which
    session, and answers "start X on W"; it never fires a transition or sends a message
    (workers.c does, on its answers). */
#ifndef RG_DISPATCH_H
#define RG_DISPATCH_H
#include "broker/broker.h"
#include "broker/runq.h"

//  A connected worker. Owned by dispatch; workers.c fills and reads it.
typedef struct {
    char *key;              //  routing id as hex: routing ids change on reconnect
    zframe_t *routing;
    char *name;
    char *sandbox;
    int slots;
    int running;
    int64_t last_seen;      //  monotonic ms of the last message from it
    int64_t last_seen_wall; //  the same, by the wall clock (for `workers`)
    json_t *labels;         //  the labels it announced (array, never NULL)
    int64_t memory_mb;      //  the memory it announced, 0 if it did not
    char *address;          //  its connection's peer address, or NULL
    bool draining;          //  `drain`: it takes no new sessions (fleet.c)
    bool drained;           //  it was told it holds nothing any more
    char *drain_by;         //  the admin who drained it
} worker_t;

dispatch_t *dispatch_new (void);
void dispatch_destroy (dispatch_t **self_p);

//  Queues a request from its stored row (which must be `queued`): the state machine's entry
//  action for `queued`. `limits` in the row override the broker's defaults in its `run`.
void dispatch_enqueue_row (broker_t *broker, json_t *row);
//  Forgets a queued request (after it was cancelled). True if it was in the queue.
bool dispatch_unqueue (broker_t *broker, int64_t id);

//  The job to start next and the worker to start it on: first sessions a worker holds, on
//  that worker while it has a free slot and is not draining, then the longest waiting
//  session no worker holds that some worker can take: on the one, of the live workers not
//  draining that have all its job's labels, with the most free slots, then the most memory.
//  NULL if nothing can start. The job stays queued until dispatch_start. A job of a bound
//  session may not fit its worker (dispatch_fits): the caller moves the session instead.
job_t *dispatch_next (broker_t *broker, worker_t **w);
//  True if worker w has every label of the label set `labels` (a job's, runq.h).
bool dispatch_fits (worker_t *w, const char *labels);
//  True if a live worker that takes new sessions has every label of `labels`.
bool dispatch_placeable (broker_t *broker, const char *labels);
//  The label sets with queued requests, and their counts (runq_each_labels); the ids of
//  the queued requests of one (caller destroys the list).
void dispatch_each_labels (broker_t *broker, runq_count_fn *fn, void *arg);
zlistx_t *dispatch_queued_with (broker_t *broker, const char *labels);
//  Why queued request id cannot start anywhere now, in buf (a sentence naming the labels
//  no live worker has, or that those that have them are draining); NULL if it is not queued
//  here, its session is bound to a worker, or some worker can take it once a slot is free.
const char *dispatch_waiting (broker_t *broker, int64_t id, char *buf, size_t size);
//  Takes the job dispatch_next returned off the queue: it runs on w from now on (its
//  session bound to w and busy), until its deadline (monotonic ms).
void dispatch_start (broker_t *broker, job_t *job, worker_t *w, int64_t deadline);

//  The job request id runs as on worker w, or NULL.
job_t *dispatch_running (broker_t *broker, worker_t *w, int64_t id);
//  The running jobs past their deadline, on live workers (caller destroys the list only).
zlistx_t *dispatch_overdue (broker_t *broker, int64_t now);
//  The job ended: its slot and its session's turn are free; the job is destroyed.
void dispatch_release (broker_t *broker, worker_t *w, job_t *job);

//  The worker holding session key's interpreter, or NULL; whether one of its jobs runs.
const char *dispatch_bound (broker_t *broker, const char *key);
bool dispatch_busy (broker_t *broker, const char *key);
//  The interpreter is gone: the session's next job goes to whichever worker is free.
void dispatch_unbind (broker_t *broker, const char *key);
//  What is known of a bound session's interpreter (fields not consumed; see runq_note).
void dispatch_note (broker_t *broker, const char *key, json_t *fields);
//  The sessions workers hold, of `owner` (NULL: everyone's), as the `sessions` op lists
//  them: [{lang, session, principal, worker, state, last_used, execution_count, memory_kb}].
json_t *dispatch_sessions (broker_t *broker, const char *owner);
//  The running job of request id, on whichever worker, or NULL.
job_t *dispatch_job (broker_t *broker, int64_t id);
//  Remembers why a session's interpreter ended; the next job of that session takes the note
//  as its reset_reason.
void dispatch_session_ended (broker_t *broker, const char *key, const char *why);

//  Workers: by key, by name, joining (slots from its `ready`; labels, memory_mb and address
//  set after), and the sessions and runs it still holds from before (adopted so that
//  sessions keep their state).
worker_t *dispatch_worker (broker_t *broker, const char *key);
worker_t *dispatch_worker_named (broker_t *broker, const char *name);
worker_t *dispatch_worker_add (broker_t *broker, const char *key, zframe_t *routing,
                               const char *name, const char *sandbox, int slots);
//  What w offers for placement: labels (array, not consumed; NULL: none), its memory (0:
//  not announced) and its connection's address (may be NULL).
void dispatch_worker_offer (worker_t *w, json_t *labels, int64_t memory_mb, const char *address);
void dispatch_adopt (broker_t *broker, worker_t *w, json_t *session);
//  The sessions w holds: [{key, principal, session, lang, busy}] (caller owns it).
json_t *dispatch_held (broker_t *broker, worker_t *w);
void dispatch_adopt_orphan (broker_t *broker, worker_t *w, json_t *entry);
//  A worker left: its sessions are unbound (each noted as ended with `note`), its jobs and
//  itself forgotten. Returns the ids (as text) of the jobs it ran that still need an end on
//  record (orphans had theirs); the caller destroys the list.
zlistx_t *dispatch_worker_remove (broker_t *broker, worker_t *w, const char *note);
//  Every worker's key (caller destroys the list).
zlistx_t *dispatch_worker_keys (broker_t *broker);

//  Counts for `ping`: workers, slots, running (not orphans) and queued requests, and of
//  those `unplaceable`: the ones whose labels no live worker taking new sessions has,
//  with `unplaceable_by_labels` {label set: count} ("" for the label-less).
json_t *dispatch_stats (broker_t *broker);

int dispatch_test (void);

#endif
