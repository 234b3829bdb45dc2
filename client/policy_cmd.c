/*  client/policy_cmd.c: `replgate policy check FILE` and `replgate policy explain CODE`, the
    policy engine run locally, so a team can test a policy before the broker loads it. */
#include "client/cli.h"
#include "policy/policy.h"
#include <string.h>

static int
s_check (cli_t *cli)
{
    char err[1024];
    if (cli->argc != 2) {
        fprintf (stderr, "usage: replgate policy check FILE\n");
        return EXIT_USAGE;
    }
    policy_t *policy = policy_load (cli->argv[1], err, sizeof err);
    json_t *out = cli->json ? json_pack ("{s:s, s:b}", "file", cli->argv[1], "ok", policy != NULL) : NULL;
    if (out && policy)
        json_object_update_new (out, json_pack ("{s:I, s:I, s:s}", "rules",
                                (json_int_t) policy_rule_count (policy), "masks",
                                (json_int_t) policy_mask_count (policy), "sha256", policy_sha256 (policy)));
    else if (out)
        json_object_set_new (out, "error", json_string (err));
    if (out)
        cli_print_json (out);
    else if (!policy)
        fprintf (stderr, "%s\n", err);
    else
        printf ("%s: ok, %zu rules, %zu masks, sha256 %s\n", cli->argv[1], policy_rule_count (policy),
                policy_mask_count (policy), policy_sha256 (policy));
    json_decref (out);
    int rc = policy ? 0 : EXIT_USAGE;
    policy_destroy (&policy);
    return rc;
}

static int
s_explain (cli_t *cli)
{
    char err[1024], path[1024];
    if (cli->argc != 2) {
        fprintf (stderr, "usage: replgate policy explain [-l LANG] [-s SESSION] [--principal P] "
                 "[--role R] [--groups a,b] [--file POLICY] CODE\n");
        return EXIT_USAGE;
    }
    if (cli->file)
        snprintf (path, sizeof path, "%s", cli->file);
    else
        snprintf (path, sizeof path, "%s/policy.json", cli->dir);
    policy_t *policy = policy_load (path, err, sizeof err);
    if (!policy) {
        fprintf (stderr, "%s\n", err);
        return EXIT_USAGE;
    }
    policy_input_t in = { .lang = cli->lang ? cli->lang : "python",
                          .principal = cli->principal ? cli->principal : "agent",
                          .role = cli->role ? cli->role : "agent",
                          .groups_csv = cli->groups ? cli->groups : "",
                          .session = cli->session ? cli->session : "default",
                          .code = cli->argv[1] };
    json_t *why = policy_explain (policy, &in);
    if (cli->json) {
        char *text = json_dumps (why, JSON_COMPACT);
        printf ("%s\n", text);
        free (text);
    }
    else {
        json_t *rule = json_object_get (why, "rule");
        const char *message = json_string_value (json_object_get (why, "message"));
        printf ("%s by rule %s%s%s\n", json_string_value (json_object_get (why, "action")),
                json_is_string (rule) ? json_string_value (rule) : "(none)",
                message ? ": " : "", message ? message : "");
        char *network = policy_network_text (json_object_get (why, "network"));
        if (network)
            printf ("network: %s\n", network);
        free (network);
        json_t *source = json_object_get (why, "rule_source");
        if (source && !json_is_null (source)) {
            char *text = json_is_string (source) ? strdup (json_string_value (source))
                                                 : json_dumps (source, JSON_INDENT (2));
            printf ("%s\n", text);
            free (text);
        }
    }
    json_decref (why);
    policy_destroy (&policy);
    return 0;
}

int
cmd_policy (cli_t *cli)
{
    if (cli->argc >= 1 && strcmp (cli->argv[0], "check") == 0)
        return s_check (cli);
    if (cli->argc >= 1 && strcmp (cli->argv[0], "explain") == 0)
        return s_explain (cli);
    fprintf (stderr, "usage: replgate policy check FILE | replgate policy explain [-l LANG] CODE\n");
    return EXIT_USAGE;
}
