/*  worker/session.c: one REPL session: its interpreter process, the snippet running in it,
    the limits on that snippet and the result it ends in.

    States: IDLE (no snippet; the interpreter may or may not exist), RUNNING (request sent,
    waiting for the driver's reply or the interpreter's death), INTERRUPTING (deadline passed,
    SIGINT sent, grace period before SIGKILL), DONE (result waits for session_take_result).
    Every way a snippet ends goes through s_finish(), which builds the one result.

    The fence. A Python snippet runs inside the driver's process and can write to the
    driver's reply pipe, so a reply alone does not prove the snippet is over: a snippet could
    write a fake `ok` and then die. (A shell snippet cannot reach the pipes: its driver is the
    shell host, worker/shellhost.c, whose reply is the wait status of the snippet's bash; the
    fence is kept for both.) When a reply comes, the worker sends a fresh random nonce on the
    command pipe; the driver echoes it once it is back in its loop, and only the echo ends
    the snippet. Until then a death (the init's status), an OOM (the cgroup) or the deadline
    ends it instead, and a later reply replaces an earlier one. Whatever a snippet forges, it
    can only speak for itself: its session is its principal's alone. */
#define _GNU_SOURCE
#include "worker/session.h"
#include "worker/egress.h"
#include "worker/outbuf.h"
#include "worker/procstat.h"
#include "worker/result.h"
#include "worker/spawn.h"
#include "common/buf.h"
#include "common/util.h"
#include "pydriver_py.h"
#include "shdriver_sh.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define GRACE_MS 300            //  between SIGINT and SIGKILL at a timeout
#define INTERRUPT_GRACE_MS 2000 //  between an interrupt's SIGINT and SIGKILL
#define EXIT_POLL_MS 50         //  how often to look for an exit when pidfd is missing
#define REPLY_MAX (64 << 20)    //  largest driver reply we believe
#define OUTPUT_FACTOR 64        //  total output past this many caps kills the session
#define MARKER_BYTES 16

typedef enum { S_IDLE, S_RUNNING, S_INTERRUPTING, S_DONE } s_state_t;


struct _session_t {
    char *owner;                //  the principal whose session this is
    char *name;
    const char *lang;           //  "python" or "shell" (static strings)
    bool python;
    pid_t pid;                  //  0 when there is no interpreter
    int pidfd;                  //  readable once the interpreter exited; -1 if unsupported
    spawn_fds_t fds;            //  -1 once closed
    spawn_box_t *box;           //  the sandbox slot (uid, cgroup); NULL unsandboxed
    bool oom;                   //  the snippet's accounting saw an OOM kill
    int wstatus;                //  of the last interpreter reaped
    struct rusage usage;        //  of the last interpreter reaped
    s_state_t state;
    int64_t id;
    session_limits_t limits;
    double started_us;
    int64_t deadline;           //  snippet deadline, then end of grace
    long long cpu_start;        //  clock ticks at start, -1 unknown
    int64_t execution_count;    //  snippets sent to this interpreter
    char marker [MARKER_BYTES * 2 + 1];
    buf_t command;              //  bytes for fd 3, written up to command_off
    size_t command_off;
    buf_t replies;              //  bytes read from fd 4
    outbuf_t *out;
    outbuf_t *err;
    json_t *reply;              //  the driver's answer (python) once it came
    int shell_status;           //  the snippet's status (shell) once it came, else -1
    bool fenced;                //  a reply came and the fence nonce (marker) was sent
    bool lost;                  //  the interpreter died unnoticed before this snippet
    bool interrupt;             //  session_interrupt() sent the SIGINT, not the deadline
    egress_t *egress;           //  the proxy of a run with a network grant, while it runs
    size_t shown [2];           //  stdout, stderr bytes session_output() handed out
    buf_t tail [2];             //  a streamed snippet's last bytes, kept past its end
    json_t *result;
};

static void s_finish (session_t *self, result_end_t end, const char *why);

//  --------------------------------------------------------------------------
//  The interpreter's life: spawn, reap, kill.

static void
s_close_fd (int *fd)
{
    if (*fd >= 0) {
        close (*fd);
        *fd = -1;
    }
}

static void
s_close_pipes (session_t *self)
{
    s_close_fd (&self->fds.out);
    s_close_fd (&self->fds.err);
    s_close_fd (&self->fds.cmd);
    s_close_fd (&self->fds.res);
    s_close_fd (&self->fds.status);
    s_close_fd (&self->pidfd);
}

static const char *s_py_argv [] = { "python3", "-I", "-u", "-c", pydriver_source, NULL };
//  Each snippet in a bash of its own, under the shell host (worker/shellhost.c).
static const char *s_sh_argv [] = { "bash", "--norc", "--noprofile", "-c", shdriver_source,
                                    "replgate-shell", NULL };

//  Each language's interpreter; a session's tmp_mb is its own.
static const spawn_spec_t s_python = { "python", s_py_argv, 0, false };
static const spawn_spec_t s_shell = { "shell", s_sh_argv, 0, true };

bool
session_refill (void)
{
    return spawn_refill (&s_python) || spawn_refill (&s_shell) || spawn_prepare ();
}

static int
s_spawn (session_t *self)
{
    spawn_spec_t spec = self->python ? s_python : s_shell;
    spec.tmp_mb = self->limits.tmp_mb;
    pid_t pid = spawn_interpreter (&spec, &self->fds, &self->box);
    if (pid < 0)
        return -1;
    self->pid = pid;
    self->pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
    if (self->pidfd < 0 && errno != ENOSYS)
        log_warn ("session %s: pidfd_open: %s; polling for exits", self->name, strerror (errno));
    if (self->pidfd >= 0 && fcntl (self->pidfd, F_SETFD, FD_CLOEXEC) < 0)
        log_warn ("session %s: fcntl pidfd: %s", self->name, strerror (errno));
    self->execution_count = 0;
    self->replies.len = 0;
    return 0;
}

//  Reaps the interpreter, which exited or was sent SIGKILL. The group is killed while the
//  zombie still holds the pid, so the id cannot have been reused by another interpreter.
static void
s_reap (session_t *self)
{
    if (self->pid <= 0)
        return;
    //  Whatever the interpreter left running in its group belongs to a dead session.
    killpg (self->pid, SIGKILL);
    pid_t rc;
    do
        rc = wait4 (self->pid, &self->wstatus, 0, &self->usage);
    while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        log_error ("session %s: wait4 %d: %s", self->name, (int) self->pid, strerror (errno));
        self->wstatus = 0;
        memset (&self->usage, 0, sizeof self->usage);
    }
    //  Sandboxed, the pid is the session's init; the interpreter's own status comes from it.
    self->wstatus = spawn_exit_status (&self->fds, self->wstatus);
    if (!self->python)
        spawn_sweep_shell (self->pid);
    spawn_release (&self->box);
    self->pid = 0;
    s_close_pipes (self);
}

static void
s_kill (session_t *self)
{
    if (self->pid <= 0)
        return;
    if (killpg (self->pid, SIGKILL) < 0 && errno != ESRCH)
        log_error ("session %s: killpg %d: %s", self->name, (int) self->pid, strerror (errno));
    s_reap (self);
}

//  True once the interpreter exited; it stays a zombie (pipes open) until s_reap().
static bool
s_exited (session_t *self)
{
    if (self->pid <= 0)
        return true;
    siginfo_t info = { .si_pid = 0 };
    if (waitid (P_PID, (id_t) self->pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
        log_error ("session %s: waitid %d: %s", self->name, (int) self->pid, strerror (errno));
        return errno == ECHILD;
    }
    return info.si_pid != 0;
}

//  --------------------------------------------------------------------------
//  Constructor, destructor, accessors.

session_t *
session_new (const char *lang, const char *owner, const char *name)
{
    bool python = lang && strcmp (lang, "python") == 0;
    if (!python && !(lang && strcmp (lang, "shell") == 0))
        return NULL;
    //  A write to the pipe of an interpreter that just died must be an EPIPE, not our death.
    signal (SIGPIPE, SIG_IGN);
    session_t *self = calloc (1, sizeof *self);
    if (!self || !(self->name = strdup (name)) || !(self->owner = strdup (owner))
    ||  !(self->out = outbuf_new ())
    ||  !(self->err = outbuf_new ())) {
        log_error ("session: out of memory");
        session_destroy (&self);
        return NULL;
    }
    self->lang = python ? "python" : "shell";
    self->python = python;
    self->pidfd = -1;
    self->fds = (spawn_fds_t) { -1, -1, -1, -1, -1 };
    return self;
}

void
session_destroy (session_t **self_p)
{
    assert (self_p);
    session_t *self = *self_p;
    if (!self)
        return;
    s_kill (self);
    s_close_pipes (self);
    egress_destroy (&self->egress);
    outbuf_destroy (&self->out);
    outbuf_destroy (&self->err);
    json_decref (self->reply);
    json_decref (self->result);
    buf_free (&self->command);
    buf_free (&self->replies);
    buf_free (&self->tail [0]);
    buf_free (&self->tail [1]);
    free (self->name);
    free (self->owner);
    free (self);
    *self_p = NULL;
}

const char *
session_name (session_t *self)
{
    return self->name;
}

const char *
session_owner (session_t *self)
{
    return self->owner;
}

const char *
session_lang (session_t *self)
{
    return self->lang;
}

bool
session_busy (session_t *self)
{
    return self->state != S_IDLE;
}

bool
session_alive (session_t *self)
{
    return self->pid > 0;
}

//  --------------------------------------------------------------------------
//  Starting a snippet.

//  The proxy's settings for the run, before its code: python gets 0xfffffffe, a 4-byte
//  big-endian length and NAME=VALUE pairs each ending in a NUL, which it sets for this
//  snippet alone; the shell host gets "=LENGTH\0" and `export` lines, for the bash of this
//  snippet alone to source (shdriver.sh). Curl reads only the lowercase names.
static int
s_queue_proxy (session_t *self)
{
    static const char *names [] = { "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                                    "https_proxy", "all_proxy" };
    buf_t env = { 0 };
    const char *url = egress_url (self->egress);
    int rc = 0;
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++)
        rc |= self->python ? buf_appendf (&env, "%s=%s", names [i], url) || buf_append (&env, "", 1)
                           : buf_appendf (&env, "export %s=%s\n", names [i], url);
    rc |= self->python ? buf_append (&env, "NO_PROXY=\0no_proxy=", 20)
                       : buf_appendf (&env, "export NO_PROXY= no_proxy=\n");
    buf_t *cmd = &self->command;
    if (self->python) {
        uint32_t n = (uint32_t) env.len;
        unsigned char head [8] = { 0xff, 0xff, 0xff, 0xfe, n >> 24, n >> 16, n >> 8, n };
        rc |= buf_append (cmd, head, 8);
    }
    else
        rc |= buf_appendf (cmd, "=%zu", env.len) || buf_append (cmd, "", 1);
    rc |= buf_append (cmd, env.data, env.len);
    buf_free (&env);
    return rc ? -1 : 0;
}

//  Queues the request: python gets a 4-byte big-endian length and the code; bash gets
//  "LENGTH\0CODE".
static int
s_queue_command (session_t *self, const char *code, size_t size)
{
    buf_t *cmd = &self->command;
    cmd->len = self->command_off = 0;
    int rc = self->egress ? s_queue_proxy (self) : 0;
    if (rc)
        ;
    else
    if (self->python) {
        uint32_t n = (uint32_t) size;
        unsigned char head [4] = { n >> 24, n >> 16, n >> 8, n };
        rc = buf_append (cmd, head, 4);
    }
    else
        rc = buf_appendf (cmd, "%zu", size) || buf_append (cmd, "", 1);     //  with its NUL
    if (rc || buf_append (cmd, code, size)) {
        log_error ("session: out of memory for a %zu-byte snippet", size);
        cmd->len = 0;
        return -1;
    }
    return 0;
}

//  The fence after a reply (see the top of this file): python gets the length 0xffffffff
//  and the nonce; bash gets "NONCE\0".
static void
s_queue_fence (session_t *self)
{
    buf_t *cmd = &self->command;
    random_hex (MARKER_BYTES, self->marker);
    cmd->len = self->command_off = 0;
    if ((self->python && buf_append (cmd, "\xff\xff\xff\xff", 4))
    ||  buf_append (cmd, self->marker, self->python ? sizeof self->marker - 1 : sizeof self->marker)) {
        log_error ("session: out of memory for the fence");
        cmd->len = 0;
        return;                 //  no fence, no echo: the deadline ends the snippet
    }
    self->fenced = true;
}

static void
s_flush_command (session_t *self)
{
    buf_t *cmd = &self->command;
    while (self->command_off < cmd->len && self->fds.cmd >= 0) {
        ssize_t n = write (self->fds.cmd, cmd->data + self->command_off, cmd->len - self->command_off);
        if (n > 0)
            self->command_off += (size_t) n;
        else
        if (n < 0 && errno == EINTR)
            continue;
        else {
            if (n < 0 && errno != EAGAIN) {
                //  EPIPE: the interpreter is going away; its exit ends the snippet.
                self->command_off = cmd->len;
                s_close_fd (&self->fds.cmd);
            }
            return;
        }
    }
}

int
session_start (session_t *self, int64_t id, const char *code, size_t size,
               const session_limits_t *limits, const char *grant)
{
    if (self->state != S_IDLE)
        return -1;
    self->id = id;
    self->limits = *limits;
    self->started_us = clock_mono_us ();
    self->deadline = clock_mono_ms () + limits->timeout_ms;
    self->shell_status = -1;
    self->fenced = false;
    self->interrupt = false;
    self->shown [0] = self->shown [1] = 0;
    json_decref (self->reply);
    self->reply = NULL;
    outbuf_reset (self->out, limits->output_bytes);
    outbuf_reset (self->err, limits->output_bytes);
    self->state = S_RUNNING;
    memset (&self->usage, 0, sizeof self->usage);
    //  An interpreter that died since the last step must not swallow this snippet.
    self->lost = self->pid > 0 && s_exited (self);
    if (self->lost)
        s_reap (self);
    if (!self->python && memchr (code, 0, size)) {
        s_finish (self, END_REJECTED, "shell code contains a NUL byte");
        return 1;
    }
    if (self->pid <= 0 && s_spawn (self) < 0) {
        s_finish (self, END_REJECTED, self->python ? "cannot start python3" : "cannot start bash");
        return 1;
    }
    char why [320];
    if (grant && *grant && !(self->egress = egress_new (self->pid, grant, limits, why, sizeof why))) {
        log_error ("session %s: %s", self->name, why);
        s_finish (self, END_REJECTED, why);
        return 1;
    }
    if (s_queue_command (self, code, size) < 0) {
        s_finish (self, END_REJECTED, "out of memory");
        return 1;
    }
    if (spawn_account_start (self->box, limits->memory_mb, limits->pids, limits->cpu_milli) < 0) {
        s_finish (self, END_REJECTED, "cannot apply the memory, pids or cpus limit "
                                      "(lower than what the session already uses?)");
        return 1;
    }
    self->execution_count++;
    self->cpu_start = self->box ? -1 : procstat_cpu_ticks (self->pid);
    if (!self->box)
        procstat_reset_peak_rss (self->pid);
    s_flush_command (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  Polling.

int
session_fds (session_t *self, int *fds, short *events, int max)
{
    int n = 0;
    int in [] = { self->fds.out, self->fds.err, self->fds.res, self->pidfd,
                  self->egress ? egress_fd (self->egress) : -1 };
    for (size_t i = 0; i < sizeof in / sizeof in [0] && n < max; i++)
        if (in [i] >= 0) {
            fds [n] = in [i];
            events [n++] = POLLIN;
        }
    if (self->fds.cmd >= 0 && self->command_off < self->command.len && n < max) {
        fds [n] = self->fds.cmd;
        events [n++] = POLLOUT;
    }
    return n;
}

int64_t
session_deadline_ms (session_t *self)
{
    int64_t deadline = -1;
    if (self->state == S_RUNNING || self->state == S_INTERRUPTING)
        deadline = self->deadline;
    if (self->pid > 0 && self->pidfd < 0) {
        int64_t next = clock_mono_ms () + EXIT_POLL_MS;
        if (deadline < 0 || next < deadline)
            deadline = next;
    }
    return deadline;
}

//  --------------------------------------------------------------------------
//  Reading what the interpreter sent.

static void
s_drain_outputs (session_t *self)
{
    if (self->fds.out >= 0 && outbuf_drain (self->out, self->fds.out) < 0)
        s_close_fd (&self->fds.out);
    if (self->fds.err >= 0 && outbuf_drain (self->err, self->fds.err) < 0)
        s_close_fd (&self->fds.err);
}

//  Reads fd 4 into self->replies; -1 at end of file.
static int
s_read_replies (session_t *self)
{
    while (self->fds.res >= 0) {
        buf_t *r = &self->replies;
        if (buf_reserve (r, 4096) < 0) {
            log_error ("session: out of memory reading replies");
            return -1;
        }
        ssize_t n = read (self->fds.res, r->data + r->len, r->alloc - r->len - 1);
        if (n > 0)
            r->len += (size_t) n;
        else
        if (n < 0 && errno == EINTR)
            continue;
        else {
            if (n < 0 && errno == EAGAIN)
                return 0;
            s_close_fd (&self->fds.res);
            return -1;
        }
    }
    return -1;
}

//  What the driver's pipe held: a reply, the fence's echo, nothing complete yet, or garbage.
typedef enum { GOT_GARBAGE = -1, GOT_NOTHING = 0, GOT_REPLY, GOT_ECHO } s_got_t;

//  One python frame: 4-byte length and a JSON object (kept in self->reply, replacing an
//  earlier one), or 0xffffffff and the echoed nonce.
static s_got_t
s_parse_python (session_t *self)
{
    buf_t *r = &self->replies;
    if (r->len < 4)
        return GOT_NOTHING;
    const unsigned char *p = (const unsigned char *) r->data;
    size_t size = (size_t) p [0] << 24 | (size_t) p [1] << 16 | (size_t) p [2] << 8 | p [3];
    size_t mlen = MARKER_BYTES * 2;
    if (size == 0xffffffffu) {
        if (r->len < 4 + mlen)
            return GOT_NOTHING;
        bool match = self->fenced && memcmp (r->data + 4, self->marker, mlen) == 0;
        buf_consume (r, 4 + mlen);
        return match ? GOT_ECHO : GOT_GARBAGE;
    }
    if (size > REPLY_MAX)
        return GOT_GARBAGE;
    if (r->len < size + 4)
        return GOT_NOTHING;
    json_error_t error;
    json_t *reply = json_loadb (r->data + 4, size, JSON_ALLOW_NUL, &error);
    buf_consume (r, size + 4);
    if (!json_is_object (reply)) {
        log_error ("session %s: bad driver reply: %s", self->name, error.text);
        json_decref (reply);
        return GOT_GARBAGE;
    }
    json_decref (self->reply);
    self->reply = reply;
    return GOT_REPLY;
}

//  One shell line: "S STATUS" (kept, replacing an earlier one) or "F NONCE". Other lines
//  were not written by the driver's loop: ignored.
static s_got_t
s_parse_shell (session_t *self)
{
    buf_t *r = &self->replies;
    size_t mlen = MARKER_BYTES * 2;
    char *nl;
    while ((nl = memchr (r->data, '\n', r->len))) {
        size_t n = (size_t) (nl - r->data);
        s_got_t got = GOT_NOTHING;
        if (n > 2 && memcmp (r->data, "S ", 2) == 0) {
            self->shell_status = (int) strtol (r->data + 2, NULL, 10);
            got = GOT_REPLY;
        }
        else
        if (self->fenced && n == mlen + 2 && memcmp (r->data, "F ", 2) == 0
        &&  memcmp (r->data + 2, self->marker, mlen) == 0)
            got = GOT_ECHO;
        else
            log_warn ("session %s: ignored a line on the status pipe", self->name);
        buf_consume (r, n + 1);
        if (got != GOT_NOTHING)
            return got;
    }
    return GOT_NOTHING;
}

//  --------------------------------------------------------------------------
//  Ending a snippet: one result, whatever the cause.

//  Everything written before the end is in the pipes already; bounded in case something
//  left in the group keeps writing.
static void
s_final_drain (session_t *self)
{
    for (int i = 0; i < 64 && (self->fds.out >= 0 || self->fds.err >= 0); i++) {
        ssize_t a = self->fds.out >= 0 ? outbuf_drain (self->out, self->fds.out) : 0;
        ssize_t b = self->fds.err >= 0 ? outbuf_drain (self->err, self->fds.err) : 0;
        if (a < 0)
            s_close_fd (&self->fds.out);
        if (b < 0)
            s_close_fd (&self->fds.err);
        if (a <= 0 && b <= 0)
            break;
    }
}

static void
s_finish (session_t *self, result_end_t end, const char *why)
{
    s_final_drain (self);
    spawn_usage_t usage;
    bool boxed = self->box && end != END_REJECTED && spawn_account (self->box, &usage) == 0;
    self->oom = boxed && usage.oom;
    long long ticks = boxed ? -1 : procstat_cpu_ticks (self->pid);
    long rss_kb = boxed ? -1 : procstat_peak_rss_kb (self->pid);
    if (end == END_TIMEOUT || end == END_OUTPUT || end == END_EGRESS || end == END_KILLED
    ||  end == END_BROKEN)
        s_kill (self);
    else
    if (end == END_EXIT)
        s_reap (self);
    json_t *r = json_object ();
    json_object_set_new (r, "op", json_string ("result"));
    json_object_set_new (r, "id", json_integer (self->id));
    json_object_set_new (r, "session", json_string (self->name));
    json_object_set_new (r, "lang", json_string (self->lang));
    result_cause_t cause = { end, why, self->python, self->reply, self->shell_status,
                             self->wstatus, self->oom };
    result_set_outcome (r, &cause);
    result_set_output (r, self->out, "stdout", "stdout_truncated");
    result_set_output (r, self->err, "stderr", "stderr_truncated");
    result_cap_texts (r, self->reply, self->limits.output_bytes);
    double wall_ms = (clock_mono_us () - self->started_us) / 1000.0;
    if (boxed) {
        result_set_box_usage (r, wall_ms, &usage);
        //  pids_limited stays in the worker log until the protocol has a field for it.
        if (usage.pids_limited)
            log_info ("session %s: snippet %lld hit the pids limit", self->name, (long long) self->id);
    }
    else
        result_set_usage (r, wall_ms, self->cpu_start, ticks, rss_kb, &self->usage);
    json_t *count = self->reply ? json_object_get (self->reply, "execution_count") : NULL;
    json_object_set_new (r, "execution_count", json_integer (end == END_REPLY && json_is_integer (count)
                                                             ? json_integer_value (count)
                                                             : self->execution_count));
    json_object_set_new (r, "session_reset", json_boolean (self->pid <= 0 || self->lost));
    json_object_set_new (r, "sandbox", json_string (spawn_sandbox_name ()));
    egress_finish (&self->egress, r);       //  the grant ends with its run
    json_decref (self->result);
    self->result = r;
    self->state = S_DONE;
    //  What a streamed snippet printed last is still to be handed out after its end.
    for (int which = 0; which < 2 && self->limits.stream; which++) {
        size_t kept = 0;
        const char *bytes = outbuf_kept (which ? self->err : self->out, &kept);
        self->tail [which].len = 0;
        if (kept > self->shown [which]
        &&  buf_append (&self->tail [which], bytes + self->shown [which], kept - self->shown [which]) == 0)
            self->shown [which] = kept;
    }
    //  Until the next snippet, output (of background jobs) is read and dropped.
    outbuf_reset (self->out, 0);
    outbuf_reset (self->err, 0);
}

//  --------------------------------------------------------------------------
//  Stepping.

static session_event_t
s_step_idle (session_t *self)
{
    if (self->pid <= 0)
        return SESSION_NOTHING;
    outbuf_reset (self->out, 0);
    outbuf_reset (self->err, 0);
    s_drain_outputs (self);
    s_read_replies (self);      //  nothing should come; whatever does is stale
    self->replies.len = 0;
    if (!s_exited (self))
        return SESSION_NOTHING;
    s_reap (self);
    return SESSION_EXITED;
}

//  How a snippet that ended `end` ended, given who sent it SIGINT: an interrupt's, or the
//  deadline's (a timeout).
static result_end_t
s_end_of (session_t *self, result_end_t end)
{
    if (self->state != S_INTERRUPTING)
        return end;
    return self->interrupt ? END_INTERRUPTED : END_TIMEOUT;
}

//  Reads what the driver's pipe holds: a reply sends the fence, the fence's echo ends the
//  snippet. 1 finished the snippet, 0 not yet.
static int
s_check_reply (session_t *self)
{
    for (;;) {
        s_got_t got = self->python ? s_parse_python (self) : s_parse_shell (self);
        if (got == GOT_NOTHING)
            return 0;
        if (got == GOT_GARBAGE) {
            s_finish (self, END_BROKEN, "the interpreter driver sent a malformed reply");
            return 1;
        }
        if (got == GOT_ECHO && (self->python ? self->reply != NULL : self->shell_status >= 0)) {
            s_finish (self, s_end_of (self, END_REPLY), NULL);
            return 1;
        }
        if (got == GOT_REPLY && !self->fenced) {
            s_queue_fence (self);
            s_flush_command (self);
        }
    }
}

static void
s_check_deadline (session_t *self)
{
    int64_t now = clock_mono_ms ();
    if (now < self->deadline)
        return;
    if (self->state == S_RUNNING) {
        //  Give the snippet a chance to unwind (and python to say where it was); once its
        //  reply came only the fence's echo is awaited, and a SIGINT would hit the driver.
        if (!self->fenced && killpg (self->pid, SIGINT) < 0 && errno != ESRCH)
            log_error ("session %s: killpg SIGINT: %s", self->name, strerror (errno));
        self->state = S_INTERRUPTING;
        self->deadline = now + GRACE_MS;
    }
    else {
        if (self->interrupt)
            s_kill (self);      //  it did not answer the interrupt: the interpreter goes
        s_finish (self, s_end_of (self, END_TIMEOUT), NULL);
    }
}

int
session_interrupt (session_t *self, int64_t id)
{
    if (self->state != S_RUNNING || self->id != id)
        return -1;
    //  Once the reply came the snippet is over (its fence is under way): a SIGINT now would
    //  reach the driver's loop, not the snippet.
    if (!self->fenced && killpg (self->pid, SIGINT) < 0 && errno != ESRCH)
        log_error ("session %s: killpg SIGINT: %s", self->name, strerror (errno));
    int64_t grace = clock_mono_ms () + INTERRUPT_GRACE_MS;
    self->state = S_INTERRUPTING;
    self->interrupt = true;
    self->deadline = grace < self->deadline ? grace : self->deadline;
    return 0;
}

size_t
session_output (session_t *self, int which, const char **data)
{
    size_t kept = 0;
    const char *bytes = outbuf_kept (which ? self->err : self->out, &kept);
    if (self->state == S_DONE) {
        *data = self->tail [which].data;
        size_t n = self->tail [which].len;
        self->tail [which].len = 0;     //  the bytes stay valid until the next start
        return n;
    }
    if (self->state == S_IDLE || !self->limits.stream || kept <= self->shown [which]) {
        *data = NULL;
        return 0;
    }
    *data = bytes + self->shown [which];
    size_t n = kept - self->shown [which];
    self->shown [which] = kept;
    return n;
}

session_event_t
session_step (session_t *self)
{
    if (self->state == S_IDLE)
        return s_step_idle (self);
    if (self->state == S_DONE)
        return SESSION_NOTHING;
    s_flush_command (self);
    s_drain_outputs (self);
    s_read_replies (self);
    if (s_check_reply (self))
        return SESSION_RESULT;
    size_t total = outbuf_total (self->out) + outbuf_total (self->err);
    if (total > self->limits.output_bytes * OUTPUT_FACTOR) {
        s_finish (self, END_OUTPUT, NULL);
        return SESSION_RESULT;
    }
    if (self->egress && egress_step (self->egress)) {
        s_finish (self, END_EGRESS, NULL);
        return SESSION_RESULT;
    }
    if (s_exited (self)) {
        //  A reply written just before the exit still counts.
        s_read_replies (self);
        if (!s_check_reply (self))
            s_finish (self, s_end_of (self, END_EXIT), NULL);
        return SESSION_RESULT;
    }
    s_check_deadline (self);
    return self->state == S_DONE ? SESSION_RESULT : SESSION_NOTHING;
}

json_t *
session_take_result (session_t *self)
{
    if (self->state != S_DONE)
        return NULL;
    json_t *result = self->result;
    self->result = NULL;
    self->state = S_IDLE;
    return result;
}

void
session_kill (session_t *self)
{
    if (self->state == S_RUNNING || self->state == S_INTERRUPTING)
        s_finish (self, END_KILLED, NULL);
    else
        s_kill (self);
}

json_t *
session_reject (int64_t id, const char *name, const char *lang, const char *why,
                const char *sandbox)
{
    return json_pack ("{s:s, s:I, s:s, s:s, s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:n,"
                      " s:{s:s, s:s, s:s}, s:f, s:f, s:i, s:i, s:b, s:s}",
                      "op", "result", "id", (json_int_t) id, "session", name, "lang", lang,
                      "outcome", "error", "exit_code", "signal", "stdout", "", "stderr", "",
                      "stdout_truncated", 0, "stderr_truncated", 0, "value",
                      "error", "name", "WorkerError", "value", why, "traceback", "",
                      "wall_ms", 0.0, "cpu_ms", 0.0, "max_rss_kb", 0, "execution_count", 0,
                      "session_reset", 0, "sandbox", sandbox);
}

int
session_exit_status (session_t *self)
{
    return self->wstatus;
}

int64_t
session_running_id (session_t *self)
{
    return self->id;
}
