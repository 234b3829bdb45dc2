/*  worker/spawn.c: starts one interpreter process, sandboxed, and wires its descriptors;
    owns the boxes (per-slot host uid + cgroup) and the warm pool.

    Sandboxed start, in two halves. Preparing: clone() into new user, pid, mount, net, ipc
    and uts namespaces; the worker writes the child's uid/gid maps (1000 inside = the box's
    unprivileged host uid; host root is never mapped) and says so with one byte on the go
    pipe, then moves the child into the box's cgroup (on a thread), while the child builds
    the part of its jail every session shares. Claiming: the worker sends the claim
    (program, arguments, scratch size: claim.h); sandbox_enter() adds the scratch area,
    enters the jail and execs replgate-init, which starts the interpreter. Failures come back over the error pipe
    with the step that failed. Idle moments prepare a few sandboxes ahead (--prepare),
    because the cgroup move is the slowest step of a start: on cgroup v1 every migration
    waits for an RCU grace period (10-20 ms), longer than the interpreter's own start.
    Between clone and exec only async-signal-safe calls are made: the worker has ZeroMQ
    threads, and any lock they held would stay locked in the child forever.

    Unsandboxed start (--no-sandbox): fork, own session, death signal, same descriptors
    and environment, no jail. Results then say sandbox "none". */
#define _GNU_SOURCE
#include "worker/spawn.h"
#include "worker/sandbox.h"
#include "worker/claim.h"
#include "worker/seccomp.h"
#include "worker/shellhost.h"
#include "common/util.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_FDS 6             //  0..4 for the interpreter, 5 the init's status
#define PIPE_BYTES (1 << 20)    //  big output pipes mean fewer wake-ups per MiB drained
#define MAX_ARGS 16
#define MAX_ENV 64          //  extra variables (the worker's secrets)
#define NS_FLAGS (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC \
                  | CLONE_NEWUTS)

struct _spawn_box_t {
    unsigned uid;
    cgroup_t *cg;
    bool used;
    cgroup_stats_t start;       //  counters when the running snippet started
    uint64_t born_cpu_ns;       //  the CPU counter before the session's first process joined
};

typedef struct {
    const char *lang;
    int64_t tmp_mb;
    pid_t pid;                  //  0: empty
    spawn_fds_t fds;
    spawn_box_t *box;
} s_spare_t;

//  A sandbox prepared ahead of its session: in its namespaces, id-mapped, in its box's
//  cgroup, blocked on its go pipe until claimed. When pid is 0 nothing else is valid.
typedef struct {
    pid_t pid;
    spawn_box_t *box;           //  marked used while prepared
    int go;                     //  write end of the go pipe: the claim goes down it
    int err;                    //  read end of the error pipe
    spawn_fds_t fds;            //  the worker's ends of the interpreter's pipes
    bool admitting;             //  `admitter` is moving it into its cgroup: join first
    pthread_t admitter;
    atomic_int admitted;        //  set by the admitter: 1 done, -1 failed
} s_prepared_t;

static struct {
    bool ready;
    spawn_config_t config;
    sandbox_t *sandbox;         //  NULL when unsandboxed
    scfilter_t *filter;
    cgroup_version_t cgroup;
    char cgroup_rel [64];       //  the worker's own group: replgate/w<pid>
    char name [64];
    spawn_box_t *boxes;
    size_t box_count;
    char init [PATH_MAX];       //  replgate-init on the host
    s_spare_t *spares;
    size_t spare_count;
    s_prepared_t *prepared;
    size_t prepared_count;
} s_self;

const char *
spawn_sandbox_name (void)
{
    return s_self.sandbox ? s_self.name : "none";
}

//  --------------------------------------------------------------------------
//  Helpers shared by both ways of starting.

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

static void
s_close_fds (spawn_fds_t *fds)
{
    int all [5] = { fds->out, fds->err, fds->cmd, fds->res, fds->status };
    s_close_all (all, 5);
    *fds = (spawn_fds_t) { -1, -1, -1, -1, -1 };
}

//  Makes /dev/null and the five pipes. child[] gets the ends that become fds 0..5 in the
//  child; fds gets the worker's ends, non-blocking.
static int
s_make_pipes (int child [CHILD_FDS], spawn_fds_t *fds)
{
    int mine [5] = { -1, -1, -1, -1, -1 };
    for (int i = 0; i < CHILD_FDS; i++)
        child [i] = -1;
    child [0] = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    if (child [0] < 0) {
        log_error ("spawn: open /dev/null: %s", strerror (errno));
        return -1;
    }
    for (int i = 0; i < 5; i++) {
        int p [2];
        if (pipe2 (p, O_CLOEXEC | O_NONBLOCK) < 0) {
            log_error ("spawn: pipe2: %s", strerror (errno));
            s_close_all (child, CHILD_FDS);
            s_close_all (mine, 5);
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
            s_close_all (mine, 5);
            return -1;
        }
    }
    //  Best effort: a bigger pipe is an optimisation, the default 64 KiB works.
    fcntl (mine [0], F_SETPIPE_SZ, PIPE_BYTES);
    fcntl (mine [1], F_SETPIPE_SZ, PIPE_BYTES);
    *fds = (spawn_fds_t) { mine [0], mine [1], mine [2], mine [3], mine [4] };
    return 0;
}

static void
s_reap (pid_t pid)
{
    while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

//  True if pid is on its way out (PF_EXITING in /proc/PID/stat): killed, its descriptors
//  may already be closed while it is not a zombie yet.
static bool
s_exiting (pid_t pid)
{
    char path [64], buf [1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read (fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close (fd);
    if (n <= 0)
        return false;
    buf [n] = 0;
    char *p = strrchr (buf, ')');       //  then: state ppid pgrp session tty tpgid flags
    for (int field = 0; p && field < 7; field++)
        p = strchr (p + 1, ' ');
    return p && (strtoul (p + 1, NULL, 10) & 0x4);
}

//  Waits for child pid to exec or report a failure (a struct of `size` bytes). 0 when it
//  exec'd, -1 with the report, -2 if it died without one.
static int
s_await_exec (int errfd, pid_t pid, void *failure, size_t size)
{
    ssize_t n;
    do
        n = read (errfd, failure, size);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t) size)
        return -1;
    if (n != 0)
        return -2;
    //  End of file: execve closed the pipe, or the child was killed. A program that exec'd
    //  and already ended exits on its own; a signal this early means it never started.
    siginfo_t info = { .si_pid = 0 };
    int how = s_exiting (pid) ? WEXITED | WNOWAIT : WEXITED | WNOHANG | WNOWAIT;
    if (waitid (P_PID, (id_t) pid, &info, how) == 0 && info.si_pid == pid
    &&  (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED))
        return -2;
    return 0;
}

//  --------------------------------------------------------------------------
//  Unsandboxed: the child runs as the worker's user with the worker's view of the host.

static const char *s_plain_stages [] = { "setsid", "prctl", "parent died", "dup", "dup2",
                                         "chdir", "close_range", "execve" };

static void __attribute__ ((noreturn))
s_plain_fail (int errfd, int stage)
{
    int f [2] = { stage, errno };
    ssize_t rc = write (errfd, f, sizeof f);
    (void) rc;
    _exit (127);
}

static void __attribute__ ((noreturn))
s_plain_child (const int child [CHILD_FDS], int errfd, const char *path, char *const argv [],
               char *const envp [], pid_t parent)
{
    //  Own session and group, so one killpg() reaches everything the snippet started.
    if (setsid () < 0)
        s_plain_fail (errfd, 0);
    if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0)
        s_plain_fail (errfd, 1);
    if (getppid () != parent)   //  the worker died before the death signal was armed
        s_plain_fail (errfd, 2);
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset (&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction (sig, &dfl, NULL);
    int high [5];
    for (int i = 0; i < 5; i++)
        if ((high [i] = fcntl (child [i], F_DUPFD_CLOEXEC, CHILD_FDS + 1)) < 0)
            s_plain_fail (errfd, 3);
    for (int i = 0; i < 5; i++)
        if (dup2 (high [i], i) < 0)
            s_plain_fail (errfd, 4);
    if (chdir ("/tmp") < 0 && chdir ("/") < 0)
        s_plain_fail (errfd, 5);
    struct rlimit no_core = { 0, 0 };
    setrlimit (RLIMIT_CORE, &no_core);
    if (close_range (5, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        s_plain_fail (errfd, 6);
    execve (path, argv, envp);
    s_plain_fail (errfd, 7);
}

static pid_t
s_spawn_plain (const char *path, char *const argv [], char *const envp [], int child [CHILD_FDS],
               int errpipe [2])
{
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0)
        s_plain_child (child, errpipe [1], path, argv, envp, parent);
    if (pid < 0) {
        log_error ("spawn %s: fork: %s", path, strerror (errno));
        return -1;
    }
    close (errpipe [1]);
    errpipe [1] = -1;
    int f [2];
    int rc = s_await_exec (errpipe [0], pid, f, sizeof f);
    if (rc == 0)
        return pid;
    if (rc == -1 && f [0] >= 0 && f [0] < 8)
        log_error ("spawn %s: %s: %s", path, s_plain_stages [f [0]], strerror (f [1]));
    else
        log_error ("spawn %s: lost contact with the child", path);
    s_reap (pid);
    return -1;
}

//  --------------------------------------------------------------------------
//  Sandboxed.

static int
s_write_proc (pid_t pid, const char *file, const char *text)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/%s", (int) pid, file);
    int fd = open (path, O_WRONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : write (fd, text, strlen (text));
    int err = errno;
    if (fd >= 0)
        close (fd);
    if (n == (ssize_t) strlen (text))
        return 0;
    log_error ("spawn: write '%s' to %s: %s", text, path, n < 0 ? strerror (err) : "short write");
    return -1;
}

//  The worker's half of preparing, first part: the id maps. 0, or -1 (logged).
static int
s_map_ids (pid_t pid, spawn_box_t *box)
{
    char map [64];
    snprintf (map, sizeof map, "%d %u 1\n", SANDBOX_UID, box->uid);
    if (s_write_proc (pid, "uid_map", map) < 0 || s_write_proc (pid, "gid_map", map) < 0)
        return -1;
    return 0;
}

//  Second part, on a thread of its own for sandboxes prepared ahead: the move into the
//  cgroup is the slow step (an RCU grace period on v1) and must not stall the worker's
//  loop. It touches only the box's cgroup files and the flag.
static void *
s_admitter (void *arg)
{
    s_prepared_t *p = (s_prepared_t *) arg;
    //  The box's counter never goes back: a session's own total starts from here.
    p->box->born_cpu_ns = cgroup_cpu_ns (p->box->cg);
    atomic_store (&p->admitted, cgroup_attach (p->box->cg, p->pid) == 0 ? 1 : -1);
    return NULL;
}

//  Waits for p's admitter, if any: true if p is in its cgroup.
static bool
s_admitted (s_prepared_t *p)
{
    if (p->admitting) {
        pthread_join (p->admitter, NULL);
        p->admitting = false;
    }
    return atomic_load (&p->admitted) == 1;
}

static spawn_box_t *
s_free_box (void)
{
    for (size_t i = 0; i < s_self.box_count; i++)
        if (!s_self.boxes [i].used)
            return &s_self.boxes [i];
    return NULL;
}

//  The interpreter's environment: a short whitelist, then the worker's secrets. envp needs
//  MAX_ENV + 8 entries; home holds its HOME.
static void
s_environment (char **envp, char home [64])
{
    snprintf (home, 64, "HOME=%s", s_self.sandbox ? SANDBOX_WORKDIR : "/tmp");
    const char *fixed [] = { "PATH=" SPAWN_PATH, home, "LANG=C.UTF-8", "PYTHONUNBUFFERED=1",
                             "PAGER=cat", "TERM=dumb", "USER=user" };
    size_t envc = 0;
    for (; envc < sizeof fixed / sizeof fixed [0]; envc++)
        envp [envc] = (char *) fixed [envc];
    for (size_t i = 0; s_self.config.extra_env && s_self.config.extra_env [i] && i < MAX_ENV; i++)
        envp [envc++] = s_self.config.extra_env [i];
    envp [envc] = NULL;
}

static void
s_prepared_drop (s_prepared_t *p)
{
    if (!p->pid)
        return;
    s_admitted (p);
    kill (p->pid, SIGKILL);
    s_reap (p->pid);
    int ends [2] = { p->go, p->err };
    s_close_all (ends, 2);
    s_close_fds (&p->fds);
    spawn_release (&p->box);
    *p = (s_prepared_t) { .pid = 0 };
}

//  Prepares a sandbox in a free box (see the top of this file); ahead, its move into the
//  cgroup goes on in the background (s_admitted says when it is done). 0, or -1 (logged,
//  nothing left behind).
static int
s_prepare (s_prepared_t *p, bool ahead)
{
    spawn_box_t *box = s_free_box ();
    if (!box) {
        log_error ("spawn: every sandbox box is in use");
        return -1;
    }
    //  It waits, and its interpreter may wait in the warm pool, under the default limits;
    //  each snippet then sets its own.
    if (cgroup_limit (box->cg, (uint64_t) s_self.config.memory_mb << 20,
                      (uint64_t) s_self.config.pids, (uint64_t) s_self.config.cpu_milli) < 0)
        return -1;
    int child [CHILD_FDS], errpipe [2] = { -1, -1 }, go [2] = { -1, -1 };
    spawn_fds_t fds;
    if (s_make_pipes (child, &fds) < 0)
        return -1;
    if (pipe2 (errpipe, O_CLOEXEC) < 0 || pipe2 (go, O_CLOEXEC) < 0) {
        log_error ("spawn: pipe2: %s", strerror (errno));
        s_close_all (errpipe, 2);
        s_close_all (go, 2);
        s_close_all (child, CHILD_FDS);
        s_close_fds (&fds);
        return -1;
    }
    //  The child keeps its copy of this frame (envp, req) until it execs.
    char *envp [MAX_ENV + 8], home [64];
    s_environment (envp, home);
    sandbox_child_t req = { go [0], errpipe [1], child, (uint64_t) s_self.config.pids * 4 + 64,
                            envp, s_self.filter };
    pid_t pid = (pid_t) syscall (SYS_clone, NS_FLAGS | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0) {
        //  Our copy of the write end would hide the worker's death from us.
        close (go [1]);
        close (errpipe [0]);
        sandbox_enter (s_self.sandbox, &req);
    }
    int clone_errno = errno;
    close (go [0]);
    close (errpipe [1]);
    s_close_all (child, CHILD_FDS);
    if (pid < 0) {
        log_error ("spawn: clone into new namespaces: %s", strerror (clone_errno));
        close (go [1]);
        close (errpipe [0]);
        s_close_fds (&fds);
        return -1;
    }
    box->used = true;
    *p = (s_prepared_t) { pid, box, go [1], errpipe [0], fds, false, 0, 0 };
    //  Mapped: the child builds the shared part of its jail while the cgroup move goes on.
    if (s_map_ids (pid, box) < 0 || claim_write (p->go, "m", 1) < 0) {
        s_prepared_drop (p);
        return -1;
    }
    if (ahead && pthread_create (&p->admitter, NULL, s_admitter, p) == 0)
        p->admitting = true;
    else
        s_admitter (p);
    if (!p->admitting && atomic_load (&p->admitted) != 1) {
        s_prepared_drop (p);
        return -1;
    }
    return 0;
}

//  Sends a prepared sandbox its claim and waits for it to exec replgate-init. The pid, or
//  -1 (logged; the sandbox is dropped). On success the caller takes p's fds and box.
static pid_t
s_claim (s_prepared_t *p, char *const argv [], int64_t tmp_mb)
{
    static char record [CLAIM_MAX + 4];
    char scratch [128];
    sandbox_scratch_opts (tmp_mb, scratch, sizeof scratch);
    ssize_t len = claim_encode (record, sizeof record, (uint64_t) tmp_mb << 20, scratch, argv);
    if (len < 0) {
        log_error ("spawn: the command line exceeds a claim (%d arguments, %d KiB)",
                   CLAIM_ARGS, CLAIM_MAX >> 10);
        s_prepared_drop (p);
        return -1;
    }
    sandbox_failure_t f;
    int rc;
    if (claim_write (p->go, record, (size_t) len) == 0)
        rc = s_await_exec (p->err, p->pid, &f, sizeof f);
    else                        //  it died building its jail: its report says why, if it could
        rc = s_await_exec (p->err, p->pid, &f, sizeof f) == -1 ? -1 : -2;
    if (rc == 0) {
        //  Closed only now: until the exec, an open go pipe proves the worker is alive.
        int ends [2] = { p->go, p->err };
        s_close_all (ends, 2);
        return p->pid;
    }
    if (rc == -1) {
        char why [512];
        sandbox_describe (s_self.sandbox, &f, why, sizeof why);
        log_error ("sandbox: %s", why);
    }
    else
        log_error ("sandbox: lost contact with the child");
    s_prepared_drop (p);
    return -1;
}

static bool
s_alive (pid_t pid)
{
    siginfo_t info = { .si_pid = 0 };
    if (waitid (P_PID, (id_t) pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
        return false;
    return info.si_pid == 0;
}

//  A live prepared sandbox that is in its cgroup, or NULL; ones still being moved are
//  left alone, dead or failed ones cleared on the way.
static s_prepared_t *
s_take_prepared (void)
{
    for (size_t i = 0; i < s_self.prepared_count; i++) {
        s_prepared_t *p = &s_self.prepared [i];
        if (!p->pid || (p->admitting && atomic_load (&p->admitted) == 0))
            continue;
        if (s_admitted (p) && s_alive (p->pid))
            return p;
        log_warn ("spawn: a prepared sandbox died or could not join its cgroup");
        s_prepared_drop (p);
    }
    return NULL;
}

static pid_t
s_start_boxed (char *const argv [], int64_t tmp_mb, spawn_fds_t *fds, spawn_box_t **box_p)
{
    s_prepared_t fresh, *p = s_take_prepared ();
    pid_t pid = p ? s_claim (p, argv, tmp_mb) : -1;
    if (pid < 0) {              //  none waited, or it died waiting (killed, say): start anew
        p = &fresh;
        if (s_prepare (p, false) < 0 || (pid = s_claim (p, argv, tmp_mb)) < 0)
            return -1;
    }
    *fds = p->fds;
    *box_p = p->box;
    *p = (s_prepared_t) { .pid = 0 };
    return pid;
}

static pid_t
s_start_plain (const char *path, char *const argv [], spawn_fds_t *fds)
{
    int child [CHILD_FDS], errpipe [2];
    if (s_make_pipes (child, fds) < 0)
        return -1;
    if (pipe2 (errpipe, O_CLOEXEC) < 0) {
        log_error ("spawn: pipe2: %s", strerror (errno));
        s_close_all (child, CHILD_FDS);
        s_close_fds (fds);
        return -1;
    }
    close (child [5]);          //  no init, no status channel
    child [5] = -1;
    close (fds->status);
    fds->status = -1;
    char *envp [MAX_ENV + 8], home [64];
    s_environment (envp, home);
    pid_t pid = s_spawn_plain (path, argv, envp, child, errpipe);
    s_close_all (errpipe, 2);
    s_close_all (child, CHILD_FDS);
    if (pid < 0)
        s_close_fds (fds);
    return pid;
}

//  Starts a new interpreter. box_p gets its box (sandboxed).
static pid_t
s_start (const spawn_spec_t *spec, spawn_fds_t *fds, spawn_box_t **box_p)
{
    char path [PATH_MAX];
    if (s_which (spec->argv [0], path, sizeof path) < 0) {
        log_error ("spawn: %s not found on %s", spec->argv [0], SPAWN_PATH);
        return -1;
    }
    //  [replgate-init STATUS_FD] [INIT --shell] PROGRAM ARGS...
    char *argv [MAX_ARGS + 5];
    size_t argc = 0;
    if (s_self.sandbox) {
        argv [argc++] = "replgate-init";
        argv [argc++] = "5";
    }
    char *exe = path;
    if (spec->hosted) {
        exe = s_self.sandbox ? SANDBOX_INIT_PATH : s_self.init;
        argv [argc++] = exe;
        argv [argc++] = "--shell";
    }
    argv [argc++] = path;
    for (size_t i = 1; spec->argv [i] && argc < MAX_ARGS + 4; i++)
        argv [argc++] = (char *) spec->argv [i];
    argv [argc] = NULL;
    *box_p = NULL;
    if (!s_self.sandbox)
        return s_start_plain (exe, argv, fds);
    return s_start_boxed (argv, spec->tmp_mb > 0 ? spec->tmp_mb : s_self.config.tmp_mb, fds, box_p);
}

//  --------------------------------------------------------------------------
//  The warm pool and the session-facing calls.

static void
s_spare_drop (s_spare_t *spare)
{
    if (spare->pid > 0) {
        kill (spare->pid, SIGKILL);
        s_reap (spare->pid);
        //  An unsandboxed shell host made its directory in the host's /tmp when it started,
        //  and was killed before it could remove it (as a session's is, session.c).
        if (spare->lang && strcmp (spare->lang, "shell") == 0)
            spawn_sweep_shell (spare->pid);
    }
    s_close_fds (&spare->fds);
    spawn_release (&spare->box);
    spare->pid = 0;
}

pid_t
spawn_interpreter (const spawn_spec_t *spec, spawn_fds_t *fds, spawn_box_t **box)
{
    *box = NULL;
    if (!s_self.ready) {
        log_error ("spawn: refused: the sandbox was not set up (spawn_setup)");
        return -1;
    }
    for (size_t i = 0; spec->lang && i < s_self.spare_count; i++) {
        s_spare_t *spare = &s_self.spares [i];
        if (!spare->pid || strcmp (spare->lang, spec->lang) != 0
        ||  (spec->tmp_mb > 0 && spec->tmp_mb != spare->tmp_mb))
            continue;
        if (!s_alive (spare->pid)) {
            log_warn ("spawn: a warm %s interpreter died while waiting", spare->lang);
            s_spare_drop (spare);
            continue;
        }
        *fds = spare->fds;
        *box = spare->box;
        pid_t pid = spare->pid;
        *spare = (s_spare_t) { .pid = 0, .box = NULL };
        return pid;
    }
    return s_start (spec, fds, box);
}

bool
spawn_refill (const spawn_spec_t *spec)
{
    if (!s_self.ready || !spec->lang)
        return false;
    size_t have = 0;
    s_spare_t *empty = NULL;
    for (size_t i = 0; i < s_self.spare_count; i++) {
        s_spare_t *spare = &s_self.spares [i];
        if (spare->pid && strcmp (spare->lang, spec->lang) == 0)
            have++;
        else
        if (!spare->pid && !empty)
            empty = spare;
    }
    if (have >= s_self.config.warm || !empty
    ||  (s_self.sandbox && !s_free_box () && !s_take_prepared ()))
        return false;
    spawn_fds_t fds;
    spawn_box_t *box = NULL;
    pid_t pid = s_start (spec, &fds, &box);
    if (pid < 0)
        return false;
    *empty = (s_spare_t) { spec->lang, s_self.config.tmp_mb, pid, fds, box };
    return true;
}

bool
spawn_prepare (void)
{
    if (!s_self.ready || !s_self.sandbox)
        return false;
    for (size_t i = 0; i < s_self.prepared_count; i++)
        if (!s_self.prepared [i].pid)
            return s_free_box () && s_prepare (&s_self.prepared [i], true) == 0;
    return false;
}

size_t
spawn_prepared (void)
{
    size_t ready = 0;
    for (size_t i = 0; i < s_self.prepared_count; i++) {
        s_prepared_t *p = &s_self.prepared [i];
        if (p->pid && !(p->admitting && atomic_load (&p->admitted) == 0) && s_admitted (p))
            ready++;
    }
    return ready;
}

int
spawn_exit_status (const spawn_fds_t *fds, int wstatus)
{
    int status;
    if (fds->status >= 0 && read (fds->status, &status, sizeof status) == sizeof status)
        return status;
    return wstatus;             //  unsandboxed, or the init itself was killed
}

void
spawn_release (spawn_box_t **box_p)
{
    if (*box_p)
        (*box_p)->used = false;
    *box_p = NULL;
}

//  The temporary directory the shell host took: from the worker's TMPDIR for it, if any.
static const char *
s_shell_tmp (void)
{
    for (size_t i = 0; s_self.config.extra_env && s_self.config.extra_env [i]; i++) {
        const char *e = s_self.config.extra_env [i];
        if (strncmp (e, "TMPDIR=", 7) == 0)
            return shellhost_tmp (e + 7);
    }
    return "/tmp";
}

//  True if a shell host's directory `name` is one to remove: of host `pid`, or with pid 0 of
//  any host that is gone (the name holds its pid).
static bool
s_left_by (const char *name, pid_t pid)
{
    const char *prefix = ".replgate-shell-";
    if (strncmp (name, prefix, strlen (prefix)) != 0)
        return false;
    char *end;
    long host = strtol (name + strlen (prefix), &end, 10);
    if (*end != '-' || host <= 0)
        return false;
    return pid ? host == pid : kill ((pid_t) host, 0) < 0 && errno == ESRCH;
}

void
spawn_sweep_shell (pid_t pid)
{
    if (s_self.sandbox)
        return;
    DIR *tmp = opendir (s_shell_tmp ());
    if (!tmp)
        return;
    //  Through descriptors, never following a link, and only a directory of our own: the
    //  temporary directory is shared with whatever else runs on this host.
    struct dirent *e;
    while ((e = readdir (tmp))) {
        if (!s_left_by (e->d_name, pid))
            continue;
        int fd = openat (dirfd (tmp), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat (fd, &st) < 0 || st.st_uid != geteuid ()) {
            if (fd >= 0)
                close (fd);
            continue;
        }
        const char *files [] = { "state", "state.new", "snippet", "env" };
        for (size_t i = 0; i < sizeof files / sizeof files [0]; i++)
            if (unlinkat (fd, files [i], 0) < 0 && errno != ENOENT)
                log_warn ("spawn: removing %s/%s: %s", e->d_name, files [i], strerror (errno));
        close (fd);
        if (unlinkat (dirfd (tmp), e->d_name, AT_REMOVEDIR) < 0)
            log_warn ("spawn: removing %s: %s", e->d_name, strerror (errno));
    }
    closedir (tmp);
}

int
spawn_account_start (spawn_box_t *box, int64_t memory_mb, int64_t pids, int64_t cpu_milli)
{
    if (!box)
        return 0;
    if (cgroup_limit (box->cg, (uint64_t) memory_mb << 20, (uint64_t) pids,
                      (uint64_t) cpu_milli) < 0)
        return -1;
    cgroup_stats (box->cg, &box->start);
    cgroup_reset_peak (box->cg);
    return 0;
}

int
spawn_account (spawn_box_t *box, spawn_usage_t *usage)
{
    memset (usage, 0, sizeof *usage);
    cgroup_stats_t now;
    if (!box || cgroup_stats (box->cg, &now) < 0)
        return -1;
    usage->cpu_ms = now.cpu_ns > box->start.cpu_ns ? (double) (now.cpu_ns - box->start.cpu_ns) / 1e6 : 0;
    usage->session_cpu_ms = now.cpu_ns > box->born_cpu_ns
                          ? (double) (now.cpu_ns - box->born_cpu_ns) / 1e6 : 0;
    usage->peak_kb = (int64_t) (now.peak_bytes >> 10);
    usage->oom = now.oom_kills > box->start.oom_kills;
    usage->pids_limited = now.pids_refused > box->start.pids_refused;
    return 0;
}

//  --------------------------------------------------------------------------
//  Setup: every check the sandbox depends on, each failure named (fail closed).

//  replgate-init next to the running program, into out.
static void
s_default_init (char *out, size_t size)
{
    char self [PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        n = 0;
    self [n] = 0;
    char *slash = strrchr (self, '/');
    if (slash)
        *slash = 0;
    if (snprintf (out, size, "%s/replgate-init", n > 0 ? self : ".") >= (int) size)
        snprintf (out, size, "replgate-init");
}

static int
s_refuse (const char *check, const char *detail)
{
    log_error ("refusing to serve: sandbox check '%s' failed: %s "
               "(only --no-sandbox runs snippets unconfined)", check, detail);
    return -1;
}

//  Removes the empty groups of workers that died without cleaning up (SIGKILL): their
//  sessions died with them (parent-death signal), so only directories are left. On v1 the
//  dead workers are found in one hierarchy (controller) and removed from all.
static void
s_sweep_stale (const char *root, const char *controller)
{
    char base [PATH_MAX];
    snprintf (base, sizeof base, "%s%s%s/replgate", root, *controller ? "/" : "", controller);
    DIR *dir = opendir (base);
    if (!dir)
        return;
    struct dirent *e;
    while ((e = readdir (dir))) {
        long pid = e->d_name [0] == 'w' ? strtol (e->d_name + 1, NULL, 10) : 0;
        if (pid <= 0 || kill ((pid_t) pid, 0) == 0 || errno != ESRCH)
            continue;
        for (size_t i = 0; i < 1024; i++) {
            char rel [320], path [PATH_MAX + 360];
            snprintf (rel, sizeof rel, "replgate/%s/box%zu", e->d_name, i);
            snprintf (path, sizeof path, "%s/%s", base, rel + 9);
            if (access (path, F_OK) < 0)
                break;
            cgroup_remove_dir (root, s_self.cgroup, rel);
        }
        char rel [320];
        snprintf (rel, sizeof rel, "replgate/%s", e->d_name);
        cgroup_remove_dir (root, s_self.cgroup, rel);
    }
    closedir (dir);
}

//  A box for every session, warm interpreter and prepared sandbox that may exist at once.
static size_t
s_box_count (const spawn_config_t *c)
{
    return c->slots + 2 * c->warm + c->prepare;
}

static size_t
s_box_total (void)
{
    return s_box_count (&s_self.config);
}

//  Whether a uid range [base, last] leaves root, nobody and the top of the range out.
static bool
s_uids_ok (uint64_t base, uint64_t last)
{
    return base != 0 && !(last >= 65534 && base <= 65534) && last < 0xfffffffeULL;
}

uid_t
spawn_front_uid (const spawn_config_t *config)
{
    uint64_t uid = (uint64_t) config->uid_base + s_box_count (config);
    return s_uids_ok (uid, uid) ? (uid_t) uid : (uid_t) -1;
}

static int
s_make_boxes (char *why, size_t size)
{
    const spawn_config_t *c = &s_self.config;
    const char *root = c->cgroup_root ? c->cgroup_root : "/sys/fs/cgroup";
    s_self.cgroup = cgroup_detect (root, c->cgroup, why, size);
    if (s_self.cgroup == CGROUP_NONE)
        return -1;
    s_sweep_stale (root, s_self.cgroup == CGROUP_V1 ? "memory" : "");
    //  Workers from before the cpu controller was joined swept only the others: look there too.
    if (s_self.cgroup == CGROUP_V1)
        s_sweep_stale (root, "cpu");
    snprintf (s_self.cgroup_rel, sizeof s_self.cgroup_rel, "replgate/w%d", (int) getpid ());
    s_self.box_count = s_box_total ();
    s_self.boxes = calloc (s_self.box_count, sizeof *s_self.boxes);
    if (!s_self.boxes) {
        snprintf (why, size, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < s_self.box_count; i++) {
        char rel [96];
        snprintf (rel, sizeof rel, "%s/box%zu", s_self.cgroup_rel, i);
        s_self.boxes [i].uid = c->uid_base + (unsigned) i;
        if (!(s_self.boxes [i].cg = cgroup_new (root, s_self.cgroup, rel))) {
            snprintf (why, size, "cannot create cgroup %s under %s (cgroup v%d)", rel, root,
                      (int) s_self.cgroup);
            return -1;
        }
    }
    return 0;
}

//  Runs `true` in a real sandbox: proves namespaces, maps, mounts, pivot, filter and init.
static int
s_probe (char *why, size_t size)
{
    const char *argv [] = { "true", NULL };
    spawn_spec_t spec = { NULL, argv, 0, false };
    spawn_fds_t fds;
    spawn_box_t *box = NULL;
    pid_t pid = s_start (&spec, &fds, &box);
    if (pid < 0) {
        snprintf (why, size, "a trial sandbox could not start (the error above names the step)");
        return -1;
    }
    int status = 0;
    while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    status = spawn_exit_status (&fds, status);
    s_close_fds (&fds);
    spawn_release (&box);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
        snprintf (why, size, "`true` in a trial sandbox ended with status %#x", status);
        return -1;
    }
    return 0;
}

static int
s_setup_sandbox (void)
{
    const spawn_config_t *c = &s_self.config;
    char why [512] = "";
    if (geteuid () != 0)
        return s_refuse ("root", "the worker must run as root to give each slot its own host uid");
    FILE *f = fopen ("/proc/sys/user/max_user_namespaces", "r");
    long max_ns = 0;
    if (!f || fscanf (f, "%ld", &max_ns) != 1 || max_ns <= 0) {
        if (f)
            fclose (f);
        return s_refuse ("user namespaces", "/proc/sys/user/max_user_namespaces is 0 or unreadable");
    }
    fclose (f);
    //  The boxes' uids and, one past them, the front's (spawn_front_uid).
    uint64_t last = (uint64_t) c->uid_base + s_box_total ();
    if (!s_uids_ok (c->uid_base, last))
        return s_refuse ("uid range", "--uid-base must leave root (0), nobody (65534) and "
                         "the top of the range out of the slots' and the front's uids");
    if (!(s_self.sandbox = sandbox_new (s_self.init, why, sizeof why)))
        return s_refuse ("session init", why);
    if (!(s_self.filter = scfilter_new ()))
        return s_refuse ("seccomp", "libseccomp could not build the filter (see above)");
    if (s_make_boxes (why, sizeof why) < 0)
        return s_refuse ("cgroups", why);
    if (s_probe (why, sizeof why) < 0)
        return s_refuse ("trial sandbox", why);
    snprintf (s_self.name, sizeof s_self.name, "%s", SPAWN_SANDBOX_NAME);
    log_info ("sandbox: %s, cgroup v%d, host uids %u-%u, seccomp filter of %d instructions",
              s_self.name, (int) s_self.cgroup, c->uid_base, (unsigned) last - 1,
              scfilter_size (s_self.filter));
    return 0;
}

int
spawn_setup (const spawn_config_t *config)
{
    spawn_shutdown ();
    s_self.config = *config;
    if (config->init_path)
        snprintf (s_self.init, sizeof s_self.init, "%s", config->init_path);
    else
        s_default_init (s_self.init, sizeof s_self.init);
    s_self.spare_count = 2 * config->warm;
    s_self.prepared_count = config->sandbox ? config->prepare : 0;
    if ((s_self.spare_count && !(s_self.spares = calloc (s_self.spare_count, sizeof *s_self.spares)))
    ||  (s_self.prepared_count
         && !(s_self.prepared = calloc (s_self.prepared_count, sizeof *s_self.prepared))))
        return s_refuse ("memory", "out of memory");
    //  A write to the pipe of an interpreter that just died must be an EPIPE, not our death.
    signal (SIGPIPE, SIG_IGN);
    s_self.ready = true;        //  the probe goes through the ordinary start
    if (config->sandbox && s_setup_sandbox () < 0) {
        spawn_shutdown ();
        return -1;
    }
    spawn_sweep_shell (0);      //  what the hosts of a worker that was killed left
    return 0;
}

void
spawn_shutdown (void)
{
    for (size_t i = 0; i < s_self.spare_count; i++)
        s_spare_drop (&s_self.spares [i]);
    free (s_self.spares);
    for (size_t i = 0; i < s_self.prepared_count; i++)
        s_prepared_drop (&s_self.prepared [i]);
    free (s_self.prepared);
    for (size_t i = 0; i < s_self.box_count; i++)
        cgroup_destroy (&s_self.boxes [i].cg);
    free (s_self.boxes);
    if (s_self.cgroup != CGROUP_NONE && *s_self.cgroup_rel) {
        const char *root = s_self.config.cgroup_root ? s_self.config.cgroup_root : "/sys/fs/cgroup";
        cgroup_remove_dir (root, s_self.cgroup, s_self.cgroup_rel);
    }
    scfilter_destroy (&s_self.filter);
    sandbox_destroy (&s_self.sandbox);
    memset (&s_self, 0, sizeof s_self);
}
