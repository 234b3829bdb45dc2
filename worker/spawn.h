/*  worker/spawn.h: the one place that turns an interpreter command line into a running,
    sandboxed process. Everything about how a session process is made (namespaces, ids,
    cgroups, seccomp, descriptors, environment) lives in spawn.c and the modules it drives
    (sandbox.c, cgroup.c, seccomp.c, init.c), and nowhere else. It also keeps the warm pool:
    interpreters started ahead of time so a new session does not wait for one, and the
    prepared sandboxes that cold starts and the pool's refills take. */
#ifndef RG_SPAWN_H
#define RG_SPAWN_H
#include "worker/cgroup.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

//  What to start. argv[0] is looked up on SPAWN_PATH (the same inside the sandbox, whose
//  /usr is the host's).
typedef struct {
    const char *lang;           //  warm-pool key ("python", "shell"); NULL: never pooled
    const char *const *argv;    //  NULL-terminated
    int64_t tmp_mb;             //  size of the session's /tmp + work directory; 0: default
    bool hosted;                //  run argv under `replgate-init --shell` (worker/shellhost.c)
} spawn_spec_t;

//  The worker's ends of the child's pipes, all O_CLOEXEC and non-blocking. The interpreter
//  sees them as 0 = /dev/null, 1 = out, 2 = err, 3 = cmd (it reads), 4 = res (it writes).
//  status carries the interpreter's wait status from the sandbox's init (-1 unsandboxed).
typedef struct {
    int out;
    int err;
    int cmd;
    int res;
    int status;
} spawn_fds_t;

//  One sandbox slot: its own host uid/gid and cgroup. Opaque; NULL when unsandboxed.
typedef struct _spawn_box_t spawn_box_t;

#define SPAWN_PATH "/usr/local/bin:/usr/bin:/bin"
//  What results and `ready` say of a sandboxed worker (spawn_sandbox_name).
#define SPAWN_SANDBOX_NAME "namespaces+seccomp"

typedef struct {
    bool sandbox;               //  false only with --no-sandbox
    unsigned uid_base;          //  host uid/gid of box 0; box n has uid_base + n
    size_t slots;               //  sessions at once
    size_t warm;                //  idle interpreters kept ready per language
    size_t prepare;             //  sandboxes prepared ahead (namespaces, ids, cgroup)
    int64_t memory_mb;          //  defaults, given to warm interpreters
    int64_t pids;
    int64_t tmp_mb;
    const char *init_path;      //  replgate-init
    cgroup_version_t cgroup;    //  CGROUP_NONE: whichever the host has
    const char *cgroup_root;    //  normally /sys/fs/cgroup
    char *const *extra_env;     //  "NAME=value" added to every interpreter's environment
                                //  (the worker's secrets), NULL-terminated, or NULL
    int64_t cpu_milli;          //  default CPU bandwidth in thousandths of a CPU; 0: none
} spawn_config_t;

//  Per-snippet accounting from the box's cgroup.
typedef struct {
    double cpu_ms;
    double session_cpu_ms;      //  everything the box's processes used since the interpreter's
                                //  sandbox was made, background processes included
    int64_t peak_kb;
    bool oom;                   //  the OOM killer ended a process of the session
    bool pids_limited;          //  a fork was refused at the pids limit
} spawn_usage_t;

//  Checks the host and builds everything the sandbox needs (fail closed): -1 with the
//  failed check logged if snippets cannot be confined; the worker must then not serve.
//  Without config->sandbox, only the warm pool is set up.
int spawn_setup (const spawn_config_t *config);
//  The uid of the worker's own front (front.h): one past the last box's, uid_base + the
//  number of boxes, so that no session ever runs under it. (uid_t) -1 if that uid is root,
//  nobody (65534) or the top of the range, which spawn_setup refuses for the boxes too.
uid_t spawn_front_uid (const spawn_config_t *config);

//  Kills the warm pool, removes the cgroups.
void spawn_shutdown (void);

//  "namespaces+seccomp+cgroup-v1" (or v2), or "none": reported in `ready` and every result.
const char *spawn_sandbox_name (void);

//  Starts the interpreter, or hands over a warm one that matches the spec. Returns the
//  pid to signal and wait for (the session's init when sandboxed), fills fds and *box;
//  -1 (logged, nothing left open) on failure.
pid_t spawn_interpreter (const spawn_spec_t *spec, spawn_fds_t *fds, spawn_box_t **box);

//  Starts one warm interpreter for spec if fewer than `warm` wait. True if it started one
//  (call again soon), false if the pool for spec is full or cannot grow now.
bool spawn_refill (const spawn_spec_t *spec);

//  Prepares one sandbox ahead (everything but the jail's mounts and the interpreter, which
//  depend on the session) if fewer than `prepare` wait. True if it did (call again soon).
bool spawn_prepare (void);
//  How many prepared sandboxes are ready to be claimed (the rest are still joining their
//  cgroup, which happens off the worker's loop).
size_t spawn_prepared (void);

//  The interpreter's wait status, given the status of the pid spawn_interpreter returned
//  (reaped by the caller before closing fds).
int spawn_exit_status (const spawn_fds_t *fds, int wstatus);
//  Returns the box of a reaped interpreter to the free list.
void spawn_release (spawn_box_t **box_p);
//  Unsandboxed, a shell host that was killed leaves its directory (shellhost.c) in the
//  host's temporary directory: removes what the host with this pid left, or with pid 0 what
//  every host that is gone left (a worker starting after one that was killed). Only
//  directories of our uid. Nothing sandboxed: there it vanished with the session's /tmp.
void spawn_sweep_shell (pid_t pid);

//  Sets the box's limits for a snippet (CPU in thousandths of a CPU; 0 keeps the current
//  one) and starts its accounting; -1 if a limit could not be applied (e.g. memory below what
//  the session already uses). The limits stay in force after the snippet: they bound what
//  the session leaves running in the background.
int spawn_account_start (spawn_box_t *box, int64_t memory_mb, int64_t pids, int64_t cpu_milli);
//  The snippet's accounting so far; 0, or -1 if nothing could be read.
int spawn_account (spawn_box_t *box, spawn_usage_t *usage);

int spawn_test (void);
#endif
