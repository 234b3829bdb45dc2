/*  client/show.c: how a request is shown on a terminal and which exit code it maps to. */
#include "client/cli.h"
#include "common/buf.h"
#include "common/states.h"
#include "common/util.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
cli_exit_code (json_t *row)
{
    const char *state = json_string_value (json_object_get (row, "state"));
    const char *outcome = json_string_value (json_object_get (row, "outcome"));
    if (!state)
        return EXIT_USAGE;
    if (!states_is_terminal (state))
        return EXIT_PENDING;
    if (strcmp (state, "done") == 0) {
        if (!outcome || strcmp (outcome, "ok") == 0)
            return EXIT_OK;
        if (strcmp (outcome, "interrupted") == 0)
            return EXIT_ENDED;          //  stopped by someone, like a cancel
        return strcmp (outcome, "error") == 0 ? EXIT_FAILED : EXIT_LIMIT;
    }
    if (strcmp (state, "denied") == 0)
        return EXIT_DENIED;
    return strcmp (state, "lost") == 0 ? EXIT_LOST : EXIT_ENDED;    //  expired, cancelled
}

//  text, rendered with flags, on a line of its own.
static void
s_put (FILE *out, const char *text, int flags)
{
    if (text && *text) {
        screen_write (out, text, strlen (text), flags);
        if (text[strlen (text) - 1] != '\n')
            fputc ('\n', out);
    }
}

//  A stream of the row: byte for byte when it was not text (`<key>_base64`), so a pipe gets
//  exactly what the snippet printed, and a terminal those bytes rendered.
static void
s_put_stream (FILE *out, json_t *row, const char *key, int flags)
{
    char name[32];
    snprintf (name, sizeof name, "%s_base64", key);
    json_t *b64 = json_object_get (row, name);
    size_t n = 0;
    char *bytes = json_is_string (b64)
                ? base64_decode (json_string_value (b64), json_string_length (b64), &n) : NULL;
    if (!bytes) {
        s_put (out, json_string_value (json_object_get (row, key)), flags);
        return;
    }
    screen_write (out, bytes, n, flags);
    if (n && bytes[n - 1] != '\n')
        fputc ('\n', out);
    free (bytes);
}

const char *
cli_text (json_t *object, const char *key)
{
    const char *text = json_string_value (json_object_get (object, key));
    return text ? text : "-";
}

void
cli_print_json (json_t *value)
{
    char *text = json_dumps (value, JSON_COMPACT | JSON_ENCODE_ANY);
    printf ("%s\n", text ? text : "{}");
    free (text);
}

void
cli_print_request (cli_t *cli, json_t *row)
{
    if (cli->json) {
        cli_print_json (row);
        return;
    }
    const char *state = json_string_value (json_object_get (row, "state"));
    long long id = (long long) json_integer_value (json_object_get (row, "id"));
    int out = screen_flags (cli->screen_mode, STDOUT_FILENO);
    int err = screen_flags (cli->screen_mode, STDERR_FILENO);
    if (!state || strcmp (state, "done") != 0) {
        bool denied = state && strcmp (state, "denied") == 0;
        const char *msg = json_string_value (json_object_get (row, "decision_message"));
        const char *by = json_string_value (json_object_get (row, "denied_by"));
        const char *why = json_string_value (json_object_get (row, "deny_reason"));
        //  A human's reason is what the agent most needs to hear: what to change.
        buf_t line = { 0 };
        buf_appendf (&line, "%s%s", msg && denied ? ": " : "", msg && denied ? msg : "");
        if (denied && by)
            buf_appendf (&line, "%sdenied by %s: %s", msg ? "; " : ": ", by, why ? why : "(no reason)");
        char *shown = line.len ? screen_text (line.data, line.len, err | SCREEN_LINE) : NULL;
        fprintf (stderr, "request %lld: %s%s\n", id, state ? state : "?", shown ? shown : "");
        free (shown);
        buf_free (&line);
        return;
    }
    fflush (stdout);
    if (!cli->streamed) {       //  streamed output was printed as it came
        s_put_stream (stdout, row, "stdout", out);
        fflush (stdout);
        s_put_stream (stderr, row, "stderr", err);
    }
    s_put (stdout, json_string_value (json_object_get (row, "value")), out);
    s_put (stderr, json_string_value (json_object_get (row, "traceback")), err);
    if (json_is_true (json_object_get (row, "stdout_truncated")) || json_is_true (json_object_get (row, "stderr_truncated")))
        fprintf (stderr, "[replgate: output truncated]\n");
    const char *outcome = json_string_value (json_object_get (row, "outcome"));
    if (outcome && strcmp (outcome, "ok") != 0 && strcmp (outcome, "error") != 0)
        fprintf (stderr, "[replgate: request %lld ended: %s]\n", id, outcome);
    if (json_is_true (json_object_get (row, "session_reset")))
        fprintf (stderr, "[replgate: session was reset]\n");
}
