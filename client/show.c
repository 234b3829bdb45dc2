/*  client/show.c: how a request is shown on a terminal and which exit code it maps to. */
#include "client/cli.h"
#include <string.h>

int
cli_exit_code (json_t *row)
{
    const char *state = json_string_value (json_object_get (row, "state"));
    const char *outcome = json_string_value (json_object_get (row, "outcome"));
    if (!state)
        return EXIT_USAGE;
    if (strcmp (state, "done") == 0) {
        if (!outcome || strcmp (outcome, "ok") == 0)
            return EXIT_OK;
        return strcmp (outcome, "error") == 0 ? EXIT_FAILED : EXIT_LIMIT;
    }
    if (strcmp (state, "denied") == 0)
        return EXIT_DENIED;
    if (strcmp (state, "expired") == 0 || strcmp (state, "cancelled") == 0)
        return EXIT_ENDED;
    if (strcmp (state, "lost") == 0)
        return EXIT_LOST;
    return EXIT_PENDING;
}

static void
s_put (FILE *out, const char *text)
{
    if (text && *text) {
        fputs (text, out);
        if (text[strlen (text) - 1] != '\n')
            fputc ('\n', out);
    }
}

void
cli_print_request (cli_t *cli, json_t *row)
{
    if (cli->json) {
        char *text = json_dumps (row, JSON_COMPACT);
        printf ("%s\n", text);
        free (text);
        return;
    }
    const char *state = json_string_value (json_object_get (row, "state"));
    long long id = (long long) json_integer_value (json_object_get (row, "id"));
    if (!state || strcmp (state, "done") != 0) {
        const char *msg = json_string_value (json_object_get (row, "decision_message"));
        fprintf (stderr, "request %lld: %s%s%s\n", id, state ? state : "?",
                 msg && state && strcmp (state, "denied") == 0 ? ": " : "",
                 msg && state && strcmp (state, "denied") == 0 ? msg : "");
        return;
    }
    fflush (stdout);
    s_put (stdout, json_string_value (json_object_get (row, "stdout")));
    fflush (stdout);
    s_put (stderr, json_string_value (json_object_get (row, "stderr")));
    s_put (stdout, json_string_value (json_object_get (row, "value")));
    s_put (stderr, json_string_value (json_object_get (row, "traceback")));
    if (json_is_true (json_object_get (row, "stdout_truncated")) || json_is_true (json_object_get (row, "stderr_truncated")))
        fprintf (stderr, "[replgate: output truncated]\n");
    const char *outcome = json_string_value (json_object_get (row, "outcome"));
    if (outcome && strcmp (outcome, "ok") != 0 && strcmp (outcome, "error") != 0)
        fprintf (stderr, "[replgate: request %lld ended: %s]\n", id, outcome);
    if (json_is_true (json_object_get (row, "session_reset")))
        fprintf (stderr, "[replgate: session was reset]\n");
}
