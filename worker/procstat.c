/*  worker/procstat.c: what /proc tells about an unsandboxed interpreter (see procstat.h). */
#include "worker/procstat.h"
#include "common/util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
s_read_proc (pid_t pid, const char *what, char *buf, size_t size)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/%s", (int) pid, what);
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read (fd, buf, size - 1);
    close (fd);
    if (n <= 0)
        return -1;
    buf [n] = 0;
    return 0;
}

//  utime + stime + cutime + cstime in clock ticks, or -1.
long long
procstat_cpu_ticks (pid_t pid)
{
    char buf [1024];
    if (pid <= 0 || s_read_proc (pid, "stat", buf, sizeof buf) < 0)
        return -1;
    char *p = strrchr (buf, ')');   //  the command name may hold spaces and parens
    if (!p)
        return -1;
    p += 2;                         //  now at field 3, the state
    for (int field = 3; field < 14 && p; field++)
        p = strchr (p, ' ') ? strchr (p, ' ') + 1 : NULL;
    long long sum = 0;
    for (int i = 0; i < 4 && p; i++) {
        char *end;
        sum += strtoll (p, &end, 10);
        p = *end == ' ' ? end + 1 : NULL;
    }
    return p ? sum : -1;
}

//  Peak resident set in KiB, or -1.
long
procstat_peak_rss_kb (pid_t pid)
{
    char buf [4096];
    if (pid <= 0 || s_read_proc (pid, "status", buf, sizeof buf) < 0)
        return -1;
    char *line = strstr (buf, "VmHWM:");
    return line ? strtol (line + 6, NULL, 10) : -1;
}

//  Makes VmHWM start over, so the peak is this snippet's. Best effort (Linux >= 4.0).
void
procstat_reset_peak_rss (pid_t pid)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/clear_refs", (int) pid);
    int fd = open (path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write (fd, "5", 1) < 0)
            log_warn ("procstat: reset peak rss of %d: %s", (int) pid, strerror (errno));
        close (fd);
    }
}
