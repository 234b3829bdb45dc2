/*  policy/policy.c: the decision procedure over a loaded policy: first match wins, fail
    closed, a match limit fails to review (to deny at a deny rule), and the code is matched as
    written and in its NFKC form, the stricter decision winning. It also owns the policy's
    accessors, approver checks, the decision as JSON and `explain`. Loading is policy/load.c. */
#include "policy/policy_int.h"
#include "policy/nfkc.h"
#include "common/util.h"
#include <stdlib.h>
#include <string.h>

const char *const policy_action_names[] = { "allow", "deny", "review" };

//  The message of an undetermined rule names what stopped its pattern, the outcome, and the
//  form of the code it stopped on: [limit][at a deny rule][on the NFKC form].
#define S_AFTER_NFKC " after NFKC normalisation"
#define S_LIMIT(what) \
    { { "a policy pattern hit its " what " on this snippet: routed to human review", \
        "a policy pattern hit its " what " on this snippet" S_AFTER_NFKC ": routed to human review" }, \
      { "a deny rule's pattern hit its " what " on this snippet: denied", \
        "a deny rule's pattern hit its " what " on this snippet" S_AFTER_NFKC ": denied" } }
static const char *const s_limit_messages[][2][2] = {
    S_LIMIT ("match limit"), S_LIMIT ("depth limit"), S_LIMIT ("heap limit"),
    S_LIMIT ("JIT stack limit"), S_LIMIT ("limits (PCRE2 error)")
};
static const char *s_unfoldable_message =
    "the code could not be NFKC-normalised (out of memory): routed to human review";

//  --------------------------------------------------------------------------
//  Accessors

const char *
policy_sha256 (policy_t *self)
{
    return self ? self->sha256 : NULL;
}

size_t
policy_rule_count (policy_t *self)
{
    return self ? self->nrules : 0;
}

size_t
policy_mask_count (policy_t *self)
{
    return self ? json_array_size (self->masks) : 0;
}

int
policy_add_masks (policy_t *self, mask_t *mask, char *err, size_t err_size)
{
    if (!self || !mask)
        return -1;
    for (size_t i = 0; i < json_array_size (self->masks); i++) {
        json_t *m = json_array_get (self->masks, i);
        const char *name = json_string_value (json_object_get (m, "name"));
        if (mask_add_pattern (mask, name, json_string_value (json_object_get (m, "pattern")),
                              err, err_size))
            return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Deciding

static bool
s_list_has (json_t *list, const char *value, size_t len)
{
    for (size_t i = 0; value && i < json_array_size (list); i++) {
        json_t *item = json_array_get (list, i);
        if (json_string_length (item) == len && memcmp (json_string_value (item), value, len) == 0)
            return true;
    }
    return false;
}

//  True if any of the caller's groups (array, or comma-separated string) is in list.
static bool
s_groups_meet (json_t *list, const char *const *groups, const char *csv)
{
    if (groups) {
        for (size_t i = 0; groups[i]; i++)
            if (s_list_has (list, groups[i], strlen (groups[i])))
                return true;
        return false;
    }
    for (size_t i = 0; i < json_array_size (list); i++) {
        json_t *item = json_array_get (list, i);
        if (csv_has (csv, json_string_value (item), json_string_length (item)))
            return true;
    }
    return false;
}

//  1 if the pattern is found, 0 if not (or the subject is missing), else the PCRE2 error
//  (negative) that left it undetermined.
static int
s_search (policy_t *self, pcre2_code *re, const char *subject, size_t len)
{
    if (!subject)
        return 0;
    int rc = pcre2_match (re, (PCRE2_SPTR) subject, len, 0, 0, self->md, self->mctx);
    return rc >= 0 ? 1 : rc == PCRE2_ERROR_NOMATCH ? 0 : rc;
}

//  1 match, 0 no match, or the PCRE2 error of a pattern that could not finish (no dimension
//  failed, so the rule is undetermined). code[0..len) is the code in the form being matched.
static int
s_rule_matches (policy_t *self, const rule_t *r, const policy_input_t *in, const char *code,
                size_t len)
{
    if ((r->langs && !s_list_has (r->langs, in->lang, in->lang ? strlen (in->lang) : 0))
        || (r->principals
            && !s_list_has (r->principals, in->principal, in->principal ? strlen (in->principal) : 0))
        || (r->roles && !s_list_has (r->roles, in->role, in->role ? strlen (in->role) : 0))
        || (r->groups && !s_groups_meet (r->groups, in->groups, in->groups_csv)))
        return 0;
    int session = 1, found = 1;
    if (r->session_re
        && (session = s_search (self, r->session_re, in->session,
                                in->session ? strlen (in->session) : 0)) == 0)
        return 0;
    if (r->code_re && (found = s_search (self, r->code_re, code, len)) == 0)
        return 0;
    return session < 0 ? session : found;
}

static const char *
s_limit_message (int error, bool at_deny, bool normalised)
{
    int kind = error == PCRE2_ERROR_MATCHLIMIT ? 0 : error == PCRE2_ERROR_DEPTHLIMIT ? 1
             : error == PCRE2_ERROR_HEAPLIMIT ? 2 : error == PCRE2_ERROR_JIT_STACKLIMIT ? 3 : 4;
    return s_limit_messages[kind][at_deny][normalised];
}

//  A review that no review rule asked for: the file's defaults, any approver.
static void
s_default_review (policy_t *self, policy_decision_t *out)
{
    out->action = POLICY_REVIEW;
    out->action_name = policy_action_names[POLICY_REVIEW];
    out->quorum = self->quorum;
    out->ttl_s = self->ttl_s;
    out->approver_principals = self->empty;
    out->approver_groups = self->empty;
    out->webhook = NULL;
    out->limits = NULL;
    out->labels = NULL;
    out->network = NULL;
}

//  The decision of rule r; error is the PCRE2 error if the rule was undetermined, else 0.
static void
s_fill (policy_t *self, const rule_t *r, int index, int error, bool normalised,
        policy_decision_t *out)
{
    out->rule = r->name;
    out->rule_index = index;
    out->limit_hit = error != 0;
    out->normalised = normalised;
    out->message = error ? s_limit_message (error, r->action == POLICY_DENY, normalised)
                 : normalised ? r->nfkc_message : r->message;
    if (error && r->action == POLICY_ALLOW) {       //  a limit never allows
        s_default_review (self, out);
        return;
    }
    out->action = r->action;                        //  a limit at a deny rule still denies
    out->action_name = policy_action_names[r->action];
    if (r->action == POLICY_REVIEW) {
        out->quorum = r->quorum;
        out->ttl_s = r->ttl_s;
        out->approver_principals = r->appr_principals;
        out->approver_groups = r->appr_groups;
        out->webhook = r->webhook;
    }
    out->limits = r->action != POLICY_DENY ? r->limits : NULL;
    out->labels = r->action != POLICY_DENY ? r->labels : NULL;
    out->network = r->action != POLICY_DENY ? r->network : NULL;
}

//  First match wins over one form of the code; no match denies.
static void
s_first_match (policy_t *self, const policy_input_t *in, const char *code, size_t len,
               bool normalised, policy_decision_t *out)
{
    memset (out, 0, sizeof *out);
    out->policy_sha256 = self->sha256;
    for (size_t i = 0; i < self->nrules; i++) {
        int rc = s_rule_matches (self, &self->rules[i], in, code, len);
        if (rc != 0) {
            s_fill (self, &self->rules[i], (int) i, rc < 0 ? rc : 0, normalised, out);
            return;
        }
    }
    out->action = POLICY_DENY;                      //  fail closed
    out->action_name = policy_action_names[POLICY_DENY];
    out->rule_index = -1;
    out->normalised = normalised;
    out->message = normalised ? "no rule matched the code" S_AFTER_NFKC : "no rule matched";
}

static int
s_strictness (policy_action_t action)
{
    return action == POLICY_DENY ? 2 : action == POLICY_REVIEW ? 1 : 0;
}

int
policy_decide (policy_t *self, const policy_input_t *in, policy_decision_t *out)
{
    if (!self || !in || !out)
        return -1;
    size_t len = in->code && !in->code_len ? strlen (in->code) : in->code_len;
    s_first_match (self, in, in->code, len, false, out);
    if (out->action == POLICY_DENY)
        return 0;                                   //  nothing is stricter
    char *folded = NULL;
    size_t folded_len = 0;
    if (nfkc_fold (in->code, len, &folded, &folded_len) != 0) {
        if (out->action == POLICY_ALLOW) {          //  the other form is unknown: never allow
            s_default_review (self, out);
            out->message = s_unfoldable_message;
        }
        return 0;
    }
    if (!folded)
        return 0;                                   //  ASCII or already NFKC: one form only
    policy_decision_t other;
    s_first_match (self, in, folded, folded_len, true, &other);
    free (folded);
    if (s_strictness (other.action) > s_strictness (out->action))
        *out = other;                               //  a tie keeps the code as written
    return 0;
}

bool
policy_may_approve (const policy_decision_t *d, const char *principal, const char *groups)
{
    if (!d || !principal || !*principal || d->action != POLICY_REVIEW)
        return false;
    if (json_array_size (d->approver_principals) == 0 && json_array_size (d->approver_groups) == 0)
        return true;
    return s_list_has (d->approver_principals, principal, strlen (principal))
           || s_groups_meet (d->approver_groups, NULL, groups);
}

json_t *
policy_decision_json (const policy_decision_t *d)
{
    if (!d || !d->action_name)
        return NULL;
    json_t *approvers = NULL;
    if (d->action == POLICY_REVIEW)
        approvers = json_pack ("{s:O*,s:O*}", "principals", d->approver_principals,
                               "groups", d->approver_groups);
    json_t *placement = d->labels ? json_pack ("{s:O}", "labels", d->labels) : NULL;
    return json_pack ("{s:s,s:s?,s:i,s:s?,s:i,s:i,s:o*,s:O*,s:o*,s:O*,s:s*,s:b,s:b,s:s?}",
                      "action", d->action_name, "rule", d->rule, "rule_index", d->rule_index,
                      "message", d->message, "quorum", d->quorum, "ttl_s", d->ttl_s,
                      "approvers", approvers, "limits", d->limits, "placement", placement,
                      "network", d->network, "webhook", d->webhook, "limit_hit", d->limit_hit,
                      "normalised", d->normalised, "policy_sha256", d->policy_sha256);
}

json_t *
policy_explain (policy_t *self, const policy_input_t *in)
{
    policy_decision_t d;
    if (policy_decide (self, in, &d))
        return NULL;
    json_t *out = policy_decision_json (&d);
    json_t *source = d.rule_index >= 0 ? json_deep_copy (self->rules[d.rule_index].source) : NULL;
    if (out)
        json_object_set_new (out, "rule_source", source ? source : json_null ());
    else
        json_decref (source);
    return out;
}
