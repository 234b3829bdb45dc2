/*  worker/sandbox.h: the jail of one session: what its file system looks like, which
    identity and privileges it has, and the steps a freshly cloned child takes to enter it.
    The plan (every path, option string and file content) is computed once in the worker;
    the child only replays it with system calls, as it runs between clone() and execve()
    of a multithreaded process. spawn.c owns the clone, the id maps and the cgroups. */
#ifndef RG_SANDBOX_H
#define RG_SANDBOX_H
#include "worker/seccomp.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SANDBOX_UID 1000        //  the sessions' uid and gid inside
#define SANDBOX_WORKDIR "/work" //  per-session writable directory: cwd and HOME
#define SANDBOX_INIT_PATH "/.init"  //  replgate-init inside
#define SANDBOX_STATUS_FD 5     //  where replgate-init reports the interpreter's status
#define SANDBOX_NOFILE 256      //  descriptors per process (backstop)

typedef struct _sandbox_t sandbox_t;

//  Builds the plan. init_path is replgate-init (opened now: the child execs it by
//  descriptor after the host file system is gone). NULL with *why set on failure.
sandbox_t *sandbox_new (const char *init_path, char *why, size_t size);
void sandbox_destroy (sandbox_t **self_p);

//  What one child needs beyond the plan, filled in by the parent before clone(). What
//  depends on the request (program, arguments, scratch size) comes later, in the claim.
typedef struct {
    int go_fd;                  //  read end: one byte once the id maps are written, then the
                                //  claim record once the sandbox is in its cgroup and taken;
                                //  end of file = the worker dropped the sandbox or died
    int err_fd;                 //  write end, close-on-exec: a failure report
    const int *fds;             //  SANDBOX_STATUS_FD + 1 descriptors to become 0..5
    uint64_t procs;             //  RLIMIT_NPROC
    char *const *envp;
    const scfilter_t *filter;
} sandbox_child_t;

//  Runs in the cloned child (new user, pid, mount, net, ipc and uts namespaces): builds the
//  shared part of the jail as soon as its ids are mapped, waits for the claim, adds the
//  session's scratch area, enters the jail, drops every privilege, installs the filter and
//  execs replgate-init. Never returns;
//  on failure writes a sandbox_failure_t to err_fd and exits 127.
void sandbox_enter (const sandbox_t *self, const sandbox_child_t *child)
    __attribute__ ((noreturn));

typedef struct {
    int stage;
    int err;
    int op;                     //  index of the mount step, or -1
} sandbox_failure_t;

//  A readable account of a failure report ("mount /usr: Permission denied").
void sandbox_describe (const sandbox_t *self, const sandbox_failure_t *f, char *out, size_t size);

//  tmpfs options for a scratch area of mb MiB (also caps its inodes).
void sandbox_scratch_opts (int64_t mb, char *out, size_t size);

#endif
