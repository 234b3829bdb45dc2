/*  worker/shellhost.c: the driver process of a shell session (`replgate-init --shell BASH ARG...`).

    Why a process of its own. A snippet runs inside whatever process runs it, so a bash loop
    that reads commands and writes statuses hands the snippet all it needs to write a status
    of its own: bash keeps copies of the protocol pipes while a command runs. Here no bash ever
    holds the worker's pipes. This process holds them (3: commands in, 4: results out) and is
    not dumpable, so no process of the session's uid may open its /proc files (fd, mem) or
    copy its descriptors (ptrace, pidfd_getfd and process_vm_* are refused by seccomp).

    Each snippet runs in a bash of its own (shdriver.sh), started as soon as the one before
    ended, so that it has loaded the session's state before the snippet comes:
        - we write the code to SNIPPET, then "g" to the bash's fd 3, a pipe of ours, which it
          closes for good before it sources SNIPPET;
        - it saves the state (options, cwd, variables, functions, aliases, umask) to
          STATE.new, ending with TRAILER;
        - it exits: the wait status we take is the snippet's, which no byte it writes changes.
    Then:
        - it exited with a complete STATE.new: the snippet ended. STATE.new replaces STATE,
          "S STATUS" goes to the worker and the worker's fence is echoed, as before;
        - anything else (the snippet ran `exit`, `set -e` ended it, a signal killed it, the
          state could not be written): the shell ended, and so do we, with its status or
          signal. The init reports that as the session's death, as it did for one bash.
    DIR (STATE, SNIPPET) is the session's own data, read only by the session's next bash:
    whatever a snippet writes there reaches nobody else. Invariant: at most one bash of ours at a time. */
#define _GNU_SOURCE
#include "worker/shellhost.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CMD_FD 3
#define RES_FD 4
#define TRAILER "# replgate: end of state\n"
#define MAX_ARGS 32

extern char **environ;

typedef struct {
    char *argv [MAX_ARGS + 2];  //  bash, its arguments, DIR
    char dir [64];
    char state [96];
    char next [104];            //  STATE.new
    char snippet [96];
    char env [96];              //  the proxy of this snippet alone (a run with a network grant)
    pid_t child;                //  0: none
    int code;                   //  write end of the child's fd 3: "g" once SNIPPET is in
    bool loaded;                //  STATE exists: later bashes take it instead of environ
} s_host_t;

static void
s_say (const char *what, int err)
{
    //  fd 2 is the snippet's stderr pipe: the only place a human will see this.
    if (err)
        dprintf (2, "replgate-shell: %s: %s\n", what, strerror (err));
    else
        dprintf (2, "replgate-shell: %s\n", what);
}

static void
s_nothing (int sig)
{
    (void) sig;
}

static void
s_cleanup (s_host_t *h)
{
    unlink (h->next);
    unlink (h->state);
    unlink (h->snippet);
    unlink (h->env);
    rmdir (h->dir);
}

//  The shell ended: so do we, the same way, so that the init reports it as it happened.
static void __attribute__ ((noreturn))
s_end (s_host_t *h, int status)
{
    s_cleanup (h);
    if (WIFSIGNALED (status)) {
        signal (WTERMSIG (status), SIG_DFL);
        kill (getpid (), WTERMSIG (status));
        _exit (128 + WTERMSIG (status));
    }
    _exit (WIFEXITED (status) ? WEXITSTATUS (status) : 125);
}

static int
s_write_all (int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write (fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

//  Reads up to a NUL from fd 3, one byte at a time (never past it: what follows is the next
//  message). 0, 1 at end of input, -1 on an error or a token longer than size - 1.
static int
s_read_token (char *out, size_t size)
{
    size_t len = 0;
    while (1) {
        char c;
        ssize_t n = read (CMD_FD, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 && len == 0)
            return 1;
        if (n <= 0 || len + 1 >= size)
            return -1;
        if (c == 0)
            break;
        out [len++] = c;
    }
    out [len] = 0;
    return 0;
}

//  Starts the bash of the next snippet, its fd 3 the read end of a pipe of ours.
static int
s_start (s_host_t *h)
{
    char *empty [] = { NULL };
    int p [2];
    if (pipe2 (p, O_CLOEXEC) < 0) {
        s_say ("pipe", errno);
        return -1;
    }
    pid_t pid = fork ();
    if (pid == 0) {
        //  dup2 clears close-on-exec; everything from 4 up (the worker's pipe) is closed.
        if (dup2 (p [0], CMD_FD) < 0 || close_range (RES_FD, ~0U, 0) < 0)
            _exit (126);
        execve (h->argv [0], h->argv, h->loaded ? empty : environ);
        s_say (h->argv [0], errno);
        _exit (127);
    }
    close (p [0]);
    if (pid < 0) {
        s_say ("fork", errno);
        close (p [1]);
        return -1;
    }
    h->child = pid;
    h->code = p [1];
    return 0;
}

static int
s_wait (s_host_t *h)
{
    int status;
    while (waitpid (h->child, &status, 0) < 0)
        if (errno != EINTR) {
            s_say ("waitpid", errno);
            status = W_EXITCODE (125, 0);
            break;
        }
    h->child = 0;
    if (h->code >= 0)
        close (h->code);
    h->code = -1;
    return status;
}

//  The bash started ahead may have died meanwhile (an interrupt while it started, a process
//  the session left behind): a snippet gets a live one.
static int
s_ready (s_host_t *h)
{
    int status;
    if (h->child > 0 && waitpid (h->child, &status, WNOHANG) == h->child) {
        h->child = 0;
        close (h->code);
        h->code = -1;
    }
    return h->child > 0 ? 0 : s_start (h);
}

//  Takes LENGTH bytes from the worker into path, made anew. They are read whole even if they
//  cannot be written, so that the worker's stream stays in step; -1 when the stream broke,
//  1 when they could not be written (a full /tmp), with errno.
static int
s_receive (const char *length, const char *path)
{
    char *end;
    errno = 0;
    unsigned long long left = strtoull (length, &end, 10);
    if (errno || end == length || *end) {
        s_say ("bad length from the worker", 0);
        return -1;
    }
    //  Made anew each time: never through a link or into a FIFO the session put there.
    unlink (path);
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int err = fd < 0 ? errno : 0;
    char buf [65536];
    while (left > 0) {
        ssize_t n = read (CMD_FD, buf, left < sizeof buf ? (size_t) left : sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        left -= (unsigned long long) n;
        if (!err && s_write_all (fd, buf, (size_t) n) < 0)
            err = errno ? errno : EIO;
    }
    if (fd >= 0 && close (fd) < 0 && !err)
        err = errno;
    errno = err;
    return err ? 1 : 0;
}

//  Takes "LENGTH\0CODE" from the worker into SNIPPET, which the bash sources once it reads
//  "g" from its fd 3: 0, -1 when the stream broke, 1 when the code could not be handed over.
static int
s_relay (s_host_t *h, const char *length)
{
    int rc = s_receive (length, h->snippet);
    if (rc) {
        if (rc > 0)
            s_say ("cannot hand the snippet to the shell (is /tmp full?); the shell ends", errno);
        return rc;
    }
    s_write_all (h->code, "g", 1);      //  a bash that died meanwhile is seen by wait
    close (h->code);
    h->code = -1;
    return 0;
}

//  True when STATE.new ends with the trailer: the bash reached the end of its save.
static bool
s_state_complete (const s_host_t *h)
{
    char tail [sizeof TRAILER - 1];
    int fd = open (h->next, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && st.st_size >= (off_t) sizeof tail
           && pread (fd, tail, sizeof tail, st.st_size - (off_t) sizeof tail) == (ssize_t) sizeof tail
           && memcmp (tail, TRAILER, sizeof tail) == 0;
    close (fd);
    return ok;
}

//  One snippet: run it, then report and fence, or end as the shell did.
static int
s_snippet (s_host_t *h, const char *length)
{
    if (s_ready (h) < 0)
        return -1;
    unlink (h->next);           //  only this bash's save counts
    //  "=LENGTH\0" and `export` lines first: this snippet's proxy (see shdriver.sh).
    char code_length [24];
    if (length [0] == '=') {
        int env_rc = s_receive (length + 1, h->env);
        if (env_rc > 0)
            s_say ("cannot hand the proxy settings to the shell; the snippet runs without", errno);
        if (env_rc < 0 || s_read_token (code_length, sizeof code_length) != 0)
            return -1;
        length = code_length;
    }
    int rc = s_relay (h, length);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        kill (h->child, SIGKILL);
        s_wait (h);
        s_end (h, W_EXITCODE (125, 0));
    }
    int status = s_wait (h);
    unlink (h->env);
    if (!WIFEXITED (status))
        s_end (h, status);
    if (!s_state_complete (h)) {
        if (access (h->next, F_OK) < 0)
            s_end (h, status);
        s_say ("the session's state could not be saved (is /tmp full?); the shell ends", 0);
        s_end (h, W_EXITCODE (125, 0));
    }
    if (rename (h->next, h->state) < 0) {
        s_say ("saving the session's state", errno);
        s_end (h, W_EXITCODE (125, 0));
    }
    h->loaded = true;
    //  The next bash starts now, while the result travels to the broker and the agent: a
    //  snippet sent straight back finds it (nearly) ready. A failure is retried when it comes.
    s_start (h);
    char line [160], nonce [128];
    int len = snprintf (line, sizeof line, "S %d\n", WEXITSTATUS (status));
    if (s_write_all (RES_FD, line, (size_t) len) < 0)
        return -1;
    if ((rc = s_read_token (nonce, sizeof nonce)) != 0)
        return rc;
    len = snprintf (line, sizeof line, "F %s\n", nonce);
    if (s_write_all (RES_FD, line, (size_t) len) < 0)
        return -1;
    return 0;
}

static int
s_init (s_host_t *h, int argc, char *argv [])
{
    if (argc < 1 || argc > MAX_ARGS) {
        fprintf (stderr, "usage: replgate-init --shell BASH [ARG...] (started by replgate-worker)\n");
        return -1;
    }
    //  Not dumpable: the session's processes share our uid, and must not reach our pipes.
    if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        s_say ("prctl", errno);
        return -1;
    }
    //  Handlers, not SIG_IGN: an ignored signal stays ignored in the bash we exec, and a
    //  non-interactive bash cannot trap a signal ignored on entry.
    struct sigaction sa = { .sa_handler = s_nothing, .sa_flags = SA_RESTART };
    sigemptyset (&sa.sa_mask);
    if (sigaction (SIGINT, &sa, NULL) < 0 || sigaction (SIGPIPE, &sa, NULL) < 0) {
        s_say ("sigaction", errno);
        return -1;
    }
    //  Named with our pid: a worker that had to kill us removes what we leave (spawn.c).
    snprintf (h->dir, sizeof h->dir, "%s/.replgate-shell-%d-XXXXXX",
              shellhost_tmp (getenv ("TMPDIR")), (int) getpid ());
    if (!mkdtemp (h->dir)) {
        s_say (h->dir, errno);
        return -1;
    }
    snprintf (h->state, sizeof h->state, "%s/state", h->dir);
    snprintf (h->next, sizeof h->next, "%s.new", h->state);
    snprintf (h->snippet, sizeof h->snippet, "%s/snippet", h->dir);
    snprintf (h->env, sizeof h->env, "%s/env", h->dir);
    for (int i = 0; i < argc; i++)
        h->argv [i] = argv [i];
    h->argv [argc] = h->dir;
    h->argv [argc + 1] = NULL;
    h->code = -1;
    return 0;
}

int
shellhost_main (int argc, char *argv [])
{
    s_host_t host = { .child = 0 };
    if (s_init (&host, argc, argv) < 0)
        return 125;
    int rc = s_start (&host);
    char length [24];
    while (rc == 0 && (rc = s_read_token (length, sizeof length)) == 0)
        rc = s_snippet (&host, length);
    //  The worker closed the session (1) or its stream broke (-1): the waiting bash reads
    //  end of input and exits.
    if (host.child > 0)
        s_wait (&host);
    s_cleanup (&host);
    return rc == 1 ? 0 : 125;
}
