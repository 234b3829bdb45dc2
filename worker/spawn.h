/*  worker/spawn.h: the one place that turns an interpreter command line into a running process.
    Everything about how a session process is made (process group, death signal, descriptors,
    environment, and later namespaces and seccomp) lives in spawn.c and nowhere else. */
#ifndef RG_SPAWN_H
#define RG_SPAWN_H
#include <sys/types.h>

//  What to start. argv[0] is looked up on the child's PATH (SPAWN_PATH), not the worker's,
//  so the interpreter is the one the session would find itself.
typedef struct {
    const char *const *argv;    //  NULL-terminated
    const char *workdir;        //  the child's cwd and HOME; NULL means "/tmp"
} spawn_spec_t;

//  The worker's ends of the child's pipes, all O_CLOEXEC. The child sees them as
//  0 = /dev/null, 1 = out, 2 = err, 3 = cmd (it reads), 4 = res (it writes).
//  out, err and res are non-blocking; cmd is non-blocking too.
typedef struct {
    int out;
    int err;
    int cmd;
    int res;
} spawn_fds_t;

#define SPAWN_PATH "/usr/local/bin:/usr/bin:/bin"

//  Starts the interpreter in its own session and process group (pgid == pid) with
//  PR_SET_PDEATHSIG SIGKILL and a short whitelisted environment. Returns the pid and fills
//  fds, or returns -1 (errors logged, nothing left open) if the program cannot be found,
//  a resource runs out or exec fails.
pid_t spawn_interpreter (const spawn_spec_t *spec, spawn_fds_t *fds);

//  The sandbox this spawner provides, as reported in `ready` and every result.
const char *spawn_sandbox_name (void);

#endif
