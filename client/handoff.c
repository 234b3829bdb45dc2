/*  client/handoff.c: the commands that read a state dir's database or a policy file
    themselves (policy, history, verify, replay, export), as `replgate` alone defines them.
    They need SQLite, PCRE2 and libunistring, and a program pays for loading and relocating
    its libraries at every start whether it calls them or not: about half a millisecond,
    which every submit paid. The commands that reach the broker need none of the three. So
    `replgate` defines these five here under their own names, each handing its command line,
    as typed, to `replgate-local` beside it: the same client/main.c linked with the store and
    the policy engine, which runs the command itself. Its options were checked here already,
    and --help never gets this far, so only a command that runs pays for the second start. */
#include "client/cli.h"
#include "common/util.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

//  As a shell answers a command it cannot find (and client/lazy.c a library it cannot load).
#define EXIT_NO_PROGRAM 127

static int
s_hand_over (cli_t *cli)
{
    char path[PATH_MAX];
    if (program_beside ("replgate-local", path, sizeof path) != 0) {
        fprintf (stderr, "replgate %s: cannot find my own binary: %s\n", cli->cmd, strerror (errno));
        return EXIT_NO_PROGRAM;
    }
    fflush (NULL);
    execv (path, cli->given);
    fprintf (stderr, "replgate %s: cannot run %s: %s\n", cli->cmd, path, strerror (errno));
    return EXIT_NO_PROGRAM;
}

int cmd_policy (cli_t *cli) { return s_hand_over (cli); }
int cmd_history (cli_t *cli) { return s_hand_over (cli); }
int cmd_verify (cli_t *cli) { return s_hand_over (cli); }
int cmd_replay (cli_t *cli) { return s_hand_over (cli); }
int cmd_export (cli_t *cli) { return s_hand_over (cli); }
