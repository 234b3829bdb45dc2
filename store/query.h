/*  store/query.h: internal to the store module: the streaming reads behind store_each and
    store_each_event. store.c owns the connection; store_read.c holds the read transaction. */
#ifndef RG_QUERY_H
#define RG_QUERY_H
#include "store/store.h"
#include <sqlite3.h>

//  The history view's columns (as schema v5 defines it), read from the base tables `requests
//  r`, `approvals` and `events`: the readers never read a view, which anyone with the file can
//  redefine (verify would say so, but what a reader showed would already be the view's).
#define QUERY_HISTORY_COLUMNS \
    "r.id, r.submitted_at, r.principal, r.role, r.session, r.lang, r.state, r.outcome," \
    " r.exit_code, r.signal, r.code, r.stdout, r.stderr, r.value, r.error_name, r.error_value," \
    " r.traceback, r.reason," \
    " (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '" \
    " || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id" \
    " AND a.decision = 'approve' ORDER BY a.id)) AS approvers," \
    " (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '" \
    " || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id" \
    " AND a.decision = 'deny' ORDER BY a.id)) AS denied_by," \
    " r.rule, r.decision_message, r.worker, r.queued_at, r.started_at, r.finished_at," \
    " r.wall_ms, r.cpu_ms, r.max_rss_kb, r.execution_count, r.session_reset," \
    " r.stdout_truncated, r.stderr_truncated, r.sandbox, r.code_sha256," \
    " (SELECT CASE json_extract (e.data, '$.to') WHEN 'queued' THEN 'allow'" \
    " WHEN 'pending_approval' THEN 'review' WHEN 'denied' THEN 'deny' END" \
    " FROM events e WHERE e.request_id = r.id AND e.type IN ('queued', 'pending_approval'," \
    " 'denied') AND json_extract (e.data, '$.from') = 'received') AS decision," \
    " r.review, r.limits, r.policy_sha256, r.bind_sha256, r.stdout_sha256, r.stderr_sha256," \
    " length (CAST (r.stdout AS BLOB)) AS stdout_bytes," \
    " length (CAST (r.stderr AS BLOB)) AS stderr_bytes, r.pruned_at," \
    " (SELECT a.reason FROM approvals a WHERE a.request_id = r.id AND a.decision = 'deny'" \
    " ORDER BY a.id LIMIT 1) AS deny_reason," \
    " r.egress_connections, r.egress_denied, r.egress_bytes_out, r.egress_bytes_in"

//  The history filters on `requests r`, parameters ?1 .. ?5 (principal, session, state,
//  since, until: see store_history).
#define QUERY_HISTORY_FILTERS \
    "(?1 IS NULL OR r.principal = ?1) AND (?2 IS NULL OR r.session = ?2)" \
    " AND (?3 IS NULL OR r.state = ?3) AND (?4 IS NULL OR r.submitted_at >= ?4)" \
    " AND (?5 IS NULL OR r.submitted_at < ?5)"

typedef struct {
    sqlite3_stmt *requests;     //  history rows by filters, in id order
    sqlite3_stmt *events;       //  events by filters, in seq order
} query_t;

//  0 or -1 (logged); on -1 whatever was prepared is finalized.
int query_prepare (query_t *self, sqlite3 *db);
void query_finalize (query_t *self);

//  Steps the requests (or, with events, the events) statement under filters, calling fn
//  with each row; see store_each. The caller holds a read transaction.
int query_each (query_t *self, sqlite3 *db, bool events, json_t *filters, store_each_fn *fn,
                void *arg);

//  In query_test.c, run by store_test: filters select exactly their rows, and fn can stop a walk.
int query_test (const char *dir);

#endif
