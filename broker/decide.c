/*  broker/decide.c: applies the policy to new requests and the masker to results.
    The policy is parsed once at start and on SIGHUP, never per request; a reload builds the
    new policy and masker completely before swapping them in, so a bad file changes nothing. */
#include "broker/decide.h"
#include "common/util.h"
#include "policy/mask.h"
#include "policy/policy.h"
#include "policy/redact.h"

//  Builds a policy and its masker from the configured file; both or neither.
static int
s_build (broker_t *broker, policy_t **policy, mask_t **mask, char *err, size_t size)
{
    *policy = policy_load (broker->cfg.policy_path, err, size);
    if (!*policy)
        return -1;
    *mask = mask_new ();
    if (!*mask || policy_add_masks (*policy, *mask, err, size) != 0) {
        policy_destroy (policy);
        mask_destroy (mask);
        return -1;
    }
    return 0;
}

int
decide_start (broker_t *broker)
{
    char err[512];
    if (s_build (broker, &broker->policy, &broker->mask, err, sizeof err) != 0) {
        log_error ("policy: %s", err);
        return -1;
    }
    log_info ("policy %s loaded: %zu rules, sha256 %.16s", broker->cfg.policy_path,
              policy_rule_count (broker->policy), policy_sha256 (broker->policy));
    return 0;
}

void
decide_stop (broker_t *broker)
{
    policy_destroy (&broker->policy);
    mask_destroy (&broker->mask);
}

void
decide_reload (broker_t *broker)
{
    char err[512];
    policy_t *policy = NULL;
    mask_t *mask = NULL;
    json_t *data;
    if (s_build (broker, &policy, &mask, err, sizeof err) != 0) {
        log_error ("policy reload refused, the old policy stays in force: %s", err);
        data = json_pack ("{s:s, s:s, s:s}", "file", broker->cfg.policy_path, "error", err,
                          "in_force", policy_sha256 (broker->policy));
        store_event (broker->store, 0, "policy_rejected", "broker", data);
    }
    else {
        policy_destroy (&broker->policy);
        mask_destroy (&broker->mask);
        broker->policy = policy;
        broker->mask = mask;
        log_info ("policy reloaded: %zu rules, sha256 %.16s", policy_rule_count (policy),
                  policy_sha256 (policy));
        data = json_pack ("{s:s, s:s}", "file", broker->cfg.policy_path, "sha256", policy_sha256 (policy));
        store_event (broker->store, 0, "policy_reloaded", "broker", data);
    }
    json_decref (data);
}

//  The review parameters stored with a parked request (what approvers and the expiry use).
static json_t *
s_review (const policy_decision_t *d)
{
    char expires[32];
    time_iso8601 (clock_wall_ms () + (int64_t) d->ttl_s * 1000, expires, sizeof expires);
    json_t *review = json_pack ("{s:i, s:i, s:s, s:{s:o, s:o}}", "quorum", d->quorum > 0 ? d->quorum : 1,
                                "ttl_s", d->ttl_s, "expires_at", expires, "approvers",
                                "principals", d->approver_principals ? json_copy (d->approver_principals) : json_array (),
                                "groups", d->approver_groups ? json_copy (d->approver_groups) : json_array ());
    json_object_set_new (review, "webhook", d->webhook ? json_string (d->webhook) : json_null ());
    if (d->limit_hit)
        json_object_set_new (review, "limit_hit", json_true ());
    return review;
}

state_event_t
decide_policy (broker_t *broker, json_t *row, const char *groups, json_t **fields_p,
               int64_t *max_timeout)
{
    policy_input_t in = {
        .lang = json_string_value (json_object_get (row, "lang")),
        .principal = json_string_value (json_object_get (row, "principal")),
        .role = json_string_value (json_object_get (row, "role")),
        .groups_csv = groups ? groups : "",
        .session = json_string_value (json_object_get (row, "session")),
        .code = json_string_value (json_object_get (row, "code")) };
    policy_decision_t d;
    policy_decide (broker->policy, &in, &d);
    json_t *fields = json_pack ("{s:s, s:s}", "policy_sha256", policy_sha256 (broker->policy),
                                "decision_message", d.message ? d.message : d.action_name);
    json_object_set_new (fields, "rule", d.rule ? json_string (d.rule) : json_null ());
    json_t *asked = json_object_get (row, "timeout_ms");
    json_t *own = d.action != POLICY_DENY ? json_object_get (d.limits, "timeout_ms") : NULL;
    if (max_timeout)
        *max_timeout = json_is_integer (own) ? json_integer_value (own) : broker->cfg.max_timeout_ms;
    if (d.action != POLICY_DENY && (d.limits || asked || d.labels || d.network)) {
        //  The run's limits: the rule's, with the timeout the submit asked for (the caller
        //  checks it against *max_timeout before anything is recorded), the labels its
        //  worker must have and the network it is granted: stored in the row, so a restart
        //  places and runs it alike, and approvers see the grant they approve (launch.c
        //  takes both out of the limits a `run` carries).
        json_t *limits = d.limits ? json_copy (d.limits) : json_object ();
        if (json_is_integer (asked))
            json_object_set (limits, "timeout_ms", asked);
        if (d.labels)
            json_object_set_new (limits, "labels", json_copy (d.labels));
        if (d.network)
            json_object_set_new (limits, "network", json_deep_copy (d.network));
        json_object_set_new (fields, "limits", limits);
    }
    state_event_t ev = d.action == POLICY_ALLOW ? EV_ALLOW : d.action == POLICY_DENY ? EV_DENY : EV_REVIEW;
    if (ev == EV_REVIEW)
        json_object_set_new (fields, "review", s_review (&d));
    *fields_p = fields;
    return ev;
}

//  The worker masked its named secrets already; this masks the built-in detectors and the
//  policy's masks over the same fields (redact.c owns the list), sparing the worker's masks.
void
decide_mask_result (broker_t *broker, json_t *result)
{
    redact_result (broker->mask, result);
}
