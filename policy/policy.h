/*  policy/policy.h: the policy engine: loads a JSON policy file and decides, for each submitted
    snippet, allow / deny / review (park for human approval). A library the broker links.

    POLICY FILE FORMAT (version 1)

    {
      "version": 1,                                 required, must be 1
      "comment": "...",                             optional string; also allowed in every
                                                    rule and mask (JSON has no comments)
      "defaults": { "quorum": 1, "ttl_s": 3600 },   optional; these are the defaults shown
      "masks": [                                    optional: extra output masks
        { "name": "internal-token", "pattern": "itk_[a-z0-9]{32}" }
      ],
      "rules": [                                    required, at least one; first match wins
        { "name": "no-rm-root",                     required, unique, [A-Za-z0-9_.-]{1,64}
          "match": {                                optional; absent or {} matches everything
            "lang": "shell",                        string or array: "python", "shell"
            "principal": ["ci-bot"],                string or array of principal names
            "role": "agent",                        string or array: agent approver worker admin
            "groups": ["ops"],                      string or array: matches if the caller
                                                    is in any of them
            "session": "^prod-",                    PCRE2 pattern searched in the session name
            "code": "rm\\s+-rf\\s+/(\\s|$)"         PCRE2 pattern searched in the code
          },
          "action": "deny",                         required: "allow", "deny" or "review"
          "message": "never delete /" },            required for deny (the agent sees it),
                                                    optional otherwise
        { "name": "network", "match": { "code": "\\b(curl|wget)\\b" }, "action": "review",
          "quorum": 2,                              review only: distinct approvers needed, 1..100
          "approvers": { "principals": ["alice"], "groups": ["sre"] },
                                                    review only: who may approve; both lists
                                                    optional; none or empty = any approver
          "ttl_s": 600,                             review only: seconds before expiry
          "webhook": "https://hooks.slack.com/...", review only: where to announce it
          "limits": { "timeout_ms": 30000 },        allow and review: sandbox limits, any of
                                                    timeout_ms memory_mb pids tmp_mb
                                                    output_bytes egress_connections
                                                    egress_bytes, integers 1..2147483647, and
                                                    cpus (a number 0.01..1024)
          "placement": { "labels": ["gpu"] },       allow and review: the snippet runs only on
                                                    a worker that announced every label; a
                                                    string or 1..16 labels [A-Za-z0-9_.-]{1,64}
          "network": {                              allow and review: what the run may reach
                                                    through its proxy (issue 15)
            "allow": ["files.example.com:443",      required: a string or 1..64 HOST:PORT, each
                      "*.internal.example:80",      a DNS name (labels 1..63 of a-z 0-9 -, at
                      "10.1.2.3:5432",              most 253; lowercased, a trailing dot
                      "[2001:db8::1]:443"],         dropped), "*." and a name (any name below
                                                    it, not the name itself), an IPv4 address
                                                    or an IPv6 address in brackets (canonical
                                                    form); PORT 1..65535; no duplicates
            "methods": ["GET", "HEAD"] } },         optional: a string or 1..16 tokens of 1..16
                                                    A-Z, each once; only those methods, CONNECT
                                                    (HTTPS tunnels) included, so ["GET"] is
                                                    plain-HTTP GET only. Absent: any method
        { "name": "default", "action": "allow" }
      ]
    }

    Unknown keys are errors at every level, as are wrong types, out-of-range numbers, unknown
    enum values, empty arrays, duplicate keys and duplicate rule names. Every error names the
    file, line and column, e.g. "policy.json:12:7: unknown key 'acton' in rule 3 'network'".
    A bad pattern points at the offending character inside the pattern's string literal.

    MATCHING

    All dimensions present in "match" must match. Patterns are PCRE2, compiled once at load,
    in UTF mode (invalid UTF-8 in the subject never matches), multiline (^ and $ match at line
    breaks), case-sensitive (use (?i) to ignore case), and searched anywhere in the subject
    (anchor with ^ and $ if needed). A missing input field (no role, no session...) never
    matches a rule that tests it. If no rule matches, the decision is deny, "no rule matched".

    MATCH LIMITS (a pattern that is too expensive fails safe, never open)

    Patterns run under PCRE2 match, depth and heap limits. For each rule in order, the cheap
    dimensions (lang, principal, role, groups) are checked first; then session, then code. If
    any dimension definitely fails, the rule does not match (its limits are moot). If none
    fails but a pattern could not finish (match limit, depth, heap, JIT stack or any other
    PCRE2 error), the rule is "undetermined" and evaluation STOPS there: at a deny rule the
    decision is deny (what is never allowed stays denied), at any other rule it is review;
    rule = that rule, limit_hit = true, message naming the limit. A review takes the rule's
    quorum, ttl_s, approvers, webhook, limits, placement and network when it is a review rule,
    otherwise the file's defaults with any approver, no limits, no placement and no network
    grant. Evaluation does not continue to later
    rules because first-match-wins could have stopped at this rule, and a later allow must
    never be reached that way.

    COMPATIBILITY CHARACTERS (the code is matched in two forms, the stricter decision wins)

    Python reads identifiers in NFKC, so `import \uFF53ocket` (a full-width s) imports socket
    and no rule on "socket" would see it. The rules are evaluated on the code as written and,
    separately, on its NFKC normalisation (libunistring), each with first match wins and the
    limits above; the decision is the stricter of the two: deny > review > allow. On a tie
    the decision on the code as written stands. When the normalised form decides, normalised
    is true and the message says "matched after NFKC normalisation" (or names the limit hit
    "after NFKC normalisation"). Only the code is normalised (session and the other
    dimensions are not). Pure ASCII code, and code already in NFKC, is matched once: NFKC
    leaves it unchanged. A raw deny is final without normalising. Bytes that are not valid
    UTF-8 are normalised as U+FFFD. If the code cannot be normalised (out of memory), an
    allow becomes a review with the file's defaults.

    Patterns are a tripwire, not a boundary: the sandbox is the boundary.

    A policy_t is immutable after load; policy_decide() uses scratch match data it owns, so
    call it from one thread at a time (the broker's single event loop). */
#ifndef RG_POLICY_H
#define RG_POLICY_H
#include "policy/mask.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _policy_t policy_t;

typedef enum { POLICY_ALLOW = 0, POLICY_DENY = 1, POLICY_REVIEW = 2 } policy_action_t;

//  What the engine looks at. Any field may be NULL (then rules testing it do not match).
//  groups is a NULL-terminated array; if it is NULL, groups_csv ("ops,sre") is used.
typedef struct {
    const char *lang;
    const char *principal;
    const char *role;
    const char *const *groups;
    const char *groups_csv;
    const char *session;
    const char *code;
    size_t code_len;                    //  0: strlen (code)
} policy_input_t;

//  A decision. Every pointer is borrowed from the policy and valid while it lives.
typedef struct {
    policy_action_t action;
    const char *action_name;            //  "allow", "deny", "review"
    const char *rule;                   //  rule name, NULL if no rule matched
    int rule_index;                     //  0-based, -1 if no rule matched
    const char *message;                //  deny/review reason, or NULL
    int quorum;                         //  review: approvals needed (else 0)
    int ttl_s;                          //  review: seconds to expiry (else 0)
    json_t *approver_principals;        //  review: array, empty = anyone
    json_t *approver_groups;            //  review: array, empty = anyone
    json_t *limits;                     //  allow/review: sandbox limits object, or NULL
    json_t *labels;                     //  allow/review: placement labels (array), or NULL
    json_t *network;                    //  allow/review: the network grant, normalised:
                                        //  {"allow": [...], "methods": [...] (if limited)},
                                        //  or NULL
    const char *webhook;                //  review: announce URL, or NULL
    bool limit_hit;                     //  a pattern hit its match limit (see above)
    bool normalised;                    //  decided on the code's NFKC form (see above)
    const char *policy_sha256;          //  the policy that decided
} policy_decision_t;

//  Reads and parses a policy file. Returns NULL with "file:line:col: message" in err.
policy_t *policy_load (const char *path, char *err, size_t err_size);

//  Parses policy text (pure: no I/O). name_for_errors prefixes error messages.
policy_t *policy_parse (const char *text, size_t size, const char *name_for_errors, char *err,
                        size_t err_size);

//  Destroys the policy and NULLs the caller's pointer. Safe on NULL.
void policy_destroy (policy_t **self_p);

//  sha256 (64 hex characters) of the exact bytes the policy was parsed from.
const char *policy_sha256 (policy_t *self);

//  Number of rules and of custom masks.
size_t policy_rule_count (policy_t *self);
size_t policy_mask_count (policy_t *self);

//  Decides for one snippet. Returns 0 and fills *out; -1 only on caller misuse (NULL args).
int policy_decide (policy_t *self, const policy_input_t *in, policy_decision_t *out);

//  True if an approver (principal, with its comma-separated groups) may approve under d:
//  either list names it, or both lists are empty. Says nothing about self-approval or roles.
bool policy_may_approve (const policy_decision_t *d, const char *principal, const char *groups);

//  The decision as a JSON object (action, rule, rule_index, message, quorum, ttl_s, approvers,
//  limits, placement and network (when the rule has them), webhook, limit_hit, normalised,
//  policy_sha256). Caller owns the result.
json_t *policy_decision_json (const policy_decision_t *d);

//  A network grant as one line for the people who approve it: "files.example.com:443,
//  *.internal.example:80 (methods GET, HEAD)". Entries that are not strings show as "?".
//  NULL when network has no `allow` array (or out of memory); caller frees.
char *policy_network_text (json_t *network);

//  For `replgate policy explain`: policy_decide() as JSON plus "rule_source" (the matching
//  rule as written in the file, or null). Caller owns the result; NULL on misuse.
json_t *policy_explain (policy_t *self, const policy_input_t *in);

//  Adds the policy's custom masks to a masker. Returns 0, or -1 with the reason in err.
int policy_add_masks (policy_t *self, mask_t *mask, char *err, size_t err_size);

int policy_test (void);
#endif
