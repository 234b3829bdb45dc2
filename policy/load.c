/*  policy/load.c: reading a policy file. It owns the sections of the format (top level,
    defaults, masks, rules and their match, review settings and limits; a rule's network
    grant is policy/grant.c), the setup of the
    matching budgets, and the policy's lifecycle (parse, load, destroy). Parsing is pure and
    never asserts on input: every problem in a file becomes one "file:line:col: message"
    error (see policy/reader.c). */
#include "policy/policy_int.h"
#include "policy/grant.h"
#include "policy/reader.h"
#include "common/util.h"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Sections of the file

static int
s_require_object (reader_t *ctx, json_t *value, const char *what)
{
    if (json_is_object (value))
        return 0;
    return reader_fail (ctx, JPOS_VALUE, "%s must be an object", what);
}

//  limits.cpus: a number of CPUs, fractions allowed (the worker's CPU quota has a
//  resolution of 0.001 CPU and a floor of 0.01); each worker caps it at its --max-cpus.
static int
s_parse_cpus (reader_t *ctx, json_t *limits)
{
    json_t *value = json_object_get (limits, "cpus");
    if (!value)
        return 0;
    reader_push_key (ctx, "cpus");
    if (!json_is_number (value) || !(json_number_value (value) >= 0.01
                                     && json_number_value (value) <= 1024))
        return reader_fail (ctx, JPOS_VALUE, "'cpus' %s must be a number from 0.01 to 1024",
                            ctx->where);
    reader_pop (ctx);
    return 0;
}

static int
s_parse_limits (reader_t *ctx, json_t *rule, rule_t *r)
{
    static const char *const keys[] = { "cpus", "timeout_ms", "memory_mb", "pids", "tmp_mb",
                                        "output_bytes", "egress_connections", "egress_bytes",
                                        NULL };
    const char *const *ints = keys + 1;     //  every key but cpus is a whole number
    json_t *limits = json_object_get (rule, "limits");
    if (!limits)
        return 0;
    reader_push_key (ctx, "limits");
    reader_where (ctx, "limits");
    if (s_require_object (ctx, limits, "'limits'") || reader_check_keys (ctx, limits, keys)
        || s_parse_cpus (ctx, limits))
        return -1;
    for (size_t i = 0; ints[i]; i++) {
        int ignored;
        if (reader_get_int (ctx, limits, ints[i], 1, INT32_MAX, &ignored) < 0)
            return -1;
    }
    reader_where (ctx, NULL);
    reader_pop (ctx);
    r->limits = limits;
    return 0;
}

//  placement.labels: where the snippet may run (a worker that announced each of them).
//  Labels follow the charset of names, so a label is never ambiguous in a list or a key.
static int
s_parse_placement (reader_t *ctx, json_t *rule, rule_t *r)
{
    static const char *const keys[] = { "labels", NULL };
    json_t *placement = json_object_get (rule, "placement");
    if (!placement)
        return 0;
    reader_push_key (ctx, "placement");
    reader_where (ctx, "placement");
    if (s_require_object (ctx, placement, "'placement'") || reader_check_keys (ctx, placement, keys)
        || reader_get_list (ctx, placement, "labels", false, NULL, &r->labels) < 0)
        return -1;
    if (!r->labels)
        return reader_fail (ctx, JPOS_VALUE, "missing required key 'labels' %s", ctx->where);
    reader_push_key (ctx, "labels");
    if (json_array_size (r->labels) > POLICY_MAX_LABELS)
        return reader_fail (ctx, JPOS_VALUE, "'labels' %s holds more than %d labels", ctx->where,
                            POLICY_MAX_LABELS);
    for (size_t i = 0; i < json_array_size (r->labels); i++) {
        const char *label = json_string_value (json_array_get (r->labels, i));
        if (!mask_name_valid (label)) {
            if (json_is_array (json_object_get (placement, "labels")))
                reader_push_index (ctx, i);
            return reader_fail (ctx, JPOS_VALUE, "label '%.64s' %s must match [A-Za-z0-9_.-]{1,64}",
                                label, ctx->where);
        }
    }
    reader_pop (ctx);
    reader_where (ctx, NULL);
    reader_pop (ctx);
    return 0;
}

static int
s_parse_approvers (reader_t *ctx, json_t *rule, rule_t *r)
{
    static const char *const keys[] = { "principals", "groups", NULL };
    json_t *approvers = json_object_get (rule, "approvers");
    if (approvers) {
        reader_push_key (ctx, "approvers");
        reader_where (ctx, "approvers");
        if (s_require_object (ctx, approvers, "'approvers'")
            || reader_check_keys (ctx, approvers, keys)
            || reader_get_list (ctx, approvers, "principals", true, NULL, &r->appr_principals) < 0
            || reader_get_list (ctx, approvers, "groups", true, NULL, &r->appr_groups) < 0)
            return -1;
        reader_where (ctx, NULL);
        reader_pop (ctx);
    }
    if (!r->appr_principals)
        r->appr_principals = json_array ();
    if (!r->appr_groups)
        r->appr_groups = json_array ();
    return r->appr_principals && r->appr_groups ? 0 : reader_fail (ctx, JPOS_VALUE, "out of memory");
}

//  Review-only settings on other actions are errors: they would silently do nothing.
static int
s_parse_review (reader_t *ctx, policy_t *self, json_t *rule, rule_t *r)
{
    static const char *const only[] = { "quorum", "approvers", "ttl_s", "webhook", NULL };
    if (r->action != POLICY_REVIEW) {
        for (size_t i = 0; only[i]; i++)
            if (json_object_get (rule, only[i])) {
                reader_push_key (ctx, only[i]);
                return reader_fail (ctx, JPOS_KEY, "'%s' only applies to review rules, and %s is %s",
                                    only[i], ctx->rule, policy_action_names[r->action]);
            }
        return 0;
    }
    r->quorum = self->quorum;
    r->ttl_s = self->ttl_s;
    if (reader_get_int (ctx, rule, "quorum", 1, POLICY_MAX_QUORUM, &r->quorum) < 0
        || reader_get_int (ctx, rule, "ttl_s", 1, POLICY_MAX_TTL_S, &r->ttl_s) < 0
        || reader_get_str (ctx, rule, "webhook", &r->webhook) < 0
        || s_parse_approvers (ctx, rule, r))
        return -1;
    if (r->webhook && strncmp (r->webhook, "https://", 8) != 0
        && strncmp (r->webhook, "http://", 7) != 0) {
        reader_push_key (ctx, "webhook");
        return reader_fail (ctx, JPOS_VALUE, "'webhook' %s must be an http:// or https:// URL",
                            ctx->where);
    }
    return 0;
}

static int
s_parse_match (reader_t *ctx, json_t *rule, rule_t *r)
{
    static const char *const keys[] = { "lang", "principal", "role", "groups", "session", "code",
                                        NULL };
    static const char *const langs[] = { "python", "shell", NULL };
    static const char *const roles[] = { "agent", "approver", "worker", "admin", NULL };
    json_t *match = json_object_get (rule, "match");
    if (!match)
        return 0;
    reader_push_key (ctx, "match");
    reader_where (ctx, "match");
    if (s_require_object (ctx, match, "'match'") || reader_check_keys (ctx, match, keys)
        || reader_get_list (ctx, match, "lang", false, langs, &r->langs) < 0
        || reader_get_list (ctx, match, "principal", false, NULL, &r->principals) < 0
        || reader_get_list (ctx, match, "role", false, roles, &r->roles) < 0
        || reader_get_list (ctx, match, "groups", false, NULL, &r->groups) < 0
        || reader_get_pattern (ctx, match, "session", &r->session_re) < 0
        || reader_get_pattern (ctx, match, "code", &r->code_re) < 0)
        return -1;
    reader_where (ctx, NULL);
    reader_pop (ctx);
    return 0;
}

static int
s_parse_action (reader_t *ctx, json_t *rule, rule_t *r)
{
    const char *action = NULL;
    int rc = reader_get_str (ctx, rule, "action", &action);
    if (rc == 1)
        return reader_fail (ctx, JPOS_VALUE, "missing required key 'action' %s", ctx->where);
    if (rc < 0)
        return -1;
    for (int a = POLICY_ALLOW; a <= POLICY_REVIEW; a++)
        if (strcmp (action, policy_action_names[a]) == 0) {
            r->action = (policy_action_t) a;
            return 0;
        }
    reader_push_key (ctx, "action");
    return reader_fail (ctx, JPOS_VALUE, "unknown action '%s' %s (expected allow, deny or review)",
                        action, ctx->where);
}

static int
s_parse_rule (reader_t *ctx, policy_t *self, json_t *rule, size_t index, json_t *seen)
{
    static const char *const keys[] = { "name", "comment", "match", "action", "message", "quorum",
                                        "approvers", "ttl_s", "webhook", "limits", "placement",
                                        "network", NULL };
    rule_t *r = &self->rules[index];
    snprintf (ctx->rule, sizeof ctx->rule, "rule %zu", index + 1);
    reader_where (ctx, NULL);
    if (s_require_object (ctx, rule, ctx->rule))
        return -1;
    int rc = reader_get_str (ctx, rule, "name", &r->name);
    if (rc == 1)
        return reader_fail (ctx, JPOS_VALUE, "missing required key 'name' %s", ctx->where);
    if (rc < 0)
        return -1;
    snprintf (ctx->rule, sizeof ctx->rule, "rule %zu '%.64s'", index + 1, r->name);
    reader_where (ctx, NULL);
    reader_push_key (ctx, "name");
    if (!mask_name_valid (r->name))
        return reader_fail (ctx, JPOS_VALUE, "the name of %s must match [A-Za-z0-9_.-]{1,64}", ctx->rule);
    if (json_object_get (seen, r->name))
        return reader_fail (ctx, JPOS_VALUE, "duplicate rule name '%s' (%s)", r->name, ctx->rule);
    reader_pop (ctx);
    json_object_set_new (seen, r->name, json_true ());
    r->source = rule;
    const char *comment;
    if (reader_check_keys (ctx, rule, keys) || reader_get_str (ctx, rule, "comment", &comment) < 0
        || s_parse_action (ctx, rule, r) || reader_get_str (ctx, rule, "message", &r->message) < 0)
        return -1;
    if (r->action == POLICY_DENY && !r->message)
        return reader_fail (ctx, JPOS_VALUE, "%s is a deny rule and needs a 'message' for the agent",
                            ctx->rule);
    if (r->action == POLICY_DENY && json_object_get (rule, "limits")) {
        reader_push_key (ctx, "limits");
        return reader_fail (ctx, JPOS_KEY, "'limits' do not apply to deny rules (%s)", ctx->rule);
    }
    if (r->action == POLICY_DENY && json_object_get (rule, "placement")) {
        reader_push_key (ctx, "placement");
        return reader_fail (ctx, JPOS_KEY, "'placement' does not apply to deny rules (%s)", ctx->rule);
    }
    if (r->action == POLICY_DENY && json_object_get (rule, "network")) {
        reader_push_key (ctx, "network");
        return reader_fail (ctx, JPOS_KEY, "'network' does not apply to deny rules (%s)", ctx->rule);
    }
    return s_parse_match (ctx, rule, r) || s_parse_review (ctx, self, rule, r)
           || s_parse_limits (ctx, rule, r) || s_parse_placement (ctx, rule, r)
           || grant_parse (ctx, rule, &r->network) ? -1 : 0;
}

static int
s_parse_rules (reader_t *ctx, policy_t *self)
{
    json_t *rules = json_object_get (self->root, "rules");
    if (!rules)
        return reader_fail (ctx, JPOS_VALUE, "missing required key 'rules' at the top level");
    reader_push_key (ctx, "rules");
    if (!json_is_array (rules))
        return reader_fail (ctx, JPOS_VALUE, "'rules' must be an array");
    if (json_array_size (rules) == 0)
        return reader_fail (ctx, JPOS_VALUE, "'rules' must hold at least one rule");
    self->rules = calloc (json_array_size (rules), sizeof (rule_t));
    json_t *seen = json_object ();
    if (!self->rules || !seen) {
        json_decref (seen);
        return reader_fail (ctx, JPOS_VALUE, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < json_array_size (rules) && rc == 0; i++) {
        self->nrules = i + 1;           //  so destroy frees what this rule compiled
        reader_push_index (ctx, i);
        rc = s_parse_rule (ctx, self, json_array_get (rules, i), i, seen);
        ctx->depth = 1;
    }
    json_decref (seen);
    return rc;
}

static int
s_parse_mask (reader_t *ctx, json_t *mask, size_t index)
{
    static const char *const keys[] = { "name", "pattern", "comment", NULL };
    const char *name = NULL, *pattern = NULL, *comment;
    snprintf (ctx->rule, sizeof ctx->rule, "mask %zu", index + 1);
    reader_where (ctx, NULL);
    if (s_require_object (ctx, mask, ctx->rule) || reader_check_keys (ctx, mask, keys)
        || reader_get_str (ctx, mask, "name", &name) < 0 || reader_get_str (ctx, mask, "pattern", &pattern) < 0
        || reader_get_str (ctx, mask, "comment", &comment) < 0)
        return -1;
    if (!name || !pattern)
        return reader_fail (ctx, JPOS_VALUE, "missing required key '%s' %s", name ? "pattern" : "name",
                            ctx->where);
    reader_push_key (ctx, "name");
    if (!mask_name_valid (name))
        return reader_fail (ctx, JPOS_VALUE, "the name of %s must match [A-Za-z0-9_.-]{1,64}", ctx->rule);
    reader_pop (ctx);
    char msg[256];
    size_t offset = 0;
    if (mask_check_pattern (pattern, &offset, msg, sizeof msg) == 0)
        return 0;
    char *cut = strstr (msg, " at offset ");        //  reader_pattern_error says where itself
    if (cut)
        *cut = 0;
    reader_push_key (ctx, "pattern");
    return reader_pattern_error (ctx, "pattern", msg, offset);
}

static int
s_parse_masks (reader_t *ctx, policy_t *self)
{
    json_t *masks = json_object_get (self->root, "masks");
    if (!masks)
        return 0;
    reader_push_key (ctx, "masks");
    if (!json_is_array (masks))
        return reader_fail (ctx, JPOS_VALUE, "'masks' must be an array");
    for (size_t i = 0; i < json_array_size (masks); i++) {
        reader_push_index (ctx, i);
        if (s_parse_mask (ctx, json_array_get (masks, i), i))
            return -1;
        ctx->depth = 1;
    }
    ctx->depth = 0;
    self->masks = masks;
    return 0;
}

static int
s_parse_defaults (reader_t *ctx, policy_t *self)
{
    static const char *const keys[] = { "quorum", "ttl_s", NULL };
    self->quorum = 1;
    self->ttl_s = 3600;
    json_t *defaults = json_object_get (self->root, "defaults");
    if (!defaults)
        return 0;
    reader_push_key (ctx, "defaults");
    snprintf (ctx->where, sizeof ctx->where, "in defaults");
    if (s_require_object (ctx, defaults, "'defaults'") || reader_check_keys (ctx, defaults, keys)
        || reader_get_int (ctx, defaults, "quorum", 1, POLICY_MAX_QUORUM, &self->quorum) < 0
        || reader_get_int (ctx, defaults, "ttl_s", 1, POLICY_MAX_TTL_S, &self->ttl_s) < 0)
        return -1;
    reader_pop (ctx);
    return 0;
}

static int
s_parse_top (reader_t *ctx, policy_t *self)
{
    static const char *const keys[] = { "version", "comment", "defaults", "masks", "rules", NULL };
    const char *comment;
    snprintf (ctx->where, sizeof ctx->where, "at the top level");
    if (!json_is_object (self->root))
        return reader_fail (ctx, JPOS_VALUE, "a policy must be a JSON object");
    if (reader_check_keys (ctx, self->root, keys)
        || reader_get_str (ctx, self->root, "comment", &comment) < 0)
        return -1;
    json_t *version = json_object_get (self->root, "version");
    if (!version)
        return reader_fail (ctx, JPOS_VALUE, "missing required key 'version' at the top level");
    if (!json_is_integer (version) || json_integer_value (version) != 1) {
        reader_push_key (ctx, "version");
        return reader_fail (ctx, JPOS_VALUE, "'version' must be 1 (the only format this build reads)");
    }
    return s_parse_defaults (ctx, self) || s_parse_masks (ctx, self)
           || s_parse_rules (ctx, self) ? -1 : 0;
}

//  --------------------------------------------------------------------------
//  Lifecycle

static int
s_prepare_matching (policy_t *self)
{
    self->empty = json_array ();
    self->mctx = pcre2_match_context_create (NULL);
    self->md = pcre2_match_data_create (1, NULL);
    self->jit = pcre2_jit_stack_create (32 * 1024, POLICY_JIT_STACK, NULL);
    if (!self->empty || !self->mctx || !self->md)
        return -1;
    //  Composed once here so that a decision's message, like all of it, is the policy's.
    for (size_t i = 0; i < self->nrules; i++) {
        rule_t *r = &self->rules[i];
        const char *note = "matched after NFKC normalisation";
        size_t size = (r->message ? strlen (r->message) + 3 : 0) + strlen (note) + 1;
        if (!(r->nfkc_message = malloc (size)))
            return -1;
        if (r->message)
            snprintf (r->nfkc_message, size, "%s (%s)", r->message, note);
        else
            snprintf (r->nfkc_message, size, "%s", note);
    }
    pcre2_set_match_limit (self->mctx, POLICY_MATCH_LIMIT);
    pcre2_set_depth_limit (self->mctx, POLICY_DEPTH_LIMIT);
    pcre2_set_heap_limit (self->mctx, POLICY_HEAP_LIMIT);
    if (self->jit)
        pcre2_jit_stack_assign (self->mctx, NULL, self->jit);
    return 0;
}

policy_t *
policy_parse (const char *text, size_t size, const char *name_for_errors, char *err,
              size_t err_size)
{
    const char *name = name_for_errors ? name_for_errors : "policy";
    if (err && err_size)
        *err = 0;
    json_error_t jerr;
    memset (&jerr, 0, sizeof jerr);
    json_t *root = text ? json_loadb (text, size, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!root) {
        if (err && err_size)
            snprintf (err, err_size, "%s:%d:%d: %s", name, jerr.line > 0 ? jerr.line : 1,
                      jerr.column > 0 ? jerr.column : 1, text ? jerr.text : "no text");
        return NULL;
    }
    policy_t *self = calloc (1, sizeof *self);
    if (!self) {
        json_decref (root);
        return NULL;
    }
    self->root = root;
    sha256_hex (text, size, self->sha256);
    reader_t ctx = { .text = text, .size = size, .file = name, .err = err, .err_size = err_size };
    if (s_parse_top (&ctx, self) || s_prepare_matching (self)) {
        if (err && err_size && !*err)
            snprintf (err, err_size, "%s: out of memory", name);
        policy_destroy (&self);
    }
    return self;
}

policy_t *
policy_load (const char *path, char *err, size_t err_size)
{
    FILE *file = path ? fopen (path, "rb") : NULL;
    if (!file) {
        if (err && err_size)
            snprintf (err, err_size, "%s: %s", path ? path : "(null)", strerror (path ? errno : EINVAL));
        return NULL;
    }
    char *text = malloc (POLICY_MAX_FILE + 1);
    size_t size = text ? fread (text, 1, POLICY_MAX_FILE + 1, file) : 0;
    bool failed = !text || ferror (file);
    fclose (file);
    policy_t *self = NULL;
    if (failed && err && err_size)
        snprintf (err, err_size, "%s: cannot read the file", path);
    else
    if (size > POLICY_MAX_FILE && err && err_size)
        snprintf (err, err_size, "%s: larger than %d bytes", path, POLICY_MAX_FILE);
    else
    if (!failed && size <= POLICY_MAX_FILE)
        self = policy_parse (text, size, path, err, err_size);
    free (text);
    return self;
}

void
policy_destroy (policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    policy_t *self = *self_p;
    for (size_t i = 0; i < self->nrules; i++) {
        rule_t *r = &self->rules[i];
        json_decref (r->langs);
        json_decref (r->principals);
        json_decref (r->roles);
        json_decref (r->groups);
        json_decref (r->appr_principals);
        json_decref (r->appr_groups);
        json_decref (r->labels);
        json_decref (r->network);
        pcre2_code_free (r->session_re);
        pcre2_code_free (r->code_re);
        free (r->nfkc_message);
    }
    free (self->rules);
    json_decref (self->empty);
    json_decref (self->root);
    pcre2_match_data_free (self->md);
    pcre2_match_context_free (self->mctx);
    pcre2_jit_stack_free (self->jit);
    free (self);
    *self_p = NULL;
}
