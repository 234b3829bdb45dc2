/*  client/sessions.c: an agent's hold on its interpreters: `replgate sessions` lists them,
    `reset` and `close` end one, `interrupt ID` stops a running snippet and waits for how it
    ended. Each acts on the caller's own (an admin key lists everyone's). */
#include "client/cli.h"
#include "common/util.h"
#include <string.h>

int
cmd_interrupt (cli_t *cli)
{
    int64_t id;
    if (cli->argc != 1 || decimal_parse (cli->argv[0], 18, 1, INT64_MAX, &id) != 0) {
        fprintf (stderr, "replgate interrupt: expects one request ID\n");
        return EXIT_USAGE;
    }
    int rc;
    conn_t *conn = cli_connect (cli, "agent", &rc);
    if (!conn)
        return rc;
    json_t *row = cli_call (cli, conn, json_pack ("{s:s, s:I}", "op", "interrupt", "id",
                                                  (json_int_t) id), 5000, &rc);
    if (row && cli->no_wait) {
        cli_print_request (cli, row);
        rc = EXIT_OK;
    }
    else if (row)
        rc = cli_wait (cli, conn, row);         //  how the interrupted run ended
    json_decref (row);
    conn_destroy (&conn);
    return rc;
}

static const char *
s_text (json_t *entry, const char *key, char *buf, size_t size)
{
    json_t *v = json_object_get (entry, key);
    if (json_is_string (v))
        return json_string_value (v);
    if (json_is_integer (v)) {
        snprintf (buf, size, "%lld", (long long) json_integer_value (v));
        return buf;
    }
    return "-";
}

int
cmd_sessions (cli_t *cli)
{
    int rc = EXIT_OK;
    conn_t *conn = cli_connect (cli, "agent", &rc);
    if (!conn)
        return rc;
    json_t *reply = cli_call (cli, conn, json_pack ("{s:s}", "op", "sessions"), 5000, &rc);
    conn_destroy (&conn);
    if (!reply)
        return rc;
    json_t *list = json_object_get (reply, "sessions");
    if (cli->json)
        cli_print_json (list);
    else if (json_array_size (list) == 0)
        printf ("no live sessions\n");
    else {
        printf ("%-24s %-7s %-16s %-12s %-8s %-25s %6s %10s\n", "SESSION", "LANG", "PRINCIPAL",
                "WORKER", "STATE", "LAST USED", "COUNT", "MEMORY KB");
        size_t i;
        json_t *e;
        json_array_foreach (list, i, e) {
            char a[32], b[32];
            //  Names are the broker's checked session names and key names: nothing to escape.
            printf ("%-24s %-7s %-16s %-12s %-8s %-25s %6s %10s\n", s_text (e, "session", a, 0),
                    s_text (e, "lang", a, 0), s_text (e, "principal", a, 0),
                    s_text (e, "worker", a, 0), s_text (e, "state", a, 0),
                    s_text (e, "last_used", a, 0), s_text (e, "execution_count", a, sizeof a),
                    s_text (e, "memory_kb", b, sizeof b));
        }
    }
    json_decref (reply);
    return rc;
}

//  reset and close: one SESSION, -l LANG (default python).
static int
s_end_session (cli_t *cli, const char *op)
{
    if (cli->argc != 1) {
        fprintf (stderr, "replgate %s: expects one SESSION name [-l python|shell]\n", op);
        return EXIT_USAGE;
    }
    int rc = EXIT_OK;
    conn_t *conn = cli_connect (cli, "agent", &rc);
    if (!conn)
        return rc;
    const char *lang = cli->lang ? cli->lang : "python";
    json_t *reply = cli_call (cli, conn, json_pack ("{s:s, s:s, s:s}", "op", op, "session",
                                                    cli->argv[0], "lang", lang), 5000, &rc);
    conn_destroy (&conn);
    if (reply && cli->json)
        cli_print_json (reply);
    else if (reply)
        printf ("%s session %s (%s): its interpreter ended; the next snippet starts afresh\n",
                strcmp (op, "reset") == 0 ? "reset" : "closed", cli->argv[0], lang);
    json_decref (reply);
    return rc;
}

int cmd_reset (cli_t *cli) { return s_end_session (cli, "reset"); }
int cmd_close (cli_t *cli) { return s_end_session (cli, "close"); }
