/*  worker/main.c: replgate-worker: parses the command line, loads the CURVE keys and runs the
    one event loop: zmq_poll over the broker socket and every session's pipes, with timeouts
    from the nearest snippet deadline or heartbeat. All state lives in the pool (sessions)
    and the link (broker connection); this file only routes between them. */
#include "worker/link.h"
#include "worker/pool.h"
#include "worker/secrets.h"
#include "worker/session.h"
#include "worker/spawn.h"
#include "worker/streams.h"
#include "common/proto.h"
#include "common/util.h"
#include <czmq.h>
#include <getopt.h>
#include <poll.h>
#include <sodium.h>
#include <sys/wait.h>

#define MAX_SLOTS 256
#define MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define MAX_OUTPUT (256LL << 20)
#define MAX_NAME 256
#define FDS_PER_SESSION 5
#define MAX_WARM 16
#define MAX_CPUS 1024

typedef struct {
    const char *broker;
    const char *key;
    const char *server_key;
    char name [MAX_NAME];
    size_t slots;
    int64_t timeout_ms;
    size_t output_bytes;
    spawn_config_t spawn;       //  sandbox switches, defaults for memory, pids, tmp
    int64_t max_memory_mb;      //  the most a run may ask for
    int64_t max_pids;
    int64_t max_tmp_mb;
    int64_t max_cpu_milli;      //  thousandths of a CPU
    const char *secrets_path;   //  --secrets FILE, or NULL
} s_args_t;

typedef struct {
    s_args_t args;
    link_t *link;
    pool_t *pool;
    secrets_t *secrets;         //  named secrets: snippets' environment, masked in results
    streams_t *streams;         //  runs whose output goes to the broker as it comes
    zmq_pollitem_t *items;      //  [0] the broker, then each slot's fds
    size_t *first;              //  per slot: its first item
    size_t *count;              //  per slot: how many items
    bool refill;                //  the warm pool wants another interpreter
} s_worker_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: replgate-worker --key FILE --server-key FILE [options]\n"
        "Runs python and shell snippets for a replgate broker in persistent sessions.\n\n"
        "  --broker ENDPOINT     broker's worker endpoint (default tcp://127.0.0.1:7711)\n"
        "  --key FILE            this worker's czmq certificate; FILE_secret must exist\n"
        "  --server-key FILE     the broker's public certificate\n"
        "  --name NAME           name announced to the broker (default worker-HOST-PID)\n"
        "  --slots N             live interpreters at most, 1..%d (default 4)\n"
        "  --timeout-ms MS       snippet wall-clock limit when a run gives none (default 10000)\n"
        "  --output-bytes N      per-stream output cap when a run gives none (default 1048576)\n"
        "  --memory-mb N         session memory incl. swap when a run gives none (default 512)\n"
        "  --pids N              session processes+threads when a run gives none (default 128)\n"
        "  --tmp-mb N            session /tmp + work directory size (default 64)\n"
        "  --cpus N              session CPU bandwidth, background processes included, when a\n"
        "                        run gives none: N CPUs, 0.01 to %d (default 1)\n"
        "  --max-memory-mb N, --max-pids N, --max-tmp-mb N, --max-cpus N\n"
        "                        the most a run may ask for (default 4096, 1024, 1024, the\n"
        "                        host's CPUs)\n"
        "  --uid-base UID        host uid/gid of the first sandbox slot; slot n gets UID+n\n"
        "                        (default 200000; give each worker on a host its own range)\n"
        "  --warm N              idle sandboxed interpreters kept ready per language (default 1)\n"
        "  --prepare N           sandboxes prepared ahead, language not yet chosen: namespaces,\n"
        "                        id maps and cgroup entry done, mounts and interpreter not\n"
        "                        (default 2; 0 builds every sandbox at request time)\n"
        "  --cgroup auto|v1|v2   cgroup version to use (default auto)\n"
        "  --init PATH           the session init (default replgate-init next to this program)\n"
        "  --secrets FILE        JSON object {\"NAME\": \"value\"}: each snippet gets NAME in its\n"
        "                        environment; the values are masked in every result\n"
        "  --no-sandbox          run snippets UNCONFINED as this process's user (results say\n"
        "                        sandbox \"none\"); without it a worker that cannot build the\n"
        "                        sandbox refuses to start\n"
        "  --help                this text\n",
        MAX_SLOTS, MAX_CPUS);
}

//  A whole decimal number in [min, max], or -1.
static long long
s_number (const char *text, long long min, long long max)
{
    char *end;
    errno = 0;
    long long n = strtoll (text, &end, 10);
    return errno || end == text || *end || n < min || n > max ? -1 : n;
}

//  A number of CPUs (decimal, "1", "0.5", "2.25") in thousandths, within [0.01, MAX_CPUS];
//  -1 if it is not one.
static long long
s_cpus (const char *text)
{
    char *end;
    errno = 0;
    double cpus = strtod (text, &end);
    if (errno || end == text || *end || !(cpus >= 0.01 && cpus <= MAX_CPUS))
        return -1;
    return (long long) (cpus * 1000 + 0.5);
}

//  The sandbox options: the value parsed, -1 if it is bad, -2 for an unknown option.
static long long
s_parse_sandbox (int opt, s_args_t *args)
{
    spawn_config_t *c = &args->spawn;
    long long n = 0;
    switch (opt) {
        case 'm': c->memory_mb = n = s_number (optarg, 16, 1 << 20); break;
        case 'p': c->pids = n = s_number (optarg, 8, 1 << 20); break;
        case 'T': c->tmp_mb = n = s_number (optarg, 1, 1 << 20); break;
        case 'M': args->max_memory_mb = n = s_number (optarg, 16, 1 << 20); break;
        case 'P': args->max_pids = n = s_number (optarg, 8, 1 << 20); break;
        case 'X': args->max_tmp_mb = n = s_number (optarg, 1, 1 << 20); break;
        case 'C': c->cpu_milli = n = s_cpus (optarg); break;
        case 'Q': args->max_cpu_milli = n = s_cpus (optarg); break;
        case 'u': c->uid_base = (unsigned) (n = s_number (optarg, 1, 0xfffff000LL)); break;
        case 'w': c->warm = (size_t) (n = s_number (optarg, 0, MAX_WARM)); break;
        case 'r': c->prepare = (size_t) (n = s_number (optarg, 0, MAX_WARM)); break;
        case 'i': c->init_path = optarg; break;
        case 'N': c->sandbox = false; break;
        case 'c':
            n = strcmp (optarg, "v1") == 0 ? CGROUP_V1 : strcmp (optarg, "v2") == 0 ? CGROUP_V2
              : strcmp (optarg, "auto") == 0 ? CGROUP_NONE : -1;
            if (n >= 0)
                c->cgroup = (cgroup_version_t) n;
            break;
        default: n = -2;
    }
    return n;
}

//  The host's online CPUs, at least 1.
static long long
s_host_cpus (void)
{
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? cpus : 1;
}

//  0 to run, 1 after --help, -1 on a usage error (already reported).
static int
s_parse_args (int argc, char *argv [], s_args_t *args)
{
    static const struct option options [] = {
        { "broker", 1, NULL, 'b' }, { "key", 1, NULL, 'k' }, { "server-key", 1, NULL, 's' },
        { "name", 1, NULL, 'n' }, { "slots", 1, NULL, 'S' }, { "timeout-ms", 1, NULL, 't' },
        { "output-bytes", 1, NULL, 'o' }, { "help", 0, NULL, 'h' },
        { "memory-mb", 1, NULL, 'm' }, { "pids", 1, NULL, 'p' }, { "tmp-mb", 1, NULL, 'T' },
        { "max-memory-mb", 1, NULL, 'M' }, { "max-pids", 1, NULL, 'P' },
        { "max-tmp-mb", 1, NULL, 'X' }, { "uid-base", 1, NULL, 'u' }, { "warm", 1, NULL, 'w' },
        { "prepare", 1, NULL, 'r' }, { "cpus", 1, NULL, 'C' }, { "max-cpus", 1, NULL, 'Q' },
        { "cgroup", 1, NULL, 'c' }, { "init", 1, NULL, 'i' }, { "no-sandbox", 0, NULL, 'N' },
        { "secrets", 1, NULL, 'K' }, { NULL, 0, NULL, 0 } };
    *args = (s_args_t) { "tcp://127.0.0.1:7711", NULL, NULL, "", 4, 10000, 1 << 20,
                         { true, 200000, 4, 1, 2, 512, 128, 64, NULL, CGROUP_NONE, NULL, NULL,
                           1000 },
                         4096, 1024, 1024, 1000 * s_host_cpus (), NULL };
    char host [64] = "localhost";
    gethostname (host, sizeof host - 1);
    snprintf (args->name, sizeof args->name, "worker-%s-%d", host, (int) getpid ());
    int opt, index = 0;
    long long n = 0;
    while ((opt = getopt_long (argc, argv, "", options, &index)) != -1) {
        switch (opt) {
            case 'b': args->broker = optarg; break;
            case 'k': args->key = optarg; break;
            case 'K': args->secrets_path = optarg; break;
            case 's': args->server_key = optarg; break;
            case 'n': snprintf (args->name, sizeof args->name, "%s", optarg); break;
            case 'S': args->slots = (size_t) (n = s_number (optarg, 1, MAX_SLOTS)); break;
            case 't': args->timeout_ms = n = s_number (optarg, 1, MAX_TIMEOUT_MS); break;
            case 'o': args->output_bytes = (size_t) (n = s_number (optarg, 1, MAX_OUTPUT)); break;
            case 'h': s_usage (stdout); return 1;
            default: n = s_parse_sandbox (opt, args);
        }
        if (n < 0) {
            if (n == -1)
                fprintf (stderr, "replgate-worker: bad value for --%s: '%s'\n",
                         options [index].name, optarg);
            break;
        }
    }
    args->spawn.slots = args->slots;
    if (n >= 0 && (args->spawn.memory_mb > args->max_memory_mb || args->spawn.pids > args->max_pids
               ||  args->spawn.tmp_mb > args->max_tmp_mb
               ||  args->spawn.cpu_milli > args->max_cpu_milli)) {
        fprintf (stderr, "replgate-worker: a default limit is above its --max-* maximum\n");
        n = -2;
    }
    const char *missing = !args->key ? "--key" : !args->server_key ? "--server-key" : NULL;
    if (n >= 0 && optind < argc)
        fprintf (stderr, "replgate-worker: unexpected argument '%s'\n", argv [optind]);
    else
    if (n >= 0 && missing)
        fprintf (stderr, "replgate-worker: %s FILE is required\n", missing);
    else
    if (n >= 0 && !*args->name)
        fprintf (stderr, "replgate-worker: --name must not be empty\n");
    else
    if (n >= 0)
        return 0;
    fprintf (stderr, "run 'replgate-worker --help' for usage\n");
    return -1;
}

//  --------------------------------------------------------------------------
//  Keys: our certificate with its secret half, and the broker's public key.

static bool
s_all_zero (const byte *key)
{
    byte any = 0;
    for (int i = 0; i < 32; i++)
        any |= key [i];
    return any == 0;
}

static zcert_t *
s_load_keys (const s_args_t *args, char server_key [41])
{
    //  zcert_load() adds "_secret" itself; accept either file name.
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s", args->key);
    size_t len = strlen (path);
    if (len > 7 && strcmp (path + len - 7, "_secret") == 0)
        path [len - 7] = 0;
    zcert_t *cert = zcert_load (path);
    if (!cert || s_all_zero (zcert_secret_key (cert))) {
        fprintf (stderr, "replgate-worker: --key %s: %s\n", args->key,
                 cert ? "no secret key (expected FILE_secret next to it)"
                      : "cannot read a czmq certificate");
        zcert_destroy (&cert);
        return NULL;
    }
    zcert_t *server = zcert_load (args->server_key);
    if (!server) {
        fprintf (stderr, "replgate-worker: --server-key %s: cannot read a czmq certificate\n",
                 args->server_key);
        zcert_destroy (&cert);
        return NULL;
    }
    snprintf (server_key, 41, "%s", zcert_public_txt (server));
    zcert_destroy (&server);
    return cert;
}

//  --------------------------------------------------------------------------
//  Messages to the broker.

static void
s_send_ready (s_worker_t *w)
{
    //  A new broker must know what we hold (sessions keep their state) and which slots are
    //  still busy with snippets its predecessor sent (their results free the slots).
    json_t *sessions = json_array ();
    json_t *running = json_array ();
    for (size_t i = 0; i < pool_slots (w->pool); i++) {
        session_t *s = pool_at (w->pool, i);
        if (s && session_alive (s))
            json_array_append_new (sessions, proto_held (session_owner (s), session_name (s),
                                                         session_lang (s), 0));
        if (s && session_busy (s))
            json_array_append_new (running, proto_held (session_owner (s), session_name (s),
                                                        session_lang (s), session_running_id (s)));
    }
    json_t *msg = proto_ready (w->args.name, (int) w->args.slots, spawn_sandbox_name (),
                               sessions, running);
    link_send (w->link, &msg);
}

static void
s_send_closed (s_worker_t *w, session_t *s, const char *reason)
{
    //  A death between snippets goes on the record with how the interpreter ended.
    int status = session_exit_status (s);
    bool exited = strcmp (reason, "exited") == 0;
    json_t *msg = proto_session_closed (session_owner (s), session_name (s), session_lang (s),
                                        reason, exited && WIFEXITED (status) ? WEXITSTATUS (status) : -1,
                                        exited && WIFSIGNALED (status) ? WTERMSIG (status) : 0);
    link_send (w->link, &msg);
}

//  Every result leaves through here: the worker's secrets are masked before the broker sees it.
static void
s_send_result (s_worker_t *w, json_t **result_p)
{
    secrets_redact (w->secrets, *result_p);
    link_send (w->link, result_p);
}

//  Sends a finished snippet's result; a session whose interpreter is gone leaves its slot
//  (the result said session_reset, and the next run starts afresh).
static void
s_deliver (s_worker_t *w, session_t *s)
{
    streams_pump (w->streams, s, secrets_mask (w->secrets), w->link, true);
    json_t *result = session_take_result (s);
    if (result)
        s_send_result (w, &result);
    if (!session_alive (s))
        pool_remove (w->pool, &s);
}

//  --------------------------------------------------------------------------
//  Messages from the broker. Bad ones are logged and dropped; a well-formed run that
//  cannot be served still gets a result, so the broker never waits for nothing.

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
s_limits (s_worker_t *w, json_t *run, session_limits_t *limits)
{
    limits->timeout_ms = w->args.timeout_ms;
    limits->output_bytes = w->args.output_bytes;
    limits->memory_mb = w->args.spawn.memory_mb;
    limits->pids = w->args.spawn.pids;
    limits->tmp_mb = w->args.spawn.tmp_mb;
    limits->cpu_milli = w->args.spawn.cpu_milli;
    json_t *given = json_object_get (run, "limits");
    if (!given || json_is_null (given))
        return NULL;
    if (!json_is_object (given))
        return "limits must be an object";
    const char *why = s_limit (given, "memory_mb", 16, w->args.max_memory_mb, &limits->memory_mb);
    why = why ? why : s_limit (given, "pids", 8, w->args.max_pids, &limits->pids);
    why = why ? why : s_limit (given, "tmp_mb", 1, w->args.max_tmp_mb, &limits->tmp_mb);
    why = why ? why : s_limit_cpus (given, w->args.max_cpu_milli, &limits->cpu_milli);
    if (why)
        return why;
    json_t *timeout = json_object_get (given, "timeout_ms");
    json_t *output = json_object_get (given, "output_bytes");
    if (timeout && !json_is_null (timeout)) {
        if (!json_is_integer (timeout) || json_integer_value (timeout) < 1
        ||  json_integer_value (timeout) > MAX_TIMEOUT_MS)
            return "limits.timeout_ms must be an integer from 1 to 86400000";
        limits->timeout_ms = json_integer_value (timeout);
    }
    if (output && !json_is_null (output)) {
        if (!json_is_integer (output) || json_integer_value (output) < 1
        ||  json_integer_value (output) > MAX_OUTPUT)
            return "limits.output_bytes must be an integer from 1 to 268435456";
        limits->output_bytes = (size_t) json_integer_value (output);
    }
    return NULL;
}

//  The session for a run, evicting an idle one if needed. NULL with *why set if impossible.
static session_t *
s_session_for (s_worker_t *w, const char *owner, const char *name, const char *lang,
               const char **why)
{
    session_t *s = pool_find (w->pool, owner, name, lang);
    if (s && session_busy (s)) {
        *why = "this session is already running a snippet";
        return NULL;
    }
    session_t *evicted = NULL;
    s = s ? s : pool_claim (w->pool, owner, name, lang, &evicted);
    if (evicted) {
        log_info ("evicting idle session %s/%s for %s/%s", session_name (evicted),
                  session_lang (evicted), name, lang);
        s_send_closed (w, evicted, "evicted");
        session_destroy (&evicted);
    }
    if (!s)
        *why = "every slot of this worker is running a snippet";
    return s;
}

static void
s_on_run (s_worker_t *w, json_t *run)
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
    int64_t rid = json_integer_value (id);
    session_limits_t limits;
    const char *why = s_limits (w, run, &limits);
    if (!why && (strcmp (lang, "python") != 0 && strcmp (lang, "shell") != 0))
        why = "lang must be python or shell";
    if (!why && (!*name || strlen (name) > MAX_NAME))
        why = "session must be a name of 1 to 256 bytes";
    if (!why && !json_is_string (code))
        why = "code must be a string";
    if (!why && (!owner || !*owner || strlen (owner) > MAX_NAME))
        why = "owner must be the principal's name, 1 to 256 bytes";
    session_t *s = why ? NULL : s_session_for (w, owner, name, lang, &why);
    if (!s) {
        log_warn ("run %lld for %s/%s refused: %s", (long long) rid, name, lang, why);
        json_t *result = session_reject (rid, name, lang, why);
        link_send (w->link, &result);
        return;
    }
    limits.stream = json_is_true (json_object_get (run, "stream"));
    if (limits.stream)
        streams_open (w->streams, rid);
    if (session_start (s, rid, json_string_value (code), json_string_length (code),
                       &limits) == 1)
        s_deliver (w, s);
}

static void
s_on_close (s_worker_t *w, json_t *msg)
{
    const char *name = json_string_value (json_object_get (msg, "session"));
    const char *lang = json_string_value (json_object_get (msg, "lang"));
    const char *owner = json_string_value (json_object_get (msg, "owner"));
    session_t *s = name && lang && owner ? pool_find (w->pool, owner, name, lang) : NULL;
    if (!s)
        return;                 //  nothing to drop: already gone or never here
    if (session_busy (s)) {
        //  Its run still deserves an answer.
        session_kill (s);
        json_t *result = session_take_result (s);
        if (result)
            s_send_result (w, &result);
    }
    pool_remove (w->pool, &s);
}

//  SIGINT into a running snippet; it ends `interrupted` through its result, like any end.
static void
s_on_interrupt (s_worker_t *w, json_t *msg)
{
    int64_t id = json_integer_value (json_object_get (msg, "id"));
    session_t *s = pool_find (w->pool, json_string_value (json_object_get (msg, "owner")),
                              json_string_value (json_object_get (msg, "session")),
                              json_string_value (json_object_get (msg, "lang")));
    if (!s || session_interrupt (s, id) != 0)
        log_info ("interrupt of run %lld: it does not run here (any more)", (long long) id);
}

static void
s_on_message (s_worker_t *w, json_t *msg)
{
    const char *op = json_string_value (json_object_get (msg, "op"));
    if (op && strcmp (op, "run") == 0)
        s_on_run (w, msg);
    else
    if (op && strcmp (op, "interrupt") == 0)
        s_on_interrupt (w, msg);
    else
    if (op && strcmp (op, "close") == 0)
        s_on_close (w, msg);
    else
    if (op && strcmp (op, "announce") == 0)
        s_send_ready (w);       //  the broker does not know this connection (yet)
    else
    if (!op || strcmp (op, "heartbeat") != 0)
        log_error ("ignored a message from the broker with op %s", op ? op : "(none)");
}

//  --------------------------------------------------------------------------
//  The loop.

//  Fills w->items; returns the count and the poll timeout in *wait_ms.
static int
s_prepare_poll (s_worker_t *w, long *wait_ms)
{
    int64_t next = link_deadline_ms (w->link);
    w->items [0] = (zmq_pollitem_t) { link_handle (w->link), 0, ZMQ_POLLIN, 0 };
    size_t n = 1;
    for (size_t i = 0; i < pool_slots (w->pool); i++) {
        session_t *s = pool_at (w->pool, i);
        w->first [i] = n;
        w->count [i] = 0;
        if (!s)
            continue;
        int fds [FDS_PER_SESSION];
        short events [FDS_PER_SESSION];
        int got = session_fds (s, fds, events, FDS_PER_SESSION);
        for (int k = 0; k < got; k++)
            w->items [n++] = (zmq_pollitem_t) { NULL, fds [k],
                events [k] == POLLOUT ? ZMQ_POLLOUT : ZMQ_POLLIN, 0 };
        w->count [i] = (size_t) got;
        int64_t deadline = session_deadline_ms (s);
        if (deadline >= 0 && deadline < next)
            next = deadline;
    }
    if (w->refill)
        next = clock_mono_ms ();
    int64_t wait = next - clock_mono_ms ();
    *wait_ms = wait < 0 ? 0 : (long) wait;
    return (int) n;
}

static void
s_step_sessions (s_worker_t *w)
{
    int64_t now = clock_mono_ms ();
    for (size_t i = 0; i < pool_slots (w->pool); i++) {
        session_t *s = pool_at (w->pool, i);
        if (!s)
            continue;
        bool ready = false;
        for (size_t k = w->first [i]; k < w->first [i] + w->count [i]; k++)
            ready |= w->items [k].revents != 0;
        int64_t deadline = session_deadline_ms (s);
        if (!ready && (deadline < 0 || deadline > now))
            continue;
        session_event_t event = session_step (s);
        if (event == SESSION_NOTHING && session_busy (s))
            streams_pump (w->streams, s, secrets_mask (w->secrets), w->link, false);
        if (event == SESSION_RESULT)
            s_deliver (w, s);
        else
        if (event == SESSION_EXITED) {
            log_info ("session %s/%s: interpreter exited while idle", session_name (s),
                      session_lang (s));
            s_send_closed (w, s, "exited");
            pool_remove (w->pool, &s);
        }
    }
}

static bool
s_any_busy (s_worker_t *w)
{
    for (size_t i = 0; i < pool_slots (w->pool); i++) {
        session_t *s = pool_at (w->pool, i);
        if (s && session_busy (s))
            return true;
    }
    return false;
}

static int
s_run_loop (s_worker_t *w)
{
    s_send_ready (w);
    while (!zsys_interrupted) {
        long wait_ms;
        int n = s_prepare_poll (w, &wait_ms);
        if (zmq_poll (w->items, n, wait_ms) < 0) {
            if (zmq_errno () == EINTR)
                continue;
            log_error ("zmq_poll: %s", zmq_strerror (zmq_errno ()));
            return -1;
        }
        //  Sessions first: broker messages may remove sessions the items point into.
        s_step_sessions (w);
        if (w->items [0].revents & ZMQ_POLLIN) {
            json_t *msg;
            int rc;
            while (!zsys_interrupted && (rc = link_recv (w->link, &msg)) != 0)
                if (rc > 0) {
                    s_on_message (w, msg);
                    json_decref (msg);
                }
        }
        if (link_tick (w->link))
            s_send_ready (w);
        //  Idle moments refill the warm pool, one interpreter per turn: a start blocks
        //  the loop for milliseconds, which a running snippet's result must not wait for.
        w->refill = !s_any_busy (w) && session_refill ();
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    log_set_name ("replgate-worker");
    s_worker_t w = { .link = NULL };
    int rc = s_parse_args (argc, argv, &w.args);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (sodium_init () < 0) {
        log_error ("sodium_init failed");
        return 1;
    }
    char server_key [41];
    zcert_t *cert = s_load_keys (&w.args, server_key);
    if (!cert)
        return 2;
    char err [256];
    w.secrets = secrets_load (w.args.secrets_path, err, sizeof err);
    if (!w.secrets) {
        log_error ("%s", err);
        zcert_destroy (&cert);
        return 2;
    }
    w.args.spawn.extra_env = secrets_env (w.secrets);
    //  Before any ZeroMQ thread exists, and fail closed: no sandbox, no service.
    if (spawn_setup (&w.args.spawn) < 0) {
        zcert_destroy (&cert);
        secrets_destroy (&w.secrets);
        return 1;
    }
    zsys_init ();       //  installs the SIGINT/SIGTERM handler behind zsys_interrupted
    if (!w.args.spawn.sandbox)
        log_warn ("--no-sandbox: snippets are NOT confined: they run as uid %d with every "
                  "right of this process", (int) getuid ());
    w.link = link_new (w.args.broker, cert, server_key);
    zcert_destroy (&cert);
    w.pool = pool_new (w.args.slots);
    w.streams = streams_new ();
    w.items = calloc (1 + w.args.slots * FDS_PER_SESSION, sizeof *w.items);
    w.first = calloc (w.args.slots, sizeof *w.first);
    w.count = calloc (w.args.slots, sizeof *w.count);
    rc = 1;
    if (w.link && w.pool && w.items && w.first && w.count) {
        log_info ("worker %s: %zu slots, connecting to %s", w.args.name, w.args.slots,
                  w.args.broker);
        rc = s_run_loop (&w) == 0 ? 0 : 1;
        log_info ("worker %s: stopping", w.args.name);
    }
    pool_destroy (&w.pool);     //  kills and reaps every interpreter
    spawn_shutdown ();          //  the warm pool and the cgroups
    link_destroy (&w.link);
    streams_destroy (&w.streams);
    secrets_destroy (&w.secrets);
    free (w.items);
    free (w.first);
    free (w.count);
    return rc;
}
