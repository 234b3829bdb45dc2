/*  worker/procstat.h: a process's CPU time and peak memory from /proc, for sessions without a
    sandbox (a sandboxed session's cgroup counts the whole session instead: spawn.h). */
#ifndef RG_PROCSTAT_H
#define RG_PROCSTAT_H
#include <sys/types.h>

//  utime + stime + cutime + cstime of pid in clock ticks, or -1.
long long procstat_cpu_ticks (pid_t pid);
//  Peak resident set of pid in KiB (VmHWM), or -1.
long procstat_peak_rss_kb (pid_t pid);
//  Makes pid's VmHWM start over, so the next peak is the next snippet's. Best effort.
void procstat_reset_peak_rss (pid_t pid);
#endif
