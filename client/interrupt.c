/*  client/interrupt.c: Ctrl-C and SIGTERM while `submit` or `wait` waits on the broker. The
    request lives on in the broker whatever the CLI does, so a signal must not look like a
    dead broker: it ends the wait, and the command says which request is still pending or
    running and how to pick it up (`replgate wait N`), exiting 4.

    The handler sets a flag and writes a byte to a pipe that the connection polls with its
    socket (conn_wake_on), so a signal that arrives between a check of the flag and the
    poll still ends the wait at once. */
#define _GNU_SOURCE                             //  pipe2
#include "client/cli.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_caught = 0;
static int s_pipe[2] = { -1, -1 };

static void
s_on_signal (int sig)
{
    int saved = errno;
    s_caught = sig;
    if (s_pipe[1] >= 0 && write (s_pipe[1], "!", 1) < 0) {
        //  The pipe is full: it is readable already, which is all the poll needs.
    }
    errno = saved;
}

void
cli_interrupt_catch (conn_t *conn)
{
    if (s_pipe[0] < 0 && pipe2 (s_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        //  Without the pipe the flag still ends the wait, only within a poll slice.
        fprintf (stderr, "replgate: pipe: %s\n", strerror (errno));
        s_pipe[0] = s_pipe[1] = -1;
    }
    //  No SA_RESTART: the poll must return EINTR rather than wait on.
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigemptyset (&sa.sa_mask);
    if (sigaction (SIGINT, &sa, NULL) != 0 || sigaction (SIGTERM, &sa, NULL) != 0)
        fprintf (stderr, "replgate: cannot catch signals: %s\n", strerror (errno));
    if (conn && s_pipe[0] >= 0)
        conn_wake_on (conn, s_pipe[0]);
}

bool
cli_interrupted (void)
{
    return s_caught != 0;
}

int
cli_interrupt_signal (void)
{
    return s_caught;
}

void
cli_interrupt_rearm (void)
{
    char drain [64];
    while (s_pipe[0] >= 0 && read (s_pipe[0], drain, sizeof drain) > 0)
        ;
    s_caught = 0;
}

//  How a request that has not ended is named to a person: waiting for approval (or for the
//  policy) is "pending", then "queued", then "running".
static const char *
s_stage (const char *state)
{
    if (state && (strcmp (state, "queued") == 0 || strcmp (state, "running") == 0))
        return state;
    return "pending";
}

int
cli_interrupt_report (cli_t *cli, int64_t id, json_t *row)
{
    if (row && cli->json)
        cli_print_json (row);
    if (row)
        fprintf (stderr, "replgate %s: interrupted: request %lld is still %s; `replgate wait %lld`\n",
                 cli->cmd, (long long) id, s_stage (json_string_value (json_object_get (row, "state"))),
                 (long long) id);
    else if (id > 0)
        fprintf (stderr, "replgate %s: interrupted before the broker answered: request %lld may "
                 "still be pending or running; `replgate wait %lld`\n", cli->cmd, (long long) id,
                 (long long) id);
    else if (cli->idem)
        fprintf (stderr, "replgate %s: interrupted before the broker answered: the request may "
                 "or may not have been recorded; submitting again with --idempotency-key %s "
                 "returns it if it was\n", cli->cmd, cli->idem);
    else
        fprintf (stderr, "replgate %s: interrupted before the broker answered: the request may "
                 "or may not have been recorded, and its id is not known (--idempotency-key "
                 "makes a retry safe)\n", cli->cmd);
    return EXIT_PENDING;
}
