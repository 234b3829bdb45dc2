/*  worker/sandbox.c: the session jail (see sandbox.h): the mount plan, and the child's way
    into it. The resulting view from inside:

        /               tmpfs, read-only after setup, owned by the session uid
        /usr /bin /sbin /lib* read-only binds (or the same symlinks the host has: merged /usr)
        /etc            a few read-only files an interpreter needs, plus our own passwd,
                        group and hosts; never shadow, ssh keys, the worker's config
        /tmp, /work     one tmpfs, size- and inode-capped, shared by both (so the cap is
                        the session's whole disk); /work is the cwd and HOME
        /proc           a fresh proc of the session's pid namespace, /proc/sys read-only
        /dev            tmpfs with null, zero, full, random, urandom bound from the host
        no /sys, no /dev/shm, no /run, no /home, no /var (the broker's database lives there)

    Identity: uid and gid 1000 inside, the box's own unprivileged host uid/gid outside (the
    worker writes the maps), no supplementary groups, no capabilities in any set, bounding
    set emptied, no_new_privs, own session, parent-death SIGKILL.

    Every step reports its failure with the stage and errno (and the mount step), the way
    bubblewrap does, so a refused sandbox says exactly what the kernel refused. */
#define _GNU_SOURCE
#include "worker/sandbox.h"
#include "worker/claim.h"
#include "common/util.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ROOT "/tmp"             //  where the new root is built (in our own mount namespace)
#define MAX_OPS 96
#define ROOT_OPTS "size=1m,nr_inodes=1024,mode=0755"
#define DEV_OPTS "size=64k,nr_inodes=64,mode=0755"

typedef enum {
    OP_TMPFS,                   //  tmpfs at path with data as options
    OP_DIR,                     //  mkdir path, mode in `mode`
    OP_BIND_RO,                 //  bind src on path, then read-only, nosuid, nodev
    OP_BIND_DEV,                //  bind a device node src on path, as it is
    OP_BIND,                    //  bind src on path (read-write)
    OP_FILE,                    //  create path with data as contents (empty: a mount point)
    OP_SYMLINK,                 //  symlink data at path
    OP_PROC,                    //  proc at path
    OP_DETACH,                  //  umount2 path MNT_DETACH, then rmdir it
    OP_BIND_INIT,               //  bind the init (opened by the child) read-only on path
    OP_READ_ONLY,               //  remount the mount at path read-only (its setup is done)
} s_op_kind_t;

typedef struct {
    s_op_kind_t kind;
    char *path;                 //  absolute, under ROOT
    char *src;
    char *data;
    mode_t mode;
} s_op_t;

struct _sandbox_t {
    s_op_t ops [MAX_OPS];
    int count;
    int split;                  //  ops before this index precede the scratch area
    int init_fd;                //  O_PATH of replgate-init: proves it exists at start
    char *init_path;
};

//  Stages of the child, named in failure reports.
enum { ST_WAIT, ST_GROUPS, ST_INIT, ST_FSID, ST_CGROUPNS, ST_SETSID, ST_PRIVATE, ST_SCRATCH, ST_MOUNT,
       ST_PIVOT, ST_UMOUNT_OLD, ST_ROOT_RO, ST_CHDIR, ST_HOSTNAME, ST_CAPS, ST_IDS, ST_NNP,
       ST_PDEATH, ST_PARENT, ST_RLIMIT, ST_FDS, ST_SECCOMP, ST_EXEC, ST_COUNT };
static const char *s_stages [ST_COUNT] = {
    "waiting for the claim", "setgroups", "opening the session init", "setfsuid", "unshare cgroup namespace", "setsid",
    "making mounts private", "mounting the scratch tmpfs", "mount", "pivot_root",
    "unmounting the old root", "remounting / read-only", "chdir to the work directory",
    "sethostname", "dropping capabilities", "setresuid/setresgid", "no_new_privs",
    "parent-death signal", "the worker died", "setrlimit", "descriptors",
    "installing the seccomp filter", "exec replgate-init" };

//  --------------------------------------------------------------------------
//  The plan, built in the worker.

static int
s_add (sandbox_t *self, s_op_kind_t kind, const char *path, const char *src, const char *data,
       mode_t mode)
{
    if (self->count >= MAX_OPS)
        return -1;
    s_op_t *op = &self->ops [self->count];
    *op = (s_op_t) { kind, NULL, NULL, NULL, mode };
    if (asprintf (&op->path, ROOT "%s", path) < 0 || (src && !(op->src = strdup (src)))
    ||  (data && !(op->data = strdup (data)))) {
        free (op->path);
        free (op->src);
        return -1;
    }
    self->count++;
    return 0;
}

//  A host path as it is: a symlink becomes the same symlink, a directory a read-only bind,
//  a file a read-only bind on an empty file. Absent paths are skipped.
static int
s_add_host (sandbox_t *self, const char *path)
{
    struct stat st;
    if (lstat (path, &st) < 0)
        return 0;
    if (S_ISLNK (st.st_mode)) {
        char target [PATH_MAX];
        ssize_t n = readlink (path, target, sizeof target - 1);
        if (n <= 0)
            return -1;
        target [n] = 0;
        return s_add (self, OP_SYMLINK, path, NULL, target, 0);
    }
    if (S_ISDIR (st.st_mode))
        return s_add (self, OP_DIR, path, NULL, NULL, 0755) | s_add (self, OP_BIND_RO, path, path, NULL, 0);
    if (S_ISREG (st.st_mode))
        return s_add (self, OP_FILE, path, NULL, "", 0644) | s_add (self, OP_BIND_RO, path, path, NULL, 0);
    return 0;
}

static int
s_plan (sandbox_t *self)
{
    static const char *system [] = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" };
    //  What interpreters and common tools read from /etc; nothing secret.
    static const char *etc [] = { "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
        "/etc/alternatives", "/etc/localtime", "/etc/timezone", "/etc/nsswitch.conf",
        "/etc/protocols", "/etc/services", "/etc/mime.types", "/etc/ssl", "/etc/ca-certificates",
        "/etc/python3", "/etc/python3.11", "/etc/os-release", "/etc/debian_version",
        "/etc/inputrc", "/etc/terminfo", "/etc/magic", "/etc/locale.alias" };
    static const char *devices [] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom" };
    int rc = s_add (self, OP_TMPFS, "", NULL, ROOT_OPTS, 0);
    for (size_t i = 0; i < sizeof system / sizeof system [0]; i++)
        rc |= s_add_host (self, system [i]);
    rc |= s_add (self, OP_DIR, "/etc", NULL, NULL, 0755);
    for (size_t i = 0; i < sizeof etc / sizeof etc [0]; i++)
        rc |= s_add_host (self, etc [i]);
    rc |= s_add (self, OP_FILE, "/etc/passwd", NULL,
                 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                 "user:x:1000:1000:replgate session:" SANDBOX_WORKDIR ":/bin/bash\n"
                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0644);
    rc |= s_add (self, OP_FILE, "/etc/group", NULL,
                 "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n", 0644);
    rc |= s_add (self, OP_FILE, "/etc/hosts", NULL, "127.0.0.1 localhost replgate\n", 0644);
    rc |= s_add (self, OP_FILE, "/etc/hostname", NULL, "replgate\n", 0644);
    rc |= s_add (self, OP_DIR, "/dev", NULL, NULL, 0755);
    rc |= s_add (self, OP_TMPFS, "/dev", NULL, DEV_OPTS, 0);
    for (size_t i = 0; i < sizeof devices / sizeof devices [0]; i++)
        rc |= s_add (self, OP_FILE, devices [i], NULL, "", 0666)
            | s_add (self, OP_BIND_DEV, devices [i], devices [i], NULL, 0);
    rc |= s_add (self, OP_SYMLINK, "/dev/fd", NULL, "/proc/self/fd", 0);
    rc |= s_add (self, OP_SYMLINK, "/dev/stdin", NULL, "/proc/self/fd/0", 0);
    rc |= s_add (self, OP_SYMLINK, "/dev/stdout", NULL, "/proc/self/fd/1", 0);
    rc |= s_add (self, OP_SYMLINK, "/dev/stderr", NULL, "/proc/self/fd/2", 0);
    rc |= s_add (self, OP_READ_ONLY, "/dev", NULL, NULL, 0);
    rc |= s_add (self, OP_DIR, "/proc", NULL, NULL, 0555);
    rc |= s_add (self, OP_PROC, "/proc", NULL, NULL, 0);
    //  Kernel knobs stay unwritable even to a process that somehow regains privileges.
    //  (mode 1: optional, as kernels without sysrq have no trigger file.)
    rc |= s_add (self, OP_BIND_RO, "/proc/sys", ROOT "/proc/sys", NULL, 1);
    rc |= s_add (self, OP_BIND_RO, "/proc/sysrq-trigger", ROOT "/proc/sysrq-trigger", NULL, 1);
    rc |= s_add (self, OP_DIR, "/tmp", NULL, NULL, 0755);
    rc |= s_add (self, OP_DIR, SANDBOX_WORKDIR, NULL, NULL, 0755);
    //  The init, bound from a descriptor the child opens while its file system uid is
    //  still the worker's (the path may cross directories only root can search). The
    //  worker's own descriptor is of the worker's mount namespace: binding it is refused,
    //  and exec'ing it after the old root is gone too (EACCES).
    rc |= s_add (self, OP_FILE, SANDBOX_INIT_PATH, NULL, "", 0755);
    rc |= s_add (self, OP_BIND_INIT, SANDBOX_INIT_PATH, NULL, NULL, 0);
    self->split = self->count;
    //  The scratch tmpfs (options per spawn) is mounted at /.scratch, split into /tmp and
    //  the work directory by binds, and its own mount point removed.
    rc |= s_add (self, OP_DIR, "/.scratch", NULL, NULL, 0700);
    rc |= s_add (self, OP_TMPFS, "/.scratch", NULL, NULL, 0);
    rc |= s_add (self, OP_DIR, "/.scratch/tmp", NULL, NULL, 01777);
    rc |= s_add (self, OP_DIR, "/.scratch/work", NULL, NULL, 0700);
    rc |= s_add (self, OP_BIND, "/tmp", ROOT "/.scratch/tmp", NULL, 0);
    rc |= s_add (self, OP_BIND, SANDBOX_WORKDIR, ROOT "/.scratch/work", NULL, 0);
    rc |= s_add (self, OP_DETACH, "/.scratch", NULL, NULL, 0);
    return rc ? -1 : 0;
}

sandbox_t *
sandbox_new (const char *init_path, char *why, size_t size)
{
    sandbox_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (why, size, "out of memory");
        return NULL;
    }
    self->init_fd = open (init_path, O_PATH | O_CLOEXEC);
    self->init_path = strdup (init_path);
    if (self->init_fd < 0)
        snprintf (why, size, "cannot open the session init %s: %s", init_path, strerror (errno));
    else
    if (access (init_path, X_OK) < 0)
        snprintf (why, size, "the session init %s is not executable: %s", init_path,
                  strerror (errno));
    else
    if (!self->init_path || *self->init_path != '/' || s_plan (self) < 0)
        snprintf (why, size, "cannot plan the sandbox's file system (out of memory?)");
    else
        return self;
    sandbox_destroy (&self);
    return NULL;
}

void
sandbox_destroy (sandbox_t **self_p)
{
    sandbox_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < self->count; i++) {
        free (self->ops [i].path);
        free (self->ops [i].src);
        free (self->ops [i].data);
    }
    if (self->init_fd >= 0)
        close (self->init_fd);
    free (self->init_path);
    free (self);
    *self_p = NULL;
}

void
sandbox_scratch_opts (int64_t mb, char *out, size_t size)
{
    //  One inode per 16 KiB, at least 1024: enough for source trees, not for inode floods.
    long long inodes = mb * 64 < 1024 ? 1024 : mb * 64;
    snprintf (out, size, "size=%lldm,nr_inodes=%lld,mode=0755,uid=%d,gid=%d",
              (long long) mb, inodes, SANDBOX_UID, SANDBOX_UID);
}

void
sandbox_describe (const sandbox_t *self, const sandbox_failure_t *f, char *out, size_t size)
{
    const char *stage = f->stage >= 0 && f->stage < ST_COUNT ? s_stages [f->stage] : "unknown step";
    if (f->op >= 0 && f->op < self->count) {
        const s_op_t *op = &self->ops [f->op];
        snprintf (out, size, "%s %s%s%s: %s", stage, op->src ? op->src : "",
                  op->src ? " on " : "", op->path + strlen (ROOT), strerror (f->err));
    }
    else
        snprintf (out, size, "%s: %s", stage, strerror (f->err));
}

//  --------------------------------------------------------------------------
//  The child's side. Only system calls and plain memory from here on: no malloc, no
//  stdio, no locks (the worker has threads; their locks would never be released here).

static void __attribute__ ((noreturn))
s_fail (const sandbox_child_t *child, int stage, int op)
{
    sandbox_failure_t f = { stage, errno, op };
    ssize_t rc = write (child->err_fd, &f, sizeof f);
    (void) rc;
    _exit (127);
}

//  statfs flags of the source that the kernel locks for a less privileged namespace: a
//  read-only remount of a bind must repeat them or it is refused.
static unsigned long
s_locked_flags (const char *path)
{
    struct statfs fs;
    if (statfs (path, &fs) < 0)
        return 0;
    unsigned long flags = 0;
    if (fs.f_flags & ST_NOSUID) flags |= MS_NOSUID;
    if (fs.f_flags & ST_NODEV) flags |= MS_NODEV;
    if (fs.f_flags & ST_NOEXEC) flags |= MS_NOEXEC;
    if (fs.f_flags & ST_NOATIME) flags |= MS_NOATIME;
    if (fs.f_flags & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (fs.f_flags & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

//  "/proc/self/fd/N" into out (at least 32 bytes), without stdio.
static void
s_fd_path (int fd, char *out)
{
    static const char prefix [] = "/proc/self/fd/";
    char digits [12];
    int n = 0;
    do
        digits [n++] = (char) ('0' + fd % 10);
    while ((fd /= 10) && n < 11);
    memcpy (out, prefix, sizeof prefix - 1);
    char *p = out + sizeof prefix - 1;
    while (n)
        *p++ = digits [--n];
    *p = 0;
}

static int
s_write_file (const char *path, const char *data, mode_t mode)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen (data), done = 0;
    while (done < len) {
        ssize_t n = write (fd, data + done, len - done);
        if (n <= 0) {
            close (fd);
            return -1;
        }
        done += (size_t) n;
    }
    return close (fd);
}

static int
s_run_op (const s_op_t *op, const char *scratch_opts, const char *init_src)
{
    unsigned long ro = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV;
    switch (op->kind) {
        case OP_TMPFS:
            return mount ("tmpfs", op->path, "tmpfs", MS_NOSUID | MS_NODEV,
                          op->data ? op->data : scratch_opts);
        case OP_DIR:
            //  mkdir applies the umask; the mode must be exact (1777 for /tmp).
            if (mkdir (op->path, op->mode) < 0 && errno != EEXIST)
                return -1;
            return chmod (op->path, op->mode);
        case OP_FILE:
            return s_write_file (op->path, op->data, op->mode);
        case OP_SYMLINK:
            return symlink (op->data, op->path);
        case OP_BIND_RO:
        case OP_BIND_INIT: {
            const char *src = op->kind == OP_BIND_INIT ? init_src : op->src;
            if (mount (src, op->path, NULL, MS_BIND, NULL) < 0)
                return -1;
            return mount (NULL, op->path, NULL, ro | s_locked_flags (src), NULL);
        }
        case OP_BIND_DEV:
        case OP_BIND:
            return mount (op->src, op->path, NULL, MS_BIND, NULL);
        case OP_PROC:
            return mount ("proc", op->path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        case OP_READ_ONLY:
            return mount (NULL, op->path, NULL, ro, NULL);
        case OP_DETACH:
            if (umount2 (op->path, MNT_DETACH) < 0)
                return -1;
            return rmdir (op->path);
    }
    errno = EINVAL;
    return -1;
}

//  Builds everything of the new root that every session shares: the mounts before the
//  scratch area. A prepared sandbox does this while it waits for a session.
static void
s_build_root (const sandbox_t *self, const sandbox_child_t *child, const char *init_src)
{
    if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        s_fail (child, ST_PRIVATE, -1);
    for (int i = 0; i < self->split; i++)
        if (s_run_op (&self->ops [i], NULL, init_src) < 0
        &&  !(errno == ENOENT && self->ops [i].kind == OP_BIND_RO && self->ops [i].mode == 1))
            s_fail (child, ST_MOUNT, i);
}

//  Adds the session's scratch area and moves into the new root; the host's tree is
//  unmounted.
static void
s_enter_root (const sandbox_t *self, const sandbox_child_t *child, const char *scratch_opts)
{
    for (int i = self->split; i < self->count; i++)
        if (s_run_op (&self->ops [i], scratch_opts, NULL) < 0)
            s_fail (child, ST_SCRATCH, i);
    //  pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
    //  nothing of the host reachable.
    if (chdir (ROOT) < 0 || syscall (SYS_pivot_root, ".", ".") < 0)
        s_fail (child, ST_PIVOT, -1);
    if (umount2 (".", MNT_DETACH) < 0)
        s_fail (child, ST_UMOUNT_OLD, -1);
    if (mount (NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        s_fail (child, ST_ROOT_RO, -1);
    if (chdir (SANDBOX_WORKDIR) < 0)
        s_fail (child, ST_CHDIR, -1);
}

static void
s_drop_privileges (const sandbox_child_t *child)
{
    if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        s_fail (child, ST_CAPS, -1);
    for (int cap = 0; cap <= 63; cap++)
        if (prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            s_fail (child, ST_CAPS, -1);
    if (syscall (SYS_setresgid, SANDBOX_UID, SANDBOX_UID, SANDBOX_UID) < 0
    ||  syscall (SYS_setresuid, SANDBOX_UID, SANDBOX_UID, SANDBOX_UID) < 0)
        s_fail (child, ST_IDS, -1);
    //  The host uid 0 we started with is not mapped here, so the kernel's usual
    //  "leaving root drops capabilities" rule does not apply: clear them ourselves.
    struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct none [2];
    memset (none, 0, sizeof none);
    if (syscall (SYS_capset, &head, none) < 0)
        s_fail (child, ST_CAPS, -1);
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        s_fail (child, ST_NNP, -1);
    //  After the id change, which clears it. The worker holds go_fd's other end open until
    //  we exec: a hang-up now means it died before the signal was armed.
    if (prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        s_fail (child, ST_PDEATH, -1);
    struct pollfd p = { child->go_fd, POLLIN, 0 };
    if (poll (&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR)))
        s_fail (child, ST_PARENT, -1);
}

static void
s_set_limits (const sandbox_child_t *child, uint64_t file_bytes)
{
    struct rlimit core = { 0, 0 }, nofile = { SANDBOX_NOFILE, SANDBOX_NOFILE };
    struct rlimit fsize = { file_bytes, file_bytes };
    struct rlimit nproc = { child->procs, child->procs };
    struct rlimit memlock = { 64 << 10, 64 << 10 };
    if (setrlimit (RLIMIT_CORE, &core) < 0 || setrlimit (RLIMIT_NOFILE, &nofile) < 0
    ||  setrlimit (RLIMIT_FSIZE, &fsize) < 0 || setrlimit (RLIMIT_NPROC, &nproc) < 0
    ||  setrlimit (RLIMIT_MEMLOCK, &memlock) < 0)
        s_fail (child, ST_RLIMIT, -1);
}

//  Makes child->fds descriptors 0..SANDBOX_STATUS_FD and marks every other close-on-exec.
static void
s_set_fds (const sandbox_child_t *child)
{
    int high [SANDBOX_STATUS_FD + 1];
    for (int i = 0; i <= SANDBOX_STATUS_FD; i++)
        if ((high [i] = fcntl (child->fds [i], F_DUPFD_CLOEXEC, 64)) < 0)
            s_fail (child, ST_FDS, -1);
    for (int i = 0; i <= SANDBOX_STATUS_FD; i++)
        if (dup2 (high [i], i) < 0)     //  dup2 clears close-on-exec on the new number
            s_fail (child, ST_FDS, -1);
    if (close_range (SANDBOX_STATUS_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        s_fail (child, ST_FDS, -1);
}

static void
s_default_signals (void)
{
    sigset_t none;
    sigemptyset (&none);
    sigprocmask (SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset (&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction (sig, &dfl, NULL);    //  fails harmlessly for SIGKILL, SIGSTOP, RT slots
}

//  The claim, in the child's own copy of this buffer: a prepared sandbox may wait long
//  after the clone, and learns what to run only when a session takes it.
static char s_claim [CLAIM_MAX];

//  Closes every descriptor above 2 but the child's own: a prepared sandbox may wait for
//  minutes, and must not keep the worker's sockets, other sessions' pipes or other
//  prepared sandboxes' go pipes (whose end of file is how those notice the worker died).
static void
s_close_inherited (const sandbox_child_t *child)
{
    int keep [SANDBOX_STATUS_FD + 3], n = 0;
    keep [n++] = child->go_fd;
    keep [n++] = child->err_fd;
    for (int i = 0; i <= SANDBOX_STATUS_FD; i++)
        keep [n++] = child->fds [i];
    for (int i = 1; i < n; i++)         //  insertion sort: n is 8
        for (int j = i; j > 0 && keep [j - 1] > keep [j]; j--) {
            int t = keep [j];
            keep [j] = keep [j - 1];
            keep [j - 1] = t;
        }
    unsigned from = 3;
    for (int i = 0; i < n; i++) {
        if (keep [i] < 0 || (unsigned) keep [i] < from)
            continue;
        if ((unsigned) keep [i] > from && close_range (from, (unsigned) keep [i] - 1, 0) < 0)
            s_fail (child, ST_FDS, -1);
        from = (unsigned) keep [i] + 1;
    }
    if (close_range (from, ~0U, 0) < 0)
        s_fail (child, ST_FDS, -1);
}

void
sandbox_enter (const sandbox_t *self, const sandbox_child_t *child)
{
    s_close_inherited (child);
    //  One byte: the worker wrote our id maps. Until then we are nobody here and could
    //  create no file.
    char mapped;
    ssize_t n;
    do
        n = read (child->go_fd, &mapped, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        s_fail (child, ST_WAIT, -1);
    //  Drop the worker's supplementary groups (root's) for good, and create files as the
    //  session user (our host uid 0 has no name in this namespace). Raw system calls for
    //  the id changes: glibc's wrappers would try to apply them to every thread of the
    //  worker it still believes it has.
    if (syscall (SYS_setgroups, 0, NULL) < 0)
        s_fail (child, ST_GROUPS, -1);
    char init_src [32];
    int init_fd = open (self->init_path, O_PATH | O_CLOEXEC);
    if (init_fd < 0)
        s_fail (child, ST_INIT, -1);
    s_fd_path (init_fd, init_src);
    syscall (SYS_setfsgid, SANDBOX_UID);
    syscall (SYS_setfsuid, SANDBOX_UID);
    if (syscall (SYS_setfsgid, -1) != SANDBOX_UID || syscall (SYS_setfsuid, -1) != SANDBOX_UID) {
        errno = EPERM;
        s_fail (child, ST_FSID, -1);
    }
    if (setsid () < 0)
        s_fail (child, ST_SETSID, -1);
    s_build_root (self, child, init_src);
    //  A prepared sandbox waits here for a session to claim it.
    claim_t claim;
    ssize_t len = claim_read (child->go_fd, s_claim, sizeof s_claim);
    if (len < 0)
        s_fail (child, ST_WAIT, -1);
    if (claim_decode (s_claim, (size_t) len, &claim) < 0) {
        errno = EPROTO;
        s_fail (child, ST_WAIT, -1);
    }
    //  The worker claims a sandbox only once it is in its box's cgroup, which now
    //  becomes our cgroup root.
    if (unshare (CLONE_NEWCGROUP) < 0)
        s_fail (child, ST_CGROUPNS, -1);
    s_enter_root (self, child, claim.scratch_opts);
    if (sethostname ("replgate", 8) < 0)
        s_fail (child, ST_HOSTNAME, -1);
    s_drop_privileges (child);
    //  Descriptors first: the worker's may be numbered above the sessions' NOFILE limit.
    s_set_fds (child);
    s_set_limits (child, claim.file_bytes);
    s_default_signals ();
    //  Last before exec, so nothing of the setup above runs under it.
    if (child->filter && scfilter_install (child->filter) < 0)
        s_fail (child, ST_SECCOMP, -1);
    execve (SANDBOX_INIT_PATH, claim.argv, child->envp);
    s_fail (child, ST_EXEC, -1);
}
