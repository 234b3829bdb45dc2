/*  worker/back.c: the worker's privileged back (see back.h, front.h). All state lives in the
    pool (sessions) and the wire (the front); this file routes between them. The front is the
    exposed side: whatever it sends is checked again here, and a message that is malformed or
    out of range ends it. */
#include "worker/back.h"
#include "worker/egress.h"
#include "worker/pool.h"
#include "worker/secrets.h"
#include "worker/session.h"
#include "worker/spawn.h"
#include "worker/streams.h"
#include "worker/wire.h"
#include "common/proto.h"
#include "common/util.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FDS_PER_SESSION 6
#define FRONT_GRACE_MS 2000
#define IDLE_TURN_MS 1000       //  the longest the loop sleeps     //  a front that outlives its socketpair this long is killed

typedef struct {
    options_t *args;
    pid_t front;
    wire_t *wire;
    pool_t *pool;
    secrets_t *secrets;         //  named secrets: snippets' environment, masked in results
    streams_t *streams;         //  runs whose output goes to the broker as it comes
    int64_t next_expiry;        //  monotonic ms of the next look for idle sessions past their ttl
    struct pollfd *items;       //  [0] the front, then each slot's fds
    size_t *first;              //  per slot: its first item
    size_t *count;              //  per slot: how many items
    bool refill;                //  the warm pool wants another interpreter
    int failed;                 //  0, or why the loop must end: 1 the front failed
    bool stop;                  //  drained, and told to leave: the loop ends, status 0
} s_back_t;

static bool s_any_busy (s_back_t *b);

//  --------------------------------------------------------------------------
//  Frames to the broker, through the front.

//  The front has failed us (gone, stuck, or sent what no honest front sends): it is killed
//  and the worker stops.
static void
s_front_failed (s_back_t *b, const char *what)
{
    if (!b->failed)
        log_error ("front (pid %d) %s; killing it and stopping the worker", (int) b->front, what);
    kill (b->front, SIGKILL);
    b->failed = 1;
}

static void
s_forward (s_back_t *b, wire_type_t type, json_t **msg_p)
{
    char *text = json_dumps (*msg_p, JSON_COMPACT);
    json_decref (*msg_p);
    *msg_p = NULL;
    wire_msg_t msg = { .type = type, .frame = text, .frame_len = text ? strlen (text) : 0 };
    if (!text)
        log_error ("cannot encode a message for the broker");
    else
    if (!b->failed && wire_send (b->wire, &msg) < 0)
        s_front_failed (b, "does not take messages");
    free (text);
}

static void
s_send_ready (s_back_t *b)
{
    //  A new broker must know what we hold (sessions keep their state) and which slots are
    //  still busy with snippets its predecessor sent (their results free the slots).
    json_t *sessions = json_array ();
    json_t *running = json_array ();
    for (size_t i = 0; i < pool_slots (b->pool); i++) {
        session_t *s = pool_at (b->pool, i);
        if (s && session_alive (s))
            json_array_append_new (sessions, proto_held (session_owner (s), session_name (s),
                                                         session_lang (s), 0));
        if (s && session_busy (s))
            json_array_append_new (running, proto_held (session_owner (s), session_name (s),
                                                        session_lang (s), session_running_id (s)));
    }
    json_t *msg = proto_ready (b->args->name, (int) b->args->slots, spawn_sandbox_name (),
                               sessions, running);
    //  What placement counts on: the labels it offers and its memory.
    json_t *labels = options_labels (b->args);
    proto_ready_capacity (msg, labels, b->args->offer_memory_mb);
    json_decref (labels);
    s_forward (b, WIRE_READY, &msg);
}

static void
s_send_closed (s_back_t *b, session_t *s, const char *reason)
{
    //  A death between snippets goes on the record with how the interpreter ended.
    int status = session_exit_status (s);
    bool exited = strcmp (reason, "exited") == 0;
    json_t *msg = proto_session_closed (session_owner (s), session_name (s), session_lang (s),
                                        reason, exited && WIFEXITED (status) ? WEXITSTATUS (status) : -1,
                                        exited && WIFSIGNALED (status) ? WTERMSIG (status) : 0);
    s_forward (b, WIRE_CLOSED, &msg);
}

//  Every result leaves through here: the worker's secrets are masked before the front sees it.
static void
s_send_result (s_back_t *b, json_t **result_p)
{
    secrets_redact (b->secrets, *result_p);
    s_forward (b, WIRE_RESULT, result_p);
}

static void
s_send_output (void *arg, json_t **msg_p)
{
    s_forward ((s_back_t *) arg, WIRE_OUTPUT, msg_p);
}

//  Sends a finished snippet's result (after the last of its streamed output); a session
//  whose interpreter is gone leaves its slot (the result said session_reset, and the next
//  run starts afresh).
static void
s_deliver (s_back_t *b, session_t *s)
{
    streams_pump (b->streams, s, secrets_mask (b->secrets), s_send_output, b, true);
    json_t *result = session_take_result (s);
    if (result)
        s_send_result (b, &result);
    pool_touch (b->pool, s);
    if (!session_alive (s))
        pool_remove (b->pool, &s);
}

//  --------------------------------------------------------------------------
//  Messages from the front.

//  The session for a run, evicting an idle one if needed. NULL with *why set if impossible.
static session_t *
s_session_for (s_back_t *b, const char *owner, const char *name, const char *lang,
               const char **why)
{
    session_t *s = pool_find (b->pool, owner, name, lang);
    if (s && session_busy (s)) {
        *why = "this session is already running a snippet";
        return NULL;
    }
    session_t *evicted = NULL;
    s = s ? s : pool_claim (b->pool, owner, name, lang, &evicted);
    if (evicted) {
        log_info ("evicting idle session %s/%s for %s/%s", session_name (evicted),
                  session_lang (evicted), name, lang);
        s_send_closed (b, evicted, "evicted");
        session_destroy (&evicted);
    }
    if (!s)
        *why = "every slot of this worker is running a snippet";
    return s;
}

//  What the front checked already, checked again: true if a RUN or CLOSE names a session
//  the worker may hold and a RUN's limits are within the command line's.
static bool
s_plausible (s_back_t *b, const wire_msg_t *m)
{
    bool names = *m->owner && *m->session
              && (strcmp (m->lang, "python") == 0 || strcmp (m->lang, "shell") == 0);
    return names && (m->type != WIRE_RUN || options_limits_ok (b->args, &m->limits));
}

static void
s_on_run (s_back_t *b, const wire_msg_t *m)
{
    const char *why = NULL;
    session_t *s = s_session_for (b, m->owner, m->session, m->lang, &why);
    if (!s) {
        log_warn ("run %lld for %s/%s refused: %s", (long long) m->id, m->session, m->lang, why);
        json_t *result = session_reject (m->id, m->session, m->lang, why, spawn_sandbox_name ());
        s_forward (b, WIRE_RESULT, &result);
        return;
    }
    if (m->limits.stream)
        streams_open (b->streams, m->id);
    if (session_start (s, m->id, m->code, m->code_len, &m->limits, m->grant_len ? m->grant : NULL) == 1)
        s_deliver (b, s);
}

//  SIGINT into a running snippet; it ends `interrupted` through its result, like any end.
static void
s_on_interrupt (s_back_t *b, const wire_msg_t *m)
{
    session_t *s = pool_find (b->pool, m->owner, m->session, m->lang);
    if (!s || session_interrupt (s, m->id) != 0)
        log_info ("interrupt of run %lld: it does not run here (any more)", (long long) m->id);
}

//  Idle sessions unused for --idle-ttl leave their slots (looked at once a second), on the
//  record as their session's end.
static void
s_expire_idle (s_back_t *b)
{
    int64_t now = clock_mono_ms ();
    if (now < b->next_expiry)
        return;
    b->next_expiry = now + 1000;
    session_t *idle;
    while ((idle = pool_expire (b->pool, now, b->args->idle_ttl_ms))) {
        log_info ("session %s/%s: idle past --idle-ttl, its interpreter ends",
                  session_name (idle), session_lang (idle));
        s_send_closed (b, idle, "idle");
        session_destroy (&idle);
    }
}

static void
s_on_close (s_back_t *b, const wire_msg_t *m)
{
    session_t *s = pool_find (b->pool, m->owner, m->session, m->lang);
    if (!s)
        return;                 //  nothing to drop: already gone or never here
    if (session_busy (s)) {
        //  Its run still deserves an answer.
        session_kill (s);
        json_t *result = session_take_result (s);
        if (result)
            s_send_result (b, &result);
    }
    pool_remove (b->pool, &s);
}

static void
s_from_front (s_back_t *b)
{
    wire_msg_t m;
    const char *why = NULL;
    wire_status_t got = WIRE_NONE;
    while (!b->failed && (got = wire_recv (b->wire, &m, &why)) == WIRE_MESSAGE) {
        if ((m.type == WIRE_RUN || m.type == WIRE_CLOSE || m.type == WIRE_INTERRUPT)
            && !s_plausible (b, &m))
            s_front_failed (b, "sent a run or close outside the worker's names or limits");
        else
        if (m.type == WIRE_RUN)
            s_on_run (b, &m);
        else
        if (m.type == WIRE_CLOSE)
            s_on_close (b, &m);
        else
        if (m.type == WIRE_INTERRUPT)
            s_on_interrupt (b, &m);
        else
        if (m.type == WIRE_STATE)
            s_send_ready (b);
        else
        if (m.type == WIRE_STOP && b->args->exit_when_drained && !s_any_busy (b)) {
            log_info ("worker %s: drained; leaving (--exit-when-drained)", b->args->name);
            b->stop = true;
        }
        else
            s_front_failed (b, "sent a message only the back sends");
    }
    if (got == WIRE_BAD) {
        char what [128];
        snprintf (what, sizeof what, "sent a malformed message (%s)", why);
        s_front_failed (b, what);
    }
    else
    if (got == WIRE_EOF && !b->failed && !stop_signalled) {
        log_error ("front (pid %d) closed the socketpair; stopping the worker", (int) b->front);
        b->failed = 1;
    }
}

//  --------------------------------------------------------------------------
//  The loop.

//  Fills b->items; returns the count and the poll timeout in *wait_ms.
static nfds_t
s_prepare_poll (s_back_t *b, int *wait_ms)
{
    int64_t next = -1;
    b->items [0] = (struct pollfd) { wire_fd (b->wire), POLLIN | (wire_pending (b->wire) ? POLLOUT : 0), 0 };
    size_t n = 1;
    for (size_t i = 0; i < pool_slots (b->pool); i++) {
        session_t *s = pool_at (b->pool, i);
        b->first [i] = n;
        b->count [i] = 0;
        if (!s)
            continue;
        int fds [FDS_PER_SESSION];
        short events [FDS_PER_SESSION];
        int got = session_fds (s, fds, events, FDS_PER_SESSION);
        for (int k = 0; k < got; k++)
            b->items [n++] = (struct pollfd) { fds [k], events [k], 0 };
        b->count [i] = (size_t) got;
        int64_t deadline = session_deadline_ms (s);
        if (deadline >= 0 && (next < 0 || deadline < next))
            next = deadline;
    }
    //  Idle, the loop still turns every second: a sandbox prepared ahead that is still
    //  joining its cgroup makes session_refill() say "not now", and only a later turn
    //  takes the next step.
    int64_t now = clock_mono_ms ();
    if (b->refill)
        next = now;
    else
    if (next < 0 || next > now + IDLE_TURN_MS)
        next = now + IDLE_TURN_MS;
    *wait_ms = next < now ? 0 : (int) (next - now);
    return (nfds_t) n;
}

static void
s_step_sessions (s_back_t *b)
{
    int64_t now = clock_mono_ms ();
    for (size_t i = 0; i < pool_slots (b->pool); i++) {
        session_t *s = pool_at (b->pool, i);
        if (!s)
            continue;
        bool ready = false;
        for (size_t k = b->first [i]; k < b->first [i] + b->count [i]; k++)
            ready |= b->items [k].revents != 0;
        int64_t deadline = session_deadline_ms (s);
        if (!ready && (deadline < 0 || deadline > now))
            continue;
        session_event_t event = session_step (s);
        if (event == SESSION_NOTHING && session_busy (s))
            streams_pump (b->streams, s, secrets_mask (b->secrets), s_send_output, b, false);
        if (event == SESSION_RESULT)
            s_deliver (b, s);
        else
        if (event == SESSION_EXITED) {
            log_info ("session %s/%s: interpreter exited while idle", session_name (s),
                      session_lang (s));
            s_send_closed (b, s, "exited");
            pool_remove (b->pool, &s);
        }
    }
}

static bool
s_any_busy (s_back_t *b)
{
    for (size_t i = 0; i < pool_slots (b->pool); i++) {
        session_t *s = pool_at (b->pool, i);
        if (s && session_busy (s))
            return true;
    }
    return false;
}

static void
s_run_loop (s_back_t *b)
{
    s_send_ready (b);
    while (!stop_signalled && !b->failed && !b->stop) {
        int wait_ms;
        nfds_t n = s_prepare_poll (b, &wait_ms);
        if (poll (b->items, n, wait_ms) < 0) {
            if (errno == EINTR)
                continue;
            log_error ("poll: %s", strerror (errno));
            b->failed = 1;
            return;
        }
        //  Sessions first: the front's messages may remove sessions the items point into.
        s_step_sessions (b);
        short front = b->items [0].revents;
        if ((front & POLLOUT) && wire_flush (b->wire) < 0)
            s_front_failed (b, "does not take messages");
        if (front & (POLLIN | POLLHUP | POLLERR))
            s_from_front (b);
        //  Idle moments refill the warm pool, one interpreter per turn: a start blocks
        //  the loop for milliseconds, which a running snippet's result must not wait for.
        b->refill = !s_any_busy (b) && session_refill ();
        s_expire_idle (b);
    }
}

//  Closes our end (an honest front then exits), waits a moment, kills what is left, reaps.
static void
s_end_front (s_back_t *b)
{
    wire_destroy (&b->wire);
    int status = 0;
    pid_t got = 0;
    for (int64_t until = clock_mono_ms () + FRONT_GRACE_MS; clock_mono_ms () < until; ) {
        if ((got = waitpid (b->front, &status, WNOHANG)) != 0)
            break;
        usleep (10000);
    }
    if (got == 0) {
        kill (b->front, SIGKILL);
        got = waitpid (b->front, &status, 0);
    }
    if (got == b->front && b->failed)
        log_info ("front (pid %d) ended with %s %d", (int) b->front,
                  WIFSIGNALED (status) ? "signal" : "status",
                  WIFSIGNALED (status) ? WTERMSIG (status) : WEXITSTATUS (status));
}

//  Secrets, sandboxes, pool: what the loop needs. 0, or the exit code of a failed start.
static int
s_setup (s_back_t *b)
{
    char err [256];
    b->secrets = secrets_load (b->args->secrets_path, err, sizeof err);
    if (!b->secrets) {
        log_error ("%s", err);
        return 2;
    }
    b->args->spawn.extra_env = secrets_env (b->secrets);
    egress_configure (spawn_front_uid (&b->args->spawn), b->args->broker);
    //  Fail closed: no sandbox, no service.
    if (spawn_setup (&b->args->spawn) < 0)
        return 1;
    if (stop_signals_catch () < 0)
        return 1;
    if (!b->args->spawn.sandbox)
        log_warn ("--no-sandbox: snippets are NOT confined: they run as uid %d with every "
                  "right of this process", (int) getuid ());
    size_t slots = b->args->slots;
    b->pool = pool_new (slots);
    b->streams = streams_new ();
    b->items = calloc (1 + slots * FDS_PER_SESSION, sizeof *b->items);
    b->first = calloc (slots, sizeof *b->first);
    b->count = calloc (slots, sizeof *b->count);
    if (!b->pool || !b->items || !b->first || !b->count) {
        log_error ("out of memory");
        return 1;
    }
    return 0;
}

int
back_run (options_t *args, int fd, pid_t front)
{
    s_back_t b = { .args = args, .front = front, .wire = wire_new (fd) };
    int rc = b.wire ? s_setup (&b) : 1;
    if (rc == 0) {
        log_info ("worker %s: %zu slots, connecting to %s through its front (pid %d)",
                  args->name, args->slots, args->broker, (int) front);
        s_run_loop (&b);
        rc = b.failed ? 1 : 0;
        log_info ("worker %s: stopping", args->name);
    }
    s_end_front (&b);
    pool_destroy (&b.pool);     //  kills and reaps every interpreter
    streams_destroy (&b.streams);
    spawn_shutdown ();          //  the warm pool and the cgroups
    secrets_destroy (&b.secrets);
    free (b.items);
    free (b.first);
    free (b.count);
    return rc;
}
