/*  tests/selftest.c: runs every module's in-file self-test and prints the counts.
    Each module owner adds one line to the table. */
#include "common/check.h"
#include "common/util.h"
#include <sodium.h>
#include <stdio.h>
#include <string.h>

//  Self-tests, declared here so the table needs no headers of its own.
int buf_test (void);
int store_test (void);
int proto_test (void);
int session_test (void);
int jpos_test (void);
int mask_test (void);
int redact_test (void);
int uidlock_test (void);
int mask_stream_test (void);
int secrets_test (void);
int policy_test (void);
int scfilter_test (void);
int cgroup_test (void);
int spawn_test (void);
int claim_test (void);
int sign_test (void);
int payload_test (void);
int slack_test (void);
int deliver_test (void);
int state_test (void);
int config_test (void);
int http_test (void);
int flow_test (void);
int trust_test (void);
int refusals_test (void);
int pass_test (void);
int runq_test (void);
int dispatch_test (void);
int approvals_test (void);
int states_test (void);
int args_test (void);
int state_table_test (void);
int screen_test (void);
int mcp_test (void);
int wire_test (void);
int grant_test (void);
int egress_test (void);
int drop_test (void);
int proxy_test (void);
int egress_check_test (void);
int egress_record_test (void);
int zmtp_wire_test (void);
int zmtp_test (void);
int certfile_test (void);

static struct { const char *name; int (*fn) (void); } s_tests[] = {
    { "util", util_test },
    { "buf", buf_test },
    { "store", store_test },
    { "proto", proto_test },
    { "session", session_test },
    { "jpos", jpos_test },
    { "mask", mask_test },
    { "mask_stream", mask_stream_test },
    { "uidlock", uidlock_test },
    { "redact", redact_test },
    { "secrets", secrets_test },
    { "policy", policy_test },
    { "seccomp", scfilter_test },
    { "cgroup", cgroup_test },
    { "claim", claim_test },
    { "spawn", spawn_test },
    { "sign", sign_test },
    { "payload", payload_test },
    { "slack", slack_test },
    { "deliver", deliver_test },
    { "approver_state", state_test },
    { "approver_config", config_test },
    { "http", http_test },
    { "flow", flow_test },
    { "trust", trust_test },
    { "refusals", refusals_test },
    { "pass", pass_test },
    { "runq", runq_test },
    { "dispatch", dispatch_test },
    { "approvals", approvals_test },
    { "states", states_test },
    { "args", args_test },
    { "broker_state", state_table_test },
    { "screen", screen_test },
    { "mcp", mcp_test },
    { "wire", wire_test },
    { "grant", grant_test },
    { "egress", egress_test },
    { "drop", drop_test },
    { "proxy", proxy_test },
    { "egress_check", egress_check_test },
    { "egress_record", egress_record_test },
    { "zmtp_wire", zmtp_wire_test },
    { "zmtp", zmtp_test },
    { "certfile", certfile_test },
};

int
main (int argc, char *argv[])
{
    if (sodium_init () < 0)
        return 1;
    const char *only = argc > 1 ? argv[1] : NULL;
    for (size_t i = 0; i < sizeof s_tests / sizeof s_tests[0]; i++) {
        if (only && strcmp (only, s_tests[i].name) != 0)
            continue;
        int failed_before = check_failed;
        s_tests[i].fn ();
        printf (" * %s: %s\n", s_tests[i].name, check_failed == failed_before ? "OK" : "FAILED");
    }
    printf ("selftest: %d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
