/*  policy/policy_int.h: internal to the policy engine (load.c, policy.c, policy_test.c);
    nothing else includes it. The parsed policy and its rules, the limits of the format and
    of matching, and the action names. The public contract is policy.h. */
#ifndef RG_POLICY_INT_H
#define RG_POLICY_INT_H
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include "policy/policy.h"
#include <jansson.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

#define POLICY_MAX_FILE     (4 * 1024 * 1024)
//  Per-attempt budgets: honest patterns on a MiB of code stay far below them; an exponential
//  one reaches them within milliseconds.
#define POLICY_MATCH_LIMIT  1000000
#define POLICY_DEPTH_LIMIT  100000
#define POLICY_HEAP_LIMIT   (64 * 1024)         //  KiB
#define POLICY_JIT_STACK    (1024 * 1024)
#define POLICY_MAX_QUORUM   100
#define POLICY_MAX_TTL_S    (365 * 24 * 3600)
#define POLICY_MAX_LABELS   16          //  as a worker may announce (common/proto.h)

typedef struct {
    const char *name;
    json_t *source;                     //  the rule object as parsed (borrowed from root)
    policy_action_t action;
    const char *message;
    char *nfkc_message;                 //  owned: message noting a match on the NFKC form
    json_t *langs, *principals, *roles, *groups;     //  owned arrays, NULL = any
    pcre2_code *session_re, *code_re;
    int quorum, ttl_s;
    json_t *appr_principals, *appr_groups;          //  owned arrays
    json_t *limits;                     //  borrowed, or NULL
    json_t *labels;                     //  placement labels, owned array, or NULL
    json_t *network;                    //  network grant, owned and normalised, or NULL
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

//  "allow", "deny", "review", indexed by policy_action_t.
extern const char *const policy_action_names[];
#endif
