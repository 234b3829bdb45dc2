/*  client/live.c: the subcommands that talk to a running broker: submit, status, wait,
    cancel, ping; and cli_connect, which the others that talk to it share. */
#include "client/cli.h"
#include "common/buf.h"
#include "common/certfile.h"
#include "common/keys.h"
#include "common/util.h"
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <unistd.h>

//  Long polls are cut into slices so a dead broker is noticed within one slice.
#define SLICE_MS 25000

//  All of in as a string (the caller frees); NULL with errno set if it cannot be read.
static char *
s_read_file (FILE *in)
{
    buf_t b = { 0 };
    if (buf_read_file (&b, in) != 0) {
        int error = errno;
        buf_free (&b);
        errno = error;
        return NULL;
    }
    return buf_take (&b);
}

int
cli_no_answer (conn_t *conn, int timeout_ms)
{
    const char *why = conn_why (conn);
    fprintf (stderr, "replgate: no answer from the broker within %d ms (is it running? is your "
             "key trusted?)%s%s\n", timeout_ms, why ? "; the last connection: " : "", why ? why : "");
    return EXIT_UNREACHABLE;
}

conn_t *
cli_connect (cli_t *cli, const char *default_key, int *code)
{
    char key_path[1024], server_path[1024], ep[512] = "tcp://127.0.0.1:7710";
    //  Whatever is missing locally is set-up, not a broker that does not answer.
    if ((!cli->key || !cli->server_key) && cli_check_dir (cli) != 0) {
        *code = EXIT_USAGE;
        return NULL;
    }
    if (cli->key)
        snprintf (key_path, sizeof key_path, "%s", cli->key);
    else
        keys_path_private (cli->dir, default_key, key_path, sizeof key_path);
    if (cli->server_key)
        snprintf (server_path, sizeof server_path, "%s", cli->server_key);
    else
        keys_path_broker (cli->dir, server_path, sizeof server_path);
    if (cli->broker)
        snprintf (ep, sizeof ep, "%s", cli->broker);
    else {
        char path[1024];
        snprintf (path, sizeof path, "%s/endpoint", cli->dir);
        FILE *f = fopen (path, "r");
        if (f) {
            if (fgets (ep, sizeof ep, f))
                ep[strcspn (ep, "\r\n")] = 0;
            fclose (f);
        }
    }
    //  Read here, without czmq: a command that only talks to the broker never loads it
    //  (client/lazy.c).
    char err[1200];
    zmtp_keys_t keys;
    conn_t *conn = NULL;
    if (certfile_load (key_path, server_path, &keys, err, sizeof err) == 0
    &&  !(conn = conn_new (ep, &keys)))
        snprintf (err, sizeof err, "cannot connect to %s", ep);
    sodium_memzero (&keys, sizeof keys);
    if (!conn) {
        fprintf (stderr, "replgate %s: %s\n", cli->cmd, err);
        *code = EXIT_USAGE;
    }
    return conn;
}

int
cli_refusal_code (const char *error_code)
{
    static const struct { const char *error; int code; } map[] = {
        { "not_found", EXIT_NOT_FOUND }, { "forbidden", EXIT_FORBIDDEN },
        { "bad_state", EXIT_BAD_STATE }, { "duplicate", EXIT_BAD_STATE },
    };
    for (size_t i = 0; error_code && i < sizeof map / sizeof map[0]; i++)
        if (strcmp (error_code, map[i].error) == 0)
            return map[i].code;
    return EXIT_USAGE;
}

json_t *
cli_call (cli_t *cli, conn_t *conn, json_t *req, int timeout_ms, int *code)
{
    json_t *reply = conn_call (conn, req, timeout_ms);
    json_decref (req);
    if (!reply && cli_interrupted ()) {
        *code = EXIT_PENDING;           //  the caller says what became of the request
        return NULL;
    }
    if (!reply) {
        *code = cli_no_answer (conn, timeout_ms);
        return NULL;
    }
    if (!json_is_true (json_object_get (reply, "ok"))) {
        json_t *error = json_object_get (reply, "error");
        if (cli->json) {
            char *text = json_dumps (reply, JSON_COMPACT);
            printf ("%s\n", text);
            free (text);
        }
        else
            fprintf (stderr, "replgate: %s: %s\n", json_string_value (json_object_get (error, "code")),
                     json_string_value (json_object_get (error, "message")));
        *code = cli_refusal_code (json_string_value (json_object_get (error, "code")));
        json_decref (reply);
        return NULL;
    }
    json_object_del (reply, "ok");
    json_object_del (reply, "rid");
    return reply;
}

//  The live line a parked submit shows on a terminal: approvals so far, time left, and who
//  approved ("bob, carol for U123", as the record names them).
static void
s_live_line (json_t *row)
{
    const char *approvers = json_string_value (json_object_get (row, "approvers"));
    json_t *review = json_object_get (row, "review");
    const char *expires = json_string_value (json_object_get (review, "expires_at"));
    int64_t left = expires ? (time_parse_iso8601 (expires) - clock_wall_ms ()) / 1000 : -1;
    fprintf (stderr, "\r\033[Krequest %lld: waiting for approval (%zu of %lld",
             (long long) json_integer_value (json_object_get (row, "id")),
             json_array_size (json_object_get (row, "approvals")),
             (long long) json_integer_value (json_object_get (review, "quorum")));
    if (left >= 0)
        fprintf (stderr, ", %lldm %02llds left", (long long) left / 60, (long long) left % 60);
    fprintf (stderr, "%s%s)", approvers ? "; approved by " : "", approvers ? approvers : "");
    fflush (stderr);
}

//  A first Ctrl-C while the snippet runs asks the broker to interrupt it, and the wait goes
//  on for how it ended; a second one (or SIGTERM, or a request not running) ends the wait.
//  True if the wait goes on.
static bool
s_interrupt_run (cli_t *cli, conn_t *conn, json_t **row_p, bool *asked)
{
    json_t *row = *row_p;
    //  The row may be a moment old: queued may be running by now. The broker knows; if it
    //  says the run has not started, the wait ends as for a parked request.
    const char *state = json_string_value (json_object_get (row, "state"));
    if (*asked || cli_interrupt_signal () != SIGINT || !state
    ||  (strcmp (state, "running") != 0 && strcmp (state, "queued") != 0))
        return false;
    *asked = true;
    cli_interrupt_rearm ();
    json_t *id = json_object_get (row, "id");
    fprintf (stderr, "\nreplgate: interrupting request %lld (Ctrl-C again stops waiting)\n",
             (long long) json_integer_value (id));
    int code = 0;
    json_t *reply = cli_call (cli, conn, json_pack ("{s:s, s:O}", "op", "interrupt", "id", id),
                              5000, &code);
    if (reply) {                //  the request as the broker has it now: running
        json_decref (row);
        *row_p = reply;
    }
    return reply && !cli_interrupted ();
}

int
cli_wait (cli_t *cli, conn_t *conn, json_t *row)
{
    bool asked = false;
    int64_t deadline = cli->timeout_s < 0 ? INT64_MAX : clock_mono_ms () + (int64_t) (cli->timeout_s * 1000);
    int code = 0;
    bool live = false, tty = isatty (STDERR_FILENO) && !cli->json;
    json_incref (row);
    while (cli_exit_code (row) == EXIT_PENDING && clock_mono_ms () < deadline
       &&  (!cli_interrupted () || s_interrupt_run (cli, conn, &row, &asked))) {
        bool parked = strcmp (json_string_value (json_object_get (row, "state")), "pending_approval") == 0;
        if (parked && tty) {
            s_live_line (row);
            live = true;
        }
        int64_t slice = deadline - clock_mono_ms ();
        if (slice > (parked && tty ? 1000 : SLICE_MS))
            slice = parked && tty ? 1000 : SLICE_MS;
        json_t *req = json_pack ("{s:s, s:O, s:I}", "op", "await", "id", json_object_get (row, "id"),
                                 "timeout_ms", (json_int_t) slice);
        json_t *next = cli_call (cli, conn, req, (int) slice + 5000, &code);
        if (!next && cli_interrupted () && s_interrupt_run (cli, conn, &row, &asked)) {
            code = 0;
            continue;
        }
        if (!next)
            break;
        json_decref (row);
        row = next;
    }
    if (live)
        fprintf (stderr, "\n");
    if (cli_interrupted () && cli_exit_code (row) == EXIT_PENDING)
        code = cli_interrupt_report (cli, json_integer_value (json_object_get (row, "id")), row);
    else if (!code) {
        cli_print_request (cli, row);
        code = cli_exit_code (row);
    }
    json_decref (row);
    return code;
}

//  A streamed submit: its output chunks as the broker pushes them.
typedef struct {
    cli_t *cli;
    int64_t next_seq;           //  the seq the next chunk should have
    bool gap;                   //  a chunk never came (the broker drops what we do not read)
} s_stream_t;

//  Each chunk goes where the snippet printed it, as it comes (rendered on a terminal like
//  the rest, unless --raw).
static void
s_on_output (void *arg, json_t *msg)
{
    s_stream_t *st = (s_stream_t *) arg;
    const char *op = json_string_value (json_object_get (msg, "op"));
    const char *stream = json_string_value (json_object_get (msg, "stream"));
    if (!op || strcmp (op, "output") != 0 || !stream)
        return;
    int64_t seq = json_integer_value (json_object_get (msg, "seq"));
    st->gap |= seq != st->next_seq;
    st->next_seq = seq + 1;
    FILE *out = strcmp (stream, "stderr") == 0 ? stderr : stdout;
    json_t *text = json_object_get (msg, "data"), *b64 = json_object_get (msg, "data_base64");
    size_t n = json_string_length (text);
    char *bytes = json_is_string (b64)
                ? base64_decode (json_string_value (b64), json_string_length (b64), &n) : NULL;
    const char *data = bytes ? bytes : json_string_value (text);
    if (data)
        screen_write (out, data, n, screen_flags (st->cli->screen_mode, fileno (out)));
    fflush (out);
    free (bytes);
}

int
cmd_submit (cli_t *cli)
{
    const char *lang = cli->lang ? cli->lang : "python";
    char *code = NULL;
    if (cli->file && cli->argc == 0) {
        FILE *f = strcmp (cli->file, "-") == 0 ? stdin : fopen (cli->file, "r");
        if (!f) {
            fprintf (stderr, "replgate submit: cannot read %s: %s\n", cli->file, strerror (errno));
            return EXIT_USAGE;
        }
        code = s_read_file (f);
        if (f != stdin)
            fclose (f);
    }
    else if (cli->argc == 1 && !cli->file)
        code = strcmp (cli->argv[0], "-") == 0 ? s_read_file (stdin) : strdup (cli->argv[0]);
    else {
        fprintf (stderr, "replgate submit: give the code as one argument, -f FILE, or - for stdin\n");
        return EXIT_USAGE;
    }
    if (!code) {
        //  A directory opens but does not read: never submit an empty snippet for it.
        fprintf (stderr, "replgate submit: cannot read %s: %s\n", cli->file ? cli->file : "stdin",
                 strerror (errno));
        return EXIT_USAGE;
    }
    int rc;
    conn_t *conn = cli_connect (cli, "agent", &rc);
    if (!conn) {
        free (code);
        return rc;
    }
    cli_interrupt_catch (conn);
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s}", "op", "submit", "lang", lang, "code", code,
                             "session", cli->session ? cli->session : "default");
    free (code);
    if (cli->reason)
        json_object_set_new (req, "reason", json_string (cli->reason));
    if (cli->idem)
        json_object_set_new (req, "key", json_string (cli->idem));
    if (cli->timeout_ms)
        json_object_set_new (req, "timeout_ms", json_integer (cli->timeout_ms));
    bool stream = !cli->no_wait && (cli->stream < 0 ? isatty (STDOUT_FILENO) && !cli->json : cli->stream);
    s_stream_t st = { cli, 0, false };
    if (stream) {
        json_object_set_new (req, "stream", json_true ());
        conn_on_push (conn, s_on_output, &st);
    }
    //  A person at a terminal may press Ctrl-C early to interrupt: the first answer comes at
    //  once, so the wait (where Ctrl-C interrupts) starts at once. A script saves a round trip.
    int wait_ms = cli->no_wait || stream || isatty (STDIN_FILENO) ? 0 : 2000;
    json_object_set_new (req, "wait_ms", json_integer (wait_ms));
    json_t *row = cli_call (cli, conn, req, wait_ms + 5000, &rc);
    if (row) {
        if (cli->no_wait) {
            if (cli->json)
                cli_print_request (cli, row);
            else {
                printf ("%lld\n", (long long) json_integer_value (json_object_get (row, "id")));
                fprintf (stderr, "request %lld: %s\n", (long long) json_integer_value (json_object_get (row, "id")),
                         json_string_value (json_object_get (row, "state")));
            }
            rc = cli_exit_code (row);
        }
        else {
            //  The end repeats no output that went out already; after a gap it says so.
            cli->streamed = stream;
            rc = cli_wait (cli, conn, row);
            if (stream && st.gap)
                fprintf (stderr, "[replgate: some output was not streamed; `replgate status %lld` "
                         "shows all of it]\n", (long long) json_integer_value (json_object_get (row, "id")));
        }
        json_decref (row);
    }
    else if (cli_interrupted ())
        rc = cli_interrupt_report (cli, 0, NULL);
    conn_destroy (&conn);
    return rc;
}

//  status, wait and cancel share their shape: one ID, one call, print the request.
static int
s_one_id (cli_t *cli, const char *op, bool wait)
{
    int64_t id;
    int rc;
    if (cli_id_arg (cli, &id) != 0)
        return EXIT_USAGE;
    conn_t *conn = cli_connect (cli, "agent", &rc);
    if (!conn)
        return rc;
    if (wait)
        cli_interrupt_catch (conn);
    json_t *row = cli_call (cli, conn, json_pack ("{s:s, s:I}", "op", op, "id", (json_int_t) id), 5000, &rc);
    if (!row && wait && cli_interrupted ())
        rc = cli_interrupt_report (cli, id, NULL);
    else if (row && wait)
        rc = cli_wait (cli, conn, row);
    else if (row) {
        cli_print_request (cli, row);
        rc = strcmp (op, "cancel") == 0 ? 0 : cli_exit_code (row);
    }
    json_decref (row);
    conn_destroy (&conn);
    return rc;
}

int cmd_status (cli_t *cli) { return s_one_id (cli, "status", false); }
int cmd_wait (cli_t *cli) { return s_one_id (cli, "status", true); }
int cmd_cancel (cli_t *cli) { return s_one_id (cli, "cancel", false); }

int
cmd_ping (cli_t *cli)
{
    int rc = 0;
    conn_t *conn = cli_connect (cli, "agent", &rc);
    if (!conn)
        return rc;
    json_t *reply = cli_call (cli, conn, json_pack ("{s:s}", "op", "ping"), 3000, &rc);
    if (reply) {
        char *text = json_dumps (reply, cli->json ? JSON_COMPACT : JSON_INDENT (2));
        printf ("%s\n", text);
        free (text);
    }
    json_decref (reply);
    conn_destroy (&conn);
    return rc;
}
