/*  worker/drop.c: the front's confinement (see drop.h).

    Order matters. The bounding set is emptied while we still hold CAP_SETPCAP; the root
    moves while we hold CAP_SYS_CHROOT; then groups, gid, uid (which clears the permitted and
    effective sets); then capset() and the ambient set clear what a uid change leaves. The
    kernel resets the parent-death signal and dumpability on every credential change, so
    both are set after it. The seccomp filter comes last.

    The filter is an allowlist: any call not below kills the process (the back then sees
    the socketpair close and exits). Files cannot be opened at all (EACCES, so a library
    probing for a configuration file sees an ordinary refusal). The front is one thread
    (common/zmtp.c speaks to the broker in it), so neither threads nor other processes may
    be made: clone, fork and exec kill it, as do the epoll, eventfd and scheduling calls
    that only libzmq's I/O threads needed. Sanitizer builds log unlisted calls instead of
    killing, may open files, keep the host's root and stay dumpable: LeakSanitizer stops
    the world from a helper process with ptrace and reads /proc, which the release build
    never does. */
#define _GNU_SOURCE
#include "worker/drop.h"
#include "common/util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined (__SANITIZE_ADDRESS__)
#   define DROP_DEFAULT SCMP_ACT_LOG
#   define DROP_CHROOT false
#   define DROP_DUMPABLE 1
#   define DROP_SANITIZED true
#else
#   define DROP_DEFAULT SCMP_ACT_KILL_PROCESS
#   define DROP_CHROOT true
#   define DROP_DUMPABLE 0
#   define DROP_SANITIZED false
#endif

//  What the front's loop (poll, the socketpair, one TCP or IPC socket to the broker, its
//  reconnects), libsodium, jansson, glibc's allocator and our log call. Checked with strace
//  on live fronts through the core and fault suites.
static const char *s_allowed [] = {
    "read", "write", "readv", "writev", "close", "lseek", "fstat", "newfstatat", "fcntl",
    "poll", "ppoll",
    "connect", "getsockopt", "setsockopt", "getsockname", "getpeername", "shutdown",
    "sendto", "recvfrom", "sendmsg", "recvmsg",
    "mmap", "munmap", "mprotect", "brk", "madvise", "mremap", "futex",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
    "gettid", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "exit", "exit_group",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "clock_nanosleep", "nanosleep",
    "getrandom", "getrlimit", "prlimit64", "uname",
};

//  Refused with EACCES: every way of opening or probing a path.
static const char *s_no_files [] = {
    "open", "openat", "openat2", "creat", "stat", "lstat", "statx", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "mkdir", "mkdirat", "unlink", "unlinkat",
};

static int
s_add (scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned count,
       const struct scmp_arg_cmp *args)
{
    int nr = seccomp_syscall_resolve_name (name);
    if (nr == __NR_SCMP_ERROR)
        return 0;               //  unknown to this libseccomp, so to the kernels it serves
    int rc = seccomp_rule_add_array (ctx, action, nr, count, args);
    if (rc < 0)
        log_error ("front: seccomp rule for %s: %s", name, strerror (-rc));
    return rc < 0 ? -1 : 0;
}

//  The calls allowed only with some arguments: sockets of the broker's address families, and
//  signals to itself (abort()).
static int
s_add_narrow (scmp_filter_ctx ctx)
{
    int rc = 0;
    static const int domains [] = { AF_UNIX, AF_INET, AF_INET6 };
    for (int i = 0; i < 3; i++) {
        struct scmp_arg_cmp a = SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) domains [i]);
        rc |= s_add (ctx, SCMP_ACT_ALLOW, "socket", 1, &a);
    }
    struct scmp_arg_cmp self = SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) getpid ());
    rc |= s_add (ctx, SCMP_ACT_ALLOW, "tgkill", 1, &self);
    return rc ? -1 : 0;
}

static int
s_filter (void)
{
    scmp_filter_ctx ctx = seccomp_init (DROP_DEFAULT);
    if (!ctx) {
        log_error ("front: seccomp_init failed");
        return -1;
    }
    int rc = seccomp_attr_set (ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    for (size_t i = 0; rc == 0 && i < sizeof s_allowed / sizeof s_allowed [0]; i++)
        rc = s_add (ctx, SCMP_ACT_ALLOW, s_allowed [i], 0, NULL);
    for (size_t i = 0; rc == 0 && !DROP_SANITIZED && i < sizeof s_no_files / sizeof s_no_files [0]; i++)
        rc = s_add (ctx, SCMP_ACT_ERRNO (EACCES), s_no_files [i], 0, NULL);
    rc = rc ? rc : s_add_narrow (ctx);
    if (rc == 0 && (rc = seccomp_load (ctx)) < 0)
        log_error ("front: loading the seccomp filter: %s", strerror (-rc));
    seccomp_release (ctx);
    return rc ? -1 : 0;
}

bool
drop_needs_no_files (const char *endpoint)
{
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host)
        return false;
    char addr [64];
    size_t len = (size_t) (colon - host);
    bool v6 = host [0] == '[' && colon [-1] == ']';
    if (v6)
        host++, len -= 2;
    if (len >= sizeof addr)
        return false;
    memcpy (addr, host, len);
    addr [len] = 0;
    unsigned char out [16];
    return inet_pton (v6 ? AF_INET6 : AF_INET, addr, out) == 1;
}

//  An empty, unlinked directory as our root: nothing to read, nothing can be made in it.
static int
s_empty_root (void)
{
    char dir [] = "/tmp/replgate-front-XXXXXX";
    if (!mkdtemp (dir) || chdir (dir) < 0 || rmdir (dir) < 0 || chroot (".") < 0
    ||  chdir ("/") < 0) {
        log_error ("front: cannot move into an empty root (%s): %s", dir, strerror (errno));
        return -1;
    }
    return 0;
}

//  As root: every capability out of the bounding set, then groups, gid, uid.
static int
s_become (uid_t uid)
{
    for (int cap = 0; cap <= 63; cap++)
        if (prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
            log_error ("front: dropping capability %d from the bounding set: %s", cap,
                       strerror (errno));
            return -1;
        }
    if (setgroups (0, NULL) < 0 || setresgid (uid, uid, uid) < 0 || setresuid (uid, uid, uid) < 0) {
        log_error ("front: becoming uid/gid %u: %s", (unsigned) uid, strerror (errno));
        return -1;
    }
    if (setuid (0) == 0 || geteuid () == 0) {
        log_error ("front: could become root again after dropping it");
        return -1;
    }
    return 0;
}

int
drop_privileges (uid_t uid, bool empty_root, pid_t parent)
{
    bool root = geteuid () == 0;
    tzset ();                   //  strftime's time zone, read now: no file opens later
    if (root && empty_root && DROP_CHROOT && s_empty_root () < 0)
        return -1;
    if (root && s_become (uid) < 0)
        return -1;
    if (!root)
        log_info ("front: not run as root: keeping uid %u (no uid of its own, no empty root)",
                  (unsigned) getuid ());
    struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct none [2];
    memset (none, 0, sizeof none);
    if (syscall (SYS_capset, &head, none) < 0
    ||  prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0
    ||  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0
    ||  prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
    ||  prctl (PR_SET_DUMPABLE, DROP_DUMPABLE, 0, 0, 0) < 0) {
        log_error ("front: dropping capabilities: %s", strerror (errno));
        return -1;
    }
    //  The parent may have died before the death signal was armed.
    if (getppid () != parent) {
        log_error ("front: the worker's back is gone");
        return -1;
    }
    return s_filter ();
}

//  --------------------------------------------------------------------------
//  Self-test: the endpoint rule, and (as root) a forked child confined for real.

#include "common/check.h"
#include <fcntl.h>
#include <sys/wait.h>

#define TEST_UID 299999         //  a uid of no test range, for a child that lives milliseconds

static void *
s_thread (void *arg)
{
    return arg;
}

//  What the confined child does last, to be killed for: nothing, a socket of another
//  family, a thread, a process.
typedef enum { FORBID_NOTHING, FORBID_NETLINK, FORBID_THREAD, FORBID_FORK } forbid_t;

static int
s_confined_checks (pid_t parent, forbid_t forbidden)
{
    if (drop_privileges (TEST_UID, true, parent) < 0)
        return 10;
    //  Only calls on the list from here (groups, capabilities and prctl flags: test_privsep
    //  reads them from /proc).
    if (getuid () != TEST_UID || getgid () != TEST_UID)
        return 11;
    if (!DROP_SANITIZED && (open ("/", O_RDONLY) != -1 || errno != EACCES))
        return 12;
    int s = socket (AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return 14;
    close (s);
    pthread_t thread;
    if (forbidden == FORBID_NETLINK)
        socket (AF_NETLINK, SOCK_RAW, 0);   //  not on the list: the filter kills us here
    else
    if (forbidden == FORBID_THREAD && pthread_create (&thread, NULL, s_thread, NULL) == 0)
        pthread_join (thread, NULL);
    else
    if (forbidden == FORBID_FORK && fork () == 0)
        _exit (0);
    return 0;
}

static int
s_run_confined (forbid_t forbidden)
{
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0)
        _exit (s_confined_checks (parent, forbidden));
    int status = 0;
    while (pid > 0 && waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

int
drop_test (void)
{
    CHECK (drop_needs_no_files ("tcp://127.0.0.1:7711"));
    CHECK (drop_needs_no_files ("tcp://[::1]:7711"));
    CHECK (!drop_needs_no_files ("tcp://localhost:7711"));
    CHECK (!drop_needs_no_files ("ipc:///run/replgate.sock"));
    CHECK (!drop_needs_no_files ("tcp://127.0.0.1"));
    CHECK (!drop_needs_no_files ("tcp://:7711"));
    if (geteuid () != 0)
        return 0;               //  the rest needs root (and makes a uid of its own)
    int status = s_run_confined (FORBID_NOTHING);
    CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    if (!WIFEXITED (status) || WEXITSTATUS (status))
        fprintf (stderr, "  confined child: status %#x\n", status);
#if !defined (__SANITIZE_ADDRESS__)
    for (forbid_t f = FORBID_NETLINK; f <= FORBID_FORK; f++) {
        status = s_run_confined (f);
        CHECK (WIFSIGNALED (status) && WTERMSIG (status) == SIGSYS);
    }
#endif
    return 0;
}
