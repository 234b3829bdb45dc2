/*  client/approve.c: the approver's subcommands: pending, approve, deny. */
#include "client/cli.h"
#include "common/util.h"
#include "policy/policy.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
s_print_pending (cli_t *cli, json_t *row)
{
    if (cli->json) {
        cli_print_json (row);
        return;
    }
    if (screen_row (row, screen_flags (SCREEN_ESCAPE, STDOUT_FILENO)) != 0) {   //  always
        fprintf (stderr, "replgate pending: out of memory\n");     //  never half rendered
        return;
    }
    json_t *review = json_object_get (row, "review");
    const char *expires = json_string_value (json_object_get (review, "expires_at"));
    const char *approvers = json_string_value (json_object_get (row, "approvers"));
    int64_t left = expires ? (time_parse_iso8601 (expires) - clock_wall_ms ()) / 1000 : -1;
    printf ("request %lld by %s in session %s (%s), rule %s: %zu of %lld approvals",
            (long long) json_integer_value (json_object_get (row, "id")),
            json_string_value (json_object_get (row, "principal")),
            json_string_value (json_object_get (row, "session")),
            json_string_value (json_object_get (row, "lang")),
            json_string_value (json_object_get (row, "rule")) ? json_string_value (json_object_get (row, "rule")) : "-",
            json_array_size (json_object_get (row, "approvals")),
            (long long) json_integer_value (json_object_get (review, "quorum")));
    if (approvers)
        printf (" (%s)", approvers);
    if (left >= 0)
        printf (", expires in %lldm %02llds\n", (long long) left / 60, (long long) left % 60);
    else
        printf (", no expiry\n");
    if (json_string_value (json_object_get (row, "reason")))
        printf ("  reason: %s\n", json_string_value (json_object_get (row, "reason")));
    //  What approving it opens: the rule's network grant (policy.h), stored in its limits.
    char *network = policy_network_text (json_object_get (json_object_get (row, "limits"), "network"));
    if (network)
        printf ("  network: %s\n", network);
    free (network);
    //  Labelled: which hash this is and what it covers (a reader compares it, or recomputes it).
    printf ("  bind_sha256 (language, session, code): %s\n",
            json_string_value (json_object_get (row, "bind_sha256")));
    const char *code = json_string_value (json_object_get (row, "code"));
    for (const char *line = code; line && *line; ) {
        const char *end = strchr (line, '\n');
        int n = end ? (int) (end - line) : (int) strlen (line);
        printf ("  | %.*s\n", n, line);
        line = end ? end + 1 : line + n;
    }
}

int
cmd_pending (cli_t *cli)
{
    int rc = 0;
    conn_t *conn = cli_connect (cli, "admin", &rc);
    if (!conn)
        return rc;
    json_int_t after = 0;
    size_t listed = 0;
    bool more = true;
    while (more) {          //  the broker answers a page at a time
        json_t *req = json_pack ("{s:s, s:I}", "op", "pending", "after", after);
        if (cli->session)
            json_object_set_new (req, "session", json_string (cli->session));
        json_t *reply = cli_call (cli, conn, req, 5000, &rc);
        if (!reply)
            break;
        size_t i;
        json_t *row;
        json_array_foreach (json_object_get (reply, "requests"), i, row)
            s_print_pending (cli, row);
        listed += json_array_size (json_object_get (reply, "requests"));
        more = json_is_true (json_object_get (reply, "more"));
        after = json_integer_value (json_object_get (reply, "after"));
        json_decref (reply);
    }
    conn_destroy (&conn);
    if (rc == 0 && listed == 0 && !cli->json)
        printf ("nothing pending%s%s\n", cli->session ? " in session " : "",
                cli->session ? cli->session : "");
    return rc;
}

static int
s_decide (cli_t *cli, const char *op)
{
    int64_t id;
    if (cli_id_arg (cli, &id) != 0)
        return EXIT_USAGE;
    if (strcmp (op, "deny") == 0 && (!cli->reason || !*cli->reason)) {
        fprintf (stderr, "replgate deny: --reason is required\n");
        return EXIT_USAGE;
    }
    int rc = 0;
    conn_t *conn = cli_connect (cli, "admin", &rc);
    if (!conn)
        return rc;
    json_t *req = json_pack ("{s:s, s:I}", "op", op, "id", (json_int_t) id);
    if (cli->reason)
        json_object_set_new (req, "reason", json_string (cli->reason));
    json_t *row = cli_call (cli, conn, req, 5000, &rc);
    conn_destroy (&conn);
    if (!row)
        return rc;
    if (cli->json)
        cli_print_request (cli, row);
    else
        printf ("request %lld: %s (%zu approval%s recorded)\n", (long long) id,
                json_string_value (json_object_get (row, "state")),
                json_array_size (json_object_get (row, "approvals")),
                json_array_size (json_object_get (row, "approvals")) == 1 ? "" : "s");
    json_decref (row);
    return 0;
}

int cmd_approve (cli_t *cli) { return s_decide (cli, "approve"); }
int cmd_deny (cli_t *cli) { return s_decide (cli, "deny"); }
