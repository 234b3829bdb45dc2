/*  worker/init.c: replgate-init, the tiny PID 1 of every sandboxed session.

    Built as its own static program (no shared libraries, nothing of the worker's memory, keys
    or sockets inside the sandbox). The worker's spawn code builds the jail, loads the seccomp
    filter and execs this program from a descriptor opened before pivot_root; it then
        - starts the interpreter (argv[2..]) as its only direct child, with fds 0-4 as given;
        - reaps every process that is reparented to it (daemonized snippet children);
        - when the interpreter ends, writes its raw wait status (4 bytes, native order) to the
          status descriptor argv[1] and exits. PID 1 of a pid namespace exiting makes the kernel
          SIGKILL everything else in it, so nothing a snippet started outlives its session.
    As the init of a pid namespace it ignores every signal it has no handler for, from inside
    the namespace and from outside (except SIGKILL): the worker's SIGINT at a timeout reaches
    the interpreter (same process group) and not us; the worker's SIGKILL ends the session.

    It is not dumpable, so that no process of the session (the same uid) can write its memory
    through /proc/1/mem and change the status it reports.

    usage: replgate-init STATUS_FD PROGRAM [ARG...]
           replgate-init --shell BASH [ARG...]     the shell session's driver (shellhost.c) */
#define _GNU_SOURCE
#include "worker/shellhost.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void
s_say (const char *what, int err)
{
    //  fd 2 is the snippet's stderr pipe: the only place a human will see this.
    dprintf (2, "replgate-init: %s: %s\n", what, strerror (err));
}

//  Blocks until the interpreter ends, reaping orphans meanwhile. Returns its wait status.
static int
s_wait_for (pid_t child)
{
    while (1) {
        int status;
        pid_t pid = waitpid (-1, &status, 0);
        if (pid == child)
            return status;
        if (pid < 0 && errno != EINTR) {
            s_say ("waitpid", errno);
            return W_EXITCODE (125, 0);
        }
    }
}

int
main (int argc, char *argv [])
{
    if (argc >= 3 && strcmp (argv [1], "--shell") == 0)
        return shellhost_main (argc - 2, argv + 2);
    if (argc < 3 || getpid () != 1) {
        fprintf (stderr, "usage: replgate-init STATUS_FD PROGRAM [ARG...] (as PID 1 of a "
                         "pid namespace, started by replgate-worker)\n");
        return 2;
    }
    if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        s_say ("prctl", errno);
        return 125;
    }
    int status_fd = atoi (argv [1]);
    //  Ours alone: the interpreter must see descriptors 0-4 only.
    if (fcntl (status_fd, F_SETFD, FD_CLOEXEC) < 0) {
        s_say ("status descriptor", errno);
        return 125;
    }
    pid_t child = fork ();
    if (child < 0) {
        s_say ("fork", errno);
        return 125;
    }
    if (child == 0) {
        execve (argv [2], argv + 2, environ);
        s_say (argv [2], errno);
        _exit (127);
    }
    int status = s_wait_for (child);
    ssize_t n;
    do
        n = write (status_fd, &status, sizeof status);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t) sizeof status)
        s_say ("write status", n < 0 ? errno : EIO);
    //  Exiting as PID 1 kills whatever the snippet left behind.
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}
