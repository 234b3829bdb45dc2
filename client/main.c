/*  client/main.c: `replgate`, the command line: the table of subcommands with their help,
    the one table of exit codes, and the hand-over to the subcommand once client/args.c
    has parsed and checked its options. Also the main of `replgate-local`, which runs the
    commands that read files when `replgate` hands them over (client/handoff.c). */
#include "client/args.h"
#include "common/util.h"
#include "common/version.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONN "dir broker key server-key json "
#define CONN_HELP \
    "Connection options: --dir DIR, --broker EP, --key FILE, --server-key FILE (replgate --help)."
static const command_t s_commands[] = {
    { "submit", cmd_submit, CONN "lang session reason no-wait timeout file idempotency-key raw escape "
      "stream no-stream timeout-ms",
      "submit [-l python|shell] [-s SESSION] [--reason TEXT] [--idempotency-key K]\n"
      "         [--timeout-ms MS] [--stream|--no-stream] [--no-wait|--timeout S]\n"
      "         [--json|--raw|--escape] [CODE|-f FILE|-]",
      "Submits a snippet (CODE, the file FILE, or stdin with -) to run in SESSION (default\n"
      "\"default\"; -l shell for bash) and waits for its result: stdout to stdout, stderr and\n"
      "the traceback to stderr. While it waits for approval a terminal shows who approved so\n"
      "far and the time left. --reason tells approvers why; --idempotency-key K returns the\n"
      "first request of K instead of submitting again. --timeout-ms MS asks for that run time\n"
      "limit (up to the rule's). Output is printed as it comes when stdout is a terminal\n"
      "(--stream always, --no-stream never). --no-wait prints the id and returns at once;\n"
      "--timeout S stops waiting after S seconds. Ctrl-C while it runs interrupts the snippet\n"
      "(a second Ctrl-C stops waiting); Ctrl-C while it is pending, and SIGTERM, stop waiting,\n"
      "never the request: exit 4 and `replgate wait ID` picks it up. Key:\n"
      "DIR/keys/private/agent.cert.",
      "0 1 2 3 4 5 6 7 8 10" },
    { "status", cmd_status, CONN "raw escape", "status ID [--json|--raw|--escape]",
      "Prints request ID as it is now; the exit code is its state's (as for submit).",
      "0 1 2 3 4 5 6 7 8 9" },
    { "wait", cmd_wait, CONN "timeout raw escape", "wait ID [--timeout S] [--json|--raw|--escape]",
      "Waits for request ID to end and prints it like submit; --timeout S stops waiting after\n"
      "S seconds (exit 4), as do Ctrl-C and SIGTERM.",
      "0 1 2 3 4 5 6 7 8 9" },
    { "cancel", cmd_cancel, CONN, "cancel ID [--json]",
      "Cancels request ID while it is queued or pending approval (its owner or an admin).",
      "0 2 7 9 10 11" },
    { "ping", cmd_ping, CONN, "ping [--json]",
      "Asks the broker who you are (principal, role) and how busy it is.",
      "0 2 7" },
    { "pending", cmd_pending, CONN "session", "pending [-s SESSION] [--json]",
      "Lists the requests waiting for approval, oldest first (only SESSION's with -s): id, who\n"
      "submitted it, in which session and language, the rule that sent it to review, the\n"
      "approvals so far out of the quorum and who gave them, the time left before it expires,\n"
      "the agent's reason, the network its rule grants (HOST:PORT entries, methods), the\n"
      "bind_sha256 an approval binds to (sha256 of language, session and code) and the code.\n"
      "Prints \"nothing pending\" when there is none. --json prints each\n"
      "request as one JSON object per line. Needs an approver or admin key (default\n"
      "DIR/keys/private/admin.cert; another with --key).",
      "0 2 7 10" },
    { "approve", cmd_approve, CONN "reason", "approve ID [--reason TEXT] [--json]",
      "Approves request ID, which must be pending approval (see replgate pending). It runs once\n"
      "the quorum of its rule has approved, each approver counted once. The approval binds to\n"
      "the request's bind_sha256: code that no longer hashes to it is denied, never run.\n"
      "--reason TEXT is recorded with the approval. Needs an approver or admin key the rule\n"
      "allows (default DIR/keys/private/admin.cert; another with --key); nobody approves what\n"
      "they submitted. Prints the request's state and the approvals recorded (--json: the\n"
      "request).",
      "0 2 7 9 10 11" },
    { "deny", cmd_deny, CONN "reason", "deny ID --reason TEXT [--json]",
      "Denies request ID, which must be pending approval; one deny is final. --reason TEXT is\n"
      "required: the agent sees it. Needs an approver or admin key the rule allows (default\n"
      "DIR/keys/private/admin.cert; another with --key); nobody denies what they submitted.",
      "0 2 7 9 10 11" },
    { "revoke", cmd_revoke, CONN, "revoke NAME [--json]",
      "Revokes key NAME (admin key): DIR/keys/trusted/NAME.cert moves to keys/revoked/ and its\n"
      "open connections are refused at once.",
      "0 1 2 3 7" },
    { "workers", cmd_workers, CONN, "workers [--json]",
      "Lists the workers the broker knows (admin key): name, address, labels, slots in use,\n"
      "memory, sandbox, sessions, last heartbeat, state (live, draining, lost).",
      "0 2 3 7" },
    { "drain", cmd_drain, CONN, "drain NAME [--json]",
      "Drains worker NAME (admin key): no new sessions go to it, its idle sessions are closed\n"
      "(recorded) and its running snippets finish; a worker run with --exit-when-drained then\n"
      "leaves. The sessions' next snippets start afresh elsewhere, saying why.",
      "0 2 3 7" },
    { "interrupt", cmd_interrupt, CONN "no-wait", "interrupt ID [--no-wait] [--json]",
      "Sends SIGINT into running request ID (its owner or an admin): Python raises\n"
      "KeyboardInterrupt, a shell stops its foreground job; the run ends `interrupted` and the\n"
      "session keeps its state. Waits for the result and prints it (not with --no-wait).",
      "0 2 5 7 9 10 11" },
    { "sessions", cmd_sessions, CONN, "sessions [--json]",
      "Lists your live interpreters (an admin key: everyone's): session, language, worker,\n"
      "idle or running, last used, snippets run, memory of the last one.",
      "0 2 7" },
    { "reset", cmd_reset, CONN "lang", "reset SESSION [-l python|shell] [--json]",
      "Ends your interpreter of SESSION (default python); the next snippet starts a fresh one\n"
      "and says so. Recorded as a session_reset event.",
      "0 2 7 9 11" },
    { "close", cmd_close, CONN "lang", "close SESSION [-l python|shell] [--json]",
      "Ends your interpreter of SESSION and frees its slot. Recorded as session_closed.",
      "0 2 7 9 11" },
    { "mcp", cmd_mcp, "dir broker key server-key session approval-wait",
      "mcp [-s SESSION] [--approval-wait S]",
      "A Model Context Protocol server on stdin/stdout for an agent (README \"Agents\"): tools\n"
      "python, shell, result, cancel, interrupt, sessions, reset_session, as the key's\n"
      "principal. A parked call reports progress for up to S (default 10m), then names its id.\n"
      "Takes no --json: its stdout is JSON-RPC already.",
      "0 2 7" },
    { "policy", cmd_policy, "dir json lang session principal role groups file",
      "policy check FILE | policy explain [-l LANG] [-s SESSION] [--principal P] [--role R]\n"
      "         [--groups a,b] [-f POLICY] CODE",
      "check: validates a policy file (errors name file:line:col). explain: the decision the\n"
      "policy (default DIR/policy.json) makes for CODE from that caller, the network it\n"
      "grants, and the rule.",
      "0 2" },
    { "history", cmd_history, "dir json principal session state since until limit",
      "history [--principal P] [--session S] [--state S] [--since T] [--until T] [--limit N] [--json]",
      "A table of requests from DIR/replgate.db (the broker may be stopped), at most N rows\n"
      "(default 1000). T: 2026-11-28[T12:00:00.000Z] or an age like 30m, 12h, 7d.",
      "0 2" },
    { "verify", cmd_verify, "dir json since-head", "verify [--since-head HASH] [--json]",
      "Re-verifies the hash chain and every stored hash; prints the head hash. --since-head\n"
      "HASH (all 64 hex characters of a head verify printed) also proves it is still there.",
      "0 1 2" },
    { "replay", cmd_replay, "dir json speed no-wait cast raw escape",
      "replay SESSION [--speed X] [--no-wait] [--cast FILE] [--json|--raw|--escape]",
      "Plays SESSION back from the record: real pauses (each at most 2 s) divided by X,\n"
      "none with --no-wait; --cast FILE writes an asciinema v2 recording; --json the rows.",
      "0 1 2" },
    { "export", cmd_export, "dir json format events principal session state since until",
      "export [--format csv|json|jsonl|--json] [--events] [--principal P] [--session S]\n"
      "         [--state S] [--since T] [--until T]",
      "One row per request (default CSV; --json is --format jsonl), or with --events the\n"
      "hash-chained event log, streamed from DIR/replgate.db.",
      "0 1 2" },
    { "prune", cmd_prune, CONN "before", "prune --before T [--json]",
      "Asks the broker (admin key) to remove code and outputs of requests that ended before T,\n"
      "keeping their hashes; each gets a `pruned` event with the key as actor. The broker must\n"
      "run: it is the database's only writer.",
      "0 2 3 7" },
    { "keygen", cmd_keygen, "dir json role groups",
      "keygen NAME --role agent|approver|worker|admin [--groups a,b] [--json]",
      "Makes the key pair DIR/keys/private/NAME.cert (+ _secret) and trusts it.",
      "0 2" },
    { "up", cmd_up, "dir port slots workers uid-base",
      "up [--dir DIR] [--port N] [--slots N] [--workers N] [--uid-base UID]",
      "Starts a broker (clients on port N, workers on N+1; default 7710) and N workers\n"
      "(default 1) with the given slots each (default 4) on DIR; Ctrl-C stops them all. Each\n"
      "worker claims a free range of sandbox uids, or with --uid-base the first takes UID, the\n"
      "next UID+1000 and so on. Takes no --json: it only logs.",
      "0 1 2" },
};
#define NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

//  The one table of exit codes (README.md "Exit codes" says the same).
static const char *s_exits[] = {
    [EXIT_OK] = "ok",
    [EXIT_FAILED] = "failed: the snippet ran and failed (exception, non-zero status); verify: the\n"
        "      record was tampered with; replay: no snippets; export, up, revoke: an internal error",
    [EXIT_USAGE] = "usage or local set-up: a bad option or value, no such state dir or key file,\n"
        "      a request the broker refused as malformed",
    [EXIT_DENIED] = "denied by the policy or an approver; revoke: forbidden or no such key",
    [EXIT_PENDING] = "still pending or running: --no-wait, --timeout, or interrupted (Ctrl-C,\n"
        "      SIGTERM); `replgate wait ID` picks it up",
    [EXIT_ENDED] = "expired or cancelled",
    [EXIT_LIMIT] = "a limit ended it (timeout, oom, killed, output_limit, egress_limit)",
    [EXIT_UNREACHABLE] = "broker unreachable, or it does not trust the key (no answer)",
    [EXIT_LOST] = "lost (its worker died or the broker restarted while it ran)",
    [EXIT_NOT_FOUND] = "not found: no such request (another agent's reads as none)",
    [EXIT_FORBIDDEN] = "forbidden: the key's role or the rule does not allow it (agents never\n"
        "      approve, nobody decides on their own request)",
    [EXIT_BAD_STATE] = "bad state: the request is past that (already decided, running, ended),\n"
        "      or you already decided on it",
};
#define NEXITS (sizeof s_exits / sizeof s_exits[0])

//  The meaning of each code in the space-separated list (NULL: all of them).
static void
s_print_exits (FILE *out, const char *codes)
{
    fprintf (out, "exit codes:\n");
    for (size_t i = 0; i < NEXITS; i++) {
        char word[8];
        snprintf (word, sizeof word, "%zu", i);
        size_t n = strlen (word);
        bool listed = !codes;
        for (const char *p = codes; p && (p = strstr (p, word)); p += n)
            listed = listed || ((p == codes || p[-1] == ' ') && (p[n] == ' ' || !p[n]));
        if (listed)
            fprintf (out, "  %-3zu %s\n", i, s_exits[i]);
    }
}

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: replgate COMMAND [options]   (replgate COMMAND --help: one command)\n"
             "       replgate --version\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf (out, "  replgate %s\n", s_commands[i].usage);
    fprintf (out, "\nconnection options (commands that talk to the broker):\n"
             "  --dir DIR         state directory of a local stack (default $REPLGATE_DIR, else ./var)\n"
             "  --broker EP       broker endpoint (default: DIR/endpoint, else tcp://127.0.0.1:7710)\n"
             "  --key FILE        client key pair (default DIR/keys/private/agent.cert or admin.cert)\n"
             "  --server-key FILE broker public key (default DIR/keys/broker.cert)\n"
             "  --json            machine-readable output, one JSON object a line (all but up)\n"
             "\nwhat a terminal shows (submit, status, wait, replay): control, bidirectional and\n"
             "  invisible characters of code and output as markers (⟨ESC⟩, ⟨U+202E⟩); a pipe gets\n"
             "  the bytes as printed. --raw: the bytes to a terminal too; --escape: markers into a\n"
             "  pipe too. pending and history always show markers.\n\n");
    s_print_exits (out, NULL);
}

static void
s_help (const command_t *cmd)
{
    printf ("usage: replgate %s\n\n%s\n", cmd->usage, cmd->help);
    if (strstr (cmd->options, "broker"))
        printf ("%s\n", CONN_HELP);
    printf ("\n");
    s_print_exits (stdout, cmd->exits);
}

static const command_t *
s_find (const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp (name, s_commands[i].name) == 0)
            return &s_commands[i];
    return NULL;
}

//  One line for a command that does not exist, naming the nearest that does.
static int
s_unknown (const char *name)
{
    char names[512] = "", nearest[64];
    bool option = name[0] == '-';
    for (size_t i = 0; i < NCOMMANDS && !option; i++)
        snprintf (names + strlen (names), sizeof names - strlen (names), "%s ", s_commands[i].name);
    if (args_nearest (name + strspn (name, "-"), option ? "help version" : names, nearest,
                      sizeof nearest) == 0)
        fprintf (stderr, "replgate: unknown %s '%s' (did you mean %s%s?)\n", option ? "option" : "command",
                 name, option ? "--" : "", nearest);
    else
        fprintf (stderr, "replgate: unknown %s '%s' (replgate --help lists the commands)\n",
                 option ? "option" : "command", name);
    return EXIT_USAGE;
}

int
main (int argc, char *argv[])
{
    log_set_name ("replgate");
    if (argc < 2) {
        s_usage (stderr);
        return EXIT_USAGE;
    }
    const char *first = argv[1];
    if (strcmp (first, "--help") == 0 || strcmp (first, "-h") == 0 || strcmp (first, "help") == 0) {
        const command_t *cmd = argc > 2 ? s_find (argv[2]) : NULL;
        if (argc > 2 && !cmd)
            return s_unknown (argv[2]);
        if (cmd)
            s_help (cmd);
        else
            s_usage (stdout);
        return 0;
    }
    if (strcmp (first, "--version") == 0 || strcmp (first, "version") == 0) {
        printf ("replgate %s\n", REPLGATE_VERSION);
        return 0;
    }
    const command_t *cmd = s_find (first);
    if (!cmd)
        return s_unknown (first);
    if (sodium_init () < 0)
        return 1;
    //  A copy: getopt_long reorders argv as it parses.
    char **given = calloc ((size_t) argc + 1, sizeof *given);
    if (!given)
        return 1;
    memcpy (given, argv, (size_t) argc * sizeof *given);
    cli_t cli = { .cmd = cmd->name, .timeout_s = -1, .stream = -1, .given = given };
    cli.dir = getenv ("REPLGATE_DIR") ? getenv ("REPLGATE_DIR") : "var";
    int rc = args_parse (&cli, cmd, argc - 1, argv + 1);
    if (rc == 1)
        s_help (cmd);
    rc = rc == 0 ? cmd->fn (&cli) : rc == 1 ? 0 : EXIT_USAGE;
    free (given);
    return rc;
}
