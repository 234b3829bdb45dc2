/*  policy/policy.c: the policy engine. It owns the parsed policy document, the validated rules
    with their compiled patterns, and the decision procedure (first match wins, fail closed,
    match limits fail to review). Parsing is pure and never asserts on input: every problem in
    a file becomes one "file:line:col: message" error found with policy/jpos.c. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/policy.h"
#include "policy/jpos.h"
#include "common/check.h"
#include "common/util.h"
#include <errno.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLICY_MAX_FILE     (4 * 1024 * 1024)
//  Per-attempt budgets: honest patterns on a MiB of code stay far below them; an exponential
//  one reaches them within milliseconds.
#define POLICY_MATCH_LIMIT  1000000
#define POLICY_DEPTH_LIMIT  100000
#define POLICY_HEAP_LIMIT   (64 * 1024)         //  KiB
#define POLICY_JIT_STACK    (1024 * 1024)
#define POLICY_MAX_QUORUM   100
#define POLICY_MAX_TTL_S    (365 * 24 * 3600)

static const char *s_action_names[] = { "allow", "deny", "review" };
static const char *s_limit_message =
    "a policy pattern hit its match limit on this snippet: routed to human review";

typedef struct {
    const char *name;
    json_t *source;                     //  the rule object as parsed (borrowed from root)
    policy_action_t action;
    const char *message;
    json_t *langs, *principals, *roles, *groups;     //  owned arrays, NULL = any
    pcre2_code *session_re, *code_re;
    int quorum, ttl_s;
    json_t *appr_principals, *appr_groups;          //  owned arrays
    json_t *limits;                     //  borrowed, or NULL
    const char *webhook;
} rule_t;

struct _policy_t {
    json_t *root;
    char sha256[65];
    int quorum, ttl_s;                  //  defaults
    json_t *empty;                      //  empty array: "any approver"
    json_t *masks;                      //  borrowed, or NULL
    rule_t *rules;
    size_t nrules;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    pcre2_match_data *md;
};

//  Where the parser is: the text (for positions), the JSON path to the node being checked
//  and a human label of the enclosing rule or section.
typedef struct {
    const char *text;
    size_t size;
    const char *file;
    char *err;
    size_t err_size;
    jpos_seg_t path[JPOS_MAX_DEPTH];
    size_t depth;
    char rule[112];                     //  "rule 3 'network'"
    char where[160];                    //  "in rule 3 'network'", "in the match of rule 3 ..."
} ctx_t;

//  --------------------------------------------------------------------------
//  Errors with positions

static int
s_vfail (ctx_t *ctx, bool have_offset, size_t offset, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf (msg, sizeof msg, fmt, ap);
    if (!ctx->err || !ctx->err_size)
        return -1;
    if (!have_offset) {
        snprintf (ctx->err, ctx->err_size, "%s: %s", ctx->file, msg);
        return -1;
    }
    int line, col;
    jpos_line_col (ctx->text, ctx->size, offset, &line, &col);
    snprintf (ctx->err, ctx->err_size, "%s:%d:%d: %s", ctx->file, line, col, msg);
    return -1;
}

//  Fails at the current path's key (JPOS_KEY) or value; always returns -1.
static int __attribute__ ((format (printf, 3, 4)))
s_fail (ctx_t *ctx, jpos_what_t what, const char *fmt, ...)
{
    size_t offset = 0;
    bool found = jpos_locate (ctx->text, ctx->size, ctx->path, ctx->depth, what, &offset) == 0
              || jpos_locate (ctx->text, ctx->size, ctx->path, ctx->depth, JPOS_VALUE, &offset) == 0;
    va_list ap;
    va_start (ap, fmt);
    s_vfail (ctx, found, offset, fmt, ap);
    va_end (ap);
    return -1;
}

static int __attribute__ ((format (printf, 3, 4)))
s_fail_at (ctx_t *ctx, size_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    s_vfail (ctx, true, offset, fmt, ap);
    va_end (ap);
    return -1;
}

//  Sets the label used in messages: the current rule, or a section of it.
static void
s_where (ctx_t *ctx, const char *section)
{
    if (section)
        snprintf (ctx->where, sizeof ctx->where, "in the %s of %s", section, ctx->rule);
    else
        snprintf (ctx->where, sizeof ctx->where, "in %s", ctx->rule);
}

static bool
s_push_key (ctx_t *ctx, const char *key)
{
    if (ctx->depth >= JPOS_MAX_DEPTH)
        return false;
    ctx->path[ctx->depth++] = (jpos_seg_t) { key, 0 };
    return true;
}

static bool
s_push_index (ctx_t *ctx, size_t index)
{
    if (ctx->depth >= JPOS_MAX_DEPTH)
        return false;
    ctx->path[ctx->depth++] = (jpos_seg_t) { NULL, index };
    return true;
}

static void
s_pop (ctx_t *ctx)
{
    if (ctx->depth)
        ctx->depth--;
}

//  Levenshtein distance of short strings, for "did you mean" hints; large when not short.
static size_t
s_distance (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    if (la > 32 || lb > 32)
        return 99;
    size_t row[33];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

//  Unknown keys are errors: a typo must never silently weaken a rule.
static int
s_check_keys (ctx_t *ctx, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach (obj, key, value) {
        const char *hint = NULL;
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++) {
            known = strcmp (key, allowed[i]) == 0;
            if (!hint && s_distance (key, allowed[i]) <= 2)
                hint = allowed[i];
        }
        if (known)
            continue;
        s_push_key (ctx, key);
        if (hint)
            return s_fail (ctx, JPOS_KEY, "unknown key '%s' %s (did you mean '%s'?)", key,
                           ctx->where, hint);
        return s_fail (ctx, JPOS_KEY, "unknown key '%s' %s", key, ctx->where);
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Typed getters. Each returns 0 when the key was read, 1 when it is absent (output left
//  alone) and -1 after reporting an error at the key's value.

static int
s_get_int (ctx_t *ctx, json_t *obj, const char *key, long long min, long long max, int *out)
{
    json_t *value = json_object_get (obj, key);
    if (!value)
        return 1;
    s_push_key (ctx, key);
    if (!json_is_integer (value))
        return s_fail (ctx, JPOS_VALUE, "'%s' %s must be an integer", key, ctx->where);
    long long v = json_integer_value (value);
    if (v < min || v > max)
        return s_fail (ctx, JPOS_VALUE, "'%s' %s must be between %lld and %lld", key,
                       ctx->where, min, max);
    s_pop (ctx);
    *out = (int) v;
    return 0;
}

static int
s_get_str (ctx_t *ctx, json_t *obj, const char *key, const char **out)
{
    json_t *value = json_object_get (obj, key);
    if (!value)
        return 1;
    s_push_key (ctx, key);
    if (!json_is_string (value) || json_string_length (value) == 0)
        return s_fail (ctx, JPOS_VALUE, "'%s' %s must be a non-empty string", key, ctx->where);
    s_pop (ctx);
    *out = json_string_value (value);
    return 0;
}

static bool
s_in_set (const char *value, const char *const *set)
{
    for (size_t i = 0; set && set[i]; i++)
        if (strcmp (value, set[i]) == 0)
            return true;
    return false;
}

//  Checks one element of a string list (already pushed on the path).
static int
s_check_item (ctx_t *ctx, const char *key, json_t *item, const char *const *set)
{
    if (!json_is_string (item) || json_string_length (item) == 0)
        return s_fail (ctx, JPOS_VALUE, "'%s' %s must hold non-empty strings", key, ctx->where);
    if (set && !s_in_set (json_string_value (item), set)) {
        char expected[128] = "";
        for (size_t i = 0; set[i]; i++)
            snprintf (expected + strlen (expected), sizeof expected - strlen (expected), "%s%s",
                      i ? ", " : "", set[i]);
        return s_fail (ctx, JPOS_VALUE, "unknown %s '%s' %s (expected %s)", key,
                       json_string_value (item), ctx->where, expected);
    }
    return 0;
}

//  A string or a (non-empty unless may_be_empty) array of strings, optionally from a set.
//  *out receives a new reference to an array.
static int
s_get_list (ctx_t *ctx, json_t *obj, const char *key, bool may_be_empty,
            const char *const *set, json_t **out)
{
    json_t *value = json_object_get (obj, key);
    if (!value)
        return 1;
    s_push_key (ctx, key);
    if (json_is_string (value)) {
        if (s_check_item (ctx, key, value, set))
            return -1;
        *out = json_pack ("[O]", value);
    }
    else {
        if (!json_is_array (value))
            return s_fail (ctx, JPOS_VALUE, "'%s' %s must be a string or an array of strings",
                           key, ctx->where);
        if (json_array_size (value) == 0 && !may_be_empty)
            return s_fail (ctx, JPOS_VALUE, "'%s' %s must not be empty", key, ctx->where);
        for (size_t i = 0; i < json_array_size (value); i++) {
            s_push_index (ctx, i);
            if (s_check_item (ctx, key, json_array_get (value, i), set))
                return -1;
            s_pop (ctx);
        }
        *out = json_incref (value);
    }
    s_pop (ctx);
    return *out ? 0 : s_fail (ctx, JPOS_VALUE, "out of memory");
}

static pcre2_code *
s_compile (const char *pattern, int *code, size_t *offset)
{
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile ((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED,
                                    PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_MULTILINE,
                                    code, &off, NULL);
    *offset = off;
    if (re)
        pcre2_jit_compile (re, PCRE2_JIT_COMPLETE);     //  the interpreter if JIT is missing
    return re;
}

//  Reports a pattern error at the exact source character the error offset points to.
static int
s_pattern_error (ctx_t *ctx, const char *key, const char *msg, size_t decoded)
{
    size_t literal, at;
    if (jpos_locate (ctx->text, ctx->size, ctx->path, ctx->depth, JPOS_VALUE, &literal) == 0
        && jpos_string_byte (ctx->text, ctx->size, literal, decoded, &at) == 0)
        return s_fail_at (ctx, at, "bad pattern '%s' %s: %s (pattern offset %zu)", key,
                          ctx->where, msg, decoded);
    return s_fail (ctx, JPOS_VALUE, "bad pattern '%s' %s: %s (pattern offset %zu)", key,
                   ctx->where, msg, decoded);
}

static int
s_get_pattern (ctx_t *ctx, json_t *obj, const char *key, pcre2_code **out)
{
    const char *pattern;
    int rc = s_get_str (ctx, obj, key, &pattern);
    if (rc)
        return rc;
    int code;
    size_t offset;
    *out = s_compile (pattern, &code, &offset);
    if (*out)
        return 0;
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message (code, msg, sizeof msg);
    s_push_key (ctx, key);
    return s_pattern_error (ctx, key, (const char *) msg, offset);
}

//  --------------------------------------------------------------------------
//  Sections of the file

static int
s_require_object (ctx_t *ctx, json_t *value, const char *what)
{
    if (json_is_object (value))
        return 0;
    return s_fail (ctx, JPOS_VALUE, "%s must be an object", what);
}

static int
s_parse_limits (ctx_t *ctx, json_t *rule, rule_t *r)
{
    static const char *const keys[] = { "timeout_ms", "memory_mb", "pids", "tmp_mb",
                                        "output_bytes", NULL };
    json_t *limits = json_object_get (rule, "limits");
    if (!limits)
        return 0;
    s_push_key (ctx, "limits");
    s_where (ctx, "limits");
    if (s_require_object (ctx, limits, "'limits'") || s_check_keys (ctx, limits, keys))
        return -1;
    for (size_t i = 0; keys[i]; i++) {
        int ignored;
        if (s_get_int (ctx, limits, keys[i], 1, INT32_MAX, &ignored) < 0)
            return -1;
    }
    s_where (ctx, NULL);
    s_pop (ctx);
    r->limits = limits;
    return 0;
}

static int
s_parse_approvers (ctx_t *ctx, json_t *rule, rule_t *r)
{
    static const char *const keys[] = { "principals", "groups", NULL };
    json_t *approvers = json_object_get (rule, "approvers");
    if (approvers) {
        s_push_key (ctx, "approvers");
        s_where (ctx, "approvers");
        if (s_require_object (ctx, approvers, "'approvers'")
            || s_check_keys (ctx, approvers, keys)
            || s_get_list (ctx, approvers, "principals", true, NULL, &r->appr_principals) < 0
            || s_get_list (ctx, approvers, "groups", true, NULL, &r->appr_groups) < 0)
            return -1;
        s_where (ctx, NULL);
        s_pop (ctx);
    }
    if (!r->appr_principals)
        r->appr_principals = json_array ();
    if (!r->appr_groups)
        r->appr_groups = json_array ();
    return r->appr_principals && r->appr_groups ? 0 : s_fail (ctx, JPOS_VALUE, "out of memory");
}

//  Review-only settings on other actions are errors: they would silently do nothing.
static int
s_parse_review (ctx_t *ctx, policy_t *self, json_t *rule, rule_t *r)
{
    static const char *const only[] = { "quorum", "approvers", "ttl_s", "webhook", NULL };
    if (r->action != POLICY_REVIEW) {
        for (size_t i = 0; only[i]; i++)
            if (json_object_get (rule, only[i])) {
                s_push_key (ctx, only[i]);
                return s_fail (ctx, JPOS_KEY, "'%s' only applies to review rules, and %s is %s",
                               only[i], ctx->rule, s_action_names[r->action]);
            }
        return 0;
    }
    r->quorum = self->quorum;
    r->ttl_s = self->ttl_s;
    if (s_get_int (ctx, rule, "quorum", 1, POLICY_MAX_QUORUM, &r->quorum) < 0
        || s_get_int (ctx, rule, "ttl_s", 1, POLICY_MAX_TTL_S, &r->ttl_s) < 0
        || s_get_str (ctx, rule, "webhook", &r->webhook) < 0
        || s_parse_approvers (ctx, rule, r))
        return -1;
    if (r->webhook && strncmp (r->webhook, "https://", 8) != 0
        && strncmp (r->webhook, "http://", 7) != 0) {
        s_push_key (ctx, "webhook");
        return s_fail (ctx, JPOS_VALUE, "'webhook' %s must be an http:// or https:// URL",
                       ctx->where);
    }
    return 0;
}

static int
s_parse_match (ctx_t *ctx, json_t *rule, rule_t *r)
{
    static const char *const keys[] = { "lang", "principal", "role", "groups", "session", "code",
                                        NULL };
    static const char *const langs[] = { "python", "shell", NULL };
    static const char *const roles[] = { "agent", "approver", "worker", "admin", NULL };
    json_t *match = json_object_get (rule, "match");
    if (!match)
        return 0;
    s_push_key (ctx, "match");
    s_where (ctx, "match");
    if (s_require_object (ctx, match, "'match'") || s_check_keys (ctx, match, keys)
        || s_get_list (ctx, match, "lang", false, langs, &r->langs) < 0
        || s_get_list (ctx, match, "principal", false, NULL, &r->principals) < 0
        || s_get_list (ctx, match, "role", false, roles, &r->roles) < 0
        || s_get_list (ctx, match, "groups", false, NULL, &r->groups) < 0
        || s_get_pattern (ctx, match, "session", &r->session_re) < 0
        || s_get_pattern (ctx, match, "code", &r->code_re) < 0)
        return -1;
    s_where (ctx, NULL);
    s_pop (ctx);
    return 0;
}

static int
s_parse_action (ctx_t *ctx, json_t *rule, rule_t *r)
{
    const char *action = NULL;
    int rc = s_get_str (ctx, rule, "action", &action);
    if (rc == 1)
        return s_fail (ctx, JPOS_VALUE, "missing required key 'action' %s", ctx->where);
    if (rc < 0)
        return -1;
    for (int a = POLICY_ALLOW; a <= POLICY_REVIEW; a++)
        if (strcmp (action, s_action_names[a]) == 0) {
            r->action = (policy_action_t) a;
            return 0;
        }
    s_push_key (ctx, "action");
    return s_fail (ctx, JPOS_VALUE, "unknown action '%s' %s (expected allow, deny or review)",
                   action, ctx->where);
}

static int
s_parse_rule (ctx_t *ctx, policy_t *self, json_t *rule, size_t index, json_t *seen)
{
    static const char *const keys[] = { "name", "comment", "match", "action", "message", "quorum",
                                        "approvers", "ttl_s", "webhook", "limits", NULL };
    rule_t *r = &self->rules[index];
    snprintf (ctx->rule, sizeof ctx->rule, "rule %zu", index + 1);
    s_where (ctx, NULL);
    if (s_require_object (ctx, rule, ctx->rule))
        return -1;
    int rc = s_get_str (ctx, rule, "name", &r->name);
    if (rc == 1)
        return s_fail (ctx, JPOS_VALUE, "missing required key 'name' %s", ctx->where);
    if (rc < 0)
        return -1;
    snprintf (ctx->rule, sizeof ctx->rule, "rule %zu '%.64s'", index + 1, r->name);
    s_where (ctx, NULL);
    s_push_key (ctx, "name");
    if (!mask_name_valid (r->name))
        return s_fail (ctx, JPOS_VALUE, "the name of %s must match [A-Za-z0-9_.-]{1,64}", ctx->rule);
    if (json_object_get (seen, r->name))
        return s_fail (ctx, JPOS_VALUE, "duplicate rule name '%s' (%s)", r->name, ctx->rule);
    s_pop (ctx);
    json_object_set_new (seen, r->name, json_true ());
    r->source = rule;
    const char *comment;
    if (s_check_keys (ctx, rule, keys) || s_get_str (ctx, rule, "comment", &comment) < 0
        || s_parse_action (ctx, rule, r) || s_get_str (ctx, rule, "message", &r->message) < 0)
        return -1;
    if (r->action == POLICY_DENY && !r->message)
        return s_fail (ctx, JPOS_VALUE, "%s is a deny rule and needs a 'message' for the agent",
                       ctx->rule);
    if (r->action == POLICY_DENY && json_object_get (rule, "limits")) {
        s_push_key (ctx, "limits");
        return s_fail (ctx, JPOS_KEY, "'limits' do not apply to deny rules (%s)", ctx->rule);
    }
    return s_parse_match (ctx, rule, r) || s_parse_review (ctx, self, rule, r)
           || s_parse_limits (ctx, rule, r) ? -1 : 0;
}

static int
s_parse_rules (ctx_t *ctx, policy_t *self)
{
    json_t *rules = json_object_get (self->root, "rules");
    if (!rules)
        return s_fail (ctx, JPOS_VALUE, "missing required key 'rules' at the top level");
    s_push_key (ctx, "rules");
    if (!json_is_array (rules))
        return s_fail (ctx, JPOS_VALUE, "'rules' must be an array");
    if (json_array_size (rules) == 0)
        return s_fail (ctx, JPOS_VALUE, "'rules' must hold at least one rule");
    self->rules = calloc (json_array_size (rules), sizeof (rule_t));
    json_t *seen = json_object ();
    if (!self->rules || !seen) {
        json_decref (seen);
        return s_fail (ctx, JPOS_VALUE, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < json_array_size (rules) && rc == 0; i++) {
        self->nrules = i + 1;           //  so destroy frees what this rule compiled
        s_push_index (ctx, i);
        rc = s_parse_rule (ctx, self, json_array_get (rules, i), i, seen);
        ctx->depth = 1;
    }
    json_decref (seen);
    return rc;
}

static int
s_parse_mask (ctx_t *ctx, json_t *mask, size_t index)
{
    static const char *const keys[] = { "name", "pattern", "comment", NULL };
    const char *name = NULL, *pattern = NULL, *comment;
    snprintf (ctx->rule, sizeof ctx->rule, "mask %zu", index + 1);
    s_where (ctx, NULL);
    if (s_require_object (ctx, mask, ctx->rule) || s_check_keys (ctx, mask, keys)
        || s_get_str (ctx, mask, "name", &name) < 0 || s_get_str (ctx, mask, "pattern", &pattern) < 0
        || s_get_str (ctx, mask, "comment", &comment) < 0)
        return -1;
    if (!name || !pattern)
        return s_fail (ctx, JPOS_VALUE, "missing required key '%s' %s", name ? "pattern" : "name",
                       ctx->where);
    s_push_key (ctx, "name");
    if (!mask_name_valid (name))
        return s_fail (ctx, JPOS_VALUE, "the name of %s must match [A-Za-z0-9_.-]{1,64}", ctx->rule);
    s_pop (ctx);
    char msg[256];
    size_t offset = 0;
    if (mask_check_pattern (pattern, &offset, msg, sizeof msg) == 0)
        return 0;
    char *cut = strstr (msg, " at offset ");        //  s_pattern_error says where itself
    if (cut)
        *cut = 0;
    s_push_key (ctx, "pattern");
    return s_pattern_error (ctx, "pattern", msg, offset);
}

static int
s_parse_masks (ctx_t *ctx, policy_t *self)
{
    json_t *masks = json_object_get (self->root, "masks");
    if (!masks)
        return 0;
    s_push_key (ctx, "masks");
    if (!json_is_array (masks))
        return s_fail (ctx, JPOS_VALUE, "'masks' must be an array");
    for (size_t i = 0; i < json_array_size (masks); i++) {
        s_push_index (ctx, i);
        if (s_parse_mask (ctx, json_array_get (masks, i), i))
            return -1;
        ctx->depth = 1;
    }
    ctx->depth = 0;
    self->masks = masks;
    return 0;
}

static int
s_parse_defaults (ctx_t *ctx, policy_t *self)
{
    static const char *const keys[] = { "quorum", "ttl_s", NULL };
    self->quorum = 1;
    self->ttl_s = 3600;
    json_t *defaults = json_object_get (self->root, "defaults");
    if (!defaults)
        return 0;
    s_push_key (ctx, "defaults");
    snprintf (ctx->where, sizeof ctx->where, "in defaults");
    if (s_require_object (ctx, defaults, "'defaults'") || s_check_keys (ctx, defaults, keys)
        || s_get_int (ctx, defaults, "quorum", 1, POLICY_MAX_QUORUM, &self->quorum) < 0
        || s_get_int (ctx, defaults, "ttl_s", 1, POLICY_MAX_TTL_S, &self->ttl_s) < 0)
        return -1;
    s_pop (ctx);
    return 0;
}

static int
s_parse_top (ctx_t *ctx, policy_t *self)
{
    static const char *const keys[] = { "version", "comment", "defaults", "masks", "rules", NULL };
    const char *comment;
    snprintf (ctx->where, sizeof ctx->where, "at the top level");
    if (!json_is_object (self->root))
        return s_fail (ctx, JPOS_VALUE, "a policy must be a JSON object");
    if (s_check_keys (ctx, self->root, keys)
        || s_get_str (ctx, self->root, "comment", &comment) < 0)
        return -1;
    json_t *version = json_object_get (self->root, "version");
    if (!version)
        return s_fail (ctx, JPOS_VALUE, "missing required key 'version' at the top level");
    if (!json_is_integer (version) || json_integer_value (version) != 1) {
        s_push_key (ctx, "version");
        return s_fail (ctx, JPOS_VALUE, "'version' must be 1 (the only format this build reads)");
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
    ctx_t ctx = { .text = text, .size = size, .file = name, .err = err, .err_size = err_size };
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
        pcre2_code_free (r->session_re);
        pcre2_code_free (r->code_re);
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
    while (csv && *csv) {
        csv += strspn (csv, " ,");
        size_t len = strcspn (csv, ",");
        size_t trimmed = len;
        while (trimmed && csv[trimmed - 1] == ' ')
            trimmed--;
        if (trimmed && s_list_has (list, csv, trimmed))
            return true;
        csv += len;
    }
    return false;
}

//  1 if the pattern is found, 0 if not (or the subject is missing), -1 if undetermined.
static int
s_search (policy_t *self, pcre2_code *re, const char *subject, size_t len)
{
    if (!subject)
        return 0;
    int rc = pcre2_match (re, (PCRE2_SPTR) subject, len, 0, 0, self->md, self->mctx);
    return rc >= 0 ? 1 : rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

//  1 match, 0 no match, -1 undetermined (no dimension failed but a pattern hit a limit).
static int
s_rule_matches (policy_t *self, const rule_t *r, const policy_input_t *in)
{
    if ((r->langs && !s_list_has (r->langs, in->lang, in->lang ? strlen (in->lang) : 0))
        || (r->principals
            && !s_list_has (r->principals, in->principal, in->principal ? strlen (in->principal) : 0))
        || (r->roles && !s_list_has (r->roles, in->role, in->role ? strlen (in->role) : 0))
        || (r->groups && !s_groups_meet (r->groups, in->groups, in->groups_csv)))
        return 0;
    int session = 1, code = 1;
    if (r->session_re
        && (session = s_search (self, r->session_re, in->session,
                                in->session ? strlen (in->session) : 0)) == 0)
        return 0;
    if (r->code_re) {
        size_t len = in->code && !in->code_len ? strlen (in->code) : in->code_len;
        if ((code = s_search (self, r->code_re, in->code, len)) == 0)
            return 0;
    }
    return session < 0 || code < 0 ? -1 : 1;
}

static void
s_fill (policy_t *self, const rule_t *r, int index, bool limit_hit, policy_decision_t *out)
{
    out->action = limit_hit ? POLICY_REVIEW : r->action;
    out->action_name = s_action_names[out->action];
    out->rule = r->name;
    out->rule_index = index;
    out->limit_hit = limit_hit;
    out->message = limit_hit ? s_limit_message : r->message;
    if (out->action == POLICY_REVIEW && r->action == POLICY_REVIEW) {
        out->quorum = r->quorum;
        out->ttl_s = r->ttl_s;
        out->approver_principals = r->appr_principals;
        out->approver_groups = r->appr_groups;
        out->webhook = r->webhook;
    }
    else
    if (out->action == POLICY_REVIEW) {             //  a limit hit on an allow or deny rule
        out->quorum = self->quorum;
        out->ttl_s = self->ttl_s;
        out->approver_principals = self->empty;
        out->approver_groups = self->empty;
    }
    out->limits = out->action == r->action && r->action != POLICY_DENY ? r->limits : NULL;
}

int
policy_decide (policy_t *self, const policy_input_t *in, policy_decision_t *out)
{
    if (!self || !in || !out)
        return -1;
    memset (out, 0, sizeof *out);
    out->policy_sha256 = self->sha256;
    for (size_t i = 0; i < self->nrules; i++) {
        int rc = s_rule_matches (self, &self->rules[i], in);
        if (rc != 0) {
            s_fill (self, &self->rules[i], (int) i, rc < 0, out);
            return 0;
        }
    }
    out->action = POLICY_DENY;                      //  fail closed
    out->action_name = s_action_names[POLICY_DENY];
    out->rule_index = -1;
    out->message = "no rule matched";
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
    return json_pack ("{s:s,s:s?,s:i,s:s?,s:i,s:i,s:o*,s:O*,s:s*,s:b,s:s?}",
                      "action", d->action_name, "rule", d->rule, "rule_index", d->rule_index,
                      "message", d->message, "quorum", d->quorum, "ttl_s", d->ttl_s,
                      "approvers", approvers, "limits", d->limits, "webhook", d->webhook,
                      "limit_hit", d->limit_hit, "policy_sha256", d->policy_sha256);
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

//  --------------------------------------------------------------------------
//  Self-test

static const char *s_test_policy =
    "{\n"
    "  \"version\": 1,\n"
    "  \"defaults\": { \"quorum\": 2, \"ttl_s\": 120 },\n"
    "  \"masks\": [ { \"name\": \"internal-token\", \"pattern\": \"itk_[a-z0-9]{32}\" } ],\n"
    "  \"rules\": [\n"
    "    { \"name\": \"no-rm-root\", \"match\": { \"lang\": \"shell\", \"code\": \"rm\\\\s+-rf\\\\s+/(\\\\s|$)\" },\n"
    "      \"action\": \"deny\", \"message\": \"never\" },\n"
    "    { \"name\": \"hostile\", \"match\": { \"session\": \"^fuzz-\", \"code\": \"(a+)+$\" }, \"action\": \"allow\" },\n"
    "    { \"name\": \"hostile-deny\", \"match\": { \"session\": \"^fuzzd-\", \"code\": \"(a+)+$\" },\n"
    "      \"action\": \"deny\", \"message\": \"no\" },\n"
    "    { \"name\": \"hostile-review\", \"match\": { \"session\": \"^fuzzr-\", \"code\": \"(a+)+$\" },\n"
    "      \"action\": \"review\", \"quorum\": 3, \"approvers\": { \"groups\": [\"sec\"] }, \"ttl_s\": 60 },\n"
    "    { \"name\": \"hostile-session\", \"match\": { \"lang\": \"python\", \"session\": \"^(s+)+$\" }, \"action\": \"allow\" },\n"
    "    { \"name\": \"network\", \"match\": { \"code\": \"\\\\b(curl|wget)\\\\b\" }, \"action\": \"review\",\n"
    "      \"quorum\": 2, \"approvers\": { \"principals\": [\"alice\"], \"groups\": [\"sre\"] }, \"ttl_s\": 600,\n"
    "      \"webhook\": \"https://hooks.example/x\", \"limits\": { \"timeout_ms\": 5000 } },\n"
    "    { \"name\": \"by-principal\", \"match\": { \"principal\": [\"ci-bot\", \"deploy\"] }, \"action\": \"allow\",\n"
    "      \"limits\": { \"timeout_ms\": 30000, \"memory_mb\": 1024 } },\n"
    "    { \"name\": \"by-role\", \"match\": { \"role\": \"admin\" }, \"action\": \"allow\" },\n"
    "    { \"name\": \"ops\", \"match\": { \"groups\": [\"ops\"], \"session\": \"^prod-\" }, \"action\": \"allow\" },\n"
    "    { \"name\": \"prod\", \"match\": { \"session\": \"^prod-\" }, \"action\": \"review\", \"message\": \"prod\" },\n"
    "    { \"name\": \"python-only\", \"comment\": \"no catch-all\", \"match\": { \"lang\": [\"python\"] }, \"action\": \"allow\" }\n"
    "  ]\n"
    "}\n";

static policy_decision_t
s_decide (policy_t *p, const char *lang, const char *principal, const char *role,
          const char *groups_csv, const char *session, const char *code)
{
    policy_input_t in = { .lang = lang, .principal = principal, .role = role,
                          .groups_csv = groups_csv, .session = session, .code = code };
    policy_decision_t d;
    int rc = policy_decide (p, &in, &d);
    CHECK (rc == 0);
    return d;
}

static bool
s_is (const policy_decision_t *d, policy_action_t action, const char *rule)
{
    bool ok = d->action == action && strcmp (d->action_name, s_action_names[action]) == 0
              && (rule ? d->rule && strcmp (d->rule, rule) == 0 : d->rule == NULL);
    if (!ok)
        fprintf (stderr, "policy: got %s by %s, want %s by %s\n", d->action_name,
                 d->rule ? d->rule : "(none)", s_action_names[action], rule ? rule : "(none)");
    return ok;
}

static void
s_test_dimensions (policy_t *p)
{
    policy_decision_t d = s_decide (p, "shell", "bob", "agent", "", "s1", "rm -rf /");
    CHECK (s_is (&d, POLICY_DENY, "no-rm-root") && strcmp (d.message, "never") == 0);
    CHECK (d.rule_index == 0 && !d.limit_hit && d.limits == NULL && d.quorum == 0);
    d = s_decide (p, "python", "bob", "agent", "", "s1", "rm -rf /");     //  lang differs
    CHECK (s_is (&d, POLICY_ALLOW, "python-only"));
    d = s_decide (p, "python", "bob", "agent", "", "s1", "os.system('curl x')");
    CHECK (s_is (&d, POLICY_REVIEW, "network") && d.quorum == 2 && d.ttl_s == 600);
    CHECK (strcmp (d.webhook, "https://hooks.example/x") == 0);
    CHECK (json_integer_value (json_object_get (d.limits, "timeout_ms")) == 5000);
    CHECK (json_array_size (d.approver_principals) == 1 && json_array_size (d.approver_groups) == 1);
    d = s_decide (p, "shell", "ci-bot", "agent", "", "s1", "ls");         //  principal
    CHECK (s_is (&d, POLICY_ALLOW, "by-principal"));
    CHECK (json_integer_value (json_object_get (d.limits, "memory_mb")) == 1024);
    d = s_decide (p, "shell", "ci-bot", "agent", "", "s1", "curl x");     //  first match wins
    CHECK (s_is (&d, POLICY_REVIEW, "network"));
    d = s_decide (p, "shell", "root", "admin", "", "s1", "ls");           //  role
    CHECK (s_is (&d, POLICY_ALLOW, "by-role"));
    d = s_decide (p, "shell", "bob", "agent", "dev, ops", "prod-1", "ls"); //  groups + session
    CHECK (s_is (&d, POLICY_ALLOW, "ops") && d.limits == NULL);
    d = s_decide (p, "shell", "bob", "agent", "dev", "prod-1", "ls");
    CHECK (s_is (&d, POLICY_REVIEW, "prod") && d.quorum == 2 && d.ttl_s == 120);
    CHECK (strcmp (d.message, "prod") == 0 && d.webhook == NULL);
    CHECK (json_array_size (d.approver_principals) == 0 && json_array_size (d.approver_groups) == 0);
    const char *groups[] = { "x", "ops", NULL };
    policy_input_t in = { .lang = "shell", .principal = "bob", .role = "agent", .groups = groups,
                          .session = "prod-2", .code = "ls" };
    CHECK (policy_decide (p, &in, &d) == 0 && s_is (&d, POLICY_ALLOW, "ops"));
    d = s_decide (p, "shell", "bob", "agent", "ops", "staging", "ls");    //  no match: fail closed
    CHECK (s_is (&d, POLICY_DENY, NULL) && d.rule_index == -1);
    CHECK (strcmp (d.message, "no rule matched") == 0);
    d = s_decide (p, NULL, NULL, NULL, NULL, NULL, NULL);
    CHECK (s_is (&d, POLICY_DENY, NULL));
    CHECK (strcmp (d.policy_sha256, policy_sha256 (p)) == 0);
    CHECK (policy_decide (p, NULL, &d) == -1 && policy_decide (NULL, &in, &d) == -1);
}

//  An exponential pattern on hostile input must end as review, never as allow.
static void
s_test_limits (policy_t *p)
{
    size_t n = 50000;
    char *hostile = malloc (n + 2);
    memset (hostile, 'a', n);
    strcpy (hostile + n, "!");
    int64_t t0 = clock_mono_ms ();
    policy_decision_t d = s_decide (p, "python", "bob", "agent", "", "fuzz-1", hostile);
    CHECK (s_is (&d, POLICY_REVIEW, "hostile") && d.limit_hit);
    CHECK (d.quorum == 2 && d.ttl_s == 120 && d.limits == NULL && d.webhook == NULL);
    CHECK (json_array_size (d.approver_principals) == 0 && strstr (d.message, "match limit"));
    d = s_decide (p, "python", "bob", "agent", "", "fuzzd-1", hostile);
    CHECK (s_is (&d, POLICY_REVIEW, "hostile-deny") && d.limit_hit);
    d = s_decide (p, "python", "bob", "agent", "", "fuzzr-1", hostile);
    CHECK (s_is (&d, POLICY_REVIEW, "hostile-review") && d.limit_hit && d.quorum == 3);
    CHECK (d.ttl_s == 60 && json_array_size (d.approver_groups) == 1);
    CHECK (clock_mono_ms () - t0 < 3000);
    //  A dimension that definitely fails makes the limit moot; a harmless subject matches fine.
    d = s_decide (p, "python", "bob", "agent", "", "other", hostile);
    CHECK (s_is (&d, POLICY_ALLOW, "python-only") && !d.limit_hit);
    d = s_decide (p, "python", "bob", "agent", "", "fuzz-1", "b = 1");
    CHECK (s_is (&d, POLICY_ALLOW, "python-only") && !d.limit_hit);
    d = s_decide (p, "python", "bob", "agent", "", "fuzz-1", "aaa");
    CHECK (s_is (&d, POLICY_ALLOW, "hostile") && !d.limit_hit);
    //  The session pattern is bounded the same way.
    memset (hostile, 's', 40);
    strcpy (hostile + 40, "!");
    d = s_decide (p, "python", "bob", "agent", "", hostile, "x = 1");
    CHECK (s_is (&d, POLICY_REVIEW, "hostile-session") && d.limit_hit);
    free (hostile);
    //  Invalid UTF-8 in the code is never an error (it just does not match).
    d = s_decide (p, "shell", "bob", "agent", "", "s1", "curl \xff\xfe x");
    CHECK (s_is (&d, POLICY_REVIEW, "network") && !d.limit_hit);
}

static void
s_test_outputs (policy_t *p)
{
    policy_decision_t d = s_decide (p, "shell", "carol", "approver", "", "s1", "wget x");
    CHECK (policy_may_approve (&d, "alice", NULL));
    CHECK (policy_may_approve (&d, "bob", "dev,sre"));
    CHECK (!policy_may_approve (&d, "bob", "dev, ops"));
    CHECK (!policy_may_approve (&d, NULL, "sre") && !policy_may_approve (NULL, "alice", NULL));
    policy_decision_t open = s_decide (p, "shell", "bob", "agent", "dev", "prod-1", "ls");
    CHECK (policy_may_approve (&open, "anyone", NULL));
    policy_decision_t allow = s_decide (p, "shell", "root", "admin", "", "s1", "ls");
    CHECK (!policy_may_approve (&allow, "alice", NULL));

    policy_input_t in = { .lang = "shell", .principal = "bob", .role = "agent", .session = "s1",
                          .code = "curl -s x" };
    json_t *ex = policy_explain (p, &in);
    CHECK (ex && strcmp (json_string_value (json_object_get (ex, "action")), "review") == 0);
    CHECK (strcmp (json_string_value (json_object_get (ex, "rule")), "network") == 0);
    json_t *src = json_object_get (ex, "rule_source");
    CHECK (strcmp (json_string_value (json_object_get (src, "name")), "network") == 0);
    json_t *appr = json_object_get (json_object_get (ex, "approvers"), "principals");
    CHECK (strcmp (json_string_value (json_array_get (appr, 0)), "alice") == 0);
    CHECK (json_integer_value (json_object_get (json_object_get (ex, "limits"), "timeout_ms")) == 5000);
    CHECK (strcmp (json_string_value (json_object_get (ex, "policy_sha256")), policy_sha256 (p)) == 0);
    CHECK (json_is_false (json_object_get (ex, "limit_hit")));
    json_decref (ex);
    in.role = "agent";
    in.code = "ls";
    in.principal = "nobody";
    in.lang = "perl";
    ex = policy_explain (p, &in);
    CHECK (ex && json_is_null (json_object_get (ex, "rule")) && json_is_null (json_object_get (ex, "rule_source")));
    CHECK (ex && !json_object_get (ex, "approvers") && json_integer_value (json_object_get (ex, "rule_index")) == -1);
    json_decref (ex);
    CHECK (policy_explain (NULL, &in) == NULL);

    CHECK (policy_rule_count (p) == 11 && policy_mask_count (p) == 1);
    mask_t *mask = mask_new ();
    char err[256];
    CHECK (policy_add_masks (p, mask, err, sizeof err) == 0);
    const char *text = "t=itk_0123456789abcdef0123456789abcdef";
    char *out = mask_apply (mask, text, strlen (text), NULL, NULL);
    CHECK (out && strcmp (out, "t=[MASKED:internal-token]") == 0);
    free (out);
    mask_destroy (&mask);
}

//  A policy whose second rule (on line 5) is `rule`.
static char *
s_with_rule (const char *rule)
{
    const char *head = "{\n  \"version\": 1,\n  \"rules\": [\n    { \"name\": \"ok\", \"action\": \"allow\" },\n";
    const char *tail = "\n  ]\n}\n";
    char *text = malloc (strlen (head) + strlen (rule) + strlen (tail) + 1);
    sprintf (text, "%s%s%s", head, rule, tail);
    return text;
}

static void
s_refused (const char *text, const char *want)
{
    char err[512] = "";
    policy_t *p = policy_parse (text, strlen (text), "policy.json", err, sizeof err);
    CHECK (p == NULL);
    CHECK (strcmp (err, want) == 0);
    if (strcmp (err, want) != 0)
        fprintf (stderr, "policy: error\n  got  %s\n  want %s\n", err, want);
    policy_destroy (&p);
}

static void
s_refused_rule (const char *rule, const char *want)
{
    char *text = s_with_rule (rule);
    s_refused (text, want);
    free (text);
}

static void
s_test_errors_top (void)
{
    s_refused ("{\n  \"version\": 1,\n  \"rules\": [ { \"name\": \"a\", \"action\": \"allow\", } ]\n}",
               "policy.json:3:48: string or '}' expected near '}'");
    s_refused ("{\"version\": 1, \"rules\": [], \"version\": 1}",
               "policy.json:1:37: duplicate object key near '\"version\"'");
    s_refused ("", "policy.json:1:1: '[' or '{' expected near end of file");
    s_refused ("\n [1]", "policy.json:2:2: a policy must be a JSON object");
    s_refused ("{\n  \"version\": 1,\n  \"rulez\": []\n}",
               "policy.json:3:3: unknown key 'rulez' at the top level (did you mean 'rules'?)");
    s_refused ("{\n  \"rules\": []\n}", "policy.json:1:1: missing required key 'version' at the top level");
    s_refused ("{\n  \"version\": 2, \"rules\": []\n}",
               "policy.json:2:14: 'version' must be 1 (the only format this build reads)");
    s_refused ("{ \"version\": 1 }", "policy.json:1:1: missing required key 'rules' at the top level");
    s_refused ("{ \"version\": 1,\n  \"rules\": []\n}", "policy.json:2:12: 'rules' must hold at least one rule");
    s_refused ("{ \"version\": 1,\n  \"rules\": {}\n}", "policy.json:2:12: 'rules' must be an array");
    s_refused ("{ \"version\": 1, \"defaults\": { \"quorum\": 0 }, \"rules\": [] }",
               "policy.json:1:41: 'quorum' in defaults must be between 1 and 100");
    s_refused ("{ \"version\": 1, \"defaults\": { \"ttl\": 5 }, \"rules\": [] }",
               "policy.json:1:31: unknown key 'ttl' in defaults (did you mean 'ttl_s'?)");
    s_refused ("{ \"version\": 1,\n  \"masks\": [ { \"name\": \"m\", \"pattern\": \"x\\\\d{2,1}\" } ],\n  \"rules\": [] }",
               "policy.json:2:49: bad pattern 'pattern' in mask 1: numbers out of order in {} "
               "quantifier (pattern offset 7)");
    s_refused ("{ \"version\": 1,\n  \"masks\": [ { \"name\": \"m\", \"regex\": \"x\" } ],\n  \"rules\": [] }",
               "policy.json:2:29: unknown key 'regex' in mask 1");
    s_refused ("{ \"version\": 1,\n  \"masks\": [ { \"name\": \"a b\", \"pattern\": \"x\" } ],\n  \"rules\": [] }",
               "policy.json:2:24: the name of mask 1 must match [A-Za-z0-9_.-]{1,64}");
}

static void
s_test_errors_rules (void)
{
    s_refused_rule ("    { \"name\": \"net\", \"acton\": \"review\" }",
                    "policy.json:5:22: unknown key 'acton' in rule 2 'net' (did you mean 'action'?)");
    s_refused_rule ("    { \"name\": \"m\", \"match\": { \"langs\": \"python\" }, \"action\": \"allow\" }",
                    "policy.json:5:31: unknown key 'langs' in the match of rule 2 'm' (did you mean 'lang'?)");
    s_refused_rule ("    { \"name\": \"r\", \"action\": \"review\", \"approvers\": { \"people\": [\"a\"] } }",
                    "policy.json:5:55: unknown key 'people' in the approvers of rule 2 'r'");
    s_refused_rule ("    { \"name\": \"r\", \"action\": \"review\", \"quorum\": \"2\" }",
                    "policy.json:5:50: 'quorum' in rule 2 'r' must be an integer");
    s_refused_rule ("    { \"name\": \"d\", \"action\": \"deny\" }",
                    "policy.json:5:5: rule 2 'd' is a deny rule and needs a 'message' for the agent");
    s_refused_rule ("    { \"name\": \"b\", \"match\": { \"code\": \"a(b\" }, \"action\": \"allow\" }",
                    "policy.json:5:43: bad pattern 'code' in the match of rule 2 'b': missing closing "
                    "parenthesis (pattern offset 3)");
    s_refused_rule ("    { \"name\": \"b\", \"match\": { \"session\": \"^x\\\\\" }, \"action\": \"allow\" }",
                    "policy.json:5:47: bad pattern 'session' in the match of rule 2 'b': \\ at end of "
                    "pattern (pattern offset 3)");
    s_refused_rule ("    { \"name\": \"a\", \"action\": \"permit\" }",
                    "policy.json:5:30: unknown action 'permit' in rule 2 'a' (expected allow, deny or review)");
    s_refused_rule ("    { \"name\": \"a\" }", "policy.json:5:5: missing required key 'action' in rule 2 'a'");
    s_refused_rule ("    { \"action\": \"allow\" }", "policy.json:5:5: missing required key 'name' in rule 2");
    s_refused_rule ("    { \"name\": \"ok\", \"action\": \"allow\" }",
                    "policy.json:5:15: duplicate rule name 'ok' (rule 2 'ok')");
    s_refused_rule ("    \"allow\"", "policy.json:5:5: rule 2 must be an object");
    s_refused_rule ("    { \"name\": \"l\", \"match\": { \"lang\": [\"python\", \"bash\"] }, \"action\": \"allow\" }",
                    "policy.json:5:50: unknown lang 'bash' in the match of rule 2 'l' (expected python, shell)");
    s_refused_rule ("    { \"name\": \"l\", \"match\": { \"groups\": [] }, \"action\": \"allow\" }",
                    "policy.json:5:41: 'groups' in the match of rule 2 'l' must not be empty");
    s_refused_rule ("    { \"name\": \"l\", \"match\": { \"role\": 7 }, \"action\": \"allow\" }",
                    "policy.json:5:39: 'role' in the match of rule 2 'l' must be a string or an array of strings");
    s_refused_rule ("    { \"name\": \"q\", \"action\": \"allow\", \"quorum\": 2 }",
                    "policy.json:5:39: 'quorum' only applies to review rules, and rule 2 'q' is allow");
    s_refused_rule ("    { \"name\": \"q\", \"action\": \"deny\", \"message\": \"m\", \"limits\": {} }",
                    "policy.json:5:54: 'limits' do not apply to deny rules (rule 2 'q')");
    s_refused_rule ("    { \"name\": \"q\", \"action\": \"allow\", \"limits\": { \"timeout_ms\": 0 } }",
                    "policy.json:5:65: 'timeout_ms' in the limits of rule 2 'q' must be between 1 and 2147483647");
    s_refused_rule ("    { \"name\": \"q\", \"action\": \"allow\", \"limits\": { \"cpu\": 1 } }",
                    "policy.json:5:51: unknown key 'cpu' in the limits of rule 2 'q'");
    s_refused_rule ("    { \"name\": \"w\", \"action\": \"review\", \"webhook\": \"ftp://x\" }",
                    "policy.json:5:51: 'webhook' in rule 2 'w' must be an http:// or https:// URL");
    s_refused_rule ("    { \"name\": \"e\", \"action\": \"deny\", \"message\": \"\" }",
                    "policy.json:5:49: 'message' in rule 2 'e' must be a non-empty string");
}

//  The shipped policy, found from the source tree (tests run there) or next to bin/.
static policy_t *
s_load_default (char **text, size_t *size)
{
    char path[4096] = "policy/default.json", exe[4000];
    FILE *file = fopen (path, "rb");
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (!file && n > 0) {
        exe[n] = 0;
        char *slash = strrchr (exe, '/');
        if (slash)
            *slash = 0;
        snprintf (path, sizeof path, "%s/../policy/default.json", exe);
        file = fopen (path, "rb");
    }
    if (!file)
        return NULL;
    *text = calloc (1, POLICY_MAX_FILE + 1);
    *size = *text ? fread (*text, 1, POLICY_MAX_FILE, file) : 0;
    fclose (file);
    char err[512];
    policy_t *p = policy_load (path, err, sizeof err);
    if (!p)
        fprintf (stderr, "policy: %s\n", err);
    return p;
}

static void
s_route (policy_t *p, const char *lang, const char *code, policy_action_t action, const char *rule)
{
    policy_decision_t d = s_decide (p, lang, "agent-1", "agent", "", "s1", code);
    bool ok = s_is (&d, action, rule) && !d.limit_hit;
    CHECK (ok);
    if (!ok)
        fprintf (stderr, "policy: default.json on %s: %s\n", lang, code);
}

static void
s_test_default_routes (policy_t *p)
{
    const char *deny_sh[][2] = {
        { "rm -rf /", "deny-rm-root" }, { "sudo rm -fr /*", "deny-rm-root" },
        { "rm -r -f ~", "deny-rm-root" }, { "cd /tmp && rm -rf --no-preserve-root /", "deny-rm-root" },
        { "mkfs.ext4 /dev/sdb1", "deny-mkfs" }, { "dd if=/dev/zero of=/dev/sda bs=1M", "deny-raw-disk-write" },
        { "cat img > /dev/nvme0n1", "deny-raw-disk-write" }, { "shutdown -h now", "deny-shutdown" },
        { "sleep 1; reboot", "deny-shutdown" }, { ":(){ :|:& };:", "deny-fork-bomb" },
        { "bomb(){ bomb|bomb& }; bomb", "deny-fork-bomb" } };
    for (size_t i = 0; i < sizeof deny_sh / sizeof deny_sh[0]; i++)
        s_route (p, "shell", deny_sh[i][0], POLICY_DENY, deny_sh[i][1]);
    s_route (p, "python", "import shutil\nshutil.rmtree('/')", POLICY_DENY, "deny-rmtree-root");
    s_route (p, "python", "os.system(\"rm -rf /\")", POLICY_DENY, "deny-rm-root");
    const char *review[][3] = {
        { "shell", "cat ~/.ssh/id_rsa", "credentials" },
        { "python", "open('/root/.aws/credentials').read()", "credentials" },
        { "shell", "cat /etc/shadow", "credentials" }, { "shell", "cat ~/.netrc", "credentials" },
        { "shell", "sudo ls /root", "privilege" },
        { "shell", "pip install requests", "package-install" },
        { "shell", "apt-get install -y curl", "package-install" },
        { "shell", "npm install left-pad", "package-install" },
        { "python", "import subprocess\nsubprocess.run(['ls'])", "process-spawn" },
        { "python", "import os\nos.system('ls')", "process-spawn" },
        { "python", "os.popen('id').read()", "process-spawn" },
        { "python", "import pty; pty.spawn('/bin/sh')", "process-spawn" },
        { "shell", "curl -s https://example.com", "network" },
        { "shell", "wget http://x/y", "network" },
        { "shell", "echo hi > /dev/tcp/10.0.0.1/80", "network" },
        { "python", "import requests\nrequests.get('http://x')", "network" },
        { "python", "import socket", "network" },
        { "python", "from urllib.request import urlopen", "network" } };
    for (size_t i = 0; i < sizeof review / sizeof review[0]; i++)
        s_route (p, review[i][0], review[i][1], POLICY_REVIEW, review[i][2]);
    const char *allow[][2] = {
        { "python", "print(1 + 1)" }, { "shell", "ls -la" }, { "python", "import numpy as np" },
        { "shell", "echo curly braces" }, { "shell", "rm -rf ./build" }, { "shell", "dd if=a.img of=b.img" },
        { "python", "requests_total = 3\nprint('reboot later')" }, { "shell", "rm -rf /tmp/x" },
        { "python", "import os\nprint(os.getcwd())" }, { "shell", "pipx list" } };
    for (size_t i = 0; i < sizeof allow / sizeof allow[0]; i++)
        s_route (p, allow[i][0], allow[i][1], POLICY_ALLOW, "default");
    policy_decision_t d = s_decide (p, "shell", "a", "agent", "", "s1", "pip install x");
    CHECK (json_integer_value (json_object_get (d.limits, "timeout_ms")) == 600000);
}

//  A few thousand deterministic mutations of default.json: parsing must never crash, and a
//  refusal always names the file with a position.
static void
s_test_mutations (const char *text, size_t size)
{
    uint64_t state = 0x9E3779B97F4A7C15ull;
    char *buf = malloc (size * 2 + 16);
    int parsed = 0, refused = 0;
    const char specials[] = "{}[]\",:\\ 0aZ-\n\x80\xff";
    for (int round = 0; round < 3000; round++) {
        memcpy (buf, text, size);
        size_t n = size;
        for (int k = 0; k < 1 + round % 4; k++) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            size_t at = (size_t) (state >> 11) % (n ? n : 1);
            switch ((state >> 3) % 5) {
                case 0: buf[at] = (char) (state >> 40); break;
                case 1: buf[at] = specials[(state >> 24) % (sizeof specials - 1)]; break;
                case 2: n = at; break;
                case 3: memmove (buf + at, buf + at + 1, n - at - (n > at)); n -= n > at; break;
                default: if (n < size * 2) { memmove (buf + at + 1, buf + at, n - at); n++; } break;
            }
        }
        char err[512] = "";
        policy_t *p = policy_parse (buf, n, "default.json", err, sizeof err);
        if (p) {
            parsed++;
            s_decide (p, "shell", "a", "agent", "x,y", "s1", "curl x; rm -rf /; import socket");
        }
        else
        if (strncmp (err, "default.json", 12) == 0)
            refused++;
        policy_destroy (&p);
    }
    CHECK (parsed > 0 && refused > 0 && parsed + refused == 3000);
    free (buf);
}

int
policy_test (void)
{
    char err[512];
    policy_t *p = policy_parse (s_test_policy, strlen (s_test_policy), "test.json", err, sizeof err);
    CHECK (p != NULL);
    if (!p) {
        fprintf (stderr, "policy: %s\n", err);
        return -1;
    }
    char sha[65];
    sha256_hex (s_test_policy, strlen (s_test_policy), sha);
    CHECK (strcmp (policy_sha256 (p), sha) == 0);
    s_test_dimensions (p);
    s_test_limits (p);
    s_test_outputs (p);
    policy_destroy (&p);
    CHECK (p == NULL);
    policy_destroy (&p);
    s_test_errors_top ();
    s_test_errors_rules ();
    CHECK (policy_load ("/nonexistent/policy.json", err, sizeof err) == NULL);
    CHECK (strcmp (err, "/nonexistent/policy.json: No such file or directory") == 0);

    char *text = NULL;
    size_t size = 0;
    p = s_load_default (&text, &size);
    CHECK (p != NULL && text != NULL);
    if (p && text) {
        sha256_hex (text, size, sha);
        CHECK (strcmp (policy_sha256 (p), sha) == 0);
        s_test_default_routes (p);
        s_test_mutations (text, size);
    }
    policy_destroy (&p);
    free (text);
    return 0;
}
