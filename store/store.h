/*  store/store.h: the SQLite record of replgate: requests, approvals and the hash-chained,
    append-only event log. The broker is the only writer (retention too: the `prune` op, whose
    actor is the admin key that asked); the CLI and the approver open the file read-only, and no
    command of replgate writes to it any other way, so every actor on the chain is a key the
    broker authenticated, or the broker itself.

    Every write is one transaction (BEGIN IMMEDIATE ... COMMIT) that changes rows and appends
    events; a write function returns 0 only after COMMIT succeeded, and on any failure rolls
    back (nothing half-written), logs why and returns -1.

    SCHEMA (PRAGMA user_version = 6; migrations in schema.c, older files upgrade on open)
    requests   one row per submitted snippet: inputs (principal, role, session, lang, code,
               code_sha256, bind_sha256, reason, idem_key, submitted_at; immutable by trigger),
               state, decision (rule, decision_message, policy_sha256), worker, timestamps
               (queued_at, started_at, finished_at) and result (outcome, exit_code, signal,
               stdout, stderr, *_truncated, stdout_sha256, stderr_sha256, value, error_name,
               error_value, traceback, wall_ms, cpu_ms, max_rss_kb, execution_count,
               session_reset, sandbox), review and limits (v2: JSON objects as compact,
               sorted-key text, or NULL) and pruned_at (v2: when prune blanked its bodies);
               v5: egress_connections, egress_denied, egress_bytes_out, egress_bytes_in
               (the worker's egress_totals; NULL for a run without a network grant) and
               the outcome egress_limit. v6: the same CHECKs on state and outcome, as
               comparisons joined by OR (an IN list costs a temporary b-tree a row).
               UNIQUE (principal, idem_key). Rows are never deleted. Inputs are immutable
               (trigger) except the blanking of code by prune in the same UPDATE that sets
               pruned_at, once.
    approvals  one row per (request_id, approver): via cli|slack, on_behalf_of, slack_user
               (v2), decision approve|deny, reason, at. Append-only (triggers).
    events     seq, at, request_id (NULL if about no request), type, actor, data (JSON text),
               prev_hash, hash. Append-only (triggers).
    views      history (one readable row per request; v2 adds decision allow|review|deny, review,
               limits, policy_sha256, bind_sha256, stdout_sha256, stderr_sha256, stdout_bytes,
               stderr_bytes, pruned_at; v4 deny_reason; v5 the four egress totals),
               pending (requests awaiting approval with the approvals
               so far; v2 adds quorum, expires_at, review), session_log (each session's
               snippets in order).
    Times are ISO-8601 UTC text with milliseconds ("2026-11-28T12:00:00.123Z").

    THE HASH CHAIN (how a third party re-verifies it)
    Events are numbered seq = 1, 2, 3, ... with no gaps. For each event
        canonical = the compact JSON, keys sorted, of
                    {"actor":A,"at":T,"data":D,"request_id":R,"seq":S,"type":Y}
        hash      = lower-case hex sha256 of the bytes (prev_hash || canonical)
    where prev_hash is the previous event's hash as 64 hex characters (ASCII) and, for seq 1,
    64 '0' characters. Byte for byte, canonical is jansson's json_dumps (JSON_COMPACT |
    JSON_SORT_KEYS): no whitespace, keys in byte order at every depth, strings as UTF-8
    with only '"', '\\' and control characters escaped (\b \f \n \r \t, others \u00XX with
    upper-case hex), R is null or an integer, S an integer. The `data` column holds D
    already in that exact form, so a verifier may splice the column text in verbatim:
        '{"actor":' + json(actor) + ',"at":' + json(at) + ',"data":' + data_column
        + ',"request_id":' + (request_id or 'null') + ',"seq":' + seq + ',"type":' + json(type) + '}'
    store_verify insists that data is in that form, so both recipes give the same bytes.
    Truncating the tail of the chain is only detectable against a head hash kept elsewhere:
    record the `head` that store_verify reports.

    EVENT DATA
    received          {principal, role, session, lang, code_sha256, bind_sha256, reason, key}
                      bind_sha256 = sha256 (lang || 0x00 || session || 0x00 || code): what an
                      approval is bound to.
    a transition      {"from": old, "to": new, ...the fields it set (null when not given),
                       "reason"/"message" when given}; type = the new state. Large texts
                      (code, stdout, stderr, value, traceback) appear only as <name>_sha256;
                      review and limits appear as the objects themselves.
    approval          {approver, via, on_behalf_of, decision, reason, slack_user (only if given)}
    pruned            {before, code_sha256, stdout_sha256, stderr_sha256, value_sha256,
                      traceback_sha256}: the hashes of the bodies prune removed (null where there
                      was none), computed from what it removed, so verify can tell that what was
                      pruned was still what the chain recorded. One per pruned request.
    egress            (v5) one per connection a run made through its egress proxy, in the
                      order they ended, written with (and before) the run's `done` transition,
                      actor the worker: {host, address (absent if unresolved), port, method,
                      bytes_out, bytes_in, ms, outcome allowed|denied, reason (denied only)}
                      as common/egress_check.h checked it. The `done` event then also has
                      egress_dropped: entries the worker left out past 1000.
    anything else     whatever the caller recorded (rejected, worker_joined, worker_lost, ...). */
#ifndef RG_STORE_H
#define RG_STORE_H
#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _store_t store_t;

#define STORE_READONLY   1      //  SQLITE_OPEN_READONLY, no migration (CLI history/verify/export)
#define STORE_SYNC_FULL  2      //  synchronous=FULL instead of NORMAL (fsync every commit)
#define STORE_MANUAL_CHECKPOINT 4   //  no automatic WAL checkpoints: the owner runs a
                                    //  checkpointer (checkpointer.h) instead

//  Opens (creating and migrating unless STORE_READONLY) the database at path: WAL,
//  busy_timeout 5000 ms, foreign keys on. NULL on error (logged), including a schema newer
//  than this build knows or, read-only, a file that was never initialised. A store is for one
//  thread at a time: its connection is opened without a mutex (SQLITE_OPEN_NOMUTEX).
store_t *store_new (const char *path, int flags);

//  Copies committed WAL frames back into the database without waiting for readers (PASSIVE);
//  the broker calls it right after each of its checkpointer's (checkpointer.h). Returns the
//  number of frames the WAL held, or -1 on error (logged).
int store_checkpoint (store_t *self);

//  After a write returned -1: SQLite's error code if the database failed it (locked, full,
//  I/O error, read-only...), 0 if it was refused on its merits (a request not in the state
//  the caller saw, a bad field). The broker stops taking work on the first kind only.
//  After a read returned NULL, when the last write succeeded (its fault is cleared): nonzero
//  if the database failed the read, 0 if there was nothing to read.
int store_fault (store_t *self);

//  Groups the writes until store_group_end in one transaction: each write is a savepoint
//  inside it (a write that fails rolls back alone, as before), and nothing is durable, or
//  visible to other connections, before store_group_end commits (with commit false: rolls
//  back). The transaction begins with the group's first write: a group that writes nothing
//  never takes the write lock. store_group_begin cannot fail (0); store_group_end returns 0
//  if it did what was asked, -1 if the commit failed (then nothing of the group was
//  written). Groups do not nest.
int store_group_begin (store_t *self);
int store_group_end (store_t *self, bool commit);
bool store_in_group (store_t *self);

//  One write transaction that records nothing: 0 if the store takes writes now.
int store_probe (store_t *self);

//  How long a write waits for another connection's lock before failing (SQLITE_BUSY).
void store_busy_timeout (store_t *self, int ms);

//  Closes the database and NULLs *self_p. Safe on NULL.
void store_destroy (store_t **self_p);

//  Records a submission: req has principal, role, session, lang (python|shell), code
//  (strings) and optional reason, key (string or null) and groups (the cert's, a string). Inserts the row in state `received`
//  and the `received` event (actor = principal). If (principal, key) was already submitted,
//  sets *duplicate, *id to that request and writes nothing (the caller may compare
//  code_sha256 via store_get). 0 once committed, -1 on bad input or error.
int store_submit (store_t *self, json_t *req, int64_t *id, bool *duplicate);

//  Moves request id from `from` to `to` (an edge of common/states.h) and appends the event
//  of type `to`, in one transaction. Sets queued_at / started_at (running) / finished_at
//  (terminal).
//  `fields` (may be NULL, not consumed) sets, by transition:
//    from received:  rule, decision_message, policy_sha256 (strings); and to queued or
//                    pending_approval: limits (object, e.g. {"timeout_ms":30000,
//                    "memory_mb":1024}); to pending_approval: review (object, e.g.
//                    {"quorum":2,"ttl_s":600,"expires_at":"...Z","approvers":{"principals":
//                    [],"groups":[]},"webhook":null}). Both are stored as canonical JSON text,
//                    recorded in the event as objects, read back (store_get, history) as
//                    objects, and null when not given.
//    to running:     worker (string)
//    to done:        outcome, exit_code, signal (integer or string), stdout, stderr,
//                    stdout_truncated, stderr_truncated (bool), value, error_name,
//                    error_value, traceback (flat, or inside an "error" object {name,
//                    value, traceback}), wall_ms, cpu_ms (numbers), max_rss_kb,
//                    execution_count (integers), session_reset (bool), sandbox (string),
//                    egress_connections, egress_denied, egress_bytes_out, egress_bytes_in
//                    (integers; v5), and egress_dropped (an integer >= 0, in the event only).
//                    stdout_sha256 / stderr_sha256 are computed here.
//    any:            reason, message (strings): recorded in the event only.
//  Keys not listed for the transition are ignored; a listed key of the wrong type fails.
//  -1 if the row is not in `from` (the caller's view was stale), the edge is illegal, a
//  field is bad or the database fails: then nothing changed and no event was appended.
int store_transition (store_t *self, int64_t id, const char *from, const char *to,
                      const char *actor, json_t *fields);

//  Records one approver's decision on a request in pending_approval: approval has approver,
//  via (cli|slack), decision (approve|deny), optional on_behalf_of, reason, slack_user
//  (the Slack user id behind a slack approval; stored and recorded). Appends an
//  `approval` event (actor = approver) and, if `to` is not NULL, moves pending_approval ->
//  to with `fields` as store_transition does, all in one transaction. -1 if the request
//  is not pending, this approver already decided (check store_get's "approvals" first to
//  tell the user why) or on error; then nothing was written.
int store_approve (store_t *self, int64_t id, json_t *approval, const char *to,
                   json_t *fields);

//  Appends a standalone event in its own transaction (request_id 0 = none), e.g. rejected,
//  worker_joined, worker_lost. data (a JSON object or NULL for {}) is not consumed. The type
//  must not be a state name, "approval" or "pruned": those are written only by this module.
int store_event (store_t *self, int64_t request_id, const char *type, const char *actor,
                 json_t *data);

//  The requests row as a JSON object (every column; NULL as null; *_truncated and
//  session_reset as booleans; review and limits as objects) plus "approvals": [{approver,
//  via, on_behalf_of, slack_user, decision, reason, at}] in order, and "approvers" / "denied_by" ("bob, carol for U123" or null) as
//  in the history view. Caller owns it; NULL if absent or on error.
json_t *store_get (store_t *self, int64_t id);

//  What a request's place in the broker's memory needs (its run queue entry, or its tracked
//  approval), as store_get shows those columns, without the rest of the row or the
//  approvals: for the hot path of every allowed snippet. Caller owns it; NULL if absent or
//  on error (store_fault).
#define STORE_ENTRY_COLUMNS "id, state, principal, session, lang, code, limits, review, bind_sha256"
json_t *store_get_entry (store_t *self, int64_t id);

//  The current row of any SQLite statement as a JSON object keyed by column name: the one
//  "row as JSON" of the project (the store's readers, verify, the approver's own state).
//  NULL as null, integers and reals as numbers; 0/1 in *_truncated and session_reset as
//  booleans; review and limits parsed as objects. Text that is not valid UTF-8 without NUL,
//  and BLOBs, are shown with U+FFFD and given byte for byte as <name>_base64 (a BLOB). With
//  raw, every text is the unchecked bytes and nothing is parsed (verify hashes them). Caller
//  owns it; NULL out of memory. Defined in store_read.c.
json_t *store_row_json (sqlite3_stmt *stmt, bool raw);

//  *ids = a new array of the ids in `state`, ascending (start-up recovery). 0 or -1.
int store_ids_in_state (store_t *self, const char *state, json_t **ids);

//  The data of request id's `received` event (what the submitter's connection said about
//  it: principal, role, groups, hashes), parsed; NULL if there is none or on error.
json_t *store_received_data (store_t *self, int64_t id);

//  Events with seq > `seq`, ascending, at most `limit` (<= 0: all), as objects {seq, at,
//  request_id (null if none), type, actor, data (parsed), prev_hash, hash, owner}. owner is
//  the principal of the request the event is about (null if about none): who may see it.
//  It is not part of the hashed event; strip it before showing the event. NULL on error.
json_t *store_events_since (store_t *self, int64_t seq, int limit);

//  The events of type `type` about request id, ascending: {seq, at, actor, data (parsed; null
//  if it is not JSON)}. Usable inside store_each's fn (same snapshot). NULL on error.
json_t *store_request_events (store_t *self, int64_t id, const char *type);

//  The seq of the last event (0 if none), or -1 on error.
int64_t store_head_seq (store_t *self);

//  Rows with the `history` view's columns, built from the tables (anyone with the file can
//  redefine a view; no reader reads one), filtered by the optional string keys principal,
//  session, state, since (submitted_at >= since), until (submitted_at < until) of `filters`
//  (may be NULL). Any other key is an error (a mistyped filter must not widen the result). The
//  newest `limit` rows (<= 0: all), oldest first. NULL on error.
json_t *store_history (store_t *self, json_t *filters, int limit);

//  Calls fn (row, arg) for each history row (as store_history) that matches `filters` (as in
//  store_history), in id order, from one prepared statement inside one read snapshot:
//  memory stays flat however many rows there are, and the broker keeps writing meanwhile.
//  The row is borrowed (freed when fn returns; json_incref to keep it). fn returns 0 to go
//  on; anything else stops the walk and is returned. 0 when all rows were seen, -1 on error
//  (a bad filter included).
typedef int (store_each_fn) (json_t *row, void *arg);
int store_each (store_t *self, json_t *filters, store_each_fn *fn, void *arg);

//  The same over the event log, in seq order: {seq, at, request_id, type, actor, data,
//  prev_hash, hash} with data the column's text, verbatim (the canonical form that was
//  hashed, so a third party can splice it into the recipe above). since / until apply to the event's `at`; principal, session and state to
//  the request it is about (events about no request match only when none of those is set).
int store_each_event (store_t *self, json_t *filters, store_each_fn *fn, void *arg);

//  Retention: for every request in a terminal state that finished before `before` (ISO-8601
//  text, compared as text) and is not pruned yet, blanks code (to '') and stdout, stderr,
//  value, traceback (to NULL), sets pruned_at, and appends a `pruned` event (actor; data in
//  EVENT DATA above). Hashes stay in the row and in the events, so the chain still verifies
//  and still commits to what was removed. Works in batches of its own transactions so the
//  broker's writes interleave. *count = requests pruned. 0, or -1 (what was committed stays).
//  store_prune_batch does one batch of at most STORE_PRUNE_BATCH requests in one transaction
//  (*count < STORE_PRUNE_BATCH: nothing is left to prune): the broker runs one per pass of its
//  loop, so a prune of years holds the loop for one batch at a time.
#define STORE_PRUNE_BATCH 200
int store_prune (store_t *self, const char *before, const char *actor, int64_t *count);
int store_prune_batch (store_t *self, const char *before, const char *actor, int64_t *count);

//  Re-verifies everything in one read snapshot (works while the broker writes):
//  0. the schema: every table, index, trigger and view of sqlite_master (sqlite_stat* aside)
//     equals what schema.c's migrations create in an empty database, and PRAGMA
//     integrity_check finds nothing (an index whose contents differ from its table);
//  1. the chain, in seq order: seq contiguous from 1, prev_hash = previous hash, data in
//     canonical form, hash recomputed;
//  2. each request, in id order: its events start with `received` and each transition's
//     `from` is the state before it; every input, decision, timestamp and result column
//     equals what its events recorded; code, stdout, stderr, value and traceback hash to
//     the recorded sha256; state = the `to` of its last event; approvals rows = its
//     approval events. A row with no `received` event was not written by the store;
//  3. every `received` event still has its requests row.
//  *report = {"ok", "events": N, "requests": N, "first_at", "last_at", "head" (hash of the
//  last event, null if none), "head_seq" (its seq, 0 if none), "schema_version", "schema":
//  [every difference of step 0, as verify_schema in verify.h lists them; empty if none],
//  "bad": {"table": "events"|"requests"|"approvals", "row": seq or id, "why"} (the first
//  problem of steps 1-3; absent if none)}; "ok" is false if schema or bad says anything.
//  Caller owns it.
//  A pruned request is checked against its `pruned` event instead: code '' and the other
//  bodies NULL, pruned_at its time, and the hashes it recorded equal to what the request's
//  earlier events recorded.
//  Returns 0 if intact, 1 if tampering (of the schema or the rows) was found, -1 on error
//  (*report NULL).
int store_verify (store_t *self, json_t **report);

//  store_verify, and also proves a head hash saved earlier: some event must have exactly
//  that hash (the chain up to it being intact, as above). Else the report's bad is {"table":
//  "events", "row": 0, "why": ...}: the history before the saved head was rewritten (or cut
//  short). When found the report has "since_head": {"hash", "seq", "events_after"}.
int store_verify_head (store_t *self, const char *head, json_t **report);

int store_test (void);
#endif
