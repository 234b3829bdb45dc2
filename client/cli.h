/*  client/cli.h: what every `replgate` subcommand shares: parsed options, how to reach the
    broker, how to print a request and which exit code it maps to. */
#ifndef RG_CLI_H
#define RG_CLI_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "client/conn.h"
#include "client/screen.h"
#include "store/store.h"

//  Exit codes of every command, one table (README.md, `replgate --help`). 0-8 are DESIGN.md's
//  codes of submit/wait; 9-11 are the broker's refusals of a well-formed request, so that a
//  script tells "no such request" from "not allowed" from "too late" without reading text.
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_DENIED = 3, EXIT_PENDING = 4,
       EXIT_ENDED = 5, EXIT_LIMIT = 6, EXIT_UNREACHABLE = 7, EXIT_LOST = 8,
       EXIT_NOT_FOUND = 9, EXIT_FORBIDDEN = 10, EXIT_BAD_STATE = 11 };

typedef struct {
    const char *cmd;
    const char *dir;            //  --dir, $REPLGATE_DIR, ./var
    const char *broker;         //  --broker EP (else DIR/endpoint, else tcp://127.0.0.1:7710)
    const char *key;            //  --key FILE (client cert with _secret)
    const char *server_key;     //  --server-key FILE
    bool json;
    const char *lang, *session, *reason, *file, *idem;
    bool no_wait;
    double timeout_s;           //  < 0: none
    const char *role, *groups, *principal, *state, *since, *until;
    int port, slots, limit, workers;     //  up --workers N
    int64_t uid_base;           //  up --uid-base: the first worker's; 0 lets each claim one
    double speed;               //  replay --speed (default 1)
    const char *cast, *format, *since_head, *before;
    bool events;                //  export --events
    screen_mode_t screen_mode;  //  --raw, --escape: how output reaches a terminal
    const char *approval_wait;  //  mcp --approval-wait
    int stream;                 //  submit --stream 1, --no-stream 0, else -1: when stdout is a terminal
    int64_t timeout_ms;         //  submit --timeout-ms: the run's limit (0: the rule's)
    bool streamed;              //  the outputs went out as they came: the end does not repeat them
    int argc;                   //  positional arguments after the command
    char **argv;
    char **given;               //  the whole command line as typed (client/handoff.c)
} cli_t;

//  Opens a connection as the key this command uses by default (`agent` for agent commands,
//  `admin` for the rest) unless --key says otherwise. NULL after printing why, with *code
//  set: EXIT_USAGE for a missing state directory or key file, a key that cannot be read or
//  an endpoint that is not one (local set-up), EXIT_UNREACHABLE otherwise.
conn_t *cli_connect (cli_t *cli, const char *default_key, int *code);
//  Says on stderr that the broker did not answer within timeout_ms, and why the last
//  connection to it ended if one did; returns EXIT_UNREACHABLE.
int cli_no_answer (conn_t *conn, int timeout_ms);

//  Sends req (consumed) and returns the reply, or NULL with *code set to the exit code to use:
//  EXIT_UNREACHABLE (no answer), cli_refusal_code of a refusal (both printed), or
//  EXIT_PENDING, printing nothing, when the wait was interrupted (cli_interrupted).
json_t *cli_call (cli_t *cli, conn_t *conn, json_t *req, int timeout_ms, int *code);

//  The exit code of a broker refusal's error code: not_found, forbidden, bad_state (and
//  duplicate: you already decided) have their own; the rest are EXIT_USAGE.
int cli_refusal_code (const char *error_code);

//  0 if DIR is a directory; else prints "replgate CMD: no such state dir: DIR" and -1.
int cli_check_dir (cli_t *cli);

//  The one positional argument of status, wait, cancel, approve and deny: a request id, a
//  plain positive decimal number. -1 after printing a usage line.
int cli_id_arg (cli_t *cli, int64_t *id);
//  A time argument as ISO-8601 UTC text: given as such (a prefix like 2026-11-28 is fine),
//  or relative to now as N followed by s, m, h or d ("30d": 30 days ago). -1 if neither.
int cli_time (const char *text, char out[32]);

//  Ctrl-C and SIGTERM while a command waits on the broker (client/interrupt.c). From the
//  call on, either signal ends the wait instead of the process: conn_recv on conn returns
//  NULL at once (also for a signal that comes before it polls) and cli_interrupted is true.
//  The command then says what became of its request and exits EXIT_PENDING.
void cli_interrupt_catch (conn_t *conn);
bool cli_interrupted (void);
//  The signal that ended the wait (SIGINT, SIGTERM), or 0.
int cli_interrupt_signal (void);
//  Forgets the signal that ended the wait, so that waiting can go on (after a first Ctrl-C
//  asked the broker to interrupt the run); a later signal ends it again.
void cli_interrupt_rearm (void);
//  Says on stderr what became of request id (0: its id is not known yet), from the last row
//  the broker sent (NULL: none; with --json it is printed too), and returns EXIT_PENDING.
int cli_interrupt_report (cli_t *cli, int64_t id, json_t *row);

//  Prints a request the way a terminal user wants it (outputs, value, traceback), or as JSON.
//  Each stream that is a terminal gets its text rendered (client/screen.h), unless --raw.
void cli_print_request (cli_t *cli, json_t *row);
//  The string at key of object, or "-" where there is none (a table cell).
const char *cli_text (json_t *object, const char *key);
//  Prints a JSON value as one compact line (--json output).
void cli_print_json (json_t *value);
//  The submit/wait exit code for a request row.
int cli_exit_code (json_t *row);
//  Waits until the request is terminal or timeout_s passes, printing and returning the code.
int cli_wait (cli_t *cli, conn_t *conn, json_t *row);

int cmd_submit (cli_t *cli);
int cmd_status (cli_t *cli);
int cmd_wait (cli_t *cli);
int cmd_cancel (cli_t *cli);
int cmd_ping (cli_t *cli);
//  Local (database) commands: client/local.c, replay.c, export.c; with policy_cmd.c, what
//  `replgate-local` runs for `replgate` (client/handoff.c).
//  Opens DIR/replgate.db (flags as store_new); NULL after printing why.
store_t *cli_open_store (cli_t *cli, int flags);
//  The filters of --principal --session --state --since --until as store_history takes
//  them; NULL after printing why (a time that cannot be read).
json_t *cli_filters (cli_t *cli);

int cmd_history (cli_t *cli);
int cmd_verify (cli_t *cli);
int cmd_prune (cli_t *cli);
int cmd_replay (cli_t *cli);
int cmd_export (cli_t *cli);
int cmd_keygen (cli_t *cli);
int cmd_pending (cli_t *cli);
int cmd_policy (cli_t *cli);
int cmd_approve (cli_t *cli);
int cmd_deny (cli_t *cli);
int cmd_revoke (cli_t *cli);
int cmd_up (cli_t *cli);
//  An agent's interpreters and runs: client/sessions.c.
int cmd_interrupt (cli_t *cli);
int cmd_sessions (cli_t *cli);
int cmd_reset (cli_t *cli);
int cmd_close (cli_t *cli);
int cmd_workers (cli_t *cli);
int cmd_drain (cli_t *cli);
int cmd_mcp (cli_t *cli);

#endif
