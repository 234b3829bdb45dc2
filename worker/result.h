/*  worker/result.h: the fields of a snippet's `result` message that say how it ended and
    what it cost: outcome, exit code or signal, error, value, outputs, wall and CPU time,
    peak memory. Pure functions of what the session saw; session.c adds the rest. */
#ifndef RG_RESULT_H
#define RG_RESULT_H
#include "worker/outbuf.h"
#include "worker/spawn.h"
#include <jansson.h>
#include <stdbool.h>
#include <sys/resource.h>

//  Why a snippet ended.
typedef enum {
    END_REPLY,                  //  the driver answered
    END_EXIT,                   //  the interpreter exited or died of a signal
    END_TIMEOUT,
    END_OUTPUT,                 //  total output past the session's hard ceiling
    END_KILLED,                 //  session_kill()
    END_BROKEN,                 //  the driver broke the protocol: killed
    END_REJECTED,               //  never ran (no interpreter, bad code)
    END_INTERRUPTED,            //  session_interrupt(): the snippet answered SIGINT, or was killed
    END_EGRESS                  //  the run passed a cap of its network grant: killed
} result_end_t;

typedef struct {
    result_end_t end;
    const char *why;            //  for END_REJECTED and END_BROKEN: the WorkerError's text
    bool python;
    json_t *reply;              //  the Python driver's reply, or NULL
    int shell_status;           //  the shell snippet's status (END_REPLY, shell)
    int wstatus;                //  the interpreter's wait status (END_EXIT)
    bool oom;                   //  the session's cgroup saw an OOM kill
} result_cause_t;

//  Sets outcome, exit_code, signal, error and value in r.
void result_set_outcome (json_t *r, const result_cause_t *cause);
//  Sets key to the captured text (valid UTF-8 without NUL), or key_base64 to the captured
//  bytes when they are not such text, and flag to whether the cap cut them.
void result_set_output (json_t *r, outbuf_t *buf, const char *key, const char *flag);
//  Caps value and the error's name, value and traceback at cap bytes each (cut at a character
//  boundary) and sets value_truncated, error_name_truncated, error_value_truncated and
//  traceback_truncated: true when this cut them or the driver already had (its reply's
//  error says so in name_cut / value_cut / traceback_cut, its value in value_cut).
void result_cap_texts (json_t *r, json_t *reply, size_t cap);
//  Sets wall_ms, cpu_ms, session_cpu_ms and max_rss_kb from the sandbox's cgroup accounting.
void result_set_box_usage (json_t *r, double wall_ms, const spawn_usage_t *usage);
//  Sets them for an unsandboxed interpreter: CPU from clock ticks (-1: unknown, then the
//  reaped interpreter's rusage), peak from VmHWM (-1: the rusage's).
void result_set_usage (json_t *r, double wall_ms, long long cpu_start, long long ticks,
                       long rss_kb, const struct rusage *reaped);
#endif
