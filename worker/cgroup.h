/*  worker/cgroup.h: one sandbox box's control group: memory (swap included), pids, CPU
    accounting and CPU bandwidth, on cgroup v1 (a directory per controller hierarchy) or v2
    (one directory).
    The worker is the only writer; the sandboxed processes only ever see their own cgroup
    namespace. Paths are "ROOT/CONTROLLER/REL" (v1) or "ROOT/REL" (v2). */
#ifndef RG_CGROUP_H
#define RG_CGROUP_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct _cgroup_t cgroup_t;

typedef enum { CGROUP_NONE = 0, CGROUP_V1 = 1, CGROUP_V2 = 2 } cgroup_version_t;

typedef struct {
    uint64_t cpu_ns;            //  CPU used by every process the group ever held
    uint64_t peak_bytes;        //  memory high-water mark since the last cgroup_reset_peak
    uint64_t oom_kills;         //  processes the OOM killer ended in the group
    uint64_t pids_refused;      //  forks refused at pids.max
} cgroup_stats_t;

//  Which version ROOT (normally /sys/fs/cgroup) offers with the memory, pids, CPU
//  accounting and CPU bandwidth controllers usable; `want` is CGROUP_NONE for "either, v1 first". On failure
//  returns CGROUP_NONE and puts the reason in why.
cgroup_version_t cgroup_detect (const char *root, cgroup_version_t want, char *why, size_t size);

//  Makes (or adopts) the group REL under ROOT, enabling the v2 controllers on the way down.
//  NULL (logged) on failure.
cgroup_t *cgroup_new (const char *root, cgroup_version_t version, const char *rel);
//  Kills what is left in the group and removes its directories.
void cgroup_destroy (cgroup_t **self_p);

//  Sets the memory limit (swap included), the pids limit and the CPU bandwidth in
//  thousandths of a CPU (quota = cpu_milli/1000 of each period); 0 leaves a value as it is.
//  Unchanged values are not written again. 0 or -1 (logged).
int cgroup_limit (cgroup_t *self, uint64_t memory_bytes, uint64_t pids, uint64_t cpu_milli);
//  Moves a process into the group. 0 or -1 (logged).
int cgroup_attach (cgroup_t *self, pid_t pid);
//  Reads the counters; fields that cannot be read stay 0. 0, or -1 if none could be read.
int cgroup_stats (cgroup_t *self, cgroup_stats_t *stats);
//  Just the CPU counter of cgroup_stats (ns), for baselines; 0 if unreadable.
uint64_t cgroup_cpu_ns (cgroup_t *self);
//  Starts a new memory high-water mark (v1; v2 from Linux 6.12). Best effort.
void cgroup_reset_peak (cgroup_t *self);

//  Removes ROOT/REL (v1: under each controller) if empty; for the worker's parent group.
void cgroup_remove_dir (const char *root, cgroup_version_t version, const char *rel);

int cgroup_test (void);
#endif
