/*  store/schema.c: the migrations of the replgate database, oldest first. Entry i takes
    PRAGMA user_version i to i + 1 and ends by setting it. A released migration is never
    edited: a change is a new entry, so every database, however old, reaches the same
    schema by the same steps. */
#include "store/schema.h"
#include <stddef.h>

//  Migrations 4, 5 and 6 rebuild `requests`: every column it had at version 3 (and 4), in order,
//  and the triggers that guard it (as versions 1 and 2 left them).
#define REQUESTS_V3_COLUMNS \
    "id, principal, role, session, lang, code, code_sha256, bind_sha256, reason, idem_key," \
    " state, rule, decision_message, policy_sha256, worker, submitted_at, queued_at," \
    " started_at, finished_at, outcome, exit_code, signal, stdout, stderr, stdout_truncated," \
    " stderr_truncated, stdout_sha256, stderr_sha256, value, error_name, error_value," \
    " traceback, wall_ms, cpu_ms, max_rss_kb, execution_count, session_reset, sandbox," \
    " review, limits, pruned_at, value_truncated, error_name_truncated," \
    " error_value_truncated, traceback_truncated, reset_reason, session_cpu_ms"
#define REQUESTS_TRIGGERS \
    "CREATE TRIGGER requests_inputs_fixed BEFORE UPDATE OF principal, role, session, lang, code," \
    "  code_sha256, bind_sha256, reason, idem_key, submitted_at ON requests" \
    "  WHEN NOT (OLD.pruned_at IS NULL AND NEW.pruned_at IS NOT NULL AND NEW.code = ''" \
    "    AND NEW.principal IS OLD.principal AND NEW.role IS OLD.role" \
    "    AND NEW.session IS OLD.session AND NEW.lang IS OLD.lang" \
    "    AND NEW.code_sha256 IS OLD.code_sha256 AND NEW.bind_sha256 IS OLD.bind_sha256" \
    "    AND NEW.reason IS OLD.reason AND NEW.idem_key IS OLD.idem_key" \
    "    AND NEW.submitted_at IS OLD.submitted_at)" \
    "  BEGIN SELECT RAISE (ABORT, 'request inputs are immutable'); END;" \
    "CREATE TRIGGER requests_no_delete BEFORE DELETE ON requests" \
    "  BEGIN SELECT RAISE (ABORT, 'requests are never deleted'); END;" \
    "CREATE TRIGGER requests_pruned_once BEFORE UPDATE OF pruned_at ON requests" \
    "  WHEN OLD.pruned_at IS NOT NULL" \
    "  BEGIN SELECT RAISE (ABORT, 'a pruned request stays pruned'); END;"

//  The table `requests` as migration 5 made it, named NAME, with its CHECKs on state and
//  outcome as given (6 changes only their form), and what belongs to it: its indexes, and
//  the views over it (a table rebuilt under them drops them first and makes them again).
#define REQUESTS_V5_TABLE(NAME, STATE_CHECK, OUTCOME_CHECK) \
    "CREATE TABLE " NAME " (" \
    "  id INTEGER PRIMARY KEY," \
    "  principal TEXT NOT NULL, role TEXT NOT NULL, session TEXT NOT NULL," \
    "  lang TEXT NOT NULL CHECK (lang IN ('python', 'shell'))," \
    "  code TEXT NOT NULL, code_sha256 TEXT NOT NULL, bind_sha256 TEXT NOT NULL," \
    "  reason TEXT, idem_key TEXT," \
    "  state TEXT NOT NULL CHECK (" STATE_CHECK ")," \
    "  rule TEXT, decision_message TEXT, policy_sha256 TEXT, worker TEXT," \
    "  submitted_at TEXT NOT NULL, queued_at TEXT, started_at TEXT, finished_at TEXT," \
    "  outcome TEXT CHECK (" OUTCOME_CHECK ")," \
    "  exit_code INTEGER," \
    "  signal," \
    "  stdout TEXT, stderr TEXT," \
    "  stdout_truncated INTEGER CHECK (stdout_truncated IN (0, 1))," \
    "  stderr_truncated INTEGER CHECK (stderr_truncated IN (0, 1))," \
    "  stdout_sha256 TEXT, stderr_sha256 TEXT," \
    "  value TEXT, error_name TEXT, error_value TEXT, traceback TEXT," \
    "  wall_ms REAL, cpu_ms REAL, max_rss_kb INTEGER, execution_count INTEGER," \
    "  session_reset INTEGER CHECK (session_reset IN (0, 1)), sandbox TEXT," \
    "  review TEXT CHECK (review IS NULL OR json_valid (review))," \
    "  limits TEXT CHECK (limits IS NULL OR json_valid (limits))," \
    "  pruned_at TEXT," \
    "  value_truncated INTEGER CHECK (value_truncated IN (0, 1))," \
    "  error_name_truncated INTEGER CHECK (error_name_truncated IN (0, 1))," \
    "  error_value_truncated INTEGER CHECK (error_value_truncated IN (0, 1))," \
    "  traceback_truncated INTEGER CHECK (traceback_truncated IN (0, 1))," \
    "  reset_reason TEXT, session_cpu_ms REAL," \
    "  egress_connections INTEGER, egress_denied INTEGER, egress_bytes_out INTEGER," \
    "  egress_bytes_in INTEGER," \
    "  UNIQUE (principal, idem_key));"
#define REQUESTS_V5_COLUMNS REQUESTS_V3_COLUMNS \
    ", egress_connections, egress_denied, egress_bytes_out, egress_bytes_in"
#define REQUESTS_INDEXES \
    "CREATE INDEX requests_state ON requests (state, id);" \
    "CREATE INDEX requests_session ON requests (session, lang, id);" \
    "CREATE INDEX requests_submitted ON requests (submitted_at);" \
    "CREATE INDEX requests_finished ON requests (finished_at);"
#define REQUESTS_V5_VIEWS \
    "CREATE VIEW history AS SELECT r.id, r.submitted_at, r.principal, r.role, r.session, r.lang," \
    "  r.state, r.outcome, r.exit_code, r.signal, r.code, r.stdout, r.stderr, r.value," \
    "  r.error_name, r.error_value, r.traceback, r.reason," \
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '" \
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id" \
    "     AND a.decision = 'approve' ORDER BY a.id)) AS approvers," \
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '" \
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id" \
    "     AND a.decision = 'deny' ORDER BY a.id)) AS denied_by," \
    "  r.rule, r.decision_message, r.worker, r.queued_at, r.started_at, r.finished_at," \
    "  r.wall_ms, r.cpu_ms, r.max_rss_kb, r.execution_count, r.session_reset," \
    "  r.stdout_truncated, r.stderr_truncated, r.sandbox, r.code_sha256," \
    "  (SELECT CASE json_extract (e.data, '$.to') WHEN 'queued' THEN 'allow'" \
    "     WHEN 'pending_approval' THEN 'review' WHEN 'denied' THEN 'deny' END" \
    "     FROM events e WHERE e.request_id = r.id AND e.type IN ('queued', 'pending_approval'," \
    "     'denied') AND json_extract (e.data, '$.from') = 'received') AS decision," \
    "  r.review, r.limits, r.policy_sha256, r.bind_sha256, r.stdout_sha256, r.stderr_sha256," \
    "  length (CAST (r.stdout AS BLOB)) AS stdout_bytes," \
    "  length (CAST (r.stderr AS BLOB)) AS stderr_bytes, r.pruned_at," \
    "  (SELECT a.reason FROM approvals a WHERE a.request_id = r.id AND a.decision = 'deny'" \
    "     ORDER BY a.id LIMIT 1) AS deny_reason," \
    "  r.egress_connections, r.egress_denied, r.egress_bytes_out, r.egress_bytes_in" \
    "  FROM requests r;" \
    "CREATE VIEW pending AS SELECT r.id, r.submitted_at, r.principal, r.session, r.lang, r.code," \
    "  r.reason, r.rule, r.decision_message," \
    "  (SELECT count (*) FROM approvals a WHERE a.request_id = r.id" \
    "     AND a.decision = 'approve') AS approvals," \
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '" \
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id" \
    "     ORDER BY a.id)) AS approvers," \
    "  json_extract (r.review, '$.quorum') AS quorum," \
    "  json_extract (r.review, '$.expires_at') AS expires_at, r.review" \
    "  FROM requests r WHERE r.state = 'pending_approval';" \
    "CREATE VIEW session_log AS SELECT r.session, r.lang, r.id, r.execution_count," \
    "  r.submitted_at, r.principal, r.state, r.outcome, r.exit_code, r.code, r.stdout," \
    "  r.stderr, r.value, r.error_name, r.error_value, r.session_reset" \
    "  FROM requests r ORDER BY r.session, r.lang, r.id;"

static const char *s_migrations[] = {
    //  1: the initial schema
    "CREATE TABLE requests ("
    "  id INTEGER PRIMARY KEY,"
    "  principal TEXT NOT NULL, role TEXT NOT NULL, session TEXT NOT NULL,"
    "  lang TEXT NOT NULL CHECK (lang IN ('python', 'shell')),"
    "  code TEXT NOT NULL, code_sha256 TEXT NOT NULL, bind_sha256 TEXT NOT NULL,"
    "  reason TEXT, idem_key TEXT,"
    "  state TEXT NOT NULL CHECK (state IN ('received', 'pending_approval', 'queued', 'running',"
    "    'done', 'denied', 'expired', 'cancelled', 'lost')),"
    "  rule TEXT, decision_message TEXT, policy_sha256 TEXT, worker TEXT,"
    "  submitted_at TEXT NOT NULL, queued_at TEXT, started_at TEXT, finished_at TEXT,"
    "  outcome TEXT CHECK (outcome IN ('ok', 'error', 'timeout', 'oom', 'killed', 'output_limit')),"
    "  exit_code INTEGER,"
    "  signal,"                             //  no affinity: a number or a name, kept as given
    "  stdout TEXT, stderr TEXT,"
    "  stdout_truncated INTEGER CHECK (stdout_truncated IN (0, 1)),"
    "  stderr_truncated INTEGER CHECK (stderr_truncated IN (0, 1)),"
    "  stdout_sha256 TEXT, stderr_sha256 TEXT,"
    "  value TEXT, error_name TEXT, error_value TEXT, traceback TEXT,"
    "  wall_ms REAL, cpu_ms REAL, max_rss_kb INTEGER, execution_count INTEGER,"
    "  session_reset INTEGER CHECK (session_reset IN (0, 1)), sandbox TEXT,"
    "  UNIQUE (principal, idem_key));"
    "CREATE INDEX requests_state ON requests (state, id);"
    "CREATE INDEX requests_session ON requests (session, lang, id);"
    "CREATE INDEX requests_submitted ON requests (submitted_at);"
    "CREATE TABLE approvals ("
    "  id INTEGER PRIMARY KEY,"
    "  request_id INTEGER NOT NULL REFERENCES requests (id),"
    "  approver TEXT NOT NULL, via TEXT NOT NULL CHECK (via IN ('cli', 'slack')),"
    "  on_behalf_of TEXT, decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),"
    "  reason TEXT, at TEXT NOT NULL,"
    "  UNIQUE (request_id, approver));"
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY,"
    "  at TEXT NOT NULL, request_id INTEGER REFERENCES requests (id),"
    "  type TEXT NOT NULL, actor TEXT NOT NULL, data TEXT NOT NULL CHECK (json_valid (data)),"
    "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE INDEX events_request ON events (request_id, seq);"
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
    "  BEGIN SELECT RAISE (ABORT, 'events are append-only'); END;"
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
    "  BEGIN SELECT RAISE (ABORT, 'events are append-only'); END;"
    "CREATE TRIGGER approvals_no_update BEFORE UPDATE ON approvals"
    "  BEGIN SELECT RAISE (ABORT, 'approvals are append-only'); END;"
    "CREATE TRIGGER approvals_no_delete BEFORE DELETE ON approvals"
    "  BEGIN SELECT RAISE (ABORT, 'approvals are append-only'); END;"
    //  What an approval is bound to must never change, and the record is never pruned.
    "CREATE TRIGGER requests_inputs_fixed BEFORE UPDATE OF principal, role, session, lang, code,"
    "  code_sha256, bind_sha256, reason, idem_key, submitted_at ON requests"
    "  BEGIN SELECT RAISE (ABORT, 'request inputs are immutable'); END;"
    "CREATE TRIGGER requests_no_delete BEFORE DELETE ON requests"
    "  BEGIN SELECT RAISE (ABORT, 'requests are never deleted'); END;"
    "CREATE VIEW history AS SELECT r.id, r.submitted_at, r.principal, r.role, r.session, r.lang,"
    "  r.state, r.outcome, r.exit_code, r.signal, r.code, r.stdout, r.stderr, r.value,"
    "  r.error_name, r.error_value, r.traceback, r.reason,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'approve' ORDER BY a.id)) AS approvers,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'deny' ORDER BY a.id)) AS denied_by,"
    "  r.rule, r.decision_message, r.worker, r.queued_at, r.started_at, r.finished_at,"
    "  r.wall_ms, r.cpu_ms, r.max_rss_kb, r.execution_count, r.session_reset,"
    "  r.stdout_truncated, r.stderr_truncated, r.sandbox, r.code_sha256"
    "  FROM requests r;"
    "CREATE VIEW pending AS SELECT r.id, r.submitted_at, r.principal, r.session, r.lang, r.code,"
    "  r.reason, r.rule, r.decision_message,"
    "  (SELECT count (*) FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'approve') AS approvals,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     ORDER BY a.id)) AS approvers"
    "  FROM requests r WHERE r.state = 'pending_approval';"
    "CREATE VIEW session_log AS SELECT r.session, r.lang, r.id, r.execution_count,"
    "  r.submitted_at, r.principal, r.state, r.outcome, r.exit_code, r.code, r.stdout,"
    "  r.stderr, r.value, r.error_name, r.error_value, r.session_reset"
    "  FROM requests r ORDER BY r.session, r.lang, r.id;"
    "PRAGMA user_version = 1;",

    //  2: review and limits of a decision (JSON text, canonical form), the Slack user of an
    //  approval, and retention. Pruning blanks code and outputs but never the hashes; the
    //  one change of an input that is allowed is that blanking, in the same UPDATE that sets
    //  pruned_at, and pruned_at is set once. A hand edit that passes these triggers still
    //  lacks its `pruned` event, and verify says so.
    "ALTER TABLE requests ADD COLUMN review TEXT CHECK (review IS NULL OR json_valid (review));"
    "ALTER TABLE requests ADD COLUMN limits TEXT CHECK (limits IS NULL OR json_valid (limits));"
    "ALTER TABLE requests ADD COLUMN pruned_at TEXT;"
    "ALTER TABLE approvals ADD COLUMN slack_user TEXT;"
    "DROP TRIGGER requests_inputs_fixed;"
    "CREATE TRIGGER requests_inputs_fixed BEFORE UPDATE OF principal, role, session, lang, code,"
    "  code_sha256, bind_sha256, reason, idem_key, submitted_at ON requests"
    "  WHEN NOT (OLD.pruned_at IS NULL AND NEW.pruned_at IS NOT NULL AND NEW.code = ''"
    "    AND NEW.principal IS OLD.principal AND NEW.role IS OLD.role"
    "    AND NEW.session IS OLD.session AND NEW.lang IS OLD.lang"
    "    AND NEW.code_sha256 IS OLD.code_sha256 AND NEW.bind_sha256 IS OLD.bind_sha256"
    "    AND NEW.reason IS OLD.reason AND NEW.idem_key IS OLD.idem_key"
    "    AND NEW.submitted_at IS OLD.submitted_at)"
    "  BEGIN SELECT RAISE (ABORT, 'request inputs are immutable'); END;"
    "CREATE TRIGGER requests_pruned_once BEFORE UPDATE OF pruned_at ON requests"
    "  WHEN OLD.pruned_at IS NOT NULL"
    "  BEGIN SELECT RAISE (ABORT, 'a pruned request stays pruned'); END;"
    "CREATE INDEX requests_finished ON requests (finished_at);"
    "DROP VIEW history;"
    "CREATE VIEW history AS SELECT r.id, r.submitted_at, r.principal, r.role, r.session, r.lang,"
    "  r.state, r.outcome, r.exit_code, r.signal, r.code, r.stdout, r.stderr, r.value,"
    "  r.error_name, r.error_value, r.traceback, r.reason,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'approve' ORDER BY a.id)) AS approvers,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'deny' ORDER BY a.id)) AS denied_by,"
    "  r.rule, r.decision_message, r.worker, r.queued_at, r.started_at, r.finished_at,"
    "  r.wall_ms, r.cpu_ms, r.max_rss_kb, r.execution_count, r.session_reset,"
    "  r.stdout_truncated, r.stderr_truncated, r.sandbox, r.code_sha256,"
    //  What the policy decided first, from the transition out of `received`.
    "  (SELECT CASE json_extract (e.data, '$.to') WHEN 'queued' THEN 'allow'"
    "     WHEN 'pending_approval' THEN 'review' WHEN 'denied' THEN 'deny' END"
    "     FROM events e WHERE e.request_id = r.id AND e.type IN ('queued', 'pending_approval',"
    "     'denied') AND json_extract (e.data, '$.from') = 'received') AS decision,"
    "  r.review, r.limits, r.policy_sha256, r.bind_sha256, r.stdout_sha256, r.stderr_sha256,"
    "  length (CAST (r.stdout AS BLOB)) AS stdout_bytes,"
    "  length (CAST (r.stderr AS BLOB)) AS stderr_bytes, r.pruned_at"
    "  FROM requests r;"
    "DROP VIEW pending;"
    "CREATE VIEW pending AS SELECT r.id, r.submitted_at, r.principal, r.session, r.lang, r.code,"
    "  r.reason, r.rule, r.decision_message,"
    "  (SELECT count (*) FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'approve') AS approvals,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     ORDER BY a.id)) AS approvers,"
    "  json_extract (r.review, '$.quorum') AS quorum,"
    "  json_extract (r.review, '$.expires_at') AS expires_at, r.review"
    "  FROM requests r WHERE r.state = 'pending_approval';"
    "PRAGMA user_version = 2;",

    //  3: every text field of a result is capped like stdout, and says when it was cut; a
    //  session whose interpreter ended between snippets says why on its next result.
    "ALTER TABLE requests ADD COLUMN value_truncated INTEGER CHECK (value_truncated IN (0, 1));"
    "ALTER TABLE requests ADD COLUMN error_name_truncated INTEGER"
    "  CHECK (error_name_truncated IN (0, 1));"
    "ALTER TABLE requests ADD COLUMN error_value_truncated INTEGER"
    "  CHECK (error_value_truncated IN (0, 1));"
    "ALTER TABLE requests ADD COLUMN traceback_truncated INTEGER"
    "  CHECK (traceback_truncated IN (0, 1));"
    "ALTER TABLE requests ADD COLUMN reset_reason TEXT;"
    //  CPU a session used since its interpreter started, background processes included.
    "ALTER TABLE requests ADD COLUMN session_cpu_ms REAL;"
    "PRAGMA user_version = 3;",

    //  4: the outcome `interrupted` (a run stopped by the `interrupt` op), and the history
    //  view shows what a human who denied wrote. SQLite cannot change a CHECK constraint in
    //  place, so the table is rebuilt the documented way (store.c turns foreign keys off
    //  around migrations and checks them before the commit): the views that read it are
    //  dropped first and made again, its triggers and indexes made again on the new table.
    "DROP VIEW history;"
    "DROP VIEW pending;"
    "DROP VIEW session_log;"
    "CREATE TABLE requests_v4 ("
    "  id INTEGER PRIMARY KEY,"
    "  principal TEXT NOT NULL, role TEXT NOT NULL, session TEXT NOT NULL,"
    "  lang TEXT NOT NULL CHECK (lang IN ('python', 'shell')),"
    "  code TEXT NOT NULL, code_sha256 TEXT NOT NULL, bind_sha256 TEXT NOT NULL,"
    "  reason TEXT, idem_key TEXT,"
    "  state TEXT NOT NULL CHECK (state IN ('received', 'pending_approval', 'queued', 'running',"
    "    'done', 'denied', 'expired', 'cancelled', 'lost')),"
    "  rule TEXT, decision_message TEXT, policy_sha256 TEXT, worker TEXT,"
    "  submitted_at TEXT NOT NULL, queued_at TEXT, started_at TEXT, finished_at TEXT,"
    "  outcome TEXT CHECK (outcome IN ('ok', 'error', 'timeout', 'oom', 'killed', 'output_limit',"
    "    'interrupted')),"
    "  exit_code INTEGER,"
    "  signal,"
    "  stdout TEXT, stderr TEXT,"
    "  stdout_truncated INTEGER CHECK (stdout_truncated IN (0, 1)),"
    "  stderr_truncated INTEGER CHECK (stderr_truncated IN (0, 1)),"
    "  stdout_sha256 TEXT, stderr_sha256 TEXT,"
    "  value TEXT, error_name TEXT, error_value TEXT, traceback TEXT,"
    "  wall_ms REAL, cpu_ms REAL, max_rss_kb INTEGER, execution_count INTEGER,"
    "  session_reset INTEGER CHECK (session_reset IN (0, 1)), sandbox TEXT,"
    "  review TEXT CHECK (review IS NULL OR json_valid (review)),"
    "  limits TEXT CHECK (limits IS NULL OR json_valid (limits)),"
    "  pruned_at TEXT,"
    "  value_truncated INTEGER CHECK (value_truncated IN (0, 1)),"
    "  error_name_truncated INTEGER CHECK (error_name_truncated IN (0, 1)),"
    "  error_value_truncated INTEGER CHECK (error_value_truncated IN (0, 1)),"
    "  traceback_truncated INTEGER CHECK (traceback_truncated IN (0, 1)),"
    "  reset_reason TEXT, session_cpu_ms REAL,"
    "  UNIQUE (principal, idem_key));"
    "INSERT INTO requests_v4 (" REQUESTS_V3_COLUMNS ") SELECT " REQUESTS_V3_COLUMNS " FROM requests;"
    "DROP TABLE requests;"
    "ALTER TABLE requests_v4 RENAME TO requests;"
    "CREATE INDEX requests_state ON requests (state, id);"
    "CREATE INDEX requests_session ON requests (session, lang, id);"
    "CREATE INDEX requests_submitted ON requests (submitted_at);"
    "CREATE INDEX requests_finished ON requests (finished_at);"
    REQUESTS_TRIGGERS
    "CREATE VIEW history AS SELECT r.id, r.submitted_at, r.principal, r.role, r.session, r.lang,"
    "  r.state, r.outcome, r.exit_code, r.signal, r.code, r.stdout, r.stderr, r.value,"
    "  r.error_name, r.error_value, r.traceback, r.reason,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'approve' ORDER BY a.id)) AS approvers,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'deny' ORDER BY a.id)) AS denied_by,"
    "  r.rule, r.decision_message, r.worker, r.queued_at, r.started_at, r.finished_at,"
    "  r.wall_ms, r.cpu_ms, r.max_rss_kb, r.execution_count, r.session_reset,"
    "  r.stdout_truncated, r.stderr_truncated, r.sandbox, r.code_sha256,"
    "  (SELECT CASE json_extract (e.data, '$.to') WHEN 'queued' THEN 'allow'"
    "     WHEN 'pending_approval' THEN 'review' WHEN 'denied' THEN 'deny' END"
    "     FROM events e WHERE e.request_id = r.id AND e.type IN ('queued', 'pending_approval',"
    "     'denied') AND json_extract (e.data, '$.from') = 'received') AS decision,"
    "  r.review, r.limits, r.policy_sha256, r.bind_sha256, r.stdout_sha256, r.stderr_sha256,"
    "  length (CAST (r.stdout AS BLOB)) AS stdout_bytes,"
    "  length (CAST (r.stderr AS BLOB)) AS stderr_bytes, r.pruned_at,"
    "  (SELECT a.reason FROM approvals a WHERE a.request_id = r.id AND a.decision = 'deny'"
    "     ORDER BY a.id LIMIT 1) AS deny_reason"
    "  FROM requests r;"
    "CREATE VIEW pending AS SELECT r.id, r.submitted_at, r.principal, r.session, r.lang, r.code,"
    "  r.reason, r.rule, r.decision_message,"
    "  (SELECT count (*) FROM approvals a WHERE a.request_id = r.id"
    "     AND a.decision = 'approve') AS approvals,"
    "  (SELECT group_concat (who, ', ') FROM (SELECT a.approver || coalesce (' for '"
    "     || a.on_behalf_of, '') AS who FROM approvals a WHERE a.request_id = r.id"
    "     ORDER BY a.id)) AS approvers,"
    "  json_extract (r.review, '$.quorum') AS quorum,"
    "  json_extract (r.review, '$.expires_at') AS expires_at, r.review"
    "  FROM requests r WHERE r.state = 'pending_approval';"
    "CREATE VIEW session_log AS SELECT r.session, r.lang, r.id, r.execution_count,"
    "  r.submitted_at, r.principal, r.state, r.outcome, r.exit_code, r.code, r.stdout,"
    "  r.stderr, r.value, r.error_name, r.error_value, r.session_reset"
    "  FROM requests r ORDER BY r.session, r.lang, r.id;"
    "PRAGMA user_version = 4;",

    //  5: what a run reached through its egress proxy (issue 15): the totals the worker
    //  reported, in four columns the history view shows (NULL for a run without a grant; each
    //  connection is an `egress` event of its request), and the outcome `egress_limit`. A
    //  CHECK changes again, so the table is rebuilt as in 4; version 4 added no column, so
    //  every column it had is REQUESTS_V3_COLUMNS.
    "DROP VIEW history;"
    "DROP VIEW pending;"
    "DROP VIEW session_log;"
    REQUESTS_V5_TABLE ("requests_v5", "state IN ('received', 'pending_approval', 'queued',"
                       " 'running',    'done', 'denied', 'expired', 'cancelled', 'lost')",
                       "outcome IN ('ok', 'error', 'timeout', 'oom', 'killed', 'output_limit',"
                       "    'interrupted', 'egress_limit')")
    "INSERT INTO requests_v5 (" REQUESTS_V3_COLUMNS ") SELECT " REQUESTS_V3_COLUMNS " FROM requests;"
    "DROP TABLE requests;"
    "ALTER TABLE requests_v5 RENAME TO requests;"
    REQUESTS_INDEXES
    REQUESTS_TRIGGERS
    REQUESTS_V5_VIEWS
    "PRAGMA user_version = 5;",

    //  6: the CHECKs on state and outcome as comparisons joined by OR, which mean what their
    //  IN lists meant. SQLite checks an IN list of more than two constants by building a
    //  temporary b-tree of it for every row written: a fifth of the store's work for each
    //  request (see the README, Performance). The table is rebuilt as in 5.
    "DROP VIEW history;"
    "DROP VIEW pending;"
    "DROP VIEW session_log;"
    REQUESTS_V5_TABLE ("requests_v6", "state = 'received' OR state = 'pending_approval'"
                       " OR state = 'queued' OR state = 'running' OR state = 'done'"
                       " OR state = 'denied' OR state = 'expired' OR state = 'cancelled'"
                       " OR state = 'lost'",
                       "outcome = 'ok' OR outcome = 'error' OR outcome = 'timeout'"
                       " OR outcome = 'oom' OR outcome = 'killed' OR outcome = 'output_limit'"
                       " OR outcome = 'interrupted' OR outcome = 'egress_limit'")
    "INSERT INTO requests_v6 (" REQUESTS_V5_COLUMNS ") SELECT " REQUESTS_V5_COLUMNS " FROM requests;"
    "DROP TABLE requests;"
    "ALTER TABLE requests_v6 RENAME TO requests;"
    REQUESTS_INDEXES
    REQUESTS_TRIGGERS
    REQUESTS_V5_VIEWS
    "PRAGMA user_version = 6;",
};

int
schema_version (void)
{
    return (int) (sizeof s_migrations / sizeof s_migrations[0]);
}

const char *
schema_migration (int from)
{
    return from >= 0 && from < schema_version () ? s_migrations[from] : NULL;
}
