/*  client/local.c: subcommands that read the database directly, so they work with the broker
    stopped and never block it (WAL readers do not block the writer): history, verify and
    prune (the one local writer: it takes short write transactions, like the broker), plus
    what replay and export share with them (opening, filters, times). */
#include "client/cli.h"
#include "common/util.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

store_t *
cli_open_store (cli_t *cli, int flags)
{
    char path[1024];
    if (cli_check_dir (cli) != 0)
        return NULL;
    snprintf (path, sizeof path, "%s/replgate.db", cli->dir);
    store_t *store = store_new (path, flags);
    if (!store)
        fprintf (stderr, "replgate %s: cannot open %s%s\n", cli->cmd, path,
                 flags & STORE_READONLY ? " read-only" : "");
    return store;
}

static int
s_filter_time (cli_t *cli, json_t *filters, const char *key, const char *text)
{
    char iso[32];
    if (!text)
        return 0;
    if (cli_time (text, iso) == 0)
        return json_object_set_new (filters, key, json_string (iso));
    fprintf (stderr, "replgate %s: --%s %s: give a time as 2026-11-28[T12:00:00.000Z] or as "
             "an age like 30m, 12h, 7d\n", cli->cmd, key, text);
    return -1;
}

json_t *
cli_filters (cli_t *cli)
{
    json_t *filters = json_object ();
    if (cli->principal) json_object_set_new (filters, "principal", json_string (cli->principal));
    if (cli->session) json_object_set_new (filters, "session", json_string (cli->session));
    if (cli->state) json_object_set_new (filters, "state", json_string (cli->state));
    if (s_filter_time (cli, filters, "since", cli->since)
    ||  s_filter_time (cli, filters, "until", cli->until)) {
        json_decref (filters);
        return NULL;
    }
    return filters;
}

//  --------------------------------------------------------------------------------------
//  history: a table that fits the terminal.

static int
s_terminal_width (void)
{
    struct winsize ws;
    if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *columns = getenv ("COLUMNS");
    int n = columns ? atoi (columns) : 0;
    return n > 0 ? n : 100;
}

//  Columns that rendered text takes (one per character; client/screen.h).
static int
s_width (const char *text)
{
    size_t columns = 0;
    screen_fit (text ? text : "", SIZE_MAX, &columns);
    return (int) columns;
}

//  One table cell: at most width columns of rendered one-line text (cmd_history rendered
//  the rows), elided with … when cut, never inside a marker; padded with spaces unless last.
static void
s_cell (const char *text, int width, bool last)
{
    text = text ? text : "-";
    size_t used = 0, fit = screen_fit (text, width > 0 ? (size_t) width : 0, &used);
    if (text[fit]) {
        fit = screen_fit (text, width > 1 ? (size_t) width - 1 : 0, &used);
        fwrite (text, 1, fit, stdout);
        fputs ("\xe2\x80\xa6", stdout);
        used++;
    }
    else
        fputs (text, stdout);
    for (; !last && (int) used < width; used++)
        putchar (' ');
    if (!last)
        putchar (' ');
}

//  The columns: header, row key, widest it may grow to.
static const struct { const char *title, *key; int cap; } s_columns[] = {
    { "ID", "id", 8 }, { "SUBMITTED", "submitted_at", 19 }, { "PRINCIPAL", "principal", 16 },
    { "SESSION", "session", 16 }, { "LANG", "lang", 6 }, { "DECISION", "decision", 8 },
    { "STATE", "state", 16 }, { "OUTCOME", "outcome", 12 }, { "CODE", "code", 0 },
};
#define NCOLUMNS (sizeof s_columns / sizeof s_columns[0])

//  A cell's text: ids as numbers, times without the date separator and milliseconds (and
//  without the year when short).
static void
s_text (json_t *row, size_t c, bool short_time, char *out, size_t size)
{
    json_t *v = json_object_get (row, s_columns[c].key);
    const char *text = json_string_value (v);
    if (json_is_integer (v))
        snprintf (out, size, "%lld", (long long) json_integer_value (v));
    else if (c == 1 && text && strlen (text) >= 19)
        snprintf (out, size, "%.*s %.8s", short_time ? 5 : 10, text + (short_time ? 5 : 0),
                  text + 11);
    else
        snprintf (out, size, "%s", text ? text : "-");
}

typedef struct {
    int width[NCOLUMNS];        //  0: column dropped
    bool short_time;
} layout_t;

static int
s_used (layout_t *l)
{
    int total = 0;
    for (size_t c = 0; c + 1 < NCOLUMNS; c++)
        total += l->width[c] ? l->width[c] + 1 : 0;
    return total;
}

//  Widths from the content, capped; then, until the code has 20 characters, the least
//  needed columns go: DECISION, LANG, the year, and PRINCIPAL and SESSION shrink to 10.
static void
s_layout (layout_t *l, json_t *rows, int terminal)
{
    char text[128];
    for (size_t c = 0; c < NCOLUMNS; c++)
        l->width[c] = s_width (s_columns[c].title);
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        for (size_t c = 0; c + 1 < NCOLUMNS; c++) {
            s_text (row, c, false, text, sizeof text);
            int w = s_width (text), cap = s_columns[c].cap;
            l->width[c] = w > l->width[c] ? (w < cap ? w : cap) : l->width[c];
        }
    for (int step = 0; step < 4 && terminal - s_used (l) < 20; step++)
        switch (step) {
            case 0: l->width[5] = 0; break;
            case 1: l->width[4] = 0; break;
            case 2: l->short_time = true; l->width[1] = 14; break;
            default: l->width[2] = l->width[2] > 10 ? 10 : l->width[2];
                     l->width[3] = l->width[3] > 10 ? 10 : l->width[3];
        }
    int code = terminal - s_used (l);
    l->width[NCOLUMNS - 1] = code > 10 ? code : 10;
}

static void
s_table (json_t *rows)
{
    layout_t l = { { 0 }, false };
    s_layout (&l, rows, s_terminal_width ());
    char text[128];
    for (size_t c = 0; c < NCOLUMNS; c++)
        if (l.width[c])
            s_cell (s_columns[c].title, l.width[c], c + 1 == NCOLUMNS);
    putchar ('\n');
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row) {
        for (size_t c = 0; c + 1 < NCOLUMNS; c++)
            if (l.width[c]) {
                s_text (row, c, l.short_time, text, sizeof text);
                s_cell (text, l.width[c], false);
            }
        json_t *pruned = json_object_get (row, "pruned_at");
        s_cell (json_is_string (pruned) ? "[pruned]" : json_string_value (json_object_get (
                row, "code")), l.width[NCOLUMNS - 1], true);
        putchar ('\n');
    }
}

int
cmd_history (cli_t *cli)
{
    json_t *filters = cli_filters (cli);
    store_t *store = filters ? cli_open_store (cli, STORE_READONLY) : NULL;
    json_t *rows = store ? store_history (store, filters, cli->limit > 0 ? cli->limit : 1000)
                         : NULL;
    json_decref (filters);
    store_destroy (&store);
    if (!rows)
        return EXIT_USAGE;
    size_t i;
    json_t *row;
    int flags = screen_flags (SCREEN_ESCAPE, STDOUT_FILENO) | SCREEN_LINE;
    json_array_foreach (rows, i, row)
        if (cli->json)
            cli_print_json (row);
        else if (screen_row (row, flags) != 0) {
            json_decref (rows);
            fprintf (stderr, "replgate history: out of memory\n");
            return EXIT_USAGE;
        }
    if (!cli->json)
        s_table (rows);
    json_decref (rows);
    return 0;
}

//  --------------------------------------------------------------------------------------
//  verify.

//  Every schema difference, then the first bad row, each on a TAMPERED line; or the summary,
//  and (without --since-head) what a cut tail needs.
static void
s_verify_text (json_t *report, int rc)
{
    size_t i;
    json_t *difference, *bad = json_object_get (report, "bad");
    json_array_foreach (json_object_get (report, "schema"), i, difference)
        printf ("TAMPERED: schema: %s\n", cli_text (difference, "why"));
    if (bad)
        printf ("TAMPERED: %s row %lld: %s\n", cli_text (bad, "table"),
                (long long) json_integer_value (json_object_get (bad, "row")), cli_text (bad, "why"));
    if (rc != 0)
        return;
    printf ("ok: %lld events, %lld requests, from %s to %s\nhead: %s\n",
            (long long) json_integer_value (json_object_get (report, "events")),
            (long long) json_integer_value (json_object_get (report, "requests")),
            cli_text (report, "first_at"), cli_text (report, "last_at"), cli_text (report, "head"));
    json_t *since = json_object_get (report, "since_head");
    if (since)
        printf ("saved head: event %lld, %lld events after it; nothing before it changed\n",
                (long long) json_integer_value (json_object_get (since, "seq")),
                (long long) json_integer_value (json_object_get (since, "events_after")));
    else if (json_is_string (json_object_get (report, "head")))
        printf ("head %s at seq %lld; pass --since-head to prove nothing after a saved head "
                "was removed\n", cli_text (report, "head"),
                (long long) json_integer_value (json_object_get (report, "head_seq")));
}

int
cmd_verify (cli_t *cli)
{
    if (cli->since_head && strlen (cli->since_head) != 64) {
        fprintf (stderr, "replgate verify: --since-head wants the 64 hex characters of a head "
                 "hash that verify printed\n");
        return EXIT_USAGE;
    }
    store_t *store = cli_open_store (cli, STORE_READONLY);
    if (!store)
        return EXIT_USAGE;
    json_t *report = NULL;
    int rc = store_verify_head (store, cli->since_head, &report);
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
    else
        s_verify_text (report, rc);
    json_decref (report);
    return rc == 0 ? 0 : rc == 1 ? 1 : EXIT_USAGE;
}
