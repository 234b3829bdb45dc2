/*  client/args.c: the options of `replgate COMMAND`: each command gets exactly the options it
    takes, every value is checked before anything is opened or sent, and every refusal is
    one line on stderr (exit 2) that says what to type instead: the nearest option for a
    typo, the range for a number, which of two options to drop. */
#include "client/args.h"
#include "common/check.h"
#include "common/util.h"
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  Options without a short form get values past any character, so that getopt's optopt
//  tells a short option (a character) from a long one.
enum { O_DIR = 256, O_BROKER, O_KEY, O_SERVER_KEY, O_JSON, O_REASON, O_NO_WAIT, O_TIMEOUT,
       O_IDEM, O_ROLE, O_GROUPS, O_PRINCIPAL, O_STATE, O_SINCE, O_UNTIL, O_LIMIT, O_PORT,
       O_SLOTS, O_SPEED, O_CAST, O_FORMAT, O_EVENTS, O_SINCE_HEAD, O_BEFORE, O_RAW, O_ESCAPE,
       O_APPROVAL_WAIT, O_STREAM, O_NO_STREAM, O_TIMEOUT_MS, O_WORKERS, O_UID_BASE };

static const struct option s_options[] = {
    { "dir", 1, 0, O_DIR }, { "broker", 1, 0, O_BROKER }, { "key", 1, 0, O_KEY },
    { "server-key", 1, 0, O_SERVER_KEY }, { "json", 0, 0, O_JSON }, { "lang", 1, 0, 'l' },
    { "session", 1, 0, 's' }, { "reason", 1, 0, O_REASON }, { "no-wait", 0, 0, O_NO_WAIT },
    { "timeout", 1, 0, O_TIMEOUT }, { "file", 1, 0, 'f' }, { "idempotency-key", 1, 0, O_IDEM },
    { "role", 1, 0, O_ROLE }, { "groups", 1, 0, O_GROUPS }, { "principal", 1, 0, O_PRINCIPAL },
    { "state", 1, 0, O_STATE }, { "since", 1, 0, O_SINCE }, { "until", 1, 0, O_UNTIL },
    { "limit", 1, 0, O_LIMIT }, { "port", 1, 0, O_PORT }, { "slots", 1, 0, O_SLOTS },
    { "speed", 1, 0, O_SPEED }, { "cast", 1, 0, O_CAST }, { "format", 1, 0, O_FORMAT },
    { "events", 0, 0, O_EVENTS }, { "since-head", 1, 0, O_SINCE_HEAD },
    { "before", 1, 0, O_BEFORE }, { "raw", 0, 0, O_RAW }, { "escape", 0, 0, O_ESCAPE },
    { "approval-wait", 1, 0, O_APPROVAL_WAIT }, { "stream", 0, 0, O_STREAM },
    { "no-stream", 0, 0, O_NO_STREAM }, { "timeout-ms", 1, 0, O_TIMEOUT_MS },
    { "workers", 1, 0, O_WORKERS }, { "uid-base", 1, 0, O_UID_BASE },
    { "help", 0, 0, 'h' } };
#define NOPTIONS (sizeof s_options / sizeof s_options[0])

//  The numbers, and the ranges that make sense for them.
static const struct {
    int val;
    const char *what;
    double min, max;
    bool integer;
} s_numbers[] = {
    { O_TIMEOUT, "a number of seconds", 0, 1e9, false },
    { O_TIMEOUT_MS, "a run time limit in ms", 1, 86400000, true },
    { O_WORKERS, "a number of workers", 1, 16, true },
    { O_UID_BASE, "a host uid", 1000, 4000000000.0, true },
    { O_SPEED, "a speed factor", 0.001, 1e6, false },
    { O_LIMIT, "a number of rows", 1, 1e9, true },
    { O_PORT, "a TCP port", 1, 65534, true },
    { O_SLOTS, "a number of slots", 1, 256, true },
};

//  Options that make no sense together.
static const struct { const char *cmd, *a, *b, *why; } s_conflicts[] = {
    { "submit", "no-wait", "timeout", "--no-wait returns at once, --timeout waits up to S seconds" },
    { "replay", "no-wait", "speed", "--speed paces the pauses that --no-wait skips" },
    { "replay", "json", "cast", "--cast writes a recording to FILE, --json prints the rows" },
    { "export", "json", "format", "--json is --format jsonl" },
    { "submit", "stream", "no-stream", "--stream prints output as it comes, --no-stream at the end" },
    { "submit", "json", "stream", "--json prints the request once, --stream its output as it comes" },
};

static bool
s_takes (const command_t *cmd, const char *opt)
{
    size_t n = strlen (opt);
    for (const char *p = cmd->options; (p = strstr (p, opt)); p += n)
        if ((p == cmd->options || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static const struct option *
s_option (int val)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (s_options[i].val == val)
            return &s_options[i];
    return NULL;
}

//  Optimal string alignment distance of a and b (each at most 63 bytes; longer is far).
static size_t
s_distance (const char *a, const char *b)
{
    size_t n = strlen (a), m = strlen (b), d[64][64];
    if (n > 63 || m > 63)
        return SIZE_MAX;
    for (size_t i = 0; i <= n; i++)
        for (size_t j = 0; j <= m; j++) {
            if (i == 0 || j == 0) {
                d[i][j] = i + j;
                continue;
            }
            size_t cost = a[i - 1] != b[j - 1], best = d[i - 1][j - 1] + cost;
            best = d[i - 1][j] + 1 < best ? d[i - 1][j] + 1 : best;
            best = d[i][j - 1] + 1 < best ? d[i][j - 1] + 1 : best;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

int
args_nearest (const char *word, const char *words, char *out, size_t size)
{
    size_t best = SIZE_MAX, len = strlen (word);
    //  Two edits, three in a long word; never as many as the word has letters.
    size_t near = len >= 8 ? 3 : 2;
    for (const char *p = words; *p; ) {
        size_t n = strcspn (p, " ");
        char candidate[64];
        if (n > 0 && n < sizeof candidate) {
            memcpy (candidate, p, n);
            candidate[n] = 0;
            size_t d = s_distance (word, candidate);
            if (d < best && d <= near && d < len) {
                best = d;
                snprintf (out, size, "%s", candidate);
            }
        }
        p += n + (p[n] == ' ');
    }
    return best == SIZE_MAX ? -1 : 0;
}

//  The entry of s_numbers for option val, or -1 if its value is not a number.
static int
s_numeric (int val)
{
    for (size_t i = 0; i < sizeof s_numbers / sizeof s_numbers[0]; i++)
        if (s_numbers[i].val == val)
            return (int) i;
    return -1;
}

//  text as a number of option `val` in its range: digits only for an integer; for a real
//  a decimal that strtod reads whole (no sign, spaces, hex, inf or nan). 0 or -1.
static int
s_number (int val, const char *text, double *out)
{
    int i = s_numeric (val);
    int64_t n = 0;
    char *end = NULL;
    if (i < 0)
        return -1;
    if (s_numbers[i].integer) {
        if (decimal_parse (text, 10, (int64_t) s_numbers[i].min, (int64_t) s_numbers[i].max, &n) != 0)
            return -1;
        *out = (double) n;
        return 0;
    }
    //  Decimal only: strtod would also take hex ("0x10"), "inf" and "nan".
    if (!text[0] || !strchr ("0123456789.", text[0]) || text[strspn (text, "0123456789.eE+-")])
        return -1;
    errno = 0;
    double v = strtod (text, &end);
    if (errno || *end || !isfinite (v) || v < s_numbers[i].min || v > s_numbers[i].max)
        return -1;
    *out = v;
    return 0;
}

//  One option's value into cli. -1 after printing why.
static int
s_set (cli_t *cli, const command_t *cmd, int c, char *arg)
{
    double n = 0;
    int i = s_numeric (c);
    if (i >= 0 && s_number (c, arg, &n) != 0) {
        fprintf (stderr, "replgate %s: --%s wants %s from %.15g to %.15g%s, not '%s'\n",
                 cmd->name, s_option (c)->name, s_numbers[i].what, s_numbers[i].min,
                 s_numbers[i].max, s_numbers[i].integer ? "" : " (decimals allowed)", arg);
        return -1;
    }
    switch (c) {
        case O_DIR: cli->dir = arg; break;
        case O_BROKER: cli->broker = arg; break;
        case O_KEY: cli->key = arg; break;
        case O_SERVER_KEY: cli->server_key = arg; break;
        case O_JSON: cli->json = true; break;
        case 'l': cli->lang = arg; break;
        case 's': cli->session = arg; break;
        case O_REASON: cli->reason = arg; break;
        case O_NO_WAIT: cli->no_wait = true; break;
        case O_TIMEOUT: cli->timeout_s = n; break;
        case 'f': cli->file = arg; break;
        case O_IDEM: cli->idem = arg; break;
        case O_ROLE: cli->role = arg; break;
        case O_GROUPS: cli->groups = arg; break;
        case O_PRINCIPAL: cli->principal = arg; break;
        case O_STATE: cli->state = arg; break;
        case O_SINCE: cli->since = arg; break;
        case O_UNTIL: cli->until = arg; break;
        case O_LIMIT: cli->limit = (int) n; break;
        case O_PORT: cli->port = (int) n; break;
        case O_SLOTS: cli->slots = (int) n; break;
        case O_SPEED: cli->speed = n; break;
        case O_CAST: cli->cast = arg; break;
        case O_FORMAT: cli->format = arg; break;
        case O_EVENTS: cli->events = true; break;
        case O_SINCE_HEAD: cli->since_head = arg; break;
        case O_BEFORE: cli->before = arg; break;
        case O_RAW: case O_ESCAPE: {
            screen_mode_t mode = c == O_RAW ? SCREEN_RAW : SCREEN_ESCAPE;
            if (cli->screen_mode != SCREEN_AUTO && cli->screen_mode != mode) {
                fprintf (stderr, "replgate %s: --raw and --escape exclude each other\n", cmd->name);
                return -1;
            }
            cli->screen_mode = mode;
            break;
        }
        case O_APPROVAL_WAIT: cli->approval_wait = arg; break;
        case O_STREAM: cli->stream = 1; break;
        case O_NO_STREAM: cli->stream = 0; break;
        case O_TIMEOUT_MS: cli->timeout_ms = (int64_t) n; break;
        case O_WORKERS: cli->workers = (int) n; break;
        case O_UID_BASE: cli->uid_base = (int64_t) n; break;
        default: return -1;
    }
    return 0;
}

//  What getopt refused (opterr is off): an unknown option, with the nearest the command
//  takes; an abbreviation of several; a value given to an option that takes none.
static int
s_refuse (const command_t *cmd, const struct option *opts, const char *arg)
{
    char nearest[64], word[64];
    if (optopt > 0 && optopt < 256) {
        fprintf (stderr, "replgate %s: unknown option -%c (replgate %s --help lists its options)\n",
                 cmd->name, optopt, cmd->name);
        return -1;
    }
    if (optopt >= 256) {
        fprintf (stderr, "replgate %s: --%s takes no value\n", cmd->name, s_option (optopt)->name);
        return -1;
    }
    const char *name = arg + strspn (arg, "-");
    snprintf (word, sizeof word, "%.*s", (int) strcspn (name, "="), name);
    char takes[512] = "", *t = takes;
    size_t prefixed = 0;
    for (const struct option *o = opts; o->name; o++) {
        t += snprintf (t, takes + sizeof takes - t, "%s%s", t == takes ? "" : " ", o->name);
        prefixed += *word && strncmp (o->name, word, strlen (word)) == 0;
    }
    if (prefixed > 1)
        fprintf (stderr, "replgate %s: --%s is ambiguous: give more of the option's name\n",
                 cmd->name, word);
    else if (args_nearest (word, takes, nearest, sizeof nearest) == 0)
        fprintf (stderr, "replgate %s: unknown option %s (did you mean --%s?)\n", cmd->name, arg,
                 nearest);
    else
        fprintf (stderr, "replgate %s: unknown option %s (replgate %s --help lists its options)\n",
                 cmd->name, arg, cmd->name);
    return -1;
}

static int
s_conflict (const command_t *cmd, const bool *seen)
{
    for (size_t i = 0; i < sizeof s_conflicts / sizeof s_conflicts[0]; i++) {
        bool a = false, b = false;
        for (size_t o = 0; o < NOPTIONS; o++) {
            a = a || (seen[o] && strcmp (s_options[o].name, s_conflicts[i].a) == 0);
            b = b || (seen[o] && strcmp (s_options[o].name, s_conflicts[i].b) == 0);
        }
        if (a && b && strcmp (cmd->name, s_conflicts[i].cmd) == 0) {
            fprintf (stderr, "replgate %s: --%s and --%s contradict each other (%s)\n", cmd->name,
                     s_conflicts[i].a, s_conflicts[i].b, s_conflicts[i].why);
            return -1;
        }
    }
    return 0;
}

int
args_parse (cli_t *cli, const command_t *cmd, int argc, char *argv[])
{
    //  The command's own options only, so that getopt's abbreviations (--time for
    //  --timeout) resolve among them; --json is kept to be refused by name where not taken.
    struct option opts[NOPTIONS + 1];
    char shorts[16] = ":";
    size_t n = 0;
    bool seen[NOPTIONS] = { false };
    for (size_t i = 0; i < NOPTIONS; i++)
        if (s_takes (cmd, s_options[i].name) || s_options[i].val == 'h' || s_options[i].val == O_JSON) {
            opts[n++] = s_options[i];
            if (s_options[i].val < 256)
                snprintf (shorts + strlen (shorts), sizeof shorts - strlen (shorts), "%c%s",
                          s_options[i].val, s_options[i].has_arg ? ":" : "");
        }
    opts[n] = (struct option) { 0, 0, 0, 0 };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long (argc, argv, shorts, opts, NULL)) != -1) {
        if (c == '?')
            return s_refuse (cmd, opts, argv[optind - 1]);
        if (c == ':') {
            fprintf (stderr, "replgate %s: --%s needs a value\n", cmd->name, s_option (optopt)->name);
            return -1;
        }
        if (c == 'h')
            return 1;
        if (c == O_JSON && !s_takes (cmd, "json")) {
            fprintf (stderr, "replgate %s: --json is not supported by %s\n", cmd->name, cmd->name);
            return -1;
        }
        seen[s_option (c) - s_options] = true;
        if (s_set (cli, cmd, c, optarg) != 0)
            return -1;
    }
    cli->argc = argc - optind;
    cli->argv = argv + optind;
    return s_conflict (cmd, seen);
}

int
cli_check_dir (cli_t *cli)
{
    struct stat st;
    if (stat (cli->dir, &st) == 0 && S_ISDIR (st.st_mode))
        return 0;
    fprintf (stderr, "replgate %s: no such state dir: %s (give --dir DIR, set REPLGATE_DIR, or "
             "start a stack with `replgate up --dir DIR`)\n", cli->cmd, cli->dir);
    return -1;
}

int
cli_id_arg (cli_t *cli, int64_t *id)
{
    if (cli->argc == 1 && decimal_parse (cli->argv[0], 18, 1, INT64_MAX, id) == 0)
        return 0;
    fprintf (stderr, "replgate %s: expects one request ID (a positive number)\n", cli->cmd);
    return -1;
}

int
cli_time (const char *text, char out[32])
{
    char unit = 0, extra = 0;
    double n = 0;
    if (sscanf (text, "%lf%c%c", &n, &unit, &extra) == 2 && n >= 0 && strchr ("smhd", unit)) {
        double scale = unit == 's' ? 1e3 : unit == 'm' ? 6e4 : unit == 'h' ? 3.6e6 : 8.64e7;
        time_iso8601 (clock_wall_ms () - (int64_t) (n * scale), out, 32);
        return 0;
    }
    //  ISO text compares as text, so any prefix of the store's form is a time.
    int y, mo, d;
    if (strlen (text) < 32 && sscanf (text, "%4d-%2d-%2d", &y, &mo, &d) == 3) {
        snprintf (out, 32, "%s", text);
        return 0;
    }
    return -1;
}

int
args_test (void)
{
    CHECK (s_distance ("timeout", "timeout") == 0);
    CHECK (s_distance ("tiemout", "timeout") == 1);        //  a swap is one edit
    CHECK (s_distance ("sesion", "session") == 1);
    CHECK (s_distance ("", "json") == 4);
    char out[64];
    CHECK (args_nearest ("tiemout", "dir json timeout no-wait", out, sizeof out) == 0
           && strcmp (out, "timeout") == 0);
    CHECK (args_nearest ("no_wait", "dir json timeout no-wait", out, sizeof out) == 0
           && strcmp (out, "no-wait") == 0);
    CHECK (args_nearest ("sbumit", "submit status wait", out, sizeof out) == 0
           && strcmp (out, "submit") == 0);
    CHECK (args_nearest ("verbose", "dir json timeout", out, sizeof out) == -1);
    CHECK (args_nearest ("x", "dir json", out, sizeof out) == -1);   //  too short to be a typo
    double v = -1;
    CHECK (s_number (O_TIMEOUT, "2.5", &v) == 0 && v == 2.5);
    CHECK (s_number (O_TIMEOUT, "0", &v) == 0 && v == 0);
    CHECK (s_number (O_TIMEOUT, ".5", &v) == 0 && v == 0.5);
    static const char *bad_real[] = { "", "abc", "5x", "-1", "+1", " 1", "1 ", "inf", "nan",
                                      "1e999", "1e10", "0x10" };
    for (size_t i = 0; i < sizeof bad_real / sizeof bad_real[0]; i++)
        CHECK (s_number (O_TIMEOUT, bad_real[i], &v) == -1);
    CHECK (s_number (O_SPEED, "0", &v) == -1 && s_number (O_SPEED, "4", &v) == 0 && v == 4);
    CHECK (s_number (O_LIMIT, "20", &v) == 0 && v == 20);
    static const char *bad_int[] = { "0", "1.5", "-3", "1e3", "99999999999", "2147483648", "" };
    for (size_t i = 0; i < sizeof bad_int / sizeof bad_int[0]; i++)
        CHECK (s_number (O_LIMIT, bad_int[i], &v) == -1);
    CHECK (s_number (O_PORT, "65534", &v) == 0 && s_number (O_PORT, "65535", &v) == -1);
    return 0;
}
