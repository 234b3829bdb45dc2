/*  worker/session.h: one REPL session: a long-lived interpreter (the python driver or bash)
    and the snippet running in it, driven without blocking from an event loop.
    The interpreter starts on the first snippet and again after it died or was killed.
    A snippet ends in exactly one result (see docs/worker-protocol.md, "result"). */
#ifndef RG_SESSION_H
#define RG_SESSION_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _session_t session_t;

typedef struct {
    int64_t timeout_ms;         //  wall clock for the snippet
    size_t output_bytes;        //  cap per stream; 64x this in total kills the session
    int64_t memory_mb;          //  the session's memory (swap included), set per snippet
    int64_t pids;               //  processes and threads of the session, set per snippet
    int64_t tmp_mb;             //  /tmp + work directory; fixed when the interpreter starts
    int64_t cpu_milli;          //  CPU bandwidth in thousandths of a CPU, set per snippet; 0 keeps
    int64_t egress_connections; //  connections a run with a grant may open through its proxy
    int64_t egress_bytes;       //  bytes both ways through that proxy, all connections
    bool stream;                //  its output is handed out as it comes (session_output)
} session_limits_t;

//  What session_step() found.
typedef enum {
    SESSION_NOTHING = 0,
    SESSION_RESULT = 1,         //  session_take_result() has the snippet's result
    SESSION_EXITED = 2          //  an idle interpreter went away (report session_closed "exited")
} session_event_t;

//  lang is "python" or "shell"; NULL for any other language. owner is the principal whose
//  session this is: (owner, lang, name) is the key, so two principals naming the same session
//  get two interpreters. Spawns nothing yet.
session_t *session_new (const char *lang, const char *owner, const char *name);
//  Kills the interpreter's process group and reaps it.
void session_destroy (session_t **self_p);

const char *session_name (session_t *self);
const char *session_owner (session_t *self);
const char *session_lang (session_t *self);
//  True while a snippet runs or its result waits to be taken.
bool session_busy (session_t *self);

//  The id of the snippet running now (valid while session_busy).
int64_t session_running_id (session_t *self);
//  The wait status of the last interpreter that ended (after SESSION_EXITED).
int session_exit_status (session_t *self);
//  True while an interpreter process exists.
bool session_alive (session_t *self);

//  Starts a snippet, spawning the interpreter if there is none. grant (grant.h text, or
//  NULL for none) gives this snippet alone egress through a proxy of its own (egress.h),
//  within limits' egress caps. Returns 0, 1 if the result is already there (the
//  interpreter or the proxy could not start), -1 if the session is busy.
int session_start (session_t *self, int64_t id, const char *code, size_t size,
                   const session_limits_t *limits, const char *grant);

//  The descriptors to poll (events: POLLIN, or POLLOUT for the command pipe) into fds and
//  events, at most max. Returns how many.
int session_fds (session_t *self, int *fds, short *events, int max);

//  Does all work that is possible now: reads pipes, writes the command, notices exits,
//  enforces limits. Call after any of its fds is ready or its deadline passed.
session_event_t session_step (session_t *self);

//  Monotonic ms of the next deadline, or -1 if none.
int64_t session_deadline_ms (session_t *self);

//  The finished result (a `result` message); the caller owns it. NULL if none is ready.
json_t *session_take_result (session_t *self);

//  Sends SIGINT into snippet `id` if it runs now (Python raises KeyboardInterrupt, bash stops
//  its foreground job): it ends `interrupted` when the driver answers, and if it has not
//  within 2 s (or by its deadline) the interpreter is killed. 0, or -1 if `id` is not running.
int session_interrupt (session_t *self, int64_t id);

//  What stream `which` (0 stdout, 1 stderr) of the snippet running now holds that was not
//  handed out yet: *data (valid until the next step) and the byte count; 0 if nothing new.
//  Bytes past the output cap are never handed out.
size_t session_output (session_t *self, int which, const char **data);

//  Ends a running snippet as "killed" (result ready afterwards) or stops an idle interpreter.
void session_kill (session_t *self);

//  A result for a snippet that never ran (outcome "error", error name "WorkerError", the
//  reason as its value, `sandbox` as the result's sandbox). The caller owns it.
json_t *session_reject (int64_t id, const char *name, const char *lang, const char *why,
                        const char *sandbox);

//  Starts one warm interpreter if the pool lacks one (spawn_refill), else prepares one
//  sandbox ahead (spawn_prepare). True if it did either.
bool session_refill (void);

int session_test (void);
#endif
