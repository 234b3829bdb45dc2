/*  worker/seccomp.c: builds the sessions' seccomp-bpf filter with libseccomp and keeps it
    as a ready BPF program, so installing it in a freshly cloned child is one prctl().

    Policy: default ALLOW (interpreters need a broad, version-dependent set of calls; the
    namespaces, the dropped capabilities and the unprivileged uid do the confining), the
    families below fail with EPERM (so programs see an ordinary "not permitted"), and any
    other architecture than x86_64 (i386 via int 0x80, x32 via nr | 0x40000000) kills the
    whole process: a filter written for one syscall table says nothing about another.
    A Docker-style allowlist is the stronger later step (reference/sandbox.md, 4.6).

    | calls                                         | why refused                                   |
    |-----------------------------------------------|-----------------------------------------------|
    | clone with any CLONE_NEW* flag, unshare,      | new namespaces are new kernel attack surface  |
    |   setns                                       |   (nested userns gives caps over fresh ones)  |
    | clone3 (ENOSYS)                               | its flags sit in memory, unfilterable; ENOSYS |
    |                                               |   makes libc fall back to clone, filtered     |
    | mount, umount2, pivot_root, chroot, fsopen,   | rearranging the file system view (covering or |
    |   fsconfig, fsmount, fspick, move_mount,      |   revealing paths, cgroup v1 release_agent,   |
    |   open_tree, mount_setattr                    |   CVE-2022-0492)                              |
    | keyctl, add_key, request_key                  | keyrings are not namespaced: a channel between|
    |                                               |   sessions and a long CVE history             |
    | bpf, perf_event_open, userfaultfd             | kernel JIT / profiling / fault-handling       |
    |                                               |   surfaces used by most recent exploits       |
    | io_uring_setup, io_uring_enter,               | io_uring operations bypass seccomp entirely   |
    |   io_uring_register                           |   and the subsystem has many CVEs             |
    | ptrace, process_vm_readv, process_vm_writev,  | reading or steering another process; also     |
    |   process_madvise, kcmp, pidfd_getfd          |   blocks stealing descriptors                 |
    | personality setting any flag of 0x0ffc0000    | READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ... weaken |
    |   (the query 0xffffffff stays allowed)        |   exploit mitigations                         |
    | kexec_load, kexec_file_load, init_module,     | kernel replacement and modules                |
    |   finit_module, delete_module                 |                                               |
    | iopl, ioperm                                  | raw port I/O                                  |
    | swapon, swapoff, reboot, acct, quotactl,      | host administration; each needs a capability  |
    |   quotactl_fd, syslog, lookup_dcookie         |   we never hold, refused at the door anyway   |
    | name_to_handle_at, open_by_handle_at          | opens files by handle, bypassing the mount    |
    |                                               |   view ("shocker" container escape)           |
    | fanotify_init                                 | watches file systems beyond the sandbox       |
    | mbind, migrate_pages, move_pages,             | NUMA placement of memory the sandbox shares   |
    |   set_mempolicy                               |   with the host                               |
    | vmsplice                                      | repeated source of page-cache corruption bugs |
    |                                               |   (Dirty Pipe family)                         |
    | socket(AF_VSOCK), socket(AF_ALG)              | vsock reaches the hypervisor; AF_ALG is kernel|
    |                                               |   crypto surface with a CVE history           |
    | ioctl TIOCSTI, TIOCLINUX (low 32 bits of cmd) | typing into a terminal the worker may hold    |
    |                                               |   (CVE-2017-5226); the kernel compares only   |
    |                                               |   32 bits, so must we (CVE-2019-10063)        |
*/
#define _GNU_SOURCE
#include "worker/seccomp.h"
#include "common/check.h"
#include "common/util.h"
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER \
                  | CLONE_NEWPID | CLONE_NEWNET)

struct _scfilter_t {
    struct sock_filter *code;
    unsigned short len;
};

//  Refused outright, whatever the arguments.
static const char *s_denied [] = {
    "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "iopl", "ioperm",
    "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "syslog", "lookup_dcookie",
    "name_to_handle_at", "open_by_handle_at", "fanotify_init",
    "mbind", "migrate_pages", "move_pages", "set_mempolicy",
    "vmsplice",
};

static int
s_rule (scmp_filter_ctx ctx, int action, const char *name, unsigned count,
        const struct scmp_arg_cmp *args)
{
    int nr = seccomp_syscall_resolve_name (name);
    if (nr == __NR_SCMP_ERROR) {
        //  An older libseccomp that does not know a newer call: the kernel cannot have it
        //  either in any build this library was made for; nothing to refuse.
        log_warn ("seccomp: %s unknown to libseccomp, not filtered", name);
        return 0;
    }
    int rc = seccomp_rule_add_array (ctx, (uint32_t) action, nr, count, args);
    if (rc < 0)
        log_error ("seccomp: rule for %s: %s", name, strerror (-rc));
    return rc < 0 ? -1 : 0;
}

static int
s_arg_rules (scmp_filter_ctx ctx)
{
    int eperm = SCMP_ACT_ERRNO (EPERM);
    int rc = 0;
    //  One rule per namespace flag: "any bit of the mask set" is not one libseccomp compare.
    for (unsigned long bit = 1; bit; bit <<= 1)
        if (NS_FLAGS & bit) {
            struct scmp_arg_cmp a = SCMP_A0 (SCMP_CMP_MASKED_EQ, bit, bit);
            rc |= s_rule (ctx, eperm, "clone", 1, &a);
        }
    rc |= s_rule (ctx, SCMP_ACT_ERRNO (ENOSYS), "clone3", 0, NULL);
    //  personality flags that weaken the address space (0x0ffc0000: ADDR_NO_RANDOMIZE,
    //  FDPIC_FUNCPTRS, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT, READ_IMPLIES_EXEC, ADDR_LIMIT_*,
    //  ...). Bit 31 set means the query 0xffffffff, which changes nothing: allowed.
    for (unsigned long bit = 0x40000; bit <= 0x8000000; bit <<= 1) {
        struct scmp_arg_cmp a = SCMP_A0 (SCMP_CMP_MASKED_EQ, bit | 0x80000000UL, bit);
        rc |= s_rule (ctx, eperm, "personality", 1, &a);
    }
    static const int families [] = { AF_VSOCK, AF_ALG };
    for (int i = 0; i < 2; i++) {
        struct scmp_arg_cmp a = SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) families [i]);
        rc |= s_rule (ctx, eperm, "socket", 1, &a);
    }
    static const unsigned long ioctls [] = { TIOCSTI, TIOCLINUX };
    for (int i = 0; i < 2; i++) {
        struct scmp_arg_cmp a = SCMP_A1 (SCMP_CMP_MASKED_EQ, 0xffffffffUL, ioctls [i]);
        rc |= s_rule (ctx, eperm, "ioctl", 1, &a);
    }
    return rc ? -1 : 0;
}

//  Compiles ctx to BPF into self (libseccomp 2.5 exports only to a descriptor).
static int
s_export (scfilter_t *self, scmp_filter_ctx ctx)
{
    int fd = memfd_create ("replgate-seccomp", MFD_CLOEXEC);
    if (fd < 0) {
        log_error ("seccomp: memfd_create: %s", strerror (errno));
        return -1;
    }
    int rc = seccomp_export_bpf (ctx, fd);
    struct stat st;
    if (rc < 0)
        log_error ("seccomp: export: %s", strerror (-rc));
    else
    if (fstat (fd, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof (struct sock_filter)
    ||  st.st_size / sizeof (struct sock_filter) > BPF_MAXINSNS) {
        log_error ("seccomp: exported program has a bad size");
        rc = -1;
    }
    else
    if (!(self->code = malloc ((size_t) st.st_size))) {
        log_error ("seccomp: out of memory");
        rc = -1;
    }
    else
    if (pread (fd, self->code, (size_t) st.st_size, 0) != st.st_size) {
        log_error ("seccomp: reading the exported program: %s", strerror (errno));
        rc = -1;
    }
    else
        self->len = (unsigned short) (st.st_size / sizeof (struct sock_filter));
    close (fd);
    return rc < 0 ? -1 : 0;
}

scfilter_t *
scfilter_new (void)
{
    scfilter_t *self = calloc (1, sizeof *self);
    scmp_filter_ctx ctx = seccomp_init (SCMP_ACT_ALLOW);
    if (!self || !ctx) {
        log_error ("seccomp: out of memory");
        free (self);
        if (ctx)
            seccomp_release (ctx);
        return NULL;
    }
    int rc = seccomp_attr_set (ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc < 0)
        log_error ("seccomp: bad-arch action: %s", strerror (-rc));
    //  Set by the child itself just before; libseccomp must not try it at export time.
    if (rc >= 0 && (rc = seccomp_attr_set (ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
        log_error ("seccomp: nnp attribute: %s", strerror (-rc));
    for (size_t i = 0; rc >= 0 && i < sizeof s_denied / sizeof s_denied [0]; i++)
        rc = s_rule (ctx, SCMP_ACT_ERRNO (EPERM), s_denied [i], 0, NULL);
    if (rc >= 0)
        rc = s_arg_rules (ctx);
    if (rc >= 0)
        rc = s_export (self, ctx);
    seccomp_release (ctx);
    if (rc < 0)
        scfilter_destroy (&self);
    return self;
}

void
scfilter_destroy (scfilter_t **self_p)
{
    scfilter_t *self = *self_p;
    if (!self)
        return;
    free (self->code);
    free (self);
    *self_p = NULL;
}

int
scfilter_size (scfilter_t *self)
{
    return self->len;
}

int
scfilter_install (const scfilter_t *self)
{
    struct sock_fprog prog = { self->len, self->code };
    return prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

//  --------------------------------------------------------------------------
//  Self-test: the filter builds, and a forked child under it gets EPERM where it must
//  and keeps working where it must.

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int
s_child_checks (const scfilter_t *f)
{
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || scfilter_install (f) < 0)
        return 10;
    if (unshare (CLONE_NEWUSER) != -1 || errno != EPERM)
        return 11;
    if (syscall (SYS_keyctl, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
        return 12;
    if (socket (AF_VSOCK, SOCK_STREAM, 0) != -1 || errno != EPERM)
        return 13;
    if (ioctl (0, TIOCSTI | (1UL << 32), "x") != -1 || errno != EPERM)
        return 14;
    if (syscall (SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
        return 15;
    if (syscall (SYS_personality, 0xffffffff) < 0)
        return 16;
    if (syscall (SYS_personality, 0x0400000) != -1 || errno != EPERM)
        return 18;
    int s = socket (AF_UNIX, SOCK_STREAM, 0);   //  ordinary calls still work
    if (s < 0 || getpid () <= 0)
        return 17;
    close (s);
    return 0;
}

int
scfilter_test (void)
{
    scfilter_t *f = scfilter_new ();
    CHECK (f != NULL);
    if (!f)
        return -1;
    CHECK (scfilter_size (f) > 50);
    pid_t pid = fork ();
    if (pid == 0)
        _exit (s_child_checks (f));
    int status = 0;
    CHECK (pid > 0 && waitpid (pid, &status, 0) == pid);
    CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    if (!WIFEXITED (status) || WEXITSTATUS (status))
        fprintf (stderr, "  seccomp child: status %#x\n", status);
    scfilter_destroy (&f);
    CHECK (f == NULL);
    return 0;
}
