/*  client/main.c: `replgate`, the command line. Parses the options every subcommand shares
    and hands over to the subcommand. */
#include "client/cli.h"
#include "common/util.h"
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn) (cli_t *);
    const char *options;        //  the long options it accepts, space-separated
    const char *usage;
} command_t;

#define CONN "dir broker key server-key json "
static const command_t s_commands[] = {
    { "submit", cmd_submit, CONN "lang session reason no-wait timeout file idempotency-key raw escape",
      "submit [-l python|shell] [-s SESSION] [--reason TEXT] [--idempotency-key K]\n"
      "         [--no-wait|--timeout S] [--json|--raw|--escape] [CODE|-f FILE|-]" },
    { "status", cmd_status, CONN "raw escape", "status ID [--json|--raw|--escape]" },
    { "wait", cmd_wait, CONN "timeout raw escape", "wait ID [--timeout S] [--json|--raw|--escape]" },
    { "cancel", cmd_cancel, CONN, "cancel ID [--json]" },
    { "ping", cmd_ping, CONN, "ping [--json]" },
    { "pending", cmd_pending, CONN "session", "pending [-s SESSION] [--json]" },
    { "approve", cmd_approve, CONN "reason", "approve ID [--reason TEXT]" },
    { "deny", cmd_deny, CONN "reason", "deny ID --reason TEXT" },
    { "revoke", cmd_revoke, CONN, "revoke NAME [--json]" },
    { "interrupt", cmd_interrupt, CONN "no-wait", "interrupt ID [--no-wait] [--json]" },
    { "sessions", cmd_sessions, CONN, "sessions [--json]" },
    { "reset", cmd_reset, CONN "lang", "reset SESSION [-l python|shell] [--json]" },
    { "close", cmd_close, CONN "lang", "close SESSION [-l python|shell] [--json]" },
    { "policy", cmd_policy, "dir json lang session principal role groups file",
      "policy check FILE | policy explain [-l LANG] [-s SESSION] [--principal P] [--role R]\n"
      "         [--groups a,b] [-f POLICY] CODE" },
    { "history", cmd_history, "dir json principal session state since until limit",
      "history [--principal P] [--session S] [--state S] [--since T] [--until T] [--limit N] [--json]" },
    { "verify", cmd_verify, "dir json since-head", "verify [--since-head HASH] [--json]" },
    { "replay", cmd_replay, "dir json speed no-wait cast raw escape",
      "replay SESSION [--speed X] [--no-wait] [--cast FILE] [--json|--raw|--escape]" },
    { "export", cmd_export, "dir format events principal session state since until",
      "export --format csv|json|jsonl [--events] [--principal P] [--session S] [--state S]\n"
      "         [--since T] [--until T]" },
    { "prune", cmd_prune, CONN "before", "prune --before T [--json]   (admin key; the broker prunes)" },
    { "keygen", cmd_keygen, "dir role groups", "keygen NAME --role agent|approver|worker|admin [--groups a,b]" },
    { "up", cmd_up, "dir port slots", "up [--dir DIR] [--port N] [--slots N]" },
    { "mcp", cmd_mcp, "dir broker key server-key session approval-wait",
      "mcp [-s SESSION] [--approval-wait S]   (an MCP server on stdio, for agents)" },
};
#define NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: replgate COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf (out, "  replgate %s\n", s_commands[i].usage);
    fprintf (out, "\nconnection options (live commands):\n"
             "  --dir DIR         state directory of a local stack (default $REPLGATE_DIR, else ./var)\n"
             "  --broker EP       broker endpoint (default: DIR/endpoint, else tcp://127.0.0.1:7710)\n"
             "  --key FILE        client key pair (default DIR/keys/private/agent.cert or admin.cert)\n"
             "  --server-key FILE broker public key (default DIR/keys/broker.cert)\n"
             "  --json            machine-readable output\n"
             "\nwhat a terminal shows (submit, status, wait, replay): control, bidirectional and\n"
             "  invisible characters of code and output as markers (⟨ESC⟩, ⟨U+202E⟩); a pipe gets\n"
             "  the bytes as printed. --raw: the bytes to a terminal too; --escape: markers into a\n"
             "  pipe too. pending and history always show markers.\n"
             "\nexit codes of submit/wait: 0 ok, 1 snippet failed, 2 usage, 3 denied, 4 pending,\n"
             "  5 expired/cancelled, 6 sandbox limit, 7 broker unreachable/refused, 8 lost\n"
             "exit codes of revoke: 0 revoked, 2 usage, 3 forbidden or no such key, 7 unreachable\n");
}

static bool
s_accepts (const command_t *cmd, const char *opt)
{
    size_t n = strlen (opt);
    for (const char *p = cmd->options; (p = strstr (p, opt)); p += n)
        if ((p == cmd->options || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static int
s_parse (cli_t *cli, const command_t *cmd, int argc, char *argv[])
{
    static struct option opts[] = {
        { "dir", 1, 0, 'd' }, { "broker", 1, 0, 'B' }, { "key", 1, 0, 'K' },
        { "server-key", 1, 0, 'S' }, { "json", 0, 0, 'j' }, { "lang", 1, 0, 'l' },
        { "session", 1, 0, 's' }, { "reason", 1, 0, 'r' }, { "no-wait", 0, 0, 'n' },
        { "timeout", 1, 0, 't' }, { "file", 1, 0, 'f' }, { "idempotency-key", 1, 0, 'i' },
        { "role", 1, 0, 'R' }, { "groups", 1, 0, 'g' }, { "principal", 1, 0, 'P' },
        { "state", 1, 0, 'T' }, { "since", 1, 0, 'a' }, { "until", 1, 0, 'u' },
        { "limit", 1, 0, 'L' }, { "port", 1, 0, 'p' }, { "slots", 1, 0, 'N' },
        { "speed", 1, 0, 'x' }, { "cast", 1, 0, 'c' }, { "format", 1, 0, 'F' },
        { "events", 0, 0, 'E' }, { "since-head", 1, 0, 'H' }, { "before", 1, 0, 'b' },
        { "raw", 0, 0, 'W' }, { "escape", 0, 0, 'e' }, { "approval-wait", 1, 0, 'A' },
        { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
    int c, index = -1;
    optind = 1;
    while ((c = getopt_long (argc, argv, "l:s:f:", opts, &index)) != -1) {
        const char *name = NULL;
        for (struct option *o = opts; o->name; o++)
            if (o->val == c)
                name = o->name;
        if (c == 'h') {
            printf ("usage: replgate %s\n", cmd->usage);
            exit (0);
        }
        if (c == '?' || !name || !s_accepts (cmd, name)) {
            fprintf (stderr, "replgate %s: unknown option %s\nusage: replgate %s\n",
                     cmd->name, name ? name : argv[optind - 1], cmd->usage);
            return -1;
        }
        switch (c) {
            case 'd': cli->dir = optarg; break;
            case 'B': cli->broker = optarg; break;
            case 'K': cli->key = optarg; break;
            case 'S': cli->server_key = optarg; break;
            case 'j': cli->json = true; break;
            case 'l': cli->lang = optarg; break;
            case 's': cli->session = optarg; break;
            case 'r': cli->reason = optarg; break;
            case 'n': cli->no_wait = true; break;
            case 't': cli->timeout_s = atof (optarg); break;
            case 'f': cli->file = optarg; break;
            case 'i': cli->idem = optarg; break;
            case 'R': cli->role = optarg; break;
            case 'g': cli->groups = optarg; break;
            case 'P': cli->principal = optarg; break;
            case 'T': cli->state = optarg; break;
            case 'a': cli->since = optarg; break;
            case 'u': cli->until = optarg; break;
            case 'L': cli->limit = atoi (optarg); break;
            case 'p': cli->port = atoi (optarg); break;
            case 'N': cli->slots = atoi (optarg); break;
            case 'x': cli->speed = atof (optarg); break;
            case 'c': cli->cast = optarg; break;
            case 'F': cli->format = optarg; break;
            case 'E': cli->events = true; break;
            case 'H': cli->since_head = optarg; break;
            case 'b': cli->before = optarg; break;
            case 'W': case 'e': {
                screen_mode_t mode = c == 'W' ? SCREEN_RAW : SCREEN_ESCAPE;
                if (cli->screen_mode != SCREEN_AUTO && cli->screen_mode != mode) {
                    fprintf (stderr, "replgate %s: --raw and --escape exclude each other\n", cmd->name);
                    return -1;
                }
                cli->screen_mode = mode;
                break;
            }
            case 'A': cli->approval_wait = optarg; break;
            default: return -1;
        }
    }
    cli->argc = argc - optind;
    cli->argv = argv + optind;
    return 0;
}

int
main (int argc, char *argv[])
{
    log_set_name ("replgate");
    if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "help") == 0) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (sodium_init () < 0)
        return 1;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp (argv[1], s_commands[i].name) != 0)
            continue;
        cli_t cli = { .cmd = argv[1], .timeout_s = -1 };
        cli.dir = getenv ("REPLGATE_DIR") ? getenv ("REPLGATE_DIR") : "var";
        if (s_parse (&cli, &s_commands[i], argc - 1, argv + 1) != 0)
            return EXIT_USAGE;
        return s_commands[i].fn (&cli);
    }
    fprintf (stderr, "replgate: unknown command '%s'\n", argv[1]);
    s_usage (stderr);
    return EXIT_USAGE;
}
