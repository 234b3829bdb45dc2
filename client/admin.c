/*  client/admin.c: the admin key's operations, done by the broker: `replgate revoke NAME`
    (the broker moves the key's cert out of trusted/ and refuses its open connections from
    then on), `replgate prune --before T` (retention; the broker is the database's only
    writer, so the CLI asks it rather than writing itself), and the fleet: `replgate
    workers` and `replgate drain NAME`. */
#include "client/cli.h"
#include "common/util.h"
#include <string.h>

//  Exit code for a refusal: the broker said no (forbidden) or knows no such key: 3, like a
//  denied request; a malformed name: 2.
static int
s_refused (cli_t *cli, json_t *reply)
{
    json_t *error = json_object_get (reply, "error");
    const char *code = json_string_value (json_object_get (error, "code"));
    if (cli->json) {
        char *text = json_dumps (reply, JSON_COMPACT);
        printf ("%s\n", text);
        free (text);
    }
    else
        fprintf (stderr, "replgate %s: %s: %s\n", cli->cmd, code ? code : "?",
                 json_string_value (json_object_get (error, "message")));
    if (code && (strcmp (code, "forbidden") == 0 || strcmp (code, "not_found") == 0))
        return EXIT_DENIED;
    return code && strcmp (code, "internal") == 0 ? EXIT_FAILED : EXIT_USAGE;
}

//  Sends req (consumed) with the admin key and waits up to timeout_ms. The reply, or NULL
//  with *rc set (and said on stderr) when there is none.
static json_t *
s_call (cli_t *cli, json_t *req, int timeout_ms, int *rc)
{
    conn_t *conn = cli_connect (cli, "admin", rc);
    json_t *reply = conn ? conn_call (conn, req, timeout_ms) : NULL;
    if (conn && !reply)
        *rc = cli_no_answer (conn, timeout_ms);
    conn_destroy (&conn);
    json_decref (req);
    return reply;
}

//  The reply as JSON on stdout, without ok and rid (--json).
static void
s_print_json (json_t *reply)
{
    json_object_del (reply, "ok");
    json_object_del (reply, "rid");
    char *text = json_dumps (reply, JSON_COMPACT);
    printf ("%s\n", text);
    free (text);
}

//  What an admin op's reply means: refused (said, with its exit code), --json, or `say`
//  printing it for a person. Consumes reply.
static int
s_answer (cli_t *cli, json_t *reply, void (*say) (cli_t *, json_t *))
{
    int rc = EXIT_OK;
    if (!json_is_true (json_object_get (reply, "ok")))
        rc = s_refused (cli, reply);
    else if (cli->json)
        s_print_json (reply);
    else
        say (cli, reply);
    json_decref (reply);
    return rc;
}

static void
s_say_revoked (cli_t *cli, json_t *reply)
{
    printf ("revoked %s (role %s, key %s): its cert is now in keys/revoked/, "
            "its open connections are refused\n", cli->argv[0],
            json_string_value (json_object_get (reply, "role")),
            json_string_value (json_object_get (reply, "key")));
}

static void
s_say_pruned (cli_t *cli, json_t *reply)
{
    (void) cli;
    json_int_t n = json_integer_value (json_object_get (reply, "pruned"));
    printf ("%lld request%s finished before %s pruned (code and outputs removed, hashes "
            "kept)\n", (long long) n, n == 1 ? "" : "s",
            json_string_value (json_object_get (reply, "before")));
}

int
cmd_revoke (cli_t *cli)
{
    if (cli->argc != 1 || !*cli->argv[0]) {
        fprintf (stderr, "replgate revoke: expects one key NAME (DIR/keys/trusted/NAME.cert)\n");
        return EXIT_USAGE;
    }
    int rc;
    json_t *reply = s_call (cli, json_pack ("{s:s, s:s}", "op", "revoke", "name", cli->argv[0]),
                            5000, &rc);
    return reply ? s_answer (cli, reply, s_say_revoked) : rc;
}

//  How long `prune` waits for the broker's answer: it prunes in batches between its other
//  work, about a millisecond per request on a small machine.
#define PRUNE_WAIT_MS (30 * 60 * 1000)

int
cmd_prune (cli_t *cli)
{
    char before[32];
    if (!cli->before || cli_time (cli->before, before) != 0) {
        fprintf (stderr, "replgate prune: --before T is required: a time as 2026-11-28 or an "
                 "age like 90d\n");
        return EXIT_USAGE;
    }
    if (strlen (before) == 10)          //  a day: from its midnight (UTC), as the store writes times
        snprintf (before + 10, sizeof before - 10, "T00:00:00.000Z");
    //  A ping first, so that a broker that is down or does not know the key is said within
    //  seconds rather than after the long wait a real prune may need.
    int rc;
    json_t *reply = s_call (cli, json_pack ("{s:s}", "op", "ping"), 5000, &rc);
    if (!reply)
        return rc;
    json_decref (reply);
    reply = s_call (cli, json_pack ("{s:s, s:s}", "op", "prune", "before", before), PRUNE_WAIT_MS, &rc);
    return reply ? s_answer (cli, reply, s_say_pruned) : rc;
}

//  --------------------------------------------------------------------------
//  The fleet.

static void
s_say_workers (cli_t *cli, json_t *reply)
{
    (void) cli;
    json_t *list = json_object_get (reply, "workers");
    if (json_array_size (list) == 0) {
        printf ("no workers\n");
        return;
    }
    printf ("%-16s %-15s %-20s %7s %9s %-20s %8s %-25s %s\n", "NAME", "ADDRESS", "LABELS", "SLOTS",
            "MEMORY MB", "SANDBOX", "SESSIONS", "LAST HEARTBEAT", "STATE");
    size_t i, k;
    json_t *w, *label;
    json_array_foreach (list, i, w) {
        char labels[128] = "-", slots[32];
        size_t used = 0;
        json_array_foreach (json_object_get (w, "labels"), k, label)
            used += (size_t) snprintf (labels + (k ? used : 0), sizeof labels - (k ? used : 0),
                                       "%s%s", k ? "," : "", json_string_value (label));
        snprintf (slots, sizeof slots, "%lld/%lld",
                  (long long) json_integer_value (json_object_get (w, "running")),
                  (long long) json_integer_value (json_object_get (w, "slots")));
        //  Names and labels are the broker's checked ones: nothing to escape.
        printf ("%-16s %-15s %-20s %7s %9lld %-20s %8lld %-25s %s\n", cli_text (w, "name"),
                cli_text (w, "address"), labels, slots,
                (long long) json_integer_value (json_object_get (w, "memory_mb")), cli_text (w, "sandbox"),
                (long long) json_integer_value (json_object_get (w, "sessions")),
                cli_text (w, "last_heartbeat"), cli_text (w, "state"));
    }
}

int
cmd_workers (cli_t *cli)
{
    int rc;
    json_t *reply = s_call (cli, json_pack ("{s:s}", "op", "workers"), 5000, &rc);
    return reply ? s_answer (cli, reply, s_say_workers) : rc;
}

static void
s_say_drain (cli_t *cli, json_t *reply)
{
    json_t *w = json_object_get (reply, "worker");
    printf ("draining %s: no new sessions go to it; its idle sessions are closed, running "
            "snippets finish (state %s)\n", cli->argv[0], cli_text (w, "state"));
}

int
cmd_drain (cli_t *cli)
{
    if (cli->argc != 1 || !*cli->argv[0]) {
        fprintf (stderr, "replgate drain: expects one worker NAME (replgate workers lists them)\n");
        return EXIT_USAGE;
    }
    int rc;
    json_t *reply = s_call (cli, json_pack ("{s:s, s:s}", "op", "drain", "name", cli->argv[0]), 5000, &rc);
    return reply ? s_answer (cli, reply, s_say_drain) : rc;
}
