/*  worker/spawn.c: starts one interpreter process and wires its descriptors.
    There is no sandbox yet: the child runs as the worker's user with the worker's view of the
    file system. The later sandbox wraps exactly spawn_interpreter(), so every decision about
    how the process is made belongs here.
    Between fork() and execve() only async-signal-safe calls are made: the worker has ZeroMQ
    threads, and any lock they held at fork time would stay locked in the child forever. */
#define _GNU_SOURCE
#include "worker/spawn.h"
#include "common/util.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_FDS 5             //  0..4 as the child sees them
#define PIPE_BYTES (1 << 20)    //  big output pipes mean fewer wake-ups per MiB drained

//  Where the child failed, sent back to the parent over the exec-error pipe.
typedef struct {
    int stage;
    int err;
} s_failure_t;

static const char *s_stages[] = { "setsid", "prctl", "parent died", "dup", "dup2", "chdir",
                                  "close_range", "execve" };

const char *
spawn_sandbox_name (void)
{
    return "none";
}

//  --------------------------------------------------------------------------
//  Finds name on SPAWN_PATH, into out. Names with a slash are taken as they are.

static int
s_which (const char *name, char *out, size_t size)
{
    if (strchr (name, '/')) {
        snprintf (out, size, "%s", name);
        return access (out, X_OK);
    }
    const char *dir = SPAWN_PATH;
    while (*dir) {
        size_t len = strcspn (dir, ":");
        int n = snprintf (out, size, "%.*s/%s", (int) len, dir, name);
        if (n > 0 && (size_t) n < size && access (out, X_OK) == 0)
            return 0;
        dir += len + (dir [len] == ':');
    }
    return -1;
}

static void
s_close_all (int *fds, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (fds [i] >= 0) {
            close (fds [i]);
            fds [i] = -1;
        }
}

//  --------------------------------------------------------------------------
//  Makes /dev/null and the four pipes. child[] gets the ends that become fds 0..4 in
//  the child; fds gets the worker's ends, non-blocking.

static int
s_make_pipes (int child [CHILD_FDS], spawn_fds_t *fds)
{
    int mine [4] = { -1, -1, -1, -1 };
    for (int i = 0; i < CHILD_FDS; i++)
        child [i] = -1;
    child [0] = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    if (child [0] < 0) {
        log_error ("spawn: open /dev/null: %s", strerror (errno));
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        int p [2];
        if (pipe2 (p, O_CLOEXEC | O_NONBLOCK) < 0) {
            log_error ("spawn: pipe2: %s", strerror (errno));
            s_close_all (child, CHILD_FDS);
            s_close_all (mine, 4);
            return -1;
        }
        bool child_reads = (i == 2);    //  only the command pipe flows towards the child
        child [i + 1] = child_reads ? p [0] : p [1];
        mine [i] = child_reads ? p [1] : p [0];
        //  The child's ends must block: interpreters do not expect EAGAIN on stdout.
        int flags = fcntl (child [i + 1], F_GETFL);
        if (flags < 0 || fcntl (child [i + 1], F_SETFL, flags & ~O_NONBLOCK) < 0) {
            log_error ("spawn: fcntl: %s", strerror (errno));
            s_close_all (child, CHILD_FDS);
            s_close_all (mine, 4);
            return -1;
        }
    }
    //  Best effort: a bigger pipe is an optimisation, the default 64 KiB works.
    fcntl (mine [0], F_SETPIPE_SZ, PIPE_BYTES);
    fcntl (mine [1], F_SETPIPE_SZ, PIPE_BYTES);
    fds->out = mine [0];
    fds->err = mine [1];
    fds->cmd = mine [2];
    fds->res = mine [3];
    return 0;
}

//  --------------------------------------------------------------------------
//  Runs in the child; never returns. Async-signal-safe calls only.

static void
s_fail (int errfd, int stage)
{
    s_failure_t f = { stage, errno };
    ssize_t rc = write (errfd, &f, sizeof f);
    (void) rc;
    _exit (127);
}

static void
s_child (const int child [CHILD_FDS], int errfd, const char *path, char *const argv [],
         char *const envp [], const char *workdir, pid_t parent)
{
    //  Own session and group, so one killpg() reaches everything the snippet started.
    if (setsid () < 0)
        s_fail (errfd, 0);
    if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0)
        s_fail (errfd, 1);
    if (getppid () != parent)   //  the worker died before the death signal was armed
        s_fail (errfd, 2);
    //  Ignored signals and the mask survive execve; the interpreter must get defaults.
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset (&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction (sig, &dfl, NULL);    //  fails harmlessly for SIGKILL, SIGSTOP, RT slots
    //  Lift every end above the target numbers first so dup2 never clobbers a source.
    int high [CHILD_FDS];
    for (int i = 0; i < CHILD_FDS; i++)
        if ((high [i] = fcntl (child [i], F_DUPFD_CLOEXEC, CHILD_FDS + 1)) < 0)
            s_fail (errfd, 3);
    for (int i = 0; i < CHILD_FDS; i++)
        if (dup2 (high [i], i) < 0)     //  dup2 clears close-on-exec on the new number
            s_fail (errfd, 4);
    if (chdir (workdir) < 0 && chdir ("/") < 0)
        s_fail (errfd, 5);
    struct rlimit no_core = { 0, 0 };
    setrlimit (RLIMIT_CORE, &no_core);
    //  Everything above 4 closes at exec; the error pipe stays usable until then.
    if (close_range (CHILD_FDS, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        struct rlimit nofile;
        long max = getrlimit (RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536
                 ? (long) nofile.rlim_cur : 65536;
        for (long fd = CHILD_FDS; fd < max; fd++)
            if (fd != errfd)
                fcntl ((int) fd, F_SETFD, FD_CLOEXEC);
    }
    execve (path, argv, envp);
    s_fail (errfd, 7);
}

//  --------------------------------------------------------------------------
//  Waits for the child to exec or fail; 0 when it exec'd.

static int
s_await_exec (int errfd, pid_t pid, const char *path)
{
    s_failure_t f;
    ssize_t n;
    do
        n = read (errfd, &f, sizeof f);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return 0;               //  closed by a successful execve
    if (n == (ssize_t) sizeof f && f.stage >= 0 && f.stage < 8)
        log_error ("spawn %s: %s: %s", path, s_stages [f.stage], strerror (f.err));
    else
        log_error ("spawn %s: lost contact with the child: %s", path,
                   n < 0 ? strerror (errno) : "short read");
    while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return -1;
}

pid_t
spawn_interpreter (const spawn_spec_t *spec, spawn_fds_t *fds)
{
    char path [PATH_MAX];
    if (s_which (spec->argv [0], path, sizeof path) < 0) {
        log_error ("spawn: %s not found on %s", spec->argv [0], SPAWN_PATH);
        return -1;
    }
    const char *workdir = spec->workdir ? spec->workdir : "/tmp";
    char home [PATH_MAX + 8];
    snprintf (home, sizeof home, "HOME=%s", workdir);
    char *const envp [] = { "PATH=" SPAWN_PATH, home, "LANG=C.UTF-8", "PYTHONUNBUFFERED=1",
                            "PAGER=cat", "TERM=dumb", NULL };
    int child [CHILD_FDS];
    if (s_make_pipes (child, fds) < 0)
        return -1;
    int mine [4] = { fds->out, fds->err, fds->cmd, fds->res };
    int errpipe [2];
    if (pipe2 (errpipe, O_CLOEXEC) < 0) {
        log_error ("spawn: pipe2: %s", strerror (errno));
        s_close_all (child, CHILD_FDS);
        s_close_all (mine, 4);
        return -1;
    }
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0)
        s_child (child, errpipe [1], path, (char *const *) spec->argv, envp, workdir, parent);
    int fork_errno = errno;
    close (errpipe [1]);
    s_close_all (child, CHILD_FDS);
    int rc = pid < 0 ? -1 : s_await_exec (errpipe [0], pid, path);
    close (errpipe [0]);
    if (pid < 0)
        log_error ("spawn %s: fork: %s", path, strerror (fork_errno));
    if (rc < 0) {
        s_close_all (mine, 4);
        return -1;
    }
    return pid;
}
