/*  worker/front.c: the worker's unprivileged front: the broker link, its JSON, the checks
    of a run's fields and limits, and the relay to and from the back (see front.h). */
#define _GNU_SOURCE
#include "worker/front.h"
#include "worker/grant.h"
#include "worker/drop.h"
#include "worker/link.h"
#include "worker/wire.h"
#include "common/util.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const options_t *args;
    link_t *link;
    wire_t *wire;
    const char *sandbox;        //  what results say, for the runs refused here
    bool stop;
} s_front_t;

//  --------------------------------------------------------------------------
//  A run's limits, checked against the command line's maxima.

//  One integer limit of a run, within [min, max]; NULL or why not. Absent or null keeps *out.
static const char *
s_limit (json_t *given, const char *key, int64_t min, int64_t max, int64_t *out)
{
    static char why [128];
    json_t *v = json_object_get (given, key);
    if (!v || json_is_null (v))
        return NULL;
    if (!json_is_integer (v) || json_integer_value (v) < min || json_integer_value (v) > max) {
        snprintf (why, sizeof why, "limits.%s must be an integer from %lld to %lld (this "
                  "worker's maximum)", key, (long long) min, (long long) max);
        return why;
    }
    *out = json_integer_value (v);
    return NULL;
}

//  limits.cpus: a number of CPUs, 0.01 up to max (thousandths), into *out in thousandths.
//  NULL or why not; absent or null keeps *out.
static const char *
s_limit_cpus (json_t *given, int64_t max, int64_t *out)
{
    static char why [128];
    json_t *v = json_object_get (given, "cpus");
    if (!v || json_is_null (v))
        return NULL;
    double cpus = json_is_number (v) ? json_number_value (v) : -1;
    if (!(cpus >= 0.01 && cpus * 1000 <= (double) max + 0.5)) {
        snprintf (why, sizeof why, "limits.cpus must be a number from 0.01 to %g (this "
                  "worker's maximum)", (double) max / 1000);
        return why;
    }
    *out = (int64_t) (cpus * 1000 + 0.5);
    return NULL;
}

//  The run's limits, defaults for absent fields. NULL, or why they are unacceptable.
static const char *
s_limits (const options_t *args, json_t *run, session_limits_t *limits)
{
    options_default_limits (args, limits);
    json_t *given = json_object_get (run, "limits");
    if (!given || json_is_null (given))
        return NULL;
    if (!json_is_object (given))
        return "limits must be an object";
    const char *why = s_limit (given, "memory_mb", 16, args->max_memory_mb, &limits->memory_mb);
    why = why ? why : s_limit (given, "pids", 8, args->max_pids, &limits->pids);
    why = why ? why : s_limit (given, "tmp_mb", 1, args->max_tmp_mb, &limits->tmp_mb);
    why = why ? why : s_limit_cpus (given, args->max_cpu_milli, &limits->cpu_milli);
    why = why ? why : s_limit (given, "egress_connections", 1, OPTIONS_MAX_EGRESS_CONNECTIONS,
                               &limits->egress_connections);
    why = why ? why : s_limit (given, "egress_bytes", 1, OPTIONS_MAX_EGRESS_BYTES,
                               &limits->egress_bytes);
    if (why)
        return why;
    json_t *timeout = json_object_get (given, "timeout_ms");
    json_t *output = json_object_get (given, "output_bytes");
    if (timeout && !json_is_null (timeout)) {
        if (!json_is_integer (timeout) || json_integer_value (timeout) < 1
        ||  json_integer_value (timeout) > OPTIONS_MAX_TIMEOUT_MS)
            return "limits.timeout_ms must be an integer from 1 to 86400000";
        limits->timeout_ms = json_integer_value (timeout);
    }
    if (output && !json_is_null (output)) {
        if (!json_is_integer (output) || json_integer_value (output) < 1
        ||  json_integer_value (output) > OPTIONS_MAX_OUTPUT)
            return "limits.output_bytes must be an integer from 1 to 268435456";
        limits->output_bytes = (size_t) json_integer_value (output);
    }
    return NULL;
}

//  --------------------------------------------------------------------------
//  Messages from the broker. Bad ones are logged and dropped; a well-formed run that
//  cannot be served still gets a result, so the broker never waits for nothing.

static void
s_to_back (s_front_t *f, const wire_msg_t *msg)
{
    if (wire_send (f->wire, msg) < 0) {
        log_error ("front: the back does not take messages; stopping");
        f->stop = true;
    }
}

static void
s_on_run (s_front_t *f, json_t *run)
{
    json_t *id = json_object_get (run, "id");
    const char *name = json_string_value (json_object_get (run, "session"));
    const char *lang = json_string_value (json_object_get (run, "lang"));
    const char *owner = json_string_value (json_object_get (run, "owner"));
    json_t *code = json_object_get (run, "code");
    if (!json_is_integer (id) || !name || !lang) {
        log_error ("ignored a run without an integer id, a session and a lang");
        return;
    }
    wire_msg_t msg = { .type = WIRE_RUN, .id = json_integer_value (id), .owner = owner,
                       .session = name, .lang = lang, .code = json_string_value (code),
                       .code_len = json_string_length (code) };
    const char *why = s_limits (f->args, run, &msg.limits);
    msg.limits.stream = json_is_true (json_object_get (run, "stream"));
    if (!why && (strcmp (lang, "python") != 0 && strcmp (lang, "shell") != 0))
        why = "lang must be python or shell";
    if (!why && (!*name || strlen (name) > OPTIONS_MAX_NAME))
        why = "session must be a name of 1 to 256 bytes";
    if (!why && (!json_is_string (code) || msg.code_len > WIRE_MAX_CODE))
        why = "code must be a string";
    if (!why && (!owner || !*owner || strlen (owner) > OPTIONS_MAX_NAME))
        why = "owner must be the principal's name, 1 to 256 bytes";
    //  A grant: the back gives this run, and only it, egress through a proxy of its own.
    json_t *network = json_object_get (run, "network");
    buf_t grant = { 0 };
    if (!why && network && !json_is_null (network) && grant_from_json (network, &grant, &why) == 0) {
        msg.grant = grant.data;
        msg.grant_len = grant.len;
    }
    if (why) {
        log_warn ("run %lld for %s/%s refused: %s", (long long) msg.id, name, lang, why);
        json_t *result = session_reject (msg.id, name, lang, why, f->sandbox);
        link_send (f->link, &result);
        buf_free (&grant);
        return;
    }
    s_to_back (f, &msg);
    buf_free (&grant);
}

//  Names the back could not hold cannot name a session of it: nothing to send.
static bool
s_names_fit (const wire_msg_t *m)
{
    return m->owner && m->session && m->lang && strlen (m->owner) <= WIRE_MAX_NAME
        && strlen (m->session) <= WIRE_MAX_NAME && strlen (m->lang) <= WIRE_MAX_NAME;
}

static void
s_on_message (s_front_t *f, json_t *msg)
{
    const char *op = json_string_value (json_object_get (msg, "op"));
    if (op && strcmp (op, "run") == 0)
        s_on_run (f, msg);
    else
    if (op && strcmp (op, "close") == 0) {
        wire_msg_t close = { .type = WIRE_CLOSE,
            .owner = json_string_value (json_object_get (msg, "owner")),
            .session = json_string_value (json_object_get (msg, "session")),
            .lang = json_string_value (json_object_get (msg, "lang")) };
        if (s_names_fit (&close))
            s_to_back (f, &close);
    }
    else
    if (op && strcmp (op, "interrupt") == 0) {
        wire_msg_t interrupt = { .type = WIRE_INTERRUPT,
            .id = json_integer_value (json_object_get (msg, "id")),
            .owner = json_string_value (json_object_get (msg, "owner")),
            .session = json_string_value (json_object_get (msg, "session")),
            .lang = json_string_value (json_object_get (msg, "lang")) };
        if (s_names_fit (&interrupt))
            s_to_back (f, &interrupt);
    }
    else
    if (op && strcmp (op, "drain") == 0)
        log_info ("front: the broker drains this worker: no new sessions come");
    else
    if (op && strcmp (op, "drained") == 0) {
        log_info ("front: drained: nothing runs here any more%s", f->args->exit_when_drained
                  ? "; leaving (--exit-when-drained)" : "");
        if (f->args->exit_when_drained)
            s_to_back (f, &(wire_msg_t) { .type = WIRE_STOP });
    }
    else
    if (op && strcmp (op, "announce") == 0)
        s_to_back (f, &(wire_msg_t) { .type = WIRE_STATE });   //  the back answers READY
    else
    if (!op || strcmp (op, "heartbeat") != 0)
        log_error ("ignored a message from the broker with op %s", op ? op : "(none)");
}

//  --------------------------------------------------------------------------
//  The loop.

//  Forwards every complete message from the back. False once the back is gone.
static bool
s_from_back (s_front_t *f)
{
    wire_msg_t msg;
    const char *why = NULL;
    wire_status_t got;
    while ((got = wire_recv (f->wire, &msg, &why)) == WIRE_MESSAGE)
        if (msg.frame && link_send_text (f->link, msg.frame, msg.frame_len) < 0)
            log_error ("front: a frame of type %d was not sent", (int) msg.type);
    if (got == WIRE_BAD)
        log_error ("front: a bad message from the back (%s)", why);
    return got == WIRE_NONE;
}

static void
s_loop (s_front_t *f)
{
    while (!f->stop && !stop_signalled) {
        int64_t wait = link_deadline_ms (f->link) - clock_mono_ms ();
        struct pollfd items [2] = { { .fd = -1 }, { .fd = wire_fd (f->wire),
            .events = (short) (POLLIN | (wire_pending (f->wire) ? POLLOUT : 0)) } };
        int link_wait = link_poll_item (f->link, &items [0]);
        if (wait < 0)
            wait = 0;
        if (link_wait >= 0 && link_wait < wait)
            wait = link_wait;
        if (poll (items, 2, (int) wait) < 0) {
            if (errno == EINTR)
                continue;
            log_error ("front: poll: %s", strerror (errno));
            return;
        }
        if ((items [1].revents & POLLOUT) && wire_flush (f->wire) < 0)
            return;
        if ((items [1].revents & (POLLIN | POLLERR | POLLHUP)) && !s_from_back (f)) {
            log_info ("front: the back closed the socketpair; stopping");
            return;
        }
        //  Each time round, not only when the socket says so: the connection also moves on
        //  its own timers (a reconnect) and writes what the back's results queued.
        link_handle (f->link, items [0].revents);
        json_t *msg;
        int rc;
        while (!f->stop && (rc = link_recv (f->link, &msg)) != 0)
            if (rc > 0) {
                s_on_message (f, msg);
                json_decref (msg);
            }
        if (link_tick (f->link))
            s_to_back (f, &(wire_msg_t) { .type = WIRE_STATE });
    }
}

//  Waits for the back's first READY (sent once its sandboxes are ready), into *ready. False
//  if the back went away first (it could not start; it said why).
static bool
s_wait_ready (s_front_t *f, wire_msg_t *ready)
{
    const char *why = NULL;
    while (true) {
        struct pollfd p = { wire_fd (f->wire), POLLIN, 0 };
        if (poll (&p, 1, -1) < 0 && errno != EINTR)
            return false;
        wire_status_t got = wire_recv (f->wire, ready, &why);
        if (got == WIRE_MESSAGE)
            return ready->type == WIRE_READY;
        if (got != WIRE_NONE)
            return false;
    }
}

int
front_run (const options_t *args, const zmtp_keys_t *keys, int fd, pid_t parent)
{
    log_set_name ("replgate-worker front");
    //  Nothing of the back's but the socketpair, stdin, stdout and stderr.
    if ((fd != 3 && dup2 (fd, 3) < 0) || close_range (4, ~0U, 0) < 0) {
        log_error ("front: closing inherited descriptors: %s", strerror (errno));
        return 1;
    }
    uid_t uid = spawn_front_uid (&args->spawn);
    if (geteuid () == 0 && uid == (uid_t) -1) {
        log_error ("front: --uid-base leaves no uid for the front past the sandbox boxes");
        return 1;
    }
    //  SIGINT (a terminal's, to the whole group) and SIGTERM end the loop; the back stops on
    //  its own, or when the socketpair closes.
    if (stop_signals_catch () < 0)
        return 1;
    if (drop_privileges (uid, drop_needs_no_files (args->broker), parent) < 0)
        return 1;
    s_front_t f = { args, NULL, wire_new (3), args->spawn.sandbox ? SPAWN_SANDBOX_NAME : "none",
                    false };
    wire_msg_t ready;
    int rc = 1;
    if (f.wire && s_wait_ready (&f, &ready)) {
        f.link = link_new (args->broker, keys);
        if (f.link) {
            link_send_text (f.link, ready.frame, ready.frame_len);
            s_loop (&f);
            rc = 0;
        }
    }
    link_destroy (&f.link);
    wire_destroy (&f.wire);
    return rc;
}
