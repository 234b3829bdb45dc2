/*  approver/flow.c: the approver's behaviour (see flow.h).

    One message per request: the request is recorded in approver.db together with its "post"
    job, in one transaction, so a restart neither loses nor repeats it. The message then
    follows the request through the freshest response_url (each click brings one, good for 5
    uses in 30 minutes); when none is usable and the request has ended, a short follow-up
    message goes to the webhook instead. */
#include "approver/flow.h"
#include "approver/slack.h"
#include "common/check.h"
#include "common/states.h"
#include "common/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALL_TIMEOUT_MS     5000
#define URL_USES            5               //  Slack's limit per response_url
#define URL_LIFE_MS         (29 * 60 * 1000)    //  30 minutes, less a margin

struct _flow_t {
    config_t *config;
    state_t *state;
    bridge_t *bridge;
};

flow_t *
flow_new (config_t *config, state_t *state, bridge_t *bridge)
{
    flow_t *self = (flow_t *) calloc (1, sizeof (flow_t));
    if (self) {
        self->config = config;
        self->state = state;
        self->bridge = bridge;
    }
    return self;
}

void
flow_destroy (flow_t **self_p)
{
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

//  What a rendering shows, so an unchanged request is not re-sent: state, approvals, outcome.
static void
s_render_key (json_t *row, char *out, size_t size)
{
    const char *outcome = json_string_value (json_object_get (row, "outcome"));
    snprintf (out, size, "%s:%zu:%s", json_string_value (json_object_get (row, "state")),
              json_array_size (json_object_get (row, "approvals")), outcome ? outcome : "");
}

//  Asks the broker for request id; NULL if it did not answer or refused.
static json_t *
s_status (flow_t *self, int64_t id)
{
    json_t *req = json_pack ("{s:s, s:I}", "op", "status", "id", (json_int_t) id);
    json_t *reply = bridge_call (self->bridge, req, CALL_TIMEOUT_MS);
    json_decref (req);
    if (reply && !json_is_true (json_object_get (reply, "ok"))) {
        log_warn ("flow: status of request %lld refused: %s", (long long) id,
                  json_string_value (json_object_get (json_object_get (reply, "error"), "code")));
        json_decref (reply);
        return NULL;
    }
    return reply;
}

static int
s_add_job (flow_t *self, int64_t id, const char *kind, const char *url, json_t *msg)
{
    char *body = json_dumps (msg, JSON_COMPACT);
    int rc = body ? state_job_add (self->state, id, kind, url, body, clock_wall_ms ()) : -1;
    free (body);
    return rc;
}

//  The webhook for a request: its rule's review.webhook, else the configured default.
static const char *
s_webhook (flow_t *self, json_t *row)
{
    const char *hook = json_string_value (json_object_get (json_object_get (row, "review"), "webhook"));
    return hook && *hook ? hook : self->config->webhook;
}

//  A request entered pending_approval: record it and queue its one message (inside the
//  caller's transaction). Already known requests are left alone.
static int
s_post_new (flow_t *self, json_t *row)
{
    int64_t id = json_integer_value (json_object_get (row, "id"));
    json_t *known = state_request (self->state, id);
    json_decref (known);
    if (known || strcmp (json_string_value (json_object_get (row, "state")) ?: "", "pending_approval") != 0)
        return 0;
    const char *hook = s_webhook (self, row);
    char key[128];
    s_render_key (row, key, sizeof key);
    if (state_add_request (self->state, id, hook ? hook : "", key))
        return -1;
    if (!hook) {
        log_warn ("flow: request %lld awaits approval but no webhook is configured for it", (long long) id);
        return 0;
    }
    json_t *msg = slack_message (row, NULL, clock_wall_ms (), 1);
    int rc = s_add_job (self, id, "post", hook, msg);
    json_decref (msg);
    log_info ("flow: request %lld awaits approval; message queued", (long long) id);
    return rc;
}

int
flow_catch_up (flow_t *self)
{
    json_int_t after = 0;
    bool more = true;
    int rc = 0;
    while (more) {          //  the broker answers a page at a time
        json_t *req = json_pack ("{s:s, s:I}", "op", "pending", "after", after);
        json_t *reply = bridge_call (self->bridge, req, CALL_TIMEOUT_MS);
        json_decref (req);
        if (!reply || !json_is_true (json_object_get (reply, "ok"))) {
            log_warn ("flow: cannot list pending requests (%s); will retry",
                      reply ? json_string_value (json_object_get (json_object_get (reply, "error"), "code")) : "no answer");
            json_decref (reply);
            return -1;
        }
        size_t i;
        json_t *row;
        json_array_foreach (json_object_get (reply, "requests"), i, row) {
            if (state_begin (self->state))
                rc = -1;
            else if (s_post_new (self, row) || state_commit (self->state)) {
                state_rollback (self->state);
                rc = -1;
            }
        }
        more = json_is_true (json_object_get (reply, "more"));
        after = json_integer_value (json_object_get (reply, "after"));
        json_decref (reply);
    }
    return rc;
}

//  True if the request's stored response_url may still be used once more.
static bool
s_url_usable (flow_t *self, json_t *rec, int64_t now_ms)
{
    const char *url = json_string_value (json_object_get (rec, "response_url"));
    return url && json_integer_value (json_object_get (rec, "url_uses")) < URL_USES
        && now_ms - json_integer_value (json_object_get (rec, "url_seen_ms")) < URL_LIFE_MS;
}

//  The message follows the request: an update through response_url when one is usable, or,
//  once the request has ended, a follow-up post. Inside the caller's transaction.
static int
s_follow (flow_t *self, json_t *row)
{
    int64_t id = json_integer_value (json_object_get (row, "id"));
    json_t *rec = state_request (self->state, id);
    if (!rec)
        return 0;
    char key[128];
    s_render_key (row, key, sizeof key);
    const char *state = json_string_value (json_object_get (row, "state"));
    bool final = states_is_terminal (state);
    int rev = (int) json_integer_value (json_object_get (rec, "rev")) + 1;
    int rc = 0;
    if (!json_integer_value (json_object_get (rec, "final"))
     && strcmp (key, json_string_value (json_object_get (rec, "rendered")) ?: "") != 0) {
        json_t *ids = state_slack_ids (self->state, id);
        int64_t now = clock_wall_ms ();
        const char *webhook = json_string_value (json_object_get (rec, "webhook"));
        if (s_url_usable (self, rec, now)) {
            json_t *msg = slack_message (row, ids, now, rev);
            json_object_set_new (msg, "replace_original", json_true ());
            rc = s_add_job (self, id, final ? "final" : "update",
                            json_string_value (json_object_get (rec, "response_url")), msg)
               | state_use_response_url (self->state, id);
            json_decref (msg);
        }
        else if (final && webhook && *webhook) {
            json_t *msg = slack_followup (row, ids);
            rc = s_add_job (self, id, "followup", webhook, msg);
            json_decref (msg);
        }
        json_decref (ids);
        if (rc == 0)
            rc = state_set_rendered (self->state, id, key, final, rev);
        log_info ("flow: request %lld is %s; message %s", (long long) id, state, rc ? "update failed" : "follows");
    }
    json_decref (rec);
    return rc;
}

//  Events that can change the message of a request we post about: an approval, or any move
//  after it was parked.
static bool
s_followed (const char *type)
{
    return (type && strcmp (type, "approval") == 0) || states_follows ("pending_approval", type);
}

//  Fetches every request of the batch that matters to us: new ones, and known ones that
//  moved. Returns {id: row}, or NULL if the broker did not answer.
static json_t *
s_batch_rows (flow_t *self, json_t *events, int64_t last, int64_t *max_seq)
{
    json_t *rows = json_object ();
    size_t i;
    json_t *e;
    *max_seq = last;
    json_array_foreach (events, i, e) {
        int64_t seq = json_integer_value (json_object_get (e, "seq"));
        if (seq <= last)
            continue;           //  already handled (a re-subscription overlaps)
        *max_seq = seq > *max_seq ? seq : *max_seq;
        const char *type = json_string_value (json_object_get (e, "type"));
        int64_t id = json_integer_value (json_object_get (e, "request_id"));
        char key[24];
        snprintf (key, sizeof key, "%lld", (long long) id);
        if (id <= 0 || json_object_get (rows, key))
            continue;
        json_t *rec = NULL;
        if (!(type && strcmp (type, "pending_approval") == 0)
         && !(s_followed (type) && (rec = state_request (self->state, id))))
            continue;
        json_decref (rec);
        json_t *row = s_status (self, id);
        if (!row) {
            json_decref (rows);
            return NULL;
        }
        json_object_set_new (rows, key, row);
    }
    return rows;
}

int
flow_events (flow_t *self, json_t *events)
{
    int64_t last = state_last_seq (self->state), max_seq;
    json_t *rows = s_batch_rows (self, events, last, &max_seq);
    if (!rows)
        return -1;
    int rc = state_begin (self->state);
    const char *key;
    json_t *row;
    json_object_foreach (rows, key, row)
        if (rc == 0)
            rc = s_post_new (self, row) || s_follow (self, row) ? -1 : 0;
    if (rc == 0 && max_seq > last)
        rc = state_set_last_seq (self->state, max_seq);
    if (rc == 0)
        rc = state_commit (self->state);
    if (rc)
        state_rollback (self->state);
    json_decref (rows);
    return rc;
}

//  Queues an ephemeral reply to the clicking user through the click's response_url.
static void
s_tell (flow_t *self, const click_t *click, const char *text)
{
    if (strncmp (click->response_url, self->config->response_url_prefix, strlen (self->config->response_url_prefix)) != 0) {
        log_warn ("flow: response_url outside %s; %s not told: %s", self->config->response_url_prefix,
                  click->user_id, text);
        return;
    }
    json_t *msg = slack_ephemeral (text);
    json_t *rec = state_request (self->state, click->request_id);
    //  The click's URL is now the request's freshest one (flow_click stored it): count the use.
    if ((rec && state_use_response_url (self->state, click->request_id))
     || s_add_job (self, click->request_id, "ephemeral", click->response_url, msg))
        log_error ("flow: could not queue a reply to %s", click->user_id);
    json_decref (rec);
    json_decref (msg);
    log_info ("flow: told %s about request %lld: %s", click->user_id, (long long) click->request_id, text);
}

//  Records the click's ids; true if it was seen before (a replay).
static bool
s_replayed (flow_t *self, const click_t *click)
{
    char key[400];
    int64_t now = clock_wall_ms ();
    int seen = 0;
    if (*click->trigger_id) {
        snprintf (key, sizeof key, "trigger:%s", click->trigger_id);
        seen |= state_seen (self->state, key, now) == 1;
    }
    snprintf (key, sizeof key, "action:%s:%s:%s", click->user_id, click->action_ts, click->block_id);
    seen |= state_seen (self->state, key, now) == 1;
    return seen;
}

//  An ephemeral explanation of why the broker refused a decision.
static void
s_refused (flow_t *self, const click_t *click, const char *principal, json_t *reply)
{
    json_t *error = json_object_get (reply, "error");
    const char *code = json_string_value (json_object_get (error, "code")) ?: "internal";
    const char *message = json_string_value (json_object_get (error, "message")) ?: "";
    char *why = slack_escape (message, strlen (message), 300);
    char text[700];
    long long id = (long long) click->request_id;
    if (strcmp (code, "bad_state") == 0) {
        json_t *row = s_status (self, click->request_id);
        const char *state = row ? json_string_value (json_object_get (row, "state")) : NULL;
        snprintf (text, sizeof text, "Request %lld is no longer waiting for approval (it is %s); nothing changed.",
                  id, state ? state : "decided");
        json_decref (row);
    }
    else if (strcmp (code, "duplicate") == 0)
        snprintf (text, sizeof text, "You (%s) already decided request %lld; nothing changed.", principal, id);
    else if (strcmp (code, "forbidden") == 0)
        snprintf (text, sizeof text, "You (%s) may not decide request %lld: %s. Nothing changed.", principal, id, why);
    else if (strcmp (code, "not_found") == 0)
        snprintf (text, sizeof text, "Request %lld does not exist; nothing changed.", id);
    else
        snprintf (text, sizeof text, "The broker refused (%s: %s); nothing changed.", code, why);
    free (why);
    log_info ("flow: %s (%s) on request %lld refused by the broker: %s", click->action_id, principal, id, code);
    s_tell (self, click, text);
}

void
flow_click (flow_t *self, const click_t *click)
{
    if (s_replayed (self, click)) {
        log_warn ("flow: replayed click by %s on request %lld ignored", click->user_id, (long long) click->request_id);
        return;
    }
    json_t *rec = state_request (self->state, click->request_id);
    if (rec && strncmp (click->response_url, self->config->response_url_prefix,
                        strlen (self->config->response_url_prefix)) == 0)
        state_set_response_url (self->state, click->request_id, click->response_url, clock_wall_ms ());
    json_decref (rec);
    char text[400];
    long long id = (long long) click->request_id;
    const char *principal = config_principal (self->config, click->user_id);
    if (!principal) {
        snprintf (text, sizeof text, "Your Slack account <@%s> is not mapped to a replgate approver, so "
                  "nothing changed. Ask an admin to add it to the approver's users.", click->user_id);
        s_tell (self, click, text);
        return;
    }
    bool approve = strcmp (click->action_id, "approve") == 0;
    if (state_has_decision (self->state, click->request_id, click->user_id, click->action_id)) {
        snprintf (text, sizeof text, "You already %s request %lld; nothing changed.", approve ? "approved" : "denied", id);
        s_tell (self, click, text);
        return;
    }
    char reason[200];
    snprintf (reason, sizeof reason, "%s from Slack by <@%s> (%s)", approve ? "approved" : "denied",
              click->user_id, click->user_name);
    json_t *req = json_pack ("{s:s, s:I, s:s, s:s, s:s}", "op", click->action_id, "id", (json_int_t) click->request_id,
                             "on_behalf_of", principal, "slack_user", click->user_id, "reason", reason);
    json_t *reply = bridge_call (self->bridge, req, CALL_TIMEOUT_MS);
    json_decref (req);
    if (!reply) {
        snprintf (text, sizeof text, "The broker did not answer in time: your decision on request %lld may not "
                  "be recorded. The message will change if it was; otherwise try again.", id);
        s_tell (self, click, text);
    }
    else if (json_is_true (json_object_get (reply, "ok"))) {
        if (state_add_decision (self->state, click->request_id, click->user_id, principal, click->action_id))
            log_error ("flow: could not record %s's decision on request %lld", click->user_id, id);
        log_info ("flow: request %lld %s by %s (Slack %s); now %s", id, approve ? "approved" : "denied", principal,
                  click->user_id, json_string_value (json_object_get (reply, "state")));
    }
    else
        s_refused (self, click, principal, reply);
    json_decref (reply);
}

void
flow_delivery_failed (void *arg, json_t *job, const deliver_reply_t *reply)
{
    flow_t *self = (flow_t *) arg;
    int64_t id = json_integer_value (json_object_get (job, "request_id"));
    const char *kind = json_string_value (json_object_get (job, "kind"));
    //  The broker's audit log gets the failure (never the webhook URL: its path is a secret);
    //  approver.db's failures table keeps the whole job for a retry by hand.
    log_error ("flow: request %lld: Slack %s given up (HTTP %ld %s); recorded in approver.db failures",
               (long long) id, kind, reply->status, reply->answer);
    json_t *req = json_pack ("{s:s, s:s, s:{s:s, s:I, s:s}}", "op", "report", "type", "delivery_failed",
                             "detail", "kind", kind, "http_status", (json_int_t) reply->status,
                             "answer", utf8_valid (reply->answer, strlen (reply->answer)) ? reply->answer : "?");
    if (id > 0)
        json_object_set_new (req, "id", json_integer (id));
    json_t *ack = req ? bridge_call (self->bridge, req, CALL_TIMEOUT_MS) : NULL;
    if (!json_is_true (json_object_get (ack, "ok")))
        log_warn ("flow: request %lld: the broker did not record the delivery failure", (long long) id);
    json_decref (ack);
    json_decref (req);
    if (strcmp (kind, "final") != 0)
        return;
    json_t *rec = state_request (self->state, id);
    const char *webhook = json_string_value (json_object_get (rec, "webhook"));
    json_t *msg = json_loads (json_string_value (json_object_get (job, "body")), 0, NULL);
    if (webhook && *webhook && msg) {
        json_object_del (msg, "replace_original");
        if (s_add_job (self, id, "followup", webhook, msg) == 0)
            log_info ("flow: request %lld: final state re-posted as a new message instead", (long long) id);
    }
    json_decref (msg);
    json_decref (rec);
}

int
flow_test (void)
{
    CHECK (s_followed ("approval") && !s_followed ("received") && !s_followed (NULL));
    CHECK (s_followed ("lost") && s_followed ("queued") && !s_followed ("pending_approval"));
    json_t *row = json_pack ("{s:s, s:[{}], s:s}", "state", "done", "approvals", "outcome", "ok");
    char key[128];
    s_render_key (row, key, sizeof key);
    CHECK (strcmp (key, "done:1:ok") == 0);
    json_decref (row);
    flow_t flow = { 0 };
    json_t *rec = json_pack ("{s:s, s:i, s:I}", "response_url", "u", "url_uses", 4, "url_seen_ms", (json_int_t) 1000);
    CHECK (s_url_usable (&flow, rec, 2000) && !s_url_usable (&flow, rec, 1000 + URL_LIFE_MS));
    json_object_set_new (rec, "url_uses", json_integer (5));
    CHECK (!s_url_usable (&flow, rec, 2000));
    json_decref (rec);
    return 0;
}
