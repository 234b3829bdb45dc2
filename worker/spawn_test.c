/*  worker/spawn_test.c: spawn.c's self-test, through its public calls only. As root: a real
    sandbox checked from inside with a shell script, a prepared sandbox claimed, the warm
    pool's hand-over. */
#include "worker/spawn.h"
#include "common/check.h"
#include "common/util.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void
s_close_fds (spawn_fds_t *fds)
{
    int all [5] = { fds->out, fds->err, fds->cmd, fds->res, fds->status };
    for (int i = 0; i < 5; i++)
        if (all [i] >= 0)
            close (all [i]);
}

//  Runs script with bash in a fresh sandbox; its exit code (128 + signal if killed).
static int
s_run_inside (const char *script)
{
    const char *argv [] = { "bash", "--norc", "--noprofile", "-c", script, NULL };
    spawn_spec_t spec = { NULL, argv, 0, false };
    spawn_fds_t fds;
    spawn_box_t *box = NULL;
    pid_t pid = spawn_interpreter (&spec, &fds, &box);
    if (pid < 0)
        return -1;
    int status = 0;
    while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    status = spawn_exit_status (&fds, status);
    char err [4096];
    ssize_t n = read (fds.err, err, sizeof err - 1);
    if (n > 0) {
        err [n] = 0;
        fprintf (stderr, "  inside: %s", err);
    }
    s_close_fds (&fds);
    spawn_release (&box);
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

int
spawn_test (void)
{
    if (geteuid () != 0) {
        fprintf (stderr, "  spawn: not root, sandbox self-test skipped\n");
        return 0;
    }
    spawn_config_t config = { true, 210000, 2, 1, 1, 256, 64, 16, NULL, CGROUP_NONE, NULL, NULL, 1000 };
    CHECK (spawn_setup (&config) == 0);
    CHECK (strcmp (spawn_sandbox_name (), "none") != 0);
    //  Each line fails the script (exit 1) with a message on stderr.
    const char *script =
        "set -e; f() { echo \"$1\" >&2; exit 1; }\n"
        "[ \"$(id -u):$(id -g)\" = 1000:1000 ] || f ids\n"
        "[ \"$(cat /proc/self/status | grep ^CapEff | tr -d ' \\t')\" = CapEff:0000000000000000 ] || f caps\n"
        "grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status || f nnp\n"
        "[ ! -e /sys/kernel ] && [ ! -e /etc/shadow ] && [ ! -e /var ] || f paths\n"
        "[ \"$(pwd)\" = /work ] && touch /work/x /tmp/y || f work\n"
        "! touch /usr/x 2>/dev/null && ! touch /x 2>/dev/null || f readonly\n"
        "[ \"$(ls /proc | grep -c '^[0-9]')\" -le 6 ] || f pids\n"
        "[ \"$(ls /proc/self/fd | wc -l)\" -le 6 ] || f fds\n";
    CHECK (s_run_inside (script) == 0);
    //  One sandbox prepared (config.prepare), then no more; a start claims it, whatever
    //  it runs, and the next call prepares its replacement.
    CHECK (spawn_prepare ());
    CHECK (!spawn_prepare ());
    for (int i = 0; i < 500 && spawn_prepared () == 0; i++)
        usleep (10000);         //  its move into the cgroup runs on a thread
    CHECK (spawn_prepared () == 1);
    CHECK (s_run_inside ("[ \"$(id -u)\" = 1000 ] && [ ! -e /var ]") == 0);
    CHECK (spawn_prepared () == 0);
    CHECK (spawn_prepare ());
    //  The warm pool hands over a started interpreter, then refills.
    const char *argv [] = { "bash", "--norc", "--noprofile", NULL };
    spawn_spec_t spec = { "shell", argv, 0, false };
    CHECK (spawn_refill (&spec));
    CHECK (!spawn_refill (&spec));
    spawn_fds_t fds;
    spawn_box_t *box = NULL;
    pid_t pid = spawn_interpreter (&spec, &fds, &box);
    //  It came from the pool (which now wants a refill), not from a fresh start: a count,
    //  not a time, so that a loaded machine cannot fail it.
    CHECK (pid > 0 && box != NULL);
    CHECK (spawn_refill (&spec));
    if (pid > 0) {
        kill (pid, SIGKILL);
        while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
            ;
        s_close_fds (&fds);
        spawn_release (&box);
    }
    spawn_shutdown ();
    return 0;
}
