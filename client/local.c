/*  client/local.c: subcommands that read the database directly, read-only, so they work with
    the broker stopped and never block it: history and verify. */
#include "client/cli.h"
#include "common/store.h"
#include <string.h>

static store_t *
s_open (cli_t *cli)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/replgate.db", cli->dir);
    store_t *store = store_new (path, STORE_READONLY);
    if (!store)
        fprintf (stderr, "replgate %s: cannot open %s read-only\n", cli->cmd, path);
    return store;
}

//  One line of code for a table cell: newlines shown as ⏎, cut to width.
static void
s_cell (char *out, size_t width, const char *text)
{
    size_t n = 0;
    for (const char *p = text ? text : ""; *p && n + 4 < width; p++)
        if (*p == '\n') {
            memcpy (out + n, " \xe2\x8f\x8e ", 5);
            n += 5;
        }
        else
            out[n++] = *p;
    out[n] = 0;
}

int
cmd_history (cli_t *cli)
{
    store_t *store = s_open (cli);
    if (!store)
        return EXIT_USAGE;
    json_t *filters = json_object ();
    if (cli->principal) json_object_set_new (filters, "principal", json_string (cli->principal));
    if (cli->session) json_object_set_new (filters, "session", json_string (cli->session));
    if (cli->state) json_object_set_new (filters, "state", json_string (cli->state));
    if (cli->since) json_object_set_new (filters, "since", json_string (cli->since));
    if (cli->until) json_object_set_new (filters, "until", json_string (cli->until));
    json_t *rows = store_history (store, filters, cli->limit > 0 ? cli->limit : 1000);
    json_decref (filters);
    store_destroy (&store);
    if (!rows)
        return EXIT_USAGE;
    size_t i;
    json_t *row;
    if (!cli->json)
        printf ("%-6s %-24s %-10s %-12s %-7s %-16s %-8s %s\n", "ID", "SUBMITTED", "PRINCIPAL",
                "SESSION", "LANG", "STATE", "OUTCOME", "CODE");
    json_array_foreach (rows, i, row) {
        if (cli->json) {
            char *text = json_dumps (row, JSON_COMPACT);
            printf ("%s\n", text);
            free (text);
            continue;
        }
        char code[64];
        s_cell (code, sizeof code, json_string_value (json_object_get (row, "code")));
        const char *outcome = json_string_value (json_object_get (row, "outcome"));
        printf ("%-6lld %-24s %-10.10s %-12.12s %-7s %-16s %-8s %s\n",
                (long long) json_integer_value (json_object_get (row, "id")),
                json_string_value (json_object_get (row, "submitted_at")),
                json_string_value (json_object_get (row, "principal")),
                json_string_value (json_object_get (row, "session")),
                json_string_value (json_object_get (row, "lang")),
                json_string_value (json_object_get (row, "state")), outcome ? outcome : "-", code);
    }
    json_decref (rows);
    return 0;
}

int
cmd_verify (cli_t *cli)
{
    store_t *store = s_open (cli);
    if (!store)
        return EXIT_USAGE;
    json_t *report = NULL;
    int rc = store_verify (store, &report);
    store_destroy (&store);
    if (!report) {
        fprintf (stderr, "replgate verify: the database could not be read\n");
        return EXIT_USAGE;
    }
    if (cli->json) {
        char *text = json_dumps (report, JSON_COMPACT);
        printf ("%s\n", text);
        free (text);
    }
    else if (rc == 0)
        printf ("ok: %lld events from %s to %s, head %s\n",
                (long long) json_integer_value (json_object_get (report, "events")),
                json_string_value (json_object_get (report, "first_at")) ? json_string_value (json_object_get (report, "first_at")) : "-",
                json_string_value (json_object_get (report, "last_at")) ? json_string_value (json_object_get (report, "last_at")) : "-",
                json_string_value (json_object_get (report, "head")) ? json_string_value (json_object_get (report, "head")) : "-");
    else {
        json_t *bad = json_object_get (report, "bad");
        printf ("TAMPERED: %s row %lld: %s\n", json_string_value (json_object_get (bad, "table")),
                (long long) json_integer_value (json_object_get (bad, "row")),
                json_string_value (json_object_get (bad, "why")));
    }
    json_decref (report);
    return rc == 0 ? 0 : rc == 1 ? 1 : EXIT_USAGE;
}
