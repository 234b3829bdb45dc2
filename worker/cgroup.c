/*  worker/cgroup.c: a box's control group on cgroup v1 or v2 (see cgroup.h).

    v1 (our machines): four hierarchies, ROOT/memory, ROOT/pids, ROOT/cpuacct, ROOT/cpu (a
    co-mounted "cpu,cpuacct" is reached through the usual symlinks; the group then has one
    directory for both, joined once). Swap is limited with memory.memsw.limit_in_bytes when
    the kernel accounts it, the OOM count is the oom_kill line of memory.oom_control, the peak
    is memory.max_usage_in_bytes (reset by writing 0), the CPU bandwidth is cpu.cfs_quota_us
    per cpu.cfs_period_us.
    v2 (most users' machines): one directory; memory.max plus memory.swap.max = 0 (so memory
    and swap together stay under the limit), pids.max, cpu.stat usage_usec (present without
    the cpu controller), cpu.max "QUOTA PERIOD", memory.events oom_kill, memory.peak (reset
    per open file since 6.12; older kernels give the group's lifetime peak). Controllers are
    enabled in every ancestor's cgroup.subtree_control on the way down.
    The CPU period is 100 ms (the kernel's default): long enough to keep the scheduler's
    overhead low, short enough that a throttled session waits at most that for its next
    slice. */
#define _GNU_SOURCE
#include "worker/cgroup.h"
#include "common/check.h"
#include "common/util.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define V1_MEMORY 0
#define V1_PIDS 1
#define V1_CPU 2                //  cpuacct: the usage counter
#define V1_CPUCTL 3             //  cpu: the bandwidth limit; NULL when co-mounted with cpuacct
#define CG_DIRS 4
#define CPU_PERIOD_US 100000
#define CGROUP_MAGIC 0x27e0eb
#define CGROUP2_MAGIC 0x63677270

#define STAT_FILES 6
static const char *s_v1_names [CG_DIRS] = { "memory", "pids", "cpuacct", "cpu" };

struct _cgroup_t {
    cgroup_version_t version;
    char *dirs [CG_DIRS];       //  v2 uses dirs[0] for everything
    uint64_t memory;            //  limits last written, 0 unknown
    uint64_t pids;
    uint64_t cpu_milli;
    bool memsw;                 //  v1 accounts swap
    int peak_fd;                //  v2 memory.peak, kept open for per-fd reset; -1
    int reset_fd;               //  v1 memory.max_usage_in_bytes for writing; -1 until used
    struct {                    //  counters read every snippet, opened once (s_counter)
        int dir;
        const char *file;       //  a string literal
        int fd;
    } counters [STAT_FILES];
    int ncounters;
};

//  --------------------------------------------------------------------------
//  File helpers: every failure is logged with the path.

static int
s_write (const char *dir, const char *file, const char *text, bool quiet)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    int fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : write (fd, text, strlen (text));
    int err = errno;
    if (fd >= 0)
        close (fd);
    if (n == (ssize_t) strlen (text))
        return 0;
    if (!quiet)
        log_error ("cgroup: write '%s' to %s: %s", text, path, n < 0 ? strerror (err) : "short");
    errno = n < 0 ? err : EIO;
    return -1;
}

static int
s_read (const char *dir, const char *file, char *buf, size_t size)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read (fd, buf, size - 1);
    close (fd);
    if (n < 0)
        return -1;
    buf [n] = 0;
    return 0;
}

static bool
s_exists (const char *dir, const char *file)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, file);
    return access (path, F_OK) == 0;
}

//  The number after "key " in a flat-keyed file such as memory.events; 0 if absent.
static uint64_t
s_keyed (const char *text, const char *key)
{
    size_t len = strlen (key);
    for (const char *line = text; line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL)
        if (strncmp (line, key, len) == 0 && line [len] == ' ')
            return strtoull (line + len + 1, NULL, 10);
    return 0;
}

static uint64_t
s_read_number (const char *dir, const char *file, const char *key)
{
    char buf [4096];
    if (s_read (dir, file, buf, sizeof buf) < 0)
        return 0;
    return key ? s_keyed (buf, key) : strtoull (buf, NULL, 10);
}

//  A counter read with pread on a descriptor opened on first use: an open and a close per
//  file and snippet walk kernfs paths, which cost about a fifth of the worker's time on the
//  warm path. A descriptor that stops working (its group was removed and made again) is
//  dropped and the file read afresh.
static uint64_t
s_counter (cgroup_t *self, int dir, const char *file, const char *key)
{
    int i = 0;
    while (i < self->ncounters && !(self->counters [i].dir == dir
                                    && strcmp (self->counters [i].file, file) == 0))
        i++;
    if (i == self->ncounters && i < STAT_FILES) {
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", self->dirs [dir], file);
        int fd = open (path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            self->counters [self->ncounters++] = (typeof (self->counters [0])) { dir, file, fd };
    }
    char buf [4096];
    ssize_t n = i < self->ncounters ? pread (self->counters [i].fd, buf, sizeof buf - 1, 0) : -1;
    if (n < 0) {
        if (i < self->ncounters) {
            close (self->counters [i].fd);
            self->counters [i] = self->counters [--self->ncounters];
        }
        return s_read_number (self->dirs [dir], file, key);
    }
    buf [n] = 0;
    return key ? s_keyed (buf, key) : strtoull (buf, NULL, 10);
}

//  True if word is one of the space-separated words of list (cgroup.controllers).
static bool
s_has_word (const char *list, const char *word)
{
    size_t len = strlen (word);
    for (const char *p = strstr (list, word); p; p = strstr (p + 1, word))
        if ((p == list || p [-1] == ' ') && (p [len] == 0 || p [len] == ' ' || p [len] == '\n'))
            return true;
    return false;
}

//  mkdir -p of root/rel, enabling v2 controllers in every directory that gets children.
static int
s_make_path (const char *root, const char *rel, bool v2)
{
    char path [PATH_MAX];
    int n = snprintf (path, sizeof path, "%s/%s", root, rel);
    if (n < 0 || (size_t) n >= sizeof path)
        return -1;
    for (char *p = path + strlen (root); p; p = strchr (p + 1, '/')) {
        char saved = *p;
        *p = 0;
        if (v2 && (s_write (path, "cgroup.subtree_control", "+memory", false) < 0
               ||  s_write (path, "cgroup.subtree_control", "+pids", false) < 0
               ||  s_write (path, "cgroup.subtree_control", "+cpu", false) < 0))
            return -1;
        *p = saved;
        if (!saved)
            break;
        char *next = strchr (p + 1, '/');
        if (next)
            *next = 0;
        if (mkdir (path, 0755) < 0 && errno != EEXIST) {
            log_error ("cgroup: mkdir %s: %s", path, strerror (errno));
            return -1;
        }
        if (next)
            *next = '/';
    }
    return 0;
}

//  --------------------------------------------------------------------------

cgroup_version_t
cgroup_detect (const char *root, cgroup_version_t want, char *why, size_t size)
{
    struct statfs fs;
    char dir [PATH_MAX];
    const char *v1_fail = NULL, *v2_fail = NULL;
    for (int i = 0; i < CG_DIRS && !v1_fail; i++) {
        snprintf (dir, sizeof dir, "%s/%s", root, s_v1_names [i]);
        if (statfs (dir, &fs) < 0 || fs.f_type != CGROUP_MAGIC)
            v1_fail = s_v1_names [i];
        else
        if (access (dir, W_OK) < 0)
            v1_fail = "write access";
    }
    if (!v1_fail && want != CGROUP_V2)
        return CGROUP_V1;
    char controllers [1024] = "";
    if (statfs (root, &fs) < 0 || fs.f_type != CGROUP2_MAGIC)
        v2_fail = "no cgroup2 file system mounted there";
    else
    if (s_read (root, "cgroup.controllers", controllers, sizeof controllers) < 0
    ||  !s_has_word (controllers, "memory") || !s_has_word (controllers, "pids")
    ||  !s_has_word (controllers, "cpu"))
        v2_fail = "memory, pids and cpu controllers not available";
    else
    if (access (root, W_OK) < 0)
        v2_fail = "not writable";
    if (!v2_fail && want != CGROUP_V1)
        return CGROUP_V2;
    snprintf (why, size, "no usable cgroups under %s (v1: %s%s; v2: %s)", root,
              v1_fail ? "no writable hierarchy for " : "", v1_fail ? v1_fail : "not wanted",
              v2_fail ? v2_fail : "not wanted");
    return CGROUP_NONE;
}

//  The directory that holds the CPU bandwidth files.
static const char *
s_cpu_dir (cgroup_t *self)
{
    if (self->version == CGROUP_V2)
        return self->dirs [0];
    return self->dirs [V1_CPUCTL] ? self->dirs [V1_CPUCTL] : self->dirs [V1_CPU];
}

//  A "cpu,cpuacct" co-mount makes ROOT/cpu and ROOT/cpuacct one directory: keep it once, so
//  a process joins it once.
static void
s_drop_comounted (cgroup_t *self)
{
    struct stat a, b;
    if (stat (self->dirs [V1_CPU], &a) == 0 && stat (self->dirs [V1_CPUCTL], &b) == 0
    &&  a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        free (self->dirs [V1_CPUCTL]);
        self->dirs [V1_CPUCTL] = NULL;
    }
}

cgroup_t *
cgroup_new (const char *root, cgroup_version_t version, const char *rel)
{
    cgroup_t *self = calloc (1, sizeof *self);
    if (!self) {
        log_error ("cgroup: out of memory");
        return NULL;
    }
    self->version = version;
    self->peak_fd = -1;
    self->reset_fd = -1;
    int rc = 0;
    for (int i = 0; i < (version == CGROUP_V1 ? CG_DIRS : 1) && rc == 0; i++) {
        char base [PATH_MAX];
        snprintf (base, sizeof base, "%s%s%s", root, version == CGROUP_V1 ? "/" : "",
                  version == CGROUP_V1 ? s_v1_names [i] : "");
        rc = s_make_path (base, rel, version == CGROUP_V2);
        if (rc == 0 && asprintf (&self->dirs [i], "%s/%s", base, rel) < 0) {
            self->dirs [i] = NULL;
            rc = -1;
        }
    }
    if (rc == 0 && version == CGROUP_V1) {
        self->memsw = s_exists (self->dirs [V1_MEMORY], "memory.memsw.limit_in_bytes");
        s_drop_comounted (self);
    }
    //  Fail closed: without bandwidth control a session could take every core of the host.
    const char *bandwidth = version == CGROUP_V1 ? "cpu.cfs_quota_us" : "cpu.max";
    if (rc == 0 && !s_exists (s_cpu_dir (self), bandwidth)) {
        log_error ("cgroup: no CPU bandwidth control in %s (kernel without CFS_BANDWIDTH?)",
                   s_cpu_dir (self));
        rc = -1;
    }
    if (rc == 0 && version == CGROUP_V2) {
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/memory.peak", self->dirs [0]);
        self->peak_fd = open (path, O_RDWR | O_CLOEXEC);
        //  No swap at all: memory.max then bounds memory and swap together.
        if (s_exists (self->dirs [0], "memory.swap.max"))
            rc = s_write (self->dirs [0], "memory.swap.max", "0", false);
    }
    if (rc < 0) {
        log_error ("cgroup: cannot make %s under %s", rel, root);
        cgroup_destroy (&self);
    }
    return self;
}

//  Kills the group's processes so it can be removed.
static void
s_kill_all (cgroup_t *self)
{
    const char *dir = self->dirs [self->version == CGROUP_V1 ? V1_PIDS : 0];
    if (!dir)
        return;
    if (self->version == CGROUP_V2 && s_write (dir, "cgroup.kill", "1", true) == 0)
        return;
    char buf [8192];
    if (s_read (dir, "cgroup.procs", buf, sizeof buf) < 0)
        return;
    for (char *p = buf; *p; ) {
        char *end;
        long pid = strtol (p, &end, 10);
        if (end == p)
            break;
        if (pid > 0 && kill ((pid_t) pid, SIGKILL) < 0 && errno != ESRCH)
            log_warn ("cgroup: kill %ld: %s", pid, strerror (errno));
        p = end + (*end != 0);
    }
}

void
cgroup_destroy (cgroup_t **self_p)
{
    cgroup_t *self = *self_p;
    if (!self)
        return;
    s_kill_all (self);
    if (self->peak_fd >= 0)
        close (self->peak_fd);
    if (self->reset_fd >= 0)
        close (self->reset_fd);
    for (int i = 0; i < self->ncounters; i++)
        close (self->counters [i].fd);
    for (int i = 0; i < CG_DIRS; i++) {
        if (!self->dirs [i])
            continue;
        //  Killed processes leave the group a moment after the signal.
        int tries = 0, rc;
        while ((rc = rmdir (self->dirs [i])) < 0 && errno == EBUSY && tries++ < 200) {
            struct timespec ms = { 0, 1000000 };
            nanosleep (&ms, NULL);
        }
        if (rc < 0 && errno != ENOENT && errno != ENOTEMPTY)   //  ENOTEMPTY: test trees
            log_warn ("cgroup: rmdir %s: %s", self->dirs [i], strerror (errno));
        free (self->dirs [i]);
    }
    free (self);
    *self_p = NULL;
}

void
cgroup_remove_dir (const char *root, cgroup_version_t version, const char *rel)
{
    for (int i = 0; i < (version == CGROUP_V1 ? CG_DIRS : 1); i++) {
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/%s%s%s", root, version == CGROUP_V1 ? s_v1_names [i] : "",
                  version == CGROUP_V1 ? "/" : "", rel);
        if (rmdir (path) < 0 && errno != ENOENT)
            log_warn ("cgroup: rmdir %s: %s", path, strerror (errno));
    }
}

//  --------------------------------------------------------------------------

static int
s_limit_memory_v1 (cgroup_t *self, uint64_t bytes)
{
    const char *dir = self->dirs [V1_MEMORY];
    char text [32];
    snprintf (text, sizeof text, "%" PRIu64, bytes);
    //  memsw must stay >= the limit: a raise past the old memsw is refused until memsw
    //  went up first; a cut must lower the limit first.
    if (s_write (dir, "memory.limit_in_bytes", text, self->memsw) < 0
    &&  (!self->memsw || s_write (dir, "memory.memsw.limit_in_bytes", text, false) < 0
                      || s_write (dir, "memory.limit_in_bytes", text, false) < 0))
        return -1;
    if (self->memsw && s_write (dir, "memory.memsw.limit_in_bytes", text, false) < 0)
        return -1;
    return 0;
}

static int
s_limit_cpu (cgroup_t *self, uint64_t cpu_milli)
{
    char text [48];
    uint64_t quota = cpu_milli * CPU_PERIOD_US / 1000;
    if (self->version == CGROUP_V2) {
        snprintf (text, sizeof text, "%" PRIu64 " %d", quota, CPU_PERIOD_US);
        return s_write (self->dirs [0], "cpu.max", text, false);
    }
    //  The period once, when the group is first limited: an adopted group may have another.
    snprintf (text, sizeof text, "%d", CPU_PERIOD_US);
    if (!self->cpu_milli && s_write (s_cpu_dir (self), "cpu.cfs_period_us", text, false) < 0)
        return -1;
    snprintf (text, sizeof text, "%" PRIu64, quota);
    return s_write (s_cpu_dir (self), "cpu.cfs_quota_us", text, false);
}

int
cgroup_limit (cgroup_t *self, uint64_t memory_bytes, uint64_t pids, uint64_t cpu_milli)
{
    if (memory_bytes && memory_bytes != self->memory) {
        int rc;
        if (self->version == CGROUP_V1)
            rc = s_limit_memory_v1 (self, memory_bytes);
        else {
            char text [32];
            snprintf (text, sizeof text, "%" PRIu64, memory_bytes);
            rc = s_write (self->dirs [0], "memory.max", text, false);
        }
        if (rc < 0)
            return -1;
        self->memory = memory_bytes;
    }
    if (pids && pids != self->pids) {
        char text [32];
        snprintf (text, sizeof text, "%" PRIu64, pids);
        if (s_write (self->dirs [self->version == CGROUP_V1 ? V1_PIDS : 0], "pids.max", text,
                     false) < 0)
            return -1;
        self->pids = pids;
    }
    if (cpu_milli && cpu_milli != self->cpu_milli) {
        if (s_limit_cpu (self, cpu_milli) < 0)
            return -1;
        self->cpu_milli = cpu_milli;
    }
    return 0;
}

int
cgroup_attach (cgroup_t *self, pid_t pid)
{
    char text [24];
    snprintf (text, sizeof text, "%d", (int) pid);
    for (int i = 0; i < CG_DIRS; i++)
        if (self->dirs [i] && s_write (self->dirs [i], "cgroup.procs", text, false) < 0)
            return -1;
    return 0;
}

uint64_t
cgroup_cpu_ns (cgroup_t *self)
{
    if (self->version == CGROUP_V1)
        return s_counter (self, V1_CPU, "cpuacct.usage", NULL);
    return s_counter (self, 0, "cpu.stat", "usage_usec") * 1000;
}

int
cgroup_stats (cgroup_t *self, cgroup_stats_t *stats)
{
    memset (stats, 0, sizeof *stats);
    stats->cpu_ns = cgroup_cpu_ns (self);
    if (self->version == CGROUP_V1) {
        stats->peak_bytes = s_counter (self, V1_MEMORY, "memory.max_usage_in_bytes", NULL);
        stats->oom_kills = s_counter (self, V1_MEMORY, "memory.oom_control", "oom_kill");
        stats->pids_refused = s_counter (self, V1_PIDS, "pids.events", "max");
    }
    else {
        char buf [64];
        ssize_t n = self->peak_fd >= 0 ? pread (self->peak_fd, buf, sizeof buf - 1, 0) : -1;
        if (n > 0) {
            buf [n] = 0;
            stats->peak_bytes = strtoull (buf, NULL, 10);
        }
        else
            stats->peak_bytes = s_counter (self, 0, "memory.current", NULL);
        stats->oom_kills = s_counter (self, 0, "memory.events", "oom_kill");
        stats->pids_refused = s_counter (self, 0, "pids.events", "max");
    }
    return stats->cpu_ns || stats->peak_bytes ? 0 : -1;
}

void
cgroup_reset_peak (cgroup_t *self)
{
    if (self->version == CGROUP_V1) {
        if (self->reset_fd < 0) {
            char path [PATH_MAX];
            snprintf (path, sizeof path, "%s/memory.max_usage_in_bytes", self->dirs [V1_MEMORY]);
            self->reset_fd = open (path, O_WRONLY | O_CLOEXEC);
        }
        if (self->reset_fd < 0 || pwrite (self->reset_fd, "0", 1, 0) != 1) {
            if (self->reset_fd >= 0)
                close (self->reset_fd);
            self->reset_fd = -1;
            s_write (self->dirs [V1_MEMORY], "memory.max_usage_in_bytes", "0", true);
        }
    }
    else
    if (self->peak_fd >= 0 && write (self->peak_fd, "reset\n", 6) < 0) {
        //  Before Linux 6.12 the peak cannot be reset: it then covers the group's life.
    }
}

//  --------------------------------------------------------------------------
//  Self-test: path logic, limits and counters against fake v1 and v2 trees (plain files
//  in a temporary directory), so both versions are exercised on any machine.

static void
s_fake (const char *dir, const char *file, const char *text)
{
    char path [PATH_MAX];
    if (snprintf (path, sizeof path, "%s/%s", dir, file) >= (int) sizeof path)
        return;
    FILE *f = fopen (path, "w");
    if (f) {
        fputs (text, f);
        fclose (f);
    }
}

static bool
s_has (const char *dir, const char *file, const char *want)
{
    char buf [256] = "";
    s_read (dir, file, buf, sizeof buf);
    bool same = strcmp (buf, want) == 0;
    if (!same)
        fprintf (stderr, "  %s/%s is '%s', wanted '%s'\n", dir, file, buf, want);
    return same;
}

static void
s_test_v2 (const char *tmp)
{
    char box [PATH_MAX];
    snprintf (box, sizeof box, "%s/v2/rg/w1/box0", tmp);
    char cmd [PATH_MAX + 16];
    snprintf (cmd, sizeof cmd, "mkdir -p %s", box);
    CHECK (system (cmd) == 0);
    const char *files [] = { "memory.max", "pids.max", "memory.swap.max", "cgroup.procs", "memory.peak" };
    for (int i = 0; i < 5; i++)
        s_fake (box, files [i], "max\n");
    s_fake (box, "cpu.max", "max 100000\n");
    s_fake (box, "cpu.stat", "usage_usec 1500\nuser_usec 1000\n");
    s_fake (box, "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n");
    s_fake (box, "pids.events", "max 4\n");
    char root [PATH_MAX], dir [PATH_MAX + 16];
    snprintf (root, sizeof root, "%s/v2", tmp);
    const char *parents [] = { "", "/rg", "/rg/w1" };
    for (int i = 0; i < 3; i++) {
        snprintf (dir, sizeof dir, "%s%s", root, parents [i]);
        s_fake (dir, "cgroup.subtree_control", "");
    }
    cgroup_t *cg = cgroup_new (root, CGROUP_V2, "rg/w1/box0");
    CHECK (cg != NULL);
    if (!cg)
        return;
    snprintf (box, sizeof box, "%s/v2/rg", tmp);
    CHECK (s_has (box, "cgroup.subtree_control", "+cpu"));
    CHECK (s_has (cg->dirs [0], "memory.swap.max", "0"));
    CHECK (cgroup_limit (cg, 512 << 20, 128, 1500) == 0);
    CHECK (s_has (cg->dirs [0], "memory.max", "536870912"));
    CHECK (s_has (cg->dirs [0], "pids.max", "128"));
    CHECK (s_has (cg->dirs [0], "cpu.max", "150000 100000"));
    //  The warm path: the same limits again write nothing.
    s_fake (cg->dirs [0], "cpu.max", "untouched");
    CHECK (cgroup_limit (cg, 512 << 20, 128, 1500) == 0);
    CHECK (s_has (cg->dirs [0], "cpu.max", "untouched"));
    CHECK (cgroup_limit (cg, 0, 0, 250) == 0);
    CHECK (s_has (cg->dirs [0], "cpu.max", "25000 100000"));
    CHECK (cgroup_attach (cg, 4242) == 0);
    CHECK (s_has (cg->dirs [0], "cgroup.procs", "4242"));
    s_fake (cg->dirs [0], "memory.peak", "1048576\n");
    cgroup_stats_t st;
    CHECK (cgroup_stats (cg, &st) == 0);
    CHECK (st.cpu_ns == 1500000 && st.oom_kills == 2 && st.pids_refused == 4);
    CHECK (st.peak_bytes == 1048576);
    s_fake (cg->dirs [0], "cgroup.procs", "");     //  destroy kills what it lists
    cgroup_destroy (&cg);
    CHECK (cg == NULL);
    //  No cpu.max (no CPU bandwidth control): refused, fail closed.
    cg = cgroup_new (root, CGROUP_V2, "rg/w1/box1");
    CHECK (cg == NULL);
    cgroup_destroy (&cg);
}

static void
s_test_v1 (const char *tmp)
{
    char cmd [PATH_MAX * 2];
    snprintf (cmd, sizeof cmd, "mkdir -p %s/v1/memory/rg/b1 %s/v1/pids/rg/b1 %s/v1/cpuacct/rg/b1 "
              "%s/v1/cpu/rg/b1", tmp, tmp, tmp, tmp);
    CHECK (system (cmd) == 0);
    char root [PATH_MAX], dir [PATH_MAX + 32];
    snprintf (root, sizeof root, "%s/v1", tmp);
    snprintf (dir, sizeof dir, "%s/memory/rg/b1", root);
    s_fake (dir, "memory.limit_in_bytes", "9223372036854771712\n");
    s_fake (dir, "memory.memsw.limit_in_bytes", "9223372036854771712\n");
    s_fake (dir, "memory.max_usage_in_bytes", "2097152\n");
    s_fake (dir, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
    s_fake (dir, "cgroup.procs", "");
    snprintf (dir, sizeof dir, "%s/pids/rg/b1", root);
    s_fake (dir, "pids.events", "max 7\n");
    s_fake (dir, "pids.max", "max\n");
    s_fake (dir, "cgroup.procs", "");
    snprintf (dir, sizeof dir, "%s/cpuacct/rg/b1", root);
    s_fake (dir, "cpuacct.usage", "123456789\n");
    s_fake (dir, "cgroup.procs", "");
    snprintf (dir, sizeof dir, "%s/cpu/rg/b1", root);
    s_fake (dir, "cpu.cfs_period_us", "250000\n");
    s_fake (dir, "cpu.cfs_quota_us", "-1\n");
    s_fake (dir, "cgroup.procs", "");
    cgroup_t *cg = cgroup_new (root, CGROUP_V1, "rg/b1");
    CHECK (cg && cg->memsw && cg->dirs [V1_CPUCTL]);
    if (!cg)
        return;
    CHECK (cgroup_limit (cg, 64 << 20, 32, 1000) == 0);
    CHECK (s_has (cg->dirs [V1_MEMORY], "memory.limit_in_bytes", "67108864"));
    CHECK (s_has (cg->dirs [V1_MEMORY], "memory.memsw.limit_in_bytes", "67108864"));
    CHECK (s_has (cg->dirs [V1_PIDS], "pids.max", "32"));
    CHECK (s_has (cg->dirs [V1_CPUCTL], "cpu.cfs_period_us", "100000"));
    CHECK (s_has (cg->dirs [V1_CPUCTL], "cpu.cfs_quota_us", "100000"));
    s_fake (cg->dirs [V1_CPUCTL], "cpu.cfs_quota_us", "untouched");
    CHECK (cgroup_limit (cg, 64 << 20, 32, 1000) == 0);
    CHECK (s_has (cg->dirs [V1_CPUCTL], "cpu.cfs_quota_us", "untouched"));
    CHECK (cgroup_limit (cg, 64 << 20, 32, 2500) == 0);
    CHECK (s_has (cg->dirs [V1_CPUCTL], "cpu.cfs_quota_us", "250000"));
    CHECK (cgroup_attach (cg, 77) == 0);
    CHECK (s_has (cg->dirs [V1_CPU], "cgroup.procs", "77"));
    CHECK (s_has (cg->dirs [V1_CPUCTL], "cgroup.procs", "77"));
    cgroup_stats_t st;
    CHECK (cgroup_stats (cg, &st) == 0);
    CHECK (st.cpu_ns == 123456789 && st.peak_bytes == 2097152 && st.oom_kills == 1
           && st.pids_refused == 7);
    //  The reset is a write at offset 0 on a kept descriptor; a kernfs file takes it whole,
    //  a plain file of the fake tree only over its first byte.
    s_fake (cg->dirs [V1_MEMORY], "memory.max_usage_in_bytes", "7");
    cgroup_reset_peak (cg);
    CHECK (s_has (cg->dirs [V1_MEMORY], "memory.max_usage_in_bytes", "0"));
    for (int i = 0; i < CG_DIRS; i++)
        s_fake (cg->dirs [i], "cgroup.procs", "");
    cgroup_destroy (&cg);
}

//  A "cpu,cpuacct" co-mount: ROOT/cpu is a symlink to ROOT/cpuacct's hierarchy.
static void
s_test_v1_comounted (const char *tmp)
{
    char cmd [PATH_MAX * 2];
    snprintf (cmd, sizeof cmd, "mkdir -p %s/v1c/memory/rg/b1 %s/v1c/pids/rg/b1 "
              "%s/v1c/cpu,cpuacct/rg/b1 && ln -s cpu,cpuacct %s/v1c/cpu && "
              "ln -s cpu,cpuacct %s/v1c/cpuacct", tmp, tmp, tmp, tmp, tmp);
    CHECK (system (cmd) == 0);
    char root [PATH_MAX], dir [PATH_MAX + 32];
    snprintf (root, sizeof root, "%s/v1c", tmp);
    snprintf (dir, sizeof dir, "%s/cpu,cpuacct/rg/b1", root);
    s_fake (dir, "cpu.cfs_period_us", "100000\n");
    s_fake (dir, "cpu.cfs_quota_us", "-1\n");
    cgroup_t *cg = cgroup_new (root, CGROUP_V1, "rg/b1");
    CHECK (cg && !cg->dirs [V1_CPUCTL]);
    if (!cg)
        return;
    CHECK (cgroup_limit (cg, 0, 0, 500) == 0);
    CHECK (s_has (dir, "cpu.cfs_quota_us", "50000"));
    cgroup_destroy (&cg);
}

int
cgroup_test (void)
{
    char tmp [] = "/tmp/replgate-cgtest-XXXXXX";
    CHECK (mkdtemp (tmp) != NULL);
    s_test_v2 (tmp);
    s_test_v1 (tmp);
    s_test_v1_comounted (tmp);
    char why [256] = "";
    //  A plain directory is neither version.
    CHECK (cgroup_detect (tmp, CGROUP_NONE, why, sizeof why) == CGROUP_NONE && *why);
    char cmd [PATH_MAX];
    snprintf (cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK (system (cmd) == 0);
    return 0;
}
