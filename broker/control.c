/*  broker/control.c: client operations on live interpreters and runs, an event source like
    clients.c. `interrupt` asks the worker to send SIGINT into a running snippet (the run
    then ends `interrupted` through its result, like any other end); `sessions` lists the
    interpreters workers hold; `reset` and `close` end one. Each is the caller's own: a
    principal names its sessions by (session, lang) and never reaches another's. Every act
    that changes an interpreter is on the record with the caller as actor. */
#include "broker/control.h"
#include "broker/backlog.h"
#include "broker/dispatch.h"
#include "broker/workers.h"
#include "common/proto.h"
#include "common/util.h"

void
control_interrupt (broker_t *broker, caller_t *c, json_t *msg)
{
    int64_t id = json_integer_value (json_object_get (msg, "id"));
    json_t *row = store_get (broker->store, id);
    const char *owner = row ? json_string_value (json_object_get (row, "principal")) : NULL;
    const char *state = row ? json_string_value (json_object_get (row, "state")) : NULL;
    job_t *job = dispatch_job (broker, id);
    worker_t *w = job ? dispatch_worker (broker, job->worker) : NULL;
    if (!owner || (strcmp (owner, c->principal) != 0 && strcmp (c->role, "admin") != 0))
        //  Someone else's request reads as absent, as in `status`.
        broker_refuse (broker, c, PROTO_E_NOT_FOUND, "no such request");
    else if (!state || strcmp (state, "running") != 0 || !w || job->orphan)
        broker_refuse (broker, c, PROTO_E_BAD_STATE, strcmp (state ? state : "", "queued") == 0
                       || strcmp (state ? state : "", "pending_approval") == 0
                       ? "not running yet; use cancel" : "not running");
    else {
        json_t *interrupt = proto_interrupt (id, job->owner, job->session, job->lang);
        int rc = workers_send (broker, w, interrupt);
        json_decref (interrupt);
        if (rc != 0)
            broker_refuse (broker, c, PROTO_E_INTERNAL, "the worker could not be reached");
        else {
            json_t *data = json_pack ("{s:s}", "worker", w->name);
            backlog_event (broker, id, "interrupt", c->principal, data);
            json_decref (data);
            broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_incref (row)));
        }
    }
    json_decref (row);
}

void
control_sessions (broker_t *broker, caller_t *c, json_t *msg)
{
    (void) msg;
    json_t *list = dispatch_sessions (broker, strcmp (c->role, "admin") == 0 ? NULL : c->principal);
    broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_pack ("{s:o}", "sessions", list)));
}

//  Ends the caller's interpreter (session, lang): `what` is "reset" or "closed".
static void
s_end_session (broker_t *broker, caller_t *c, json_t *msg, const char *what)
{
    const char *session = json_string_value (json_object_get (msg, "session"));
    const char *lang = json_string_value (json_object_get (msg, "lang"));
    char key[RUNQ_KEY_MAX];
    runq_key (lang, session, c->principal, key, sizeof key);
    const char *bound = dispatch_bound (broker, key);
    worker_t *w = bound ? dispatch_worker (broker, bound) : NULL;
    if (!w) {
        broker_refuse (broker, c, PROTO_E_NOT_FOUND, "no live interpreter for that session");
        return;
    }
    if (dispatch_busy (broker, key)) {
        broker_refuse (broker, c, PROTO_E_BAD_STATE, "a snippet runs in it; interrupt it first");
        return;
    }
    json_t *close = proto_close (c->principal, session, lang);
    workers_send (broker, w, close);
    json_decref (close);
    char why[64], type[32];
    snprintf (why, sizeof why, "%s by its owner", what);
    snprintf (type, sizeof type, "session_%s", what);
    dispatch_unbind (broker, key);
    dispatch_session_ended (broker, key, why);
    json_t *data = json_pack ("{s:s, s:s, s:s, s:s}", "principal", c->principal, "session", session,
                              "lang", lang, "worker", w->name);
    backlog_event (broker, 0, type, c->principal, data);
    json_decref (data);
    broker_send_client (broker, c->routing, proto_reply_ok (c->rid, json_pack (
        "{s:s, s:s, s:b}", "session", session, "lang", lang, what, 1)));
}

void
control_reset (broker_t *broker, caller_t *c, json_t *msg)
{
    s_end_session (broker, c, msg, "reset");
}

void
control_close (broker_t *broker, caller_t *c, json_t *msg)
{
    s_end_session (broker, c, msg, "closed");
}
