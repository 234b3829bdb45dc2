/*  broker/clients.c: client operations. The caller's principal and role come from the CURVE
    connection (cert metadata that zauth attached to the frame), never from the message. */
#include "broker/clients.h"
#include "broker/approvals.h"
#include "broker/backlog.h"
#include "broker/control.h"
#include "broker/decide.h"
#include "broker/dispatch.h"
#include "broker/fleet.h"
#include "broker/notify.h"
#include "broker/outbox.h"
#include "broker/pass.h"
#include "broker/prune.h"
#include "broker/refusals.h"
#include "broker/state.h"
#include "broker/stream.h"
#include "broker/trust.h"
#include "common/proto.h"
#include "common/states.h"
#include "common/util.h"

void
broker_send_client (broker_t *self, zframe_t *routing, char *text)
{
    if (!text)
        return;
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, zframe_data (routing), zframe_size (routing));
    zmsg_addstr (msg, text);
    free (text);
    if (pass_open (self))
        pass_hold (self, &msg);         //  nobody is told before the pass commits
    else
        outbox_send (self, &msg);
}

void
broker_refuse (broker_t *broker, caller_t *c, const char *code, const char *message)
{
    refusals_note (broker, c->routing, c->principal, code, c->size);
    broker_send_client (broker, c->routing, proto_reply_error (c->rid, code, message));
}

static bool
s_role_is (caller_t *c, const char *a, const char *b)
{
    return strcmp (c->role, a) == 0 || (b && strcmp (c->role, b) == 0);
}

//  Loads request `id` if the caller may see it: its owner, an approver or an admin.
static json_t *
s_load_visible (broker_t *broker, caller_t *c, json_t *msg)
{
    int64_t id = json_integer_value (json_object_get (msg, "id"));
    json_t *row = store_get (broker->store, id);
    const char *owner = row ? json_string_value (json_object_get (row, "principal")) : NULL;
    if (!row || (!s_role_is (c, "approver", "admin") && (!owner || strcmp (owner, c->principal) != 0))) {
        //  Someone else's request reads as absent: ids must not leak what others ran.
        json_decref (row);
        broker_refuse (broker, c, PROTO_E_NOT_FOUND, "no such request");
        return NULL;
    }
    return row;
}

//  Records a submit and the policy's decision (ev, fields) on it, in the pass's commit: one
//  commit for the pass, and what was just stored is what the policy read, so nothing is
//  read back. The dispatcher waits for the commit, since nothing may run that the record
//  does not show.
static int
s_record (broker_t *broker, caller_t *c, json_t *req, state_event_t ev, json_t *fields,
          int64_t *id, bool *duplicate, const char **state)
{
    if (store_submit (broker->store, req, id, duplicate) != 0)
        return -1;
    pass_wrote (broker, c, *duplicate ? 0 : *id);
    if (!*duplicate) {
        json_object_set_new (req, "id", json_integer (*id));
        *state = backlog_decide (broker, req, c->groups, ev, fields);
    }
    return 0;
}

//  True if the submit `msg` names the snippet of stored request `row`: the same lang, session
//  and code, compared through the bind hash (which pruning keeps).
static bool
s_same_snippet (json_t *row, json_t *msg)
{
    json_t *code = json_object_get (msg, "code");
    char sha[65];
    bind_sha256 (json_string_value (json_object_get (msg, "lang")),
                 json_string_value (json_object_get (msg, "session")), json_string_value (code),
                 json_string_length (code), sha);
    const char *stored = json_string_value (json_object_get (row, "bind_sha256"));
    return stored && strcmp (stored, sha) == 0;
}

//  A run timeout above what the matching rule (or the broker) allows is refused before
//  anything is recorded. `fields` are the policy's decision, which names the rule.
static bool
s_timeout_refused (broker_t *broker, caller_t *c, json_t *timeout, int64_t max, json_t *fields)
{
    if (json_integer_value (timeout) >= 1 && json_integer_value (timeout) <= max)
        return false;
    const char *rule = json_string_value (json_object_get (fields, "rule"));
    char why[256];
    snprintf (why, sizeof why, "timeout_ms must be 1 to %lld here (the maximum of %s%s)",
              (long long) max, rule ? "rule " : "this broker", rule ? rule : "");
    broker_refuse (broker, c, PROTO_E_BAD_VALUE, why);
    return true;
}

//  A recorded submit's answer, given once the pass committed: the request as stored, or its
//  long poll; if the pass did not commit, `busy`, and its long poll and stream are forgotten.
//  A new submit's long poll waits already (s_follow); a duplicate's starts only here, after
//  the commit: a pass that fails forgets every long poll on a new request's id, and a
//  duplicate's id is another submitter's too.
typedef struct {
    zframe_t *routing;
    json_t *rid;
    int64_t id;
    bool duplicate;
    bool waiting;               //  its long poll waits already (notify.c)
    json_int_t wait_ms;
} answer_t;

static void
s_answer (broker_t *broker, void *arg, bool committed)
{
    answer_t *a = (answer_t *) arg;
    json_t *row = committed && !a->waiting ? store_get (broker->store, a->id) : NULL;
    const char *state = row ? json_string_value (json_object_get (row, "state")) : NULL;
    if (!committed) {
        notify_forget (broker, a->id);
        stream_end (broker, a->id);     //  nothing was sent: forgotten, as the request is
        broker_send_client (broker, a->routing, proto_reply_error (a->rid, PROTO_E_BUSY,
                                                                   BACKLOG_BUSY_TEXT));
    }
    else if (a->waiting)
        ;                               //  answered when it ends, or at its deadline
    else if (!row)
        broker_send_client (broker, a->routing, proto_reply_error (a->rid, PROTO_E_INTERNAL,
                                                                   "the request vanished"));
    else if (a->wait_ms > 0 && !states_is_terminal (state))
        notify_wait (broker, a->routing, a->rid, a->id, clock_mono_ms () + a->wait_ms);
    else {
        if (a->duplicate)
            json_object_set_new (row, "duplicate", json_true ());
        broker_send_client (broker, a->routing, proto_reply_ok (a->rid, json_incref (row)));
    }
    json_decref (row);
    zframe_destroy (&a->routing);
    json_decref (a->rid);
    free (a);
}

//  The request a submit asks to record: the caller's identity from its connection, the
//  snippet and its options from the message.
static json_t *
s_request (caller_t *c, json_t *msg)
{
    json_t *req = json_pack ("{s:s, s:s, s:O, s:O, s:O}", "principal", c->principal, "role", c->role,
                             "session", json_object_get (msg, "session"),
                             "lang", json_object_get (msg, "lang"), "code", json_object_get (msg, "code"));
    if (json_object_get (msg, "reason"))
        json_object_set (req, "reason", json_object_get (msg, "reason"));
    if (json_object_get (msg, "key"))
        json_object_set (req, "key", json_object_get (msg, "key"));
    if (c->groups && *c->groups)
        json_object_set_new (req, "groups", json_string (c->groups));
    if (json_object_get (msg, "timeout_ms"))
        json_object_set (req, "timeout_ms", json_object_get (msg, "timeout_ms"));
    return req;
}

//  What follows a recorded submit (request id, in `state`; a duplicate's state is NULL):
//  a new request's stream and long poll start now, since the start that may follow in this
//  pass asks the worker for the stream, and whatever ends the request in this pass answers
//  the poll once the pass committed. The answer itself waits for that commit (s_answer).
static void
s_follow (broker_t *broker, caller_t *c, json_t *msg, int64_t id, bool duplicate, const char *state)
{
    answer_t *a = (answer_t *) zmalloc (sizeof (answer_t));
    a->routing = zframe_dup (c->routing);
    a->rid = c->rid ? json_incref (c->rid) : NULL;
    a->id = id;
    a->duplicate = duplicate;
    a->wait_ms = json_integer_value (json_object_get (msg, "wait_ms"));
    if (!duplicate && !states_is_terminal (state)) {
        if (json_is_true (json_object_get (msg, "stream")))
            stream_open (broker, id, c->routing);
        if (a->wait_ms > 0) {
            notify_wait (broker, c->routing, c->rid, id, clock_mono_ms () + a->wait_ms);
            a->waiting = true;
        }
    }
    pass_after (broker, s_answer, a);
}

static void
s_submit (broker_t *broker, caller_t *c, json_t *msg)
{
    if (!s_role_is (c, "agent", "admin")) {
        broker_refuse (broker, c, PROTO_E_FORBIDDEN, "only agent and admin keys may submit");
        return;
    }
    json_t *req = s_request (c, msg);
    json_t *timeout = json_object_get (msg, "timeout_ms");
    //  The policy decides once, before anything is recorded.
    json_t *fields = NULL;
    int64_t max = 0, id = 0;
    state_event_t ev = decide_policy (broker, req, c->groups, &fields, &max);
    bool duplicate = false, refused = timeout && s_timeout_refused (broker, c, timeout, max, fields);
    const char *state = NULL;
    int rc = 0;
    if (!refused) {
        //  Fail closed: nothing is accepted that the record cannot hold now.
        rc = backlog_down (broker) || !pass_open (broker) ? -1
           : s_record (broker, c, req, ev, fields, &id, &duplicate, &state);
        if (rc != 0 && (backlog_down (broker) || backlog_check (broker, "recording a submit")))
            backlog_refuse (broker, c, "recording a submit");
        else if (rc != 0)
            broker_refuse (broker, c, PROTO_E_INTERNAL, "the request could not be recorded");
    }
    json_decref (fields);
    json_decref (req);
    if (refused || rc != 0)
        return;
    if (duplicate) {
        json_t *row = store_get (broker->store, id);
        bool same = row && s_same_snippet (row, msg);
        json_decref (row);
        if (!same) {
            //  A key names one snippet: answering with another's result would tell the agent
            //  that code ran which never did.
            broker_refuse (broker, c, PROTO_E_CONFLICT, "this idempotency key was used for "
                           "another snippet (a different code, lang or session); use a new key");
            return;
        }
    }
    s_follow (broker, c, msg, id, duplicate, state);
}

static void
s_status (broker_t *broker, caller_t *c, json_t *msg)
{
    json_t *row = s_load_visible (broker, c, msg);
    char why[400];
    const char *waiting = row ? dispatch_waiting (broker, json_integer_value (
                                    json_object_get (row, "id")), why, sizeof why) : NULL;
    if (waiting)        //  queued where no live worker can take it: why it waits
        json_object_set_new (row, "waiting", json_string (waiting));
    if (row)
        broker_send_client (broker, c->routing, proto_reply_ok (c->rid, row));
}

static void
s_await (broker_t *broker, caller_t *c, json_t *msg)
{
    json_t *row = s_load_visible (broker, c, msg);
    if (!row)
        return;
    json_t *t = json_object_get (msg, "timeout_ms");
    json_int_t timeout = t ? json_integer_value (t) : AWAIT_DEFAULT_MS;
    if (states_is_terminal (json_string_value (json_object_get (row, "state"))) || timeout == 0)
        broker_send_client (broker, c->routing, proto_reply_ok (c->rid, row));
    else {
        notify_wait (broker, c->routing, c->rid, json_integer_value (json_object_get (row, "id")),
                     clock_mono_ms () + timeout);
        json_decref (row);
    }
}

static void
s_cancel (broker_t *broker, caller_t *c, json_t *msg)
{
    json_t *row = s_load_visible (broker, c, msg);
    if (!row)
        return;
    const char *owner = json_string_value (json_object_get (row, "principal"));
    int64_t id = json_integer_value (json_object_get (row, "id"));
    const char *state = json_string_value (json_object_get (row, "state"));
    if (strcmp (c->role, "admin") != 0 && strcmp (owner, c->principal) != 0)
        broker_refuse (broker, c, PROTO_E_FORBIDDEN, "only the owner or an admin may cancel");
    else if (!state_can_fire (state, EV_CANCEL))
        broker_refuse (broker, c, PROTO_E_BAD_STATE, "only queued or pending requests can be cancelled");
    else if (backlog_down (broker) || state_fire (broker, id, state, EV_CANCEL, c->principal, NULL, NULL) != 0)
        backlog_refuse (broker, c, "cancelling");
    else {
        pass_wrote (broker, c, id);
        notify_reply_request (broker, c->routing, c->rid, id);
    }
    json_decref (row);
}

//  The dispatcher's counts, with the requests as the database has them: a result or a loss
//  that waits to be written is still `running` there, an undecided submit `received`.
static json_t *
s_stats (broker_t *broker)
{
    json_t *stats = dispatch_stats (broker);
    json_int_t running = json_integer_value (json_object_get (stats, "running"));
    json_object_set_new (stats, "running", json_integer (running + (json_int_t)
                                                         backlog_waiting_from (broker, "running")));
    json_object_set_new (stats, "received", json_integer ((json_int_t)
                                                          backlog_waiting_from (broker, "received")));
    return stats;
}

static void
s_ping (broker_t *broker, caller_t *c, json_t *msg)
{
    json_t *body = json_pack ("{s:s, s:s, s:s, s:s, s:o, s:o}", "pong", "pong", "version", BROKER_VERSION,
                              "principal", c->principal, "role", c->role,
                              "stats", s_stats (broker), "store", backlog_stats (broker));
    broker_send_client (broker, c->routing, proto_reply_ok (c->rid, body));
}

static void
s_subscribe (broker_t *broker, caller_t *c, json_t *msg)
{
    json_int_t since = json_integer_value (json_object_get (msg, "since"));
    //  Registered before the reply goes out: its first events are pushed later in this pass.
    if (notify_subscribe (broker, c, since) != 0)
        broker_refuse (broker, c, PROTO_E_TOO_MANY, "too many subscriptions held; retry later");
    else
        broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_pack ("{s:I}", "since", since)));
}

static void
s_pending (broker_t *broker, caller_t *c, json_t *msg)
{
    approvals_pending (broker, c, msg);
}

//  An approve or deny, vetted by approvals.c, fired here: the decider's approval and, when it
//  decides the request, the transition, in one commit.
static void
s_decide (broker_t *broker, caller_t *c, json_t *msg, bool approve)
{
    verdict_t v;
    const char *code, *why;
    if (approvals_vet (broker, c, msg, approve, &v, &code, &why) != 0)
        return broker_refuse (broker, c, code, why);
    int64_t id = json_integer_value (json_object_get (msg, "id"));
    json_t *fields = v.deny ? json_pack ("{s:s}", "message", v.message) : NULL;
    if (v.tampered) {
        if (state_fire (broker, id, "pending_approval", EV_DENY, "broker", fields, NULL) == 0)
            pass_wrote (broker, c, id);
        json_decref (fields);
        return broker_refuse (broker, c, PROTO_E_BAD_STATE, "hash mismatch: the stored code was altered; denied");
    }
    int ev = v.deny ? EV_DENY : v.quorum ? EV_QUORUM : -1;
    int rc = backlog_down (broker) ? -1 : state_fire_approval (broker, id, ev, v.approval, fields, NULL);
    json_decref (v.approval);
    json_decref (fields);
    if (rc != 0)
        return backlog_refuse (broker, c, "recording an approval");
    pass_wrote (broker, c, id);
    notify_reply_request (broker, c->routing, c->rid, id);
}

static void
s_approve (broker_t *broker, caller_t *c, json_t *msg)
{
    s_decide (broker, c, msg, true);
}

static void
s_deny (broker_t *broker, caller_t *c, json_t *msg)
{
    s_decide (broker, c, msg, false);
}

//  A gateway's own account of something the record should hold, e.g. a Slack message that
//  could not be delivered. Only gateway keys and admins; the actor is the key's principal.
static void
s_report (broker_t *broker, caller_t *c, json_t *msg)
{
    bool gateway = strcmp (c->role, "approver") == 0 && csv_has (c->groups, "gateway", 7);
    if (!gateway && strcmp (c->role, "admin") != 0) {
        broker_refuse (broker, c, PROTO_E_FORBIDDEN, "only gateway and admin keys report events");
        return;
    }
    int64_t id = json_integer_value (json_object_get (msg, "id"));
    json_t *row = id ? store_get (broker->store, id) : NULL;
    if (id && !row) {
        broker_refuse (broker, c, PROTO_E_NOT_FOUND, "no such request");
        return;
    }
    json_decref (row);
    json_t *detail = json_object_get (msg, "detail");
    if (backlog_down (broker) || store_event (broker->store, id, json_string_value (
            json_object_get (msg, "type")), c->principal, detail) != 0) {
        if (backlog_down (broker) || backlog_check (broker, "recording a report"))
            backlog_refuse (broker, c, "recording a report");
        else
            broker_refuse (broker, c, PROTO_E_INTERNAL, "the event could not be recorded");
    }
    else {
        pass_wrote (broker, c, 0);
        broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_pack ("{s:b}", "recorded", 1)));
    }
}

typedef void (op_fn) (broker_t *, caller_t *, json_t *);
static const struct { const char *op; op_fn *fn; } s_ops[] = {
    { "submit", s_submit }, { "status", s_status }, { "result", s_status }, { "await", s_await },
    { "cancel", s_cancel }, { "subscribe", s_subscribe }, { "ping", s_ping }, { "report", s_report },
    { "pending", s_pending }, { "approve", s_approve }, { "deny", s_deny },
    { "revoke", trust_revoke }, { "prune", prune_start },
    { "interrupt", control_interrupt }, { "sessions", control_sessions },
    { "reset", control_reset }, { "close", control_close },
    { "workers", fleet_workers }, { "drain", fleet_drain },
};

//  Counts a refused message toward its connection's next `rejected` event: its code and
//  size only. The message text may quote the garbage (a key name, a JSON token), so it goes
//  to the client alone; the client is answered every time.
static void
s_reject (broker_t *broker, caller_t *c, const char *code, const char *message, size_t size)
{
    c->size = size;
    broker_refuse (broker, c, code, message);
}

//  A key revoked while its connection is open: every message refused, answered at most once
//  a second (parsed then only to echo its rid), so a revoked flood costs a lookup each.
static void
s_refuse_revoked (broker_t *broker, caller_t *c, zframe_t *body)
{
    if (!refusals_note (broker, c->routing, c->principal, PROTO_E_FORBIDDEN, zframe_size (body)))
        return;
    json_t *request = NULL, *rid = NULL;
    proto_error_t err;
    proto_parse_client (zframe_data (body), zframe_size (body), &request, &rid, &err);
    c->rid = rid;
    broker_send_client (broker, c->routing, proto_reply_error (rid, PROTO_E_FORBIDDEN, "key revoked"));
    json_decref (request);
    json_decref (rid);
}

void
clients_message (broker_t *broker, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    zframe_t *routing = zmsg_pop (msg);
    zframe_t *body = zmsg_last (msg);
    caller_t c = { routing, NULL, NULL, NULL, NULL, NULL, 0 };
    pass_next (broker);                 //  what is answered from here on is this message's
    if (routing && body) {
        c.principal = zframe_meta (body, "name");
        c.role = zframe_meta (body, "role");
        c.groups = zframe_meta (body, "groups");
        c.pubkey = zframe_meta (body, "User-Id");
        c.size = zframe_size (body);
    }
    if (!c.principal || !c.role) {
        //  No authenticated identity (cannot happen with zauth running): answer nothing.
        log_warn ("client message without an authenticated principal, dropped");
        goto done;
    }
    if (!trust_check (broker, c.pubkey)) {
        s_refuse_revoked (broker, &c, body);
        goto done;
    }
    if (zmsg_size (msg) != 1) {
        s_reject (broker, &c, PROTO_E_BAD_FRAMES, "a request is exactly one frame", zmsg_content_size (msg));
        goto done;
    }
    json_t *request = NULL, *rid = NULL;
    proto_error_t err;
    if (proto_parse_client (zframe_data (body), zframe_size (body), &request, &rid, &err) != 0) {
        c.rid = rid;
        s_reject (broker, &c, err.code, err.message, zframe_size (body));
        json_decref (rid);
        goto done;
    }
    c.rid = rid;
    if (outbox_backlogged (broker, routing)) {
        //  Its earlier replies are still waiting to be read: take no new work from it, so
        //  that no acknowledgment can be lost (see broker/outbox.c).
        broker_refuse (broker, &c, PROTO_E_BUSY, "replies to this connection are waiting to be "
                       "read; read them, then retry");
        json_decref (request);
        json_decref (rid);
        goto done;
    }
    if (strcmp (c.role, "worker") == 0) {
        s_reject (broker, &c, PROTO_E_FORBIDDEN, "worker keys only speak the worker protocol",
                  zframe_size (body));
        json_decref (request);
        json_decref (rid);
        goto done;
    }
    const char *op = json_string_value (json_object_get (request, "op"));
    for (size_t i = 0; i < sizeof s_ops / sizeof s_ops[0]; i++)
        if (strcmp (op, s_ops[i].op) == 0)
            s_ops[i].fn (broker, &c, request);
    json_decref (request);
    json_decref (rid);
done:
    zframe_destroy (&routing);
    zmsg_destroy (msg_p);
}
