/*  common/proto.h: the wire protocol, both sockets, both directions: the readers (pure,
    allocation-owning parsers from one ZeroMQ frame to a validated JSON message, for what
    clients send the broker, what workers send the broker and what the broker sends
    workers), the builders of replies and of the worker link's messages, and the constants
    both ends of a link share. A reader never asserts on input: every defect maps to one
    stable error code (see PROTO_E_*), which clients may test. */
#ifndef RG_PROTO_H
#define RG_PROTO_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

//  The worker link: each end heartbeats every PROTO_HEARTBEAT_MS and holds the other dead
//  after PROTO_SILENCE_MS without a message. No frame on any socket may exceed
//  PROTO_MAX_WIRE: libzmq cuts off a peer that sends more.
#define PROTO_HEARTBEAT_MS 1000
#define PROTO_SILENCE_MS   3000
#define PROTO_MAX_WIRE     (64 * 1024 * 1024)

//  Largest client frame the broker reads; bigger ones get `too_large`.
#define PROTO_MAX_FRAME   (1024 * 1024)
//  Worker results carry two capped output streams plus value and traceback.
#define PROTO_MAX_WORKER_FRAME (48 * 1024 * 1024)
#define PROTO_MAX_SESSION 128
#define PROTO_MAX_KEY     128
#define PROTO_MAX_REASON  4096
#define PROTO_MAX_TIMEOUT_MS (24 * 3600 * 1000)   //  the longest run a submit may ask for
//  Placement: a worker announces at most this many labels, each 1-64 of [A-Za-z0-9._-]; a
//  policy rule asks for the same (policy/load.c), and a job runs only where all of its are.
#define PROTO_MAX_LABELS  16
#define PROTO_MAX_LABEL   64
#define PROTO_MAX_MEMORY_MB (1LL << 40)
//  `pending` answers a page: at most this many requests, and at most PROTO_PENDING_BYTES of
//  code and reasons (one huge parked snippet still comes alone).
#define PROTO_PENDING_LIMIT 500
#define PROTO_PENDING_BYTES (4 * 1024 * 1024)

//  Stable error codes, as they appear in `error.code`.
#define PROTO_E_TOO_LARGE   "too_large"
#define PROTO_E_BAD_UTF8    "bad_utf8"
#define PROTO_E_BAD_JSON    "bad_json"
#define PROTO_E_NOT_OBJECT  "not_object"
#define PROTO_E_UNKNOWN_OP  "unknown_op"
#define PROTO_E_UNKNOWN_KEY "unknown_key"
#define PROTO_E_MISSING     "missing_field"
#define PROTO_E_BAD_TYPE    "bad_type"
#define PROTO_E_BAD_VALUE   "bad_value"
#define PROTO_E_FORBIDDEN   "forbidden"
#define PROTO_E_NOT_FOUND   "not_found"
#define PROTO_E_BAD_STATE   "bad_state"
#define PROTO_E_INTERNAL    "internal"
#define PROTO_E_BAD_FRAMES  "bad_frames"
#define PROTO_E_DUPLICATE   "duplicate"
#define PROTO_E_BUSY        "busy"
#define PROTO_E_CONFLICT    "conflict"      //  an idempotency key reused for another snippet
#define PROTO_E_TOO_MANY    "too_many"      //  a bounded table (subscriptions) is full; retry later

typedef struct {
    const char *code;           //  one of PROTO_E_*, static
    char message[256];          //  human text naming the field at fault
} proto_error_t;

//  Parses and validates one client frame. On success returns 0 and *msg (caller owns) is a
//  JSON object whose `op` is known and whose fields all have the right types and ranges.
//  On failure returns -1, fills *err, and sets *rid (caller owns; may be NULL) to the request's
//  `rid` when it could be read, so the error reply can still echo it.
int proto_parse_client (const void *data, size_t size, json_t **msg, json_t **rid,
                        proto_error_t *err);

//  Same contract for frames a worker sends (`ready`, `heartbeat`, `result`, `session_closed`,
//  `output`).
int proto_parse_worker (const void *data, size_t size, json_t **msg, proto_error_t *err);

//  Builds a reply. `body` (may be NULL) is consumed (its keys are copied into the reply).
//  Returns a newly allocated compact JSON string the caller frees.
char *proto_reply_ok (json_t *rid, json_t *body);
char *proto_reply_error (json_t *rid, const char *code, const char *message);

//  True if name is a valid session name: 1..128 of [A-Za-z0-9._:-].
int proto_session_valid (const char *name);
//  True if label is a valid placement label: 1..64 of [A-Za-z0-9._-].
int proto_label_valid (const char *label);

//  Same contract for frames the broker sends a worker (`run`, `close`, `heartbeat`, `drain`,
//  `drained`, `announce`): the worker's reader.
int proto_parse_broker (const void *data, size_t size, json_t **msg, proto_error_t *err);

//  The worker link's messages (the caller owns each; NULL only when out of memory).
//  Broker to worker: a run of `code` in the session (owner, session, lang) with its final
//  limits and its network grant ({"allow": [...], "methods": [...]}, the policy's; NULL:
//  none) (neither consumed); the end of a session's interpreter; heartbeat; announce (asks
//  an unknown connection for its `ready`).
json_t *proto_run (int64_t id, const char *owner, const char *session, const char *lang,
                   const char *code, json_t *limits, json_t *network);
json_t *proto_close (const char *owner, const char *session, const char *lang);
//  SIGINT to the snippet request `id` runs in that session: it ends `interrupted`.
json_t *proto_interrupt (int64_t id, const char *owner, const char *session, const char *lang);
//  Worker to broker (and broker to the submitter, after masking): a chunk of what a run
//  asked to stream printed so far; `data` when the bytes are UTF-8 without NUL, else
//  `data_base64`. seq counts the run's chunks from 0, both streams in one sequence.
json_t *proto_output (int64_t id, const char *stream, int64_t seq, const char *data, size_t size);
json_t *proto_heartbeat (void);
json_t *proto_announce (void);
//  Worker to broker: `ready` with the sessions it holds and the runs it still has (arrays
//  of proto_held, consumed), and the end of an interpreter between snippets (`exit_code`
//  when >= 0 and no signal, `signal` when > 0). Results are built by the session that ran
//  them (worker/result.c) and read by proto_parse_worker.
json_t *proto_ready (const char *name, int slots, const char *sandbox, json_t *sessions,
                     json_t *running);
//  Adds what a worker offers for placement to its `ready`: labels (array of label strings,
//  not consumed; NULL: none) and memory_mb (its capacity; <= 0: not announced). 0 or -1.
int proto_ready_capacity (json_t *ready, json_t *labels, int64_t memory_mb);
//  Broker to worker: `drain` (take no new sessions: the broker sends none; finish the runs
//  under way) and `drained` (it holds nothing for the broker any more: it may exit).
json_t *proto_drain (void);
json_t *proto_drained (void);
json_t *proto_held (const char *owner, const char *session, const char *lang, int64_t running_id);
json_t *proto_session_closed (const char *owner, const char *session, const char *lang,
                              const char *reason, int exit_code, int signal);

int proto_test (void);
#endif
