/*  worker/options.c: the worker's command line (see options.h). */
#include "worker/options.h"
#include "common/proto.h"
#include "common/util.h"
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SLOTS 256
#define MAX_WARM 16
#define MAX_CPUS 1024
#define MAX_TIMEOUT_MS OPTIONS_MAX_TIMEOUT_MS
#define MAX_OUTPUT OPTIONS_MAX_OUTPUT

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
        "  --slots N             live interpreters at most, 1..%d (default: the host's memory\n"
        "                        over --memory-mb, at least 1)\n"
        "  --labels a,b          what this worker offers placement rules (\"placement\": {\"labels\":\n"
        "                        [...]}), 1 to 16 of [A-Za-z0-9._-]{1,64}\n"
        "  --offer-memory-mb N   memory the broker's placement counts on (default: the host's)\n"
        "  --exit-when-drained   leave (status 0) once `replgate drain NAME` has emptied it\n"
        "  --idle-ttl S          an idle session unused for S seconds ends, freeing its slot\n"
        "                        (default 3600); least recently used ones go first when a new\n"
        "                        session needs a slot\n"
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
        "                        (default: the first range of 1000 uids from 200000 that no\n"
        "                        other worker on the host holds, locked under /run/replgate);\n"
        "                        the worker's network front runs as the uid after the last\n"
        "                        box (UID + slots + 2 x warm + prepare)\n"
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
s_parse_sandbox (int opt, options_t *args)
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
        case 'u': c->uid_base = (unsigned) (n = s_number (optarg, 1, 0xfffff000LL));
                  args->uid_base_given = true;
                  break;
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

//  The comma-separated labels as a JSON array; NULL if one is not a label or there are more
//  than PROTO_MAX_LABELS.
static json_t *
s_split_labels (const char *text)
{
    json_t *labels = json_array ();
    bool ok = *text != 0;
    for (const char *p = text; ok && *p; ) {
        size_t n = strcspn (p, ",");
        char label [80];
        ok = n < sizeof label && json_array_size (labels) < PROTO_MAX_LABELS;
        if (ok) {
            memcpy (label, p, n);
            label [n] = 0;
            ok = proto_label_valid (label) && json_array_append_new (labels, json_string (label)) == 0;
        }
        p += n + (p [n] == ',');
    }
    if (!ok)
        json_decref (labels);
    return ok ? labels : NULL;
}

//  The host's memory in MiB (0 if unknown).
static long long
s_host_memory_mb (void)
{
    long pages = sysconf (_SC_PHYS_PAGES), size = sysconf (_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (long long) pages * size / (1 << 20) : 0;
}

//  As many sessions as the host's memory holds at memory_mb each, 1 to MAX_SLOTS.
static size_t
s_slots_for_memory (int64_t memory_mb)
{
    long long slots = memory_mb > 0 ? s_host_memory_mb () / memory_mb : 1;
    return (size_t) (slots < 1 ? 1 : slots > MAX_SLOTS ? MAX_SLOTS : slots);
}

//  "gpu,big-mem": 1 to PROTO_MAX_LABELS labels as the broker takes them.
static bool
s_labels_ok (const char *text)
{
    json_t *labels = s_split_labels (text);
    bool ok = labels != NULL;
    json_decref (labels);
    return ok;
}

json_t *
options_labels (const options_t *args)
{
    return args->labels ? s_split_labels (args->labels) : NULL;
}

int
options_parse (int argc, char *argv [], options_t *args)
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
        { "secrets", 1, NULL, 'K' }, { "idle-ttl", 1, NULL, 'I' }, { "labels", 1, NULL, 'L' },
        { "offer-memory-mb", 1, NULL, 'O' }, { "exit-when-drained", 0, NULL, 'D' },
        { NULL, 0, NULL, 0 } };
    *args = (options_t) { "tcp://127.0.0.1:7711", NULL, NULL, "", 4, 10000, 1 << 20,
                         { true, 200000, 4, 1, 2, 512, 128, 64, NULL, CGROUP_NONE, NULL, NULL,
                           1000 },
                         4096, 1024, 1024, 1000 * s_host_cpus (), NULL, 3600 * 1000, false, NULL,
                         0, false };
    bool slots_given = false;
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
            case 'S': args->slots = (size_t) (n = s_number (optarg, 1, MAX_SLOTS));
                      slots_given = true;
                      break;
            case 'I': args->idle_ttl_ms = 1000 * (n = s_number (optarg, 1, 365LL * 86400)); break;
            case 'L': args->labels = optarg; n = s_labels_ok (optarg) ? 0 : -1; break;
            case 'O': args->offer_memory_mb = n = s_number (optarg, 1, 1LL << 40); break;
            case 'D': args->exit_when_drained = true; break;
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
    if (!slots_given)
        args->slots = s_slots_for_memory (args->spawn.memory_mb);
    if (!args->offer_memory_mb)
        args->offer_memory_mb = s_host_memory_mb ();
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

void
options_default_limits (const options_t *args, session_limits_t *limits)
{
    *limits = (session_limits_t) { args->timeout_ms, args->output_bytes, args->spawn.memory_mb,
                                   args->spawn.pids, args->spawn.tmp_mb, args->spawn.cpu_milli,
                                   OPTIONS_EGRESS_CONNECTIONS, OPTIONS_EGRESS_BYTES, false };
}

bool
options_limits_ok (const options_t *args, const session_limits_t *l)
{
    return l->timeout_ms >= 1 && l->timeout_ms <= MAX_TIMEOUT_MS
        && l->output_bytes >= 1 && l->output_bytes <= (size_t) MAX_OUTPUT
        && l->memory_mb >= 16 && l->memory_mb <= args->max_memory_mb
        && l->pids >= 8 && l->pids <= args->max_pids
        && l->tmp_mb >= 1 && l->tmp_mb <= args->max_tmp_mb
        && l->cpu_milli >= 10 && l->cpu_milli <= args->max_cpu_milli
        && l->egress_connections >= 1 && l->egress_connections <= OPTIONS_MAX_EGRESS_CONNECTIONS
        && l->egress_bytes >= 1 && l->egress_bytes <= OPTIONS_MAX_EGRESS_BYTES;
}
