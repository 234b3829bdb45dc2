/*  client/replay.c: `replgate replay SESSION`: plays a session back from the record, in
    order, as a terminal showed it: each snippet with who sent it, when, what the policy
    decided and who approved it, then the output the agent received (already masked when it
    was stored), with each connection it made through its egress proxy, one line each, where
    the record has them: with its end, before its output. Real gaps are kept, capped, and
    scaled by --speed; --cast writes the same text as an asciinema v2 recording instead. On a
    terminal (or with --escape) every text of the record is rendered first (client/screen.h):
    the replay shows what the agent got, it does not run it on the investigator's terminal; a
    pipe and the cast get it as it was.
    Reads only: works with the broker stopped. */
#include "client/cli.h"
#include "common/buf.h"
#include "common/util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GAP_CAP_MS 2000         //  a long pause in the record plays as at most this

typedef struct {
    cli_t *cli;
    store_t *store;
    FILE *cast;                 //  NULL: to the terminal
    bool wait;
    int64_t last_ms;            //  record time of the previous output, -1 before the first
    double clock_s;             //  playback time of the previous output
    int64_t rows;
    int screen;                 //  flags to render the rows with (client/screen.h)
} replay_t;

//  Writes text that the record shows at time at_ms: after the (capped, scaled) gap on a
//  terminal, or as one timed "o" event, with the newlines a terminal needs, in a cast.
static void
s_emit (replay_t *self, int64_t at_ms, const char *text)
{
    if (self->last_ms >= 0 && at_ms >= 0) {
        double gap = (double) (at_ms - self->last_ms);
        gap = gap < 0 ? 0 : gap > GAP_CAP_MS ? GAP_CAP_MS : gap;
        self->clock_s += gap / 1000.0 / self->cli->speed;
        if (self->wait && !self->cast && gap > 0) {
            double s = gap / 1000.0 / self->cli->speed;
            struct timespec ts = { (time_t) s, (long) ((s - floor (s)) * 1e9) };
            nanosleep (&ts, NULL);
        }
    }
    if (at_ms >= 0)
        self->last_ms = at_ms;
    if (!self->cast) {
        fputs (text, stdout);
        fflush (stdout);
        return;
    }
    json_t *event = json_pack ("[f, s, s]", self->clock_s, "o", "");
    size_t len = strlen (text), n = 0;
    char *crlf = (char *) malloc (2 * len + 1);
    for (size_t i = 0; crlf && i < len; i++) {
        if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r'))
            crlf[n++] = '\r';
        crlf[n++] = text[i];
    }
    if (crlf && event)
        json_array_set_new (event, 2, json_stringn (crlf, n));
    char *line = event ? json_dumps (event, JSON_COMPACT) : NULL;
    if (line)
        fprintf (self->cast, "%s\n", line);
    free (line);
    free (crlf);
    json_decref (event);
}

static const char *
s_str (json_t *row, const char *key)
{
    return json_string_value (json_object_get (row, key));
}

//  "# 12  2026-...Z  alice (agent)  python  review (rule r), approved by bob\n", whole however
//  long (a cut line could end inside a marker's reverse video).
static void
s_header (json_t *row, buf_t *out)
{
    const char *decision = s_str (row, "decision"), *rule = s_str (row, "rule");
    const char *approvers = s_str (row, "approvers"), *denied = s_str (row, "denied_by");
    buf_appendf (out, "# %lld  %s  %s (%s)  %s  %s",
                 (long long) json_integer_value (json_object_get (row, "id")),
                 s_str (row, "submitted_at"), s_str (row, "principal"), s_str (row, "role"),
                 s_str (row, "lang"), decision ? decision : "undecided");
    if (rule)
        buf_appendf (out, " (rule %s)", rule);
    if (approvers)
        buf_appendf (out, ", approved by %s", approvers);
    if (denied)
        buf_appendf (out, ", denied by %s", denied);
    buf_append (out, "\n", 1);
}

//  The code as typed at a prompt: ">>> " / "... " for python, "$ " / "> " for shell.
static char *
s_prompted (json_t *row)
{
    bool python = strcmp (s_str (row, "lang") ? s_str (row, "lang") : "", "python") == 0;
    const char *first = python ? ">>> " : "$ ", *more = python ? "... " : "> ";
    const char *code = json_is_string (json_object_get (row, "pruned_at")) ? "[pruned]"
                     : s_str (row, "code") ? s_str (row, "code") : "";
    size_t lines = 1;
    for (const char *p = code; *p; p++)
        lines += *p == '\n';
    char *out = (char *) malloc (strlen (code) + lines * 4 + 2), *o = out;
    if (!out)
        return NULL;
    o += sprintf (o, "%s", first);
    for (const char *p = code; *p; p++) {
        *o++ = *p;
        if (*p == '\n' && p[1])
            o += sprintf (o, "%s", more);
    }
    if (o == out + strlen (first) || o[-1] != '\n')
        *o++ = '\n';
    *o = 0;
    return out;
}

//  How it ended, when that is not simply "ran fine" (one line, or nothing).
static void
s_footer (json_t *row, buf_t *out)
{
    const char *state = s_str (row, "state"), *outcome = s_str (row, "outcome");
    if (state && strcmp (state, "done") != 0) {
        const char *message = s_str (row, "decision_message"), *why = s_str (row, "deny_reason");
        buf_appendf (out, "[%s%s%s%s%s]\n", state, message ? ": " : "", message ? message : "",
                     why ? "; denied because: " : "", why ? why : "");
    }
    else if (outcome && strcmp (outcome, "ok") != 0)
        buf_appendf (out, "[%s, exit %lld%s]\n", outcome,
                     (long long) json_integer_value (json_object_get (row, "exit_code")),
                     json_is_true (json_object_get (row, "session_reset")) ? ", session reset" : "");
    else if (json_is_true (json_object_get (row, "session_reset")))
        buf_appendf (out, "[session reset]\n");
}

//  "[egress] CONNECT files.example.com:443 -> 93.184.216.34, 517 B out, 4096 B in, 12.5 ms,
//  allowed": one line for an entry (already rendered for the screen). A field of the wrong
//  type (the file was edited) shows as "?" rather than stopping the replay.
static void
s_egress_line (json_t *d, buf_t *out)
{
    const char *method = s_str (d, "method"), *host = s_str (d, "host");
    const char *address = s_str (d, "address"), *outcome = s_str (d, "outcome");
    const char *reason = s_str (d, "reason");
    json_t *port = json_object_get (d, "port"), *ms = json_object_get (d, "ms");
    buf_appendf (out, "[egress] %s %s:", method ? method : "?", host ? host : "?");
    if (json_is_integer (port))
        buf_appendf (out, "%lld", (long long) json_integer_value (port));
    else
        buf_appendf (out, "?");
    buf_appendf (out, " -> %s, %lld B out, %lld B in, ", address ? address : "(unresolved)",
                 (long long) json_integer_value (json_object_get (d, "bytes_out")),
                 (long long) json_integer_value (json_object_get (d, "bytes_in")));
    if (json_is_number (ms))
        buf_appendf (out, "%.1f ms, ", json_number_value (ms));
    buf_appendf (out, "%s%s%s\n", outcome ? outcome : "?", reason ? ": " : "", reason ? reason : "");
}

//  The data of the run's egress events, in order: the row's "egress" (--json prints it too,
//  and screen_row renders it with the rest of the row).
static json_t *
s_egress (replay_t *self, json_t *row)
{
    json_t *events = store_request_events (self->store,
                                           json_integer_value (json_object_get (row, "id")), "egress");
    json_t *entries = json_array ();
    size_t i;
    json_t *event;
    json_array_foreach (events, i, event) {
        json_t *data = json_object_get (event, "data");
        if (json_is_object (data))
            json_array_append (entries, data);
    }
    json_decref (events);
    return entries;
}

static void
s_play_egress (replay_t *self, json_t *row, int64_t at)
{
    size_t i;
    json_t *d;
    json_array_foreach (json_object_get (row, "egress"), i, d) {
        buf_t line = { 0 };
        s_egress_line (d, &line);
        if (line.data)
            s_emit (self, at, line.data);
        buf_free (&line);
    }
}

static void
s_output (replay_t *self, json_t *row, int64_t at)
{
    static const char *keys[] = { "stdout", "stderr", "value", "traceback" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *text = s_str (row, keys[i]);
        if (!text || !*text)
            continue;
        size_t len = strlen (text);
        char *line = (char *) malloc (len + 2);
        if (!line)
            continue;
        memcpy (line, text, len + 1);
        if (text[len - 1] != '\n')
            memcpy (line + len, "\n", 2);
        s_emit (self, at, line);
        free (line);
    }
    buf_t footer = { 0 };
    s_footer (row, &footer);
    if (footer.len)
        s_emit (self, at, footer.data);
    buf_free (&footer);
}

static int
s_play (json_t *row, void *arg)
{
    replay_t *self = (replay_t *) arg;
    self->rows++;
    json_t *egress = s_egress (self, row);
    if (!egress || json_object_set_new (row, "egress", egress) != 0)
        return -1;
    if (self->cli->json && !self->cast) {
        cli_print_json (row);
        return 0;
    }
    if (screen_row (row, self->screen) != 0)
        return -1;
    buf_t header = { 0 };
    s_header (row, &header);
    int64_t submitted = time_parse_iso8601 (s_str (row, "submitted_at"));
    int64_t finished = time_parse_iso8601 (s_str (row, "finished_at"));
    s_emit (self, submitted, self->rows > 1 ? "\n" : "");
    if (header.data)
        s_emit (self, submitted, header.data);
    buf_free (&header);
    char *code = s_prompted (row);
    if (code)
        s_emit (self, submitted, code);
    free (code);
    s_play_egress (self, row, finished >= 0 ? finished : submitted);
    s_output (self, row, finished >= 0 ? finished : submitted);
    return 0;
}

static FILE *
s_cast_open (cli_t *cli, const char *session)
{
    FILE *file = fopen (cli->cast, "w");
    if (!file) {
        fprintf (stderr, "replgate replay: cannot write %s\n", cli->cast);
        return NULL;
    }
    char title[256];
    snprintf (title, sizeof title, "replgate replay %s", session);
    json_t *header = json_pack ("{s:i, s:i, s:i, s:I, s:s, s:{s:s, s:s}}", "version", 2,
                                "width", 100, "height", 30, "timestamp",
                                (json_int_t) time (NULL), "title", title, "env",
                                "TERM", "xterm-256color", "SHELL", "/bin/sh");
    char *line = header ? json_dumps (header, JSON_COMPACT) : NULL;
    fprintf (file, "%s\n", line ? line : "{\"version\":2,\"width\":100,\"height\":30}");
    free (line);
    json_decref (header);
    return file;
}

int
cmd_replay (cli_t *cli)
{
    if (cli->argc != 1 || cli->speed < 0) {
        fprintf (stderr, "usage: replgate replay SESSION [--speed X] [--no-wait] [--cast FILE]"
                 " [--json]\n");
        return EXIT_USAGE;
    }
    cli->speed = cli->speed > 0 ? cli->speed : 1.0;
    cli->session = cli->argv[0];
    json_t *filters = cli_filters (cli);
    store_t *store = filters ? cli_open_store (cli, STORE_READONLY) : NULL;
    replay_t self = { cli, store, NULL, !cli->no_wait, -1, 0, 0,
                      cli->cast ? 0 : screen_flags (cli->screen_mode, STDOUT_FILENO) };
    if (store && cli->cast)
        self.cast = s_cast_open (cli, cli->session);
    int rc = store && (!cli->cast || self.cast) ? store_each (store, filters, s_play, &self) : -1;
    if (self.cast && fclose (self.cast) != 0)
        rc = -1;
    json_decref (filters);
    store_destroy (&store);
    if (rc == 0 && self.rows == 0)
        fprintf (stderr, "replgate replay: no snippets in session '%s'\n", cli->session);
    else if (rc == 0 && self.cast)
        fprintf (stderr, "replgate replay: %lld snippets written to %s\n",
                 (long long) self.rows, cli->cast);
    return rc == 0 ? (self.rows ? 0 : 1) : EXIT_USAGE;
}
