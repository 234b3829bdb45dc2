/*  client/up.c: `replgate keygen` and `replgate up`, the local stack: a broker and one worker
    sharing a state directory, stopped together on Ctrl-C. */
#include "client/cli.h"
#include "common/keys.h"
#include "common/util.h"
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int
cmd_keygen (cli_t *cli)
{
    char err[512];
    if (cli->argc != 1 || !cli->role) {
        fprintf (stderr, "usage: replgate keygen NAME --role " KEYS_ROLES " [--groups a,b] [--dir DIR]\n");
        return EXIT_USAGE;
    }
    if (strcmp (cli->role, "broker") == 0 || keys_generate (cli->dir, cli->argv[0], cli->role, cli->groups,
                                                            err, sizeof err) != 0) {
        fprintf (stderr, "replgate keygen: %s\n", strcmp (cli->role, "broker") == 0
                 ? "the broker's own key is made by `replgate up`" : err);
        return EXIT_USAGE;
    }
    char private[1024], trusted[1024];
    keys_path_private (cli->dir, cli->argv[0], private, sizeof private);
    snprintf (trusted, sizeof trusted, "%s/keys/trusted/%s.cert", cli->dir, cli->argv[0]);
    if (cli->json) {
        json_t *out = json_pack ("{s:s, s:s, s:s?, s:s, s:s+, s:s}", "name", cli->argv[0],
                                 "role", cli->role, "groups", cli->groups, "cert", private,
                                 "secret", private, "_secret", "trusted", trusted);
        cli_print_json (out);
        json_decref (out);
    }
    else
        printf ("%s (+ _secret), trusted by the broker through %s\n", private, trusted);
    return 0;
}

#define UP_MAX_WORKERS 16

static volatile sig_atomic_t s_stop = 0;
static void s_on_signal (int sig) { (void) sig; s_stop = 1; }

static pid_t
s_spawn (char *const argv[])
{
    pid_t pid = fork ();
    if (pid == 0) {
        signal (SIGINT, SIG_DFL);
        signal (SIGTERM, SIG_DFL);
        execv (argv[0], argv);
        fprintf (stderr, "replgate up: cannot run %s: %s\n", argv[0], strerror (errno));
        _exit (127);
    }
    if (pid < 0)
        fprintf (stderr, "replgate up: fork: %s\n", strerror (errno));
    return pid;
}

//  Stops the children: SIGTERM (czmq turns it into a clean exit), SIGKILL after 3 s.
static void
s_stop_all (pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0)
            kill (pids[i], SIGTERM);
    int64_t deadline = clock_mono_ms () + 3000;
    int alive = n;
    while (alive > 0) {
        alive = 0;
        for (int i = 0; i < n; i++) {
            if (pids[i] <= 0)
                continue;
            if (waitpid (pids[i], NULL, WNOHANG) == pids[i])
                pids[i] = 0;
            else if (clock_mono_ms () > deadline) {
                kill (pids[i], SIGKILL);
                waitpid (pids[i], NULL, 0);
                pids[i] = 0;
            }
            else
                alive++;
        }
        if (alive)
            usleep (20000);
    }
}

int
cmd_up (cli_t *cli)
{
    char err[512];
    int port = cli->port > 0 ? cli->port : 7710;
    if (port > 65534) {
        fprintf (stderr, "replgate up: --port must leave room for PORT+1\n");
        return EXIT_USAGE;
    }
    char broker[PATH_MAX], worker[PATH_MAX];
    if (program_beside ("replgate-broker", broker, sizeof broker) != 0
        || program_beside ("replgate-worker", worker, sizeof worker) != 0) {
        fprintf (stderr, "replgate up: cannot find my own binary: %s\n", strerror (errno));
        return 1;
    }
    if (keys_ensure_local (cli->dir, err, sizeof err) != 0) {
        fprintf (stderr, "replgate up: %s\n", err);
        return 1;
    }
    char clients[64], workers[64];
    char key[PATH_MAX], server[PATH_MAX], slots[16];
    snprintf (clients, sizeof clients, "tcp://127.0.0.1:%d", port);
    snprintf (workers, sizeof workers, "tcp://127.0.0.1:%d", port + 1);
    snprintf (slots, sizeof slots, "%d", cli->slots > 0 ? cli->slots : 4);
    keys_path_private (cli->dir, "worker", key, sizeof key);
    keys_path_broker (cli->dir, server, sizeof server);
    //  Without SA_RESTART: the wait below must return on a signal sent to this process alone
    //  (kill -INT), not only on Ctrl-C, which reaches the children too.
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigemptyset (&sa.sa_mask);
    if (sigaction (SIGINT, &sa, NULL) != 0 || sigaction (SIGTERM, &sa, NULL) != 0) {
        fprintf (stderr, "replgate up: cannot catch signals: %s\n", strerror (errno));
        return 1;
    }
    int nworkers = cli->workers > 0 ? cli->workers : 1;
    pid_t pids[1 + UP_MAX_WORKERS] = { 0 };
    char *bargv[] = { broker, "--dir", (char *) cli->dir, "--clients", clients, "--workers", workers, NULL };
    pids[0] = s_spawn (bargv);
    for (int i = 1; i <= nworkers && pids[0] > 0; i++) {
        //  One worker keeps the name "local"; several are local-1, local-2... Given
        //  --uid-base B, worker i takes B + 1000 (i - 1); else each claims a free range.
        char name[32], base[24];
        snprintf (name, sizeof name, nworkers == 1 ? "local" : "local-%d", i);
        snprintf (base, sizeof base, "%lld", (long long) cli->uid_base + 1000LL * (i - 1));
        char *wargv[] = { worker, "--broker", workers, "--key", key, "--server-key", server,
                          "--slots", slots, "--name", name, cli->uid_base ? "--uid-base" : NULL,
                          base, NULL };
        pids[i] = s_spawn (wargv);
    }
    int rc = 0;
    bool started = true;
    for (int i = 0; i <= nworkers; i++)
        started &= pids[i] > 0;
    if (started) {
        fprintf (stderr, "replgate up: broker on %s, %d worker%s on %s, state in %s (Ctrl-C stops)\n",
                 clients, nworkers, nworkers == 1 ? "" : "s", workers, cli->dir);
        while (!s_stop) {
            int status;
            pid_t dead = waitpid (-1, &status, 0);
            int which = -1;
            for (int i = 0; i <= nworkers && dead > 0; i++)
                which = pids[i] == dead ? i : which;
            if (which >= 0) {
                fprintf (stderr, "replgate up: %s exited (%s %d); stopping\n",
                         which == 0 ? "the broker" : "a worker",
                         WIFSIGNALED (status) ? "signal" : "status",
                         WIFSIGNALED (status) ? WTERMSIG (status) : WEXITSTATUS (status));
                pids[which] = 0;
                rc = 1;
                break;
            }
        }
    }
    s_stop_all (pids, 1 + nworkers);
    fprintf (stderr, "replgate up: stopped\n");
    return rc;
}
