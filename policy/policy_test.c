/*  policy/policy_test.c: policy_test, the policy engine's self-test: matching on every
    dimension, match limits, the NFKC form of the code, outputs, parse errors with their
    positions, the shipped default.json and deterministic mutations of it. */
#include "policy/policy_int.h"
#include "policy/grant.h"
#include "policy/nfkc.h"
#include "common/check.h"
#include "common/util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

//  A policy the test needs: a refusal fails the check and says why.
static policy_t *
s_parse (const char *text, const char *name)
{
    char err[512];
    policy_t *p = policy_parse (text, strlen (text), name, err, sizeof err);
    CHECK (p != NULL);
    if (!p)
        fprintf (stderr, "policy: %s\n", err);
    return p;
}

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
    bool ok = d->action == action && strcmp (d->action_name, policy_action_names[action]) == 0
              && (rule ? d->rule && strcmp (d->rule, rule) == 0 : d->rule == NULL);
    if (!ok)
        fprintf (stderr, "policy: got %s by %s, want %s by %s\n", d->action_name,
                 d->rule ? d->rule : "(none)", policy_action_names[action], rule ? rule : "(none)");
    return ok;
}

static bool
s_says (const policy_decision_t *d, const char *message)
{
    return d->message && strcmp (d->message, message) == 0;
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
    d = s_decide (p, "python", "bob", "agent", "", "fuzzd-1", hostile);     //  never-allowed stays denied
    CHECK (s_is (&d, POLICY_DENY, "hostile-deny") && d.limit_hit && !d.normalised);
    CHECK (s_says (&d, "a deny rule's pattern hit its match limit on this snippet: denied"));
    CHECK (d.quorum == 0 && d.limits == NULL && d.approver_principals == NULL);
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

//  Rules that see the code as written and as NFKC folds it (what Python imports).
static const char *s_nfkc_policy =
    "{ \"version\": 1, \"rules\": [\n"
    "  { \"name\": \"fullwidth-ok\", \"match\": { \"code\": \"\uff53ocket\" }, \"action\": \"allow\" },\n"
    "  { \"name\": \"kill\", \"match\": { \"code\": \"rmtree\" }, \"action\": \"deny\", \"message\": \"no rmtree\" },\n"
    "  { \"name\": \"net\", \"match\": { \"code\": \"\\\\bsocket\\\\b\" }, \"action\": \"review\", \"quorum\": 2 },\n"
    "  { \"name\": \"lenient\", \"match\": { \"code\": \"\uff2c\uff25\uff2e\" }, \"action\": \"review\" },\n"
    "  { \"name\": \"strict\", \"match\": { \"code\": \"LEN\" }, \"action\": \"review\", \"quorum\": 3 },\n"
    "  { \"name\": \"bomb\", \"match\": { \"session\": \"^fuzzd-\", \"code\": \"(a+)+$\" },\n"
    "    \"action\": \"deny\", \"message\": \"no\" },\n"
    "  { \"name\": \"rest\", \"action\": \"allow\" } ] }\n";

static void
s_test_nfkc_order (void)
{
    policy_t *p = s_parse (s_nfkc_policy, "nfkc.json");
    if (!p)
        return;
    //  A review on the NFKC form beats the allow the code as written gets.
    policy_decision_t d = s_decide (p, "python", "a", "agent", "", "s1", "import \uff53ocket");
    CHECK (s_is (&d, POLICY_REVIEW, "net") && d.normalised && d.quorum == 2 && !d.limit_hit);
    CHECK (s_says (&d, "matched after NFKC normalisation"));
    //  A deny on the NFKC form beats a review on the code as written.
    d = s_decide (p, "python", "a", "agent", "", "s1", "import socket; shutil.\uff52mtree(x)");
    CHECK (s_is (&d, POLICY_DENY, "kill") && d.normalised);
    CHECK (s_says (&d, "no rmtree (matched after NFKC normalisation)"));
    d = s_decide (p, "python", "a", "agent", "", "s1", "shutil.rmtree(x) # \uff2c\uff25\uff2e");
    CHECK (s_is (&d, POLICY_DENY, "kill") && !d.normalised && s_says (&d, "no rmtree"));
    //  A tie keeps the decision on the code as written, and its rule.
    d = s_decide (p, "python", "a", "agent", "", "s1", "'\uff2c\uff25\uff2e'");
    CHECK (s_is (&d, POLICY_REVIEW, "lenient") && !d.normalised && d.message == NULL);
    //  A limit hit on the NFKC form at a deny rule denies (the full-width a's match nothing).
    size_t n = 20000;
    char *hostile = malloc (n * 3 + 2);
    for (size_t i = 0; i < n; i++)
        memcpy (hostile + i * 3, "\uff41", 3);
    strcpy (hostile + n * 3, "!");
    d = s_decide (p, "python", "a", "agent", "", "fuzzd-1", hostile);
    CHECK (s_is (&d, POLICY_DENY, "bomb") && d.limit_hit && d.normalised);
    CHECK (s_says (&d, "a deny rule's pattern hit its match limit on this snippet after "
                       "NFKC normalisation: denied"));
    free (hostile);
    //  Code in NFKC already, or ASCII, is decided once: the second form is the same.
    d = s_decide (p, "python", "a", "agent", "", "s1", "print('caf\u00e9 \u00e0 \u4e2d')");
    CHECK (s_is (&d, POLICY_ALLOW, "rest") && !d.normalised);
    char *folded = (char *) "x";
    size_t folded_len = 7;
    CHECK (nfkc_fold ("import socket", 13, &folded, &folded_len) == 0 && !folded && !folded_len);
    CHECK (nfkc_fold ("caf\u00e9", 5, &folded, &folded_len) == 0 && !folded);
    CHECK (nfkc_fold ("cafe\u0301 \ufb01", 10, &folded, &folded_len) == 0 && folded);
    CHECK (folded && folded_len == 8 && memcmp (folded, "caf\u00e9 fi", 8) == 0);
    free (folded);
    //  Invalid UTF-8 folds as U+FFFD; the valid text around it is still normalised.
    CHECK (nfkc_fold ("\xff\uff41\xc3", 5, &folded, &folded_len) == 0 && folded);
    CHECK (folded && folded_len == 7 && memcmp (folded, "\ufffda\ufffd", 7) == 0);
    free (folded);
    d = s_decide (p, "python", "a", "agent", "", "s1", "\xff import \uff53ocket \xfe");
    CHECK (s_is (&d, POLICY_REVIEW, "net") && d.normalised);
    d = s_decide (p, "python", "a", "agent", "", "s1", "print(1) \xff\xfe");
    CHECK (s_is (&d, POLICY_ALLOW, "rest") && !d.normalised);
    policy_destroy (&p);
}

//  The shipped policy against compatibility spellings: full-width, ligatures, mathematical
//  alphabets, in Python and shell. Each is caught only on the NFKC form, and says so.
static void
s_test_nfkc_default (policy_t *p)
{
    const char *cases[][4] = {
        { "python", "import \uff53ocket", "review", "network" },
        { "python", "import \U0001d42c\U0001d428\U0001d41c\U0001d424\U0001d41e\U0001d42d",   //  bold
          "review", "network" },
        { "python", "import shutil\nshutil.\uff52mtree('/')", "deny", "deny-rmtree-root" },
        { "python", "open('/root/.aws/con\ufb01g').read()", "review", "credentials" },
        { "python", "import \U0001d5cc\U0001d5ce\U0001d5bb\U0001d5c9\U0001d5cb"        //  sans-serif
                    "\U0001d5c8\U0001d5bc\U0001d5be\U0001d5cc\U0001d5cc", "review", "process-spawn" },
        { "shell", "\uff52m -rf /", "deny", "deny-rm-root" },
        { "shell", "\uff43url https://example.com", "review", "network" } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        policy_decision_t d = s_decide (p, cases[i][0], "agent-1", "agent", "", "s1", cases[i][1]);
        bool ok = strcmp (d.action_name, cases[i][2]) == 0 && d.rule && strcmp (d.rule, cases[i][3]) == 0
                  && d.normalised && !d.limit_hit && d.message
                  && strstr (d.message, "(matched after NFKC normalisation)");
        CHECK (ok);
        if (!ok)
            fprintf (stderr, "policy: default.json on %s: %s: %s by %s\n", cases[i][0], cases[i][1],
                     d.action_name, d.rule ? d.rule : "(none)");
    }
    policy_input_t in = { .lang = "python", .principal = "a", .role = "agent", .session = "s1",
                          .code = "import \uff53ocket" };
    json_t *ex = policy_explain (p, &in);
    CHECK (ex && json_is_true (json_object_get (ex, "normalised")));
    const char *message = json_string_value (json_object_get (ex, "message"));
    CHECK (message && strcmp (message, "uses the network (matched after NFKC normalisation)") == 0);
    json_decref (ex);
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
    CHECK (json_is_false (json_object_get (ex, "normalised")));
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
                    "policy.json:5:51: unknown key 'cpu' in the limits of rule 2 'q' (did you mean 'cpus'?)");
    s_refused_rule ("    { \"name\": \"q\", \"action\": \"allow\", \"limits\": { \"cpus\": 0 } }",
                    "policy.json:5:59: 'cpus' in the limits of rule 2 'q' must be a number from 0.01 to 1024");
    s_refused_rule ("    { \"name\": \"g\", \"action\": \"deny\", \"message\": \"m\", \"placement\": { \"labels\": [\"gpu\"] } }",
                    "policy.json:5:54: 'placement' does not apply to deny rules (rule 2 'g')");
    s_refused_rule ("    { \"name\": \"g\", \"action\": \"allow\", \"placement\": { \"labels\": [\"gpu\", \"a b\"] } }",
                    "policy.json:5:72: label 'a b' in the placement of rule 2 'g' must match [A-Za-z0-9_.-]{1,64}");
    s_refused_rule ("    { \"name\": \"g\", \"action\": \"allow\", \"placement\": { \"labels\": [] } }",
                    "policy.json:5:64: 'labels' in the placement of rule 2 'g' must not be empty");
    s_refused_rule ("    { \"name\": \"g\", \"action\": \"allow\", \"placement\": { \"label\": \"gpu\" } }",
                    "policy.json:5:54: unknown key 'label' in the placement of rule 2 'g' (did you mean 'labels'?)");
    s_refused_rule ("    { \"name\": \"g\", \"action\": \"allow\", \"placement\": {} }",
                    "policy.json:5:52: missing required key 'labels' in the placement of rule 2 'g'");
    s_refused_rule ("    { \"name\": \"g\", \"action\": \"allow\", \"placement\": { \"labels\": "
                    "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"] } }",
                    "policy.json:5:64: 'labels' in the placement of rule 2 'g' holds more than 16 labels");
    s_refused_rule ("    { \"name\": \"w\", \"action\": \"review\", \"webhook\": \"ftp://x\" }",
                    "policy.json:5:51: 'webhook' in rule 2 'w' must be an http:// or https:// URL");
    s_refused_rule ("    { \"name\": \"e\", \"action\": \"deny\", \"message\": \"\" }",
                    "policy.json:5:49: 'message' in rule 2 'e' must be a non-empty string");
}

//  Placement: allow and review rules carry their labels into the decision; a limit hit at an
//  allow rule reviews with the defaults, without the rule's placement.
static void
s_test_placement (void)
{
    policy_t *p = s_parse (
        "{ \"version\": 1, \"rules\": [\n"
        "  { \"name\": \"gpu-review\", \"match\": { \"session\": \"^gpu-r\" }, \"action\": \"review\",\n"
        "    \"placement\": { \"labels\": \"gpu\" } },\n"
        "  { \"name\": \"gpu\", \"match\": { \"session\": \"^gpu-\" }, \"action\": \"allow\",\n"
        "    \"placement\": { \"labels\": [\"gpu\", \"big-mem\"] } },\n"
        "  { \"name\": \"hostile\", \"match\": { \"code\": \"(a+)+$\" }, \"action\": \"allow\",\n"
        "    \"placement\": { \"labels\": [\"gpu\"] } },\n"
        "  { \"name\": \"any\", \"action\": \"allow\" } ] }\n", "placement.json");
    if (!p)
        return;
    policy_decision_t d = s_decide (p, "python", "bob", "agent", "", "gpu-1", "x");
    CHECK (s_is (&d, POLICY_ALLOW, "gpu") && json_array_size (d.labels) == 2);
    CHECK (strcmp (json_string_value (json_array_get (d.labels, 1)), "big-mem") == 0);
    json_t *out = policy_decision_json (&d);
    json_t *labels = json_object_get (json_object_get (out, "placement"), "labels");
    CHECK (json_array_size (labels) == 2);
    json_decref (out);
    d = s_decide (p, "python", "bob", "agent", "", "gpu-r1", "x");
    CHECK (s_is (&d, POLICY_REVIEW, "gpu-review") && json_array_size (d.labels) == 1);
    d = s_decide (p, "python", "bob", "agent", "", "s", "x");
    CHECK (s_is (&d, POLICY_ALLOW, "any") && d.labels == NULL);
    out = policy_decision_json (&d);
    CHECK (out && !json_object_get (out, "placement"));
    json_decref (out);
    char hostile[20002];
    memset (hostile, 'a', 20000);
    strcpy (hostile + 20000, "!");
    d = s_decide (p, "python", "bob", "agent", "", "s", hostile);
    CHECK (s_is (&d, POLICY_REVIEW, "hostile") && d.limit_hit && d.labels == NULL);
    policy_destroy (&p);
}

//  A rule `n` (allow) on line 5 whose network is `network`, refused with `want`.
static void
s_refused_network (const char *network, const char *want)
{
    char rule[1024];
    snprintf (rule, sizeof rule, "    { \"name\": \"n\", \"action\": \"allow\", \"network\": %s }", network);
    s_refused_rule (rule, want);
}

static void
s_test_errors_network (void)
{
    s_refused_network ("{ \"allow\": [\"files.example.com\"] }",
                       "policy.json:5:62: bad entry 'files.example.com' in the network of rule 2 'n': "
                       "missing port: an entry is HOST:PORT");
    s_refused_network ("{ \"allow\": [\"a.example:443\", \"b_c.example:443\"] }",
                       "policy.json:5:79: bad entry 'b_c.example:443' in the network of rule 2 'n': "
                       "not a host name (letters, digits, '-' and '.', labels of 1-63, at most 253)");
    s_refused_network ("{ \"allow\": [\"a..example:443\"] }",
                       "policy.json:5:62: bad entry 'a..example:443' in the network of rule 2 'n': "
                       "not a host name (letters, digits, '-' and '.', labels of 1-63, at most 253)");
    s_refused_network ("{ \"allow\": [\"a.example:0\"] }",
                       "policy.json:5:62: bad entry 'a.example:0' in the network of rule 2 'n': "
                       "the port must be a number from 1 to 65535");
    s_refused_network ("{ \"allow\": [\"a.example:65536\"] }",
                       "policy.json:5:62: bad entry 'a.example:65536' in the network of rule 2 'n': "
                       "the port must be a number from 1 to 65535");
    s_refused_network ("{ \"allow\": [\"a.example:\"] }",
                       "policy.json:5:62: bad entry 'a.example:' in the network of rule 2 'n': "
                       "missing port: an entry is HOST:PORT");
    s_refused_network ("{ \"allow\": [\"*.:443\"] }",
                       "policy.json:5:62: bad entry '*.:443' in the network of rule 2 'n': "
                       "'*.' needs a name after it ('*.example.com')");
    s_refused_network ("{ \"allow\": [\"*:443\"] }",
                       "policy.json:5:62: bad entry '*:443' in the network of rule 2 'n': "
                       "'*' may only start a name, as '*.'");
    s_refused_network ("{ \"allow\": \"2001:db8::1:443\" }",
                       "policy.json:5:61: bad entry '2001:db8::1:443' in the network of rule 2 'n': "
                       "an IPv6 address needs brackets: '[2001:db8::1]:443'");
    s_refused_network ("{ \"allow\": [\"[2001:db8::g]:443\"] }",
                       "policy.json:5:62: bad entry '[2001:db8::g]:443' in the network of rule 2 'n': "
                       "not an IPv6 address inside the brackets");
    s_refused_network ("{ \"allow\": [\"[2001:db8::1]\"] }",
                       "policy.json:5:62: bad entry '[2001:db8::1]' in the network of rule 2 'n': "
                       "missing port: an entry is HOST:PORT");
    s_refused_network ("{ \"allow\": [\"10.1.2.300:80\"] }",
                       "policy.json:5:62: bad entry '10.1.2.300:80' in the network of rule 2 'n': "
                       "not an IPv4 address (four numbers 0-255, no leading zeros)");
    s_refused_network ("{ \"allow\": [\":80\"] }",
                       "policy.json:5:62: bad entry ':80' in the network of rule 2 'n': "
                       "missing host: an entry is HOST:PORT");
    s_refused_network ("{ \"allow\": [\"A.Example.:443\", \"a.example:443\"] }",
                       "policy.json:5:80: duplicate entry 'a.example:443' in the network of rule 2 'n' "
                       "(the same as entry 1)");
    s_refused_network ("{ \"allow\": [\"[2001:DB8:0::1]:443\", \"[2001:db8::1]:443\"] }",
                       "policy.json:5:85: duplicate entry '[2001:db8::1]:443' in the network of rule 2 'n' "
                       "(the same as entry 1)");
    s_refused_network ("{ \"allow\": [] }",
                       "policy.json:5:61: 'allow' in the network of rule 2 'n' must not be empty");
    s_refused_network ("{ \"allow\": [443] }",
                       "policy.json:5:62: 'allow' in the network of rule 2 'n' must hold non-empty strings");
    s_refused_network ("{ \"methods\": [\"GET\"] }",
                       "policy.json:5:50: missing required key 'allow' in the network of rule 2 'n'");
    s_refused_network ("{ \"allow\": [\"a:1\"], \"method\": \"GET\" }",
                       "policy.json:5:70: unknown key 'method' in the network of rule 2 'n' (did you mean "
                       "'methods'?)");
    s_refused_network ("[\"a:1\"]", "policy.json:5:50: 'network' in rule 2 'n' must be an object");
    s_refused_network ("{ \"allow\": [\"a:1\"], \"methods\": [\"GET\", \"get\"] }",
                       "policy.json:5:89: method 'get' in the network of rule 2 'n' must be 1-16 of A-Z "
                       "(as GET, CONNECT)");
    s_refused_network ("{ \"allow\": [\"a:1\"], \"methods\": \"M-SEARCH\" }",
                       "policy.json:5:81: method 'M-SEARCH' in the network of rule 2 'n' must be 1-16 of "
                       "A-Z (as GET, CONNECT)");
    s_refused_network ("{ \"allow\": [\"a:1\"], \"methods\": [\"GET\", \"GET\"] }",
                       "policy.json:5:89: duplicate method 'GET' in the network of rule 2 'n'");
    s_refused_network ("{ \"allow\": [\"a:1\"], \"methods\": [] }",
                       "policy.json:5:81: 'methods' in the network of rule 2 'n' must not be empty");
    s_refused_rule ("    { \"name\": \"d\", \"action\": \"deny\", \"message\": \"m\", \"network\": { \"allow\": [\"a:1\"] } }",
                    "policy.json:5:54: 'network' does not apply to deny rules (rule 2 'd')");
    s_refused_rule ("    { \"name\": \"q\", \"action\": \"allow\", \"limits\": { \"egress_bytes\": 0 } }",
                    "policy.json:5:67: 'egress_bytes' in the limits of rule 2 'q' must be between 1 and 2147483647");
    s_refused_rule ("    { \"name\": \"q\", \"action\": \"review\", \"limits\": { \"egress_connections\": \"9\" } }",
                    "policy.json:5:74: 'egress_connections' in the limits of rule 2 'q' must be an integer");
    //  65 entries: one more than a grant holds; 17 methods: one more than a grant names.
    char many[2048] = "{ \"allow\": [";
    for (int i = 0; i < 65; i++)
        snprintf (many + strlen (many), sizeof many - strlen (many), "%s\"h%d:1\"", i ? "," : "", i);
    strcat (many, "] }");
    s_refused_network (many, "policy.json:5:61: 'allow' in the network of rule 2 'n' holds more than 64 entries");
    s_refused_network ("{ \"allow\": \"a:1\", \"methods\": [\"A\",\"B\",\"C\",\"D\",\"E\",\"F\",\"G\",\"H\",\"I\","
                       "\"J\",\"K\",\"L\",\"M\",\"N\",\"O\",\"P\",\"Q\"] }",
                       "policy.json:5:79: 'methods' in the network of rule 2 'n' holds more than 16 methods");
}

//  One entry at a time: normalised as the proxy will compare it, or refused.
static void
s_test_grant_entries (void)
{
    const char *good[][2] = {
        { "Files.Example.COM:443", "files.example.com:443" }, { "example.com.:80", "example.com:80" },
        { "*.Internal.Example:80", "*.internal.example:80" }, { "*.internal.example.:8080", "*.internal.example:8080" },
        { "10.1.2.3:5432", "10.1.2.3:5432" }, { "[2001:DB8:0:0::1]:443", "[2001:db8::1]:443" },
        { "[::1]:65535", "[::1]:65535" }, { "localhost:1", "localhost:1" }, { "x-1.y2:22", "x-1.y2:22" } };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char out[GRANT_ENTRY_SIZE] = "";
        const char *why = NULL;
        bool ok = grant_entry (good[i][0], strlen (good[i][0]), out, &why) == 0 && strcmp (out, good[i][1]) == 0;
        CHECK (ok);
        if (!ok)
            fprintf (stderr, "policy: grant entry %s: got '%s' (%s)\n", good[i][0], out, why ? why : "");
    }
    char label[80], name[300];
    memset (label, 'a', 63);
    snprintf (label + 63, sizeof label - 63, ".b:1");
    memset (name, 'a', 64);
    snprintf (name + 64, sizeof name - 64, ".b:1");
    const char *bad[] = { "", "a", "a:01", "a:+1", "a:1x", "a b:1", "a:1:2", "*.*.a:1", "a.*.b:1", ".a:1",
                          "a..:1", "-:x", "1.2.3:80", "01.2.3.4:80", "[1.2.3.4]:80", "[::1:80", "[::1]x:80",
                          "[::1]:", "*.:1", "*:1", name, "caf\xc3\xa9.example:443" };
    char out[GRANT_ENTRY_SIZE];
    const char *why;
    CHECK (grant_entry (label, strlen (label), out, &why) == 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool refused = grant_entry (bad[i], strlen (bad[i]), out, &why) == -1 && why;
        CHECK (refused);
        if (!refused)
            fprintf (stderr, "policy: grant entry '%s' was taken as '%s'\n", bad[i], out);
    }
    CHECK (grant_entry ("a\0b:1", 5, out, &why) == -1);
    char longest[400];
    memset (longest, 'a', sizeof longest);
    CHECK (grant_entry (longest, sizeof longest, out, &why) == -1);
}

//  The grant travels with allow and review decisions, normalised, and into their JSON; a
//  limit hit at an allow rule reviews without it; at a review rule it keeps it.
static void
s_test_network (void)
{
    policy_t *p = s_parse (
        "{ \"version\": 1, \"rules\": [\n"
        "  { \"name\": \"fetch\", \"match\": { \"session\": \"^net-\" }, \"action\": \"allow\",\n"
        "    \"limits\": { \"egress_connections\": 10, \"egress_bytes\": 1048576 },\n"
        "    \"network\": { \"allow\": [\"Files.Example.com:443\", \"*.internal.example:80\"], \"methods\": [\"GET\"] } },\n"
        "  { \"name\": \"ask\", \"match\": { \"code\": \"(a+)+$\" }, \"action\": \"review\",\n"
        "    \"network\": { \"allow\": \"[2001:db8::1]:443\" } },\n"
        "  { \"name\": \"hostile\", \"match\": { \"session\": \"^h-\", \"code\": \"(b+)+$\" }, \"action\": \"allow\",\n"
        "    \"network\": { \"allow\": [\"a:1\"] } },\n"
        "  { \"name\": \"any\", \"action\": \"allow\" } ] }\n", "network.json");
    if (!p)
        return;
    policy_decision_t d = s_decide (p, "python", "bob", "agent", "", "net-1", "x");
    CHECK (s_is (&d, POLICY_ALLOW, "fetch") && d.network);
    json_t *allow = json_object_get (d.network, "allow");
    CHECK (json_array_size (allow) == 2);
    CHECK (strcmp (json_string_value (json_array_get (allow, 0)), "files.example.com:443") == 0);
    CHECK (json_integer_value (json_object_get (d.limits, "egress_connections")) == 10);
    CHECK (json_integer_value (json_object_get (d.limits, "egress_bytes")) == 1048576);
    char *text = policy_network_text (d.network);
    CHECK (text && strcmp (text, "files.example.com:443, *.internal.example:80 (methods GET)") == 0);
    free (text);
    json_t *out = policy_decision_json (&d);
    json_t *grant = json_object_get (out, "network");
    CHECK (json_equal (grant, d.network) && !json_object_get (out, "placement"));
    CHECK (strcmp (json_string_value (json_array_get (json_object_get (grant, "methods"), 0)), "GET") == 0);
    json_decref (out);
    d = s_decide (p, "python", "bob", "agent", "", "s", "aaa");
    CHECK (s_is (&d, POLICY_REVIEW, "ask") && !d.limit_hit && d.network);
    CHECK (!json_object_get (d.network, "methods"));
    text = policy_network_text (d.network);
    CHECK (text && strcmp (text, "[2001:db8::1]:443") == 0);
    free (text);
    d = s_decide (p, "python", "bob", "agent", "", "s", "x");
    CHECK (s_is (&d, POLICY_ALLOW, "any") && d.network == NULL);
    out = policy_decision_json (&d);
    CHECK (out && !json_object_get (out, "network"));
    json_decref (out);
    char hostile[20002];
    memset (hostile, 'a', 20000);
    strcpy (hostile + 20000, "!");
    d = s_decide (p, "python", "bob", "agent", "", "s", hostile);          //  a review rule's limit
    CHECK (s_is (&d, POLICY_REVIEW, "ask") && d.limit_hit && d.network);
    memset (hostile, 'b', 20000);
    d = s_decide (p, "python", "bob", "agent", "", "h-1", hostile);        //  an allow rule's limit
    CHECK (s_is (&d, POLICY_REVIEW, "hostile") && d.limit_hit && d.network == NULL);
    policy_destroy (&p);
    CHECK (policy_network_text (NULL) == NULL);
    json_t *odd = json_pack ("{s:[s,i]}", "allow", "a:1", 7);
    text = policy_network_text (odd);
    CHECK (text && strcmp (text, "a:1, ?") == 0);
    free (text);
    json_decref (odd);
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
    //  Package installs and network use are reviewed with a grant to the package indexes.
    const char *want = "pypi.org:443, files.pythonhosted.org:443, github.com:443, "
                       "codeload.github.com:443, objects.githubusercontent.com:443";
    for (int i = 0; i < 2; i++) {
        d = s_decide (p, "shell", "a", "agent", "", "s1", i ? "curl https://pypi.org" : "pip install x");
        char *text = policy_network_text (d.network);
        CHECK (d.action == POLICY_REVIEW && text && strcmp (text, want) == 0);
        free (text);
    }
    d = s_decide (p, "shell", "a", "agent", "", "s1", "ls");
    CHECK (d.action == POLICY_ALLOW && d.network == NULL);
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
    policy_t *p = s_parse (s_test_policy, "test.json");
    if (!p)
        return -1;
    char sha[65];
    sha256_hex (s_test_policy, strlen (s_test_policy), sha);
    CHECK (strcmp (policy_sha256 (p), sha) == 0);
    s_test_dimensions (p);
    s_test_limits (p);
    s_test_outputs (p);
    s_test_nfkc_order ();
    s_test_placement ();
    s_test_network ();
    s_test_grant_entries ();
    policy_destroy (&p);
    CHECK (p == NULL);
    policy_destroy (&p);
    s_test_errors_top ();
    s_test_errors_rules ();
    s_test_errors_network ();
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
        s_test_nfkc_default (p);
        s_test_mutations (text, size);
    }
    policy_destroy (&p);
    free (text);
    return 0;
}
