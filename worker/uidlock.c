/*  worker/uidlock.c: each worker on a host takes its own range of sandbox uids without being
    told. Two workers sharing a uid could signal, trace or read each other's sandboxed
    processes, and a second stack on the host must not be handed the first one's range. A
    range is held by an flock on a file named after its base: the kernel drops the lock when
    its holder exits, even by SIGKILL, so a crashed worker never leaves a range taken, and
    no stale-file cleanup is needed. */
#define _GNU_SOURCE
#include "worker/uidlock.h"
#include "common/util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int
uidlock_claim (const char *dir, size_t size, unsigned *base, int *fd)
{
    if (size > UIDLOCK_STEP) {
        log_error ("uid ranges are %u uids apart; this worker needs %zu", UIDLOCK_STEP, size);
        return -1;
    }
    if (mkdir (dir, 0755) < 0 && errno != EEXIST) {
        log_error ("cannot make %s for the uid range locks: %s", dir, strerror (errno));
        return -1;
    }
    for (unsigned i = 0; i < UIDLOCK_RANGES; i++) {
        unsigned first = UIDLOCK_FIRST + i * UIDLOCK_STEP;
        char path [4200];
        snprintf (path, sizeof path, "%s/uids-%u.lock", dir, first);
        int lock = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (lock < 0) {
            log_error ("cannot open %s: %s", path, strerror (errno));
            return -1;
        }
        if (flock (lock, LOCK_EX | LOCK_NB) == 0) {
            *base = first;
            *fd = lock;
            return 0;
        }
        int why = errno;
        close (lock);
        if (why != EWOULDBLOCK) {
            log_error ("cannot lock %s: %s", path, strerror (why));
            return -1;
        }
    }
    log_error ("every uid range under %s is held by a live worker", dir);
    return -1;
}

//  --------------------------------------------------------------------------
//  Self-test

#include "common/check.h"
#include <stdlib.h>
#include <sys/wait.h>

int
uidlock_test (void)
{
    char dir [] = "/tmp/replgate-uidlock-XXXXXX";
    CHECK (mkdtemp (dir) != NULL);
    unsigned a = 0, b = 0, c = 0;
    int fa = -1, fb = -1, fc = -1;
    CHECK (uidlock_claim (dir, 300, &a, &fa) == 0 && a == UIDLOCK_FIRST);
    //  flock is per open file: a second claim, even in this process, gets the next range.
    CHECK (uidlock_claim (dir, 300, &b, &fb) == 0 && b == UIDLOCK_FIRST + UIDLOCK_STEP);
    CHECK (uidlock_claim (dir, UIDLOCK_STEP + 1, &c, &fc) == -1);
    close (fa);                     //  its holder is gone: the range is free again
    CHECK (uidlock_claim (dir, 300, &c, &fc) == 0 && c == UIDLOCK_FIRST);
    //  A child that dies holding a range (as by SIGKILL) frees it.
    pid_t pid = fork ();
    if (pid == 0) {
        unsigned mine;
        int fd;
        _exit (uidlock_claim (dir, 1, &mine, &fd) == 0 && mine == UIDLOCK_FIRST + 2 * UIDLOCK_STEP
               ? 0 : 1);
    }
    int status = 0;
    CHECK (pid > 0 && waitpid (pid, &status, 0) == pid && WIFEXITED (status) && WEXITSTATUS (status) == 0);
    unsigned d = 0;
    int fd = -1;
    CHECK (uidlock_claim (dir, 1, &d, &fd) == 0 && d == UIDLOCK_FIRST + 2 * UIDLOCK_STEP);
    close (fb);
    close (fc);
    close (fd);
    char cmd [128];
    snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK (system (cmd) == 0);
    return 0;
}
