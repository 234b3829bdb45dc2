/*  client/export.c: `replgate export`: the record for a SIEM or a spreadsheet. One row per
    request (who, what, the decision and who allowed it, when, how it ended, output sizes and
    hashes, egress totals), or with --events the raw hash-chained event log (a run's
    connections through its egress proxy among them, as `egress` events), each event with
    its hashes so a third party can re-verify it. csv, json (one array) and jsonl all stream: rows come one
    at a time from the store and go straight out, so memory stays flat. */
#include "client/cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_request_columns[] = {
    "id", "principal", "role", "session", "lang", "code", "reason", "decision", "rule",
    "decision_message", "review", "limits", "approvers", "denied_by", "state", "submitted_at",
    "queued_at", "started_at", "finished_at", "worker", "outcome", "exit_code", "signal",
    "error_name", "stdout_bytes", "stderr_bytes", "stdout_truncated", "stderr_truncated",
    "code_sha256", "bind_sha256", "stdout_sha256", "stderr_sha256", "policy_sha256", "wall_ms",
    "cpu_ms", "max_rss_kb", "pruned_at", "egress_connections", "egress_denied", "egress_bytes_out",
    "egress_bytes_in",
};
static const char *s_event_columns[] = {
    "seq", "at", "request_id", "type", "actor", "data", "prev_hash", "hash",
};
#define COUNT(a) (sizeof (a) / sizeof (a)[0])

typedef enum { FORMAT_CSV, FORMAT_JSON, FORMAT_JSONL } format_t;

typedef struct {
    format_t format;
    const char **columns;
    size_t ncolumns;
    int64_t rows;
} export_t;

//  RFC 4180: a field with a comma, quote, CR or LF (or edge spaces) is quoted, quotes
//  doubled; null is an empty field; objects are their canonical JSON text.
static void
s_csv_field (json_t *v)
{
    char *owned = NULL;
    const char *text = json_string_value (v);
    if (!json_is_string (v) && !json_is_null (v) && v)
        text = owned = json_dumps (v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!text) {
        free (owned);
        return;
    }
    size_t len = json_is_string (v) ? json_string_length (v) : strlen (text);
    bool quote = len && (strpbrk (text, ",\"\r\n") || text[0] == ' ' || text[len - 1] == ' ');
    if (!quote)
        fwrite (text, 1, len, stdout);
    else {
        putchar ('"');
        for (size_t i = 0; i < len; i++) {
            if (text[i] == '"')
                putchar ('"');
            putchar (text[i]);
        }
        putchar ('"');
    }
    free (owned);
}

static void
s_csv_row (export_t *self, json_t *row)
{
    for (size_t c = 0; c < self->ncolumns; c++) {
        if (c)
            putchar (',');
        if (row)
            s_csv_field (json_object_get (row, self->columns[c]));
        else
            fputs (self->columns[c], stdout);
    }
    fputs ("\r\n", stdout);
}

static int
s_write (json_t *row, void *arg)
{
    export_t *self = (export_t *) arg;
    if (self->format == FORMAT_CSV)
        s_csv_row (self, row);
    else {
        json_t *out = json_object ();
        for (size_t c = 0; c < self->ncolumns; c++) {
            json_t *v = json_object_get (row, self->columns[c]);
            json_object_set (out, self->columns[c], v ? v : json_null ());
        }
        char *text = json_dumps (out, JSON_COMPACT);
        if (self->format == FORMAT_JSON)
            fputs (self->rows ? ",\n" : "\n", stdout);
        fputs (text ? text : "{}", stdout);
        if (self->format == FORMAT_JSONL)
            putchar ('\n');
        free (text);
        json_decref (out);
    }
    self->rows++;
    return ferror (stdout) ? 1 : 0;         //  a closed pipe ends the walk
}

static int
s_format (const char *name, format_t *format)
{
    static const char *names[] = { "csv", "json", "jsonl" };
    for (size_t i = 0; name && i < COUNT (names); i++)
        if (strcmp (name, names[i]) == 0) {
            *format = (format_t) i;
            return 0;
        }
    return -1;
}

int
cmd_export (cli_t *cli)
{
    export_t self = { FORMAT_CSV, s_request_columns, COUNT (s_request_columns), 0 };
    //  --json is what it is everywhere else: one JSON object a line.
    const char *format = cli->json ? "jsonl" : cli->format ? cli->format : "csv";
    if (cli->argc != 0 || s_format (format, &self.format)) {
        fprintf (stderr, "usage: replgate export --format csv|json|jsonl [--events] [filters]\n");
        return EXIT_USAGE;
    }
    if (cli->events) {
        self.columns = s_event_columns;
        self.ncolumns = COUNT (s_event_columns);
    }
    json_t *filters = cli_filters (cli);
    store_t *store = filters ? cli_open_store (cli, STORE_READONLY) : NULL;
    if (!store) {
        json_decref (filters);
        return EXIT_USAGE;
    }
    if (self.format == FORMAT_CSV)
        s_csv_row (&self, NULL);
    else if (self.format == FORMAT_JSON)
        putchar ('[');
    int rc = cli->events ? store_each_event (store, filters, s_write, &self)
                         : store_each (store, filters, s_write, &self);
    if (self.format == FORMAT_JSON)
        fputs ("\n]\n", stdout);
    json_decref (filters);
    store_destroy (&store);
    if (fflush (stdout) != 0 || ferror (stdout) || rc == 1) {
        fprintf (stderr, "replgate export: writing the output failed\n");
        return 1;
    }
    return rc == 0 ? 0 : EXIT_USAGE;
}
