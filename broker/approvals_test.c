/*  broker/approvals_test.c: the approval rules, driven without sockets: each refusal in the
    order approvals.c states them, the quorum, a gateway speaking for a human, and a parked
    request whose stored code was altered. A real store and real keys in a scratch directory. */
#include "broker/approvals.h"
#include "common/check.h"
#include "common/keys.h"
#include "common/proto.h"
#include "store/store.h"
#include "common/util.h"
#include "store/verify.h"
#include <unistd.h>

#define FUTURE "2999-01-01T00:00:00.000Z"

//  Parks a request submitted by `owner`, reviewed by the sre group with a quorum of two.
static int64_t
s_park (broker_t *b, const char *owner, const char *code, const char *expires)
{
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", owner, "role", "agent",
                             "session", "s", "lang", "python", "code", code);
    int64_t id = 0;
    bool duplicate;
    CHECK (store_submit (b->store, req, &id, &duplicate) == 0);
    json_decref (req);
    json_t *fields = json_pack ("{s:{s:i, s:i, s:s, s:{s:[], s:[s]}}}", "review", "quorum", 2,
                                "ttl_s", 60, "expires_at", expires,
                                "approvers", "principals", "groups", "sre");
    CHECK (store_transition (b->store, id, "received", "pending_approval", "broker", fields) == 0);
    json_decref (fields);
    json_t *row = store_get (b->store, id);
    approvals_track (b, row);
    json_decref (row);
    return id;
}

//  The refusal code of caller (name, role, groups) deciding on id, or "ok" (then *quorum,
//  and the approval is recorded as a real decision would be).
static const char *
s_vet (broker_t *b, const char *name, const char *role, const char *groups, int64_t id,
       bool approve, const char *behalf, bool *quorum)
{
    caller_t c = { .principal = name, .role = role, .groups = groups };
    json_t *msg = json_pack ("{s:s, s:I, s:s}", "op", approve ? "approve" : "deny",
                             "id", (json_int_t) id, "reason", "looked at it");
    if (behalf)
        json_object_set_new (msg, "on_behalf_of", json_string (behalf));
    verdict_t v;
    const char *code = "ok", *why = NULL;
    if (approvals_vet (b, &c, msg, approve, &v, &code, &why) == 0) {
        code = v.tampered ? "tampered" : "ok";
        if (quorum)
            *quorum = v.quorum;
        if (v.approval)
            CHECK (store_approve (b->store, id, v.approval, NULL, NULL) == 0);
        json_decref (v.approval);
    }
    json_decref (msg);
    return code;
}

int
approvals_test (void)
{
    char dir[] = "/tmp/replgate-approvals-XXXXXX", path[256], err[256];
    CHECK (mkdtemp (dir) != NULL);
    snprintf (path, sizeof path, "%s/replgate.db", dir);
    broker_t b = { .store = store_new (path, 0), .approvals = approvals_new () };
    b.cfg.dir = dir;
    CHECK (keys_generate (dir, "dave", "approver", "sre", err, sizeof err) == 0);
    CHECK (keys_generate (dir, "eve", "agent", "sre", err, sizeof err) == 0);
    int64_t id = s_park (&b, "mallory", "print(1)", FUTURE);
    bool quorum = true;
    //  The rules, in order.
    CHECK (strcmp (s_vet (&b, "mallory", "agent", "sre", id, true, NULL, NULL), PROTO_E_FORBIDDEN) == 0);
    CHECK (strcmp (s_vet (&b, "bob", "approver", "ops", id, true, "dave", NULL), PROTO_E_FORBIDDEN) == 0);
    CHECK (strcmp (s_vet (&b, "gw", "approver", "gateway", id, true, "eve", NULL), PROTO_E_FORBIDDEN) == 0);
    CHECK (strcmp (s_vet (&b, "gw", "approver", "gateway", id, true, "../x", NULL), PROTO_E_FORBIDDEN) == 0);
    CHECK (strcmp (s_vet (&b, "mallory", "admin", "sre", id, true, NULL, NULL), PROTO_E_FORBIDDEN) == 0);
    CHECK (strcmp (s_vet (&b, "bob", "approver", "ops", id, true, NULL, NULL), PROTO_E_FORBIDDEN) == 0);
    CHECK (strcmp (s_vet (&b, "alice", "approver", "ops, sre", id, true, NULL, &quorum), "ok") == 0);
    CHECK (!quorum);
    CHECK (strcmp (s_vet (&b, "alice", "approver", "sre", id, true, NULL, NULL), PROTO_E_DUPLICATE) == 0);
    //  A gateway speaks for dave, whose own cert's groups count: the second approval.
    CHECK (strcmp (s_vet (&b, "gw", "approver", "gateway", id, true, "dave", &quorum), "ok") == 0);
    CHECK (quorum);
    CHECK (strcmp (s_vet (&b, "carol", "admin", "", id + 100, true, NULL, NULL), PROTO_E_NOT_FOUND) == 0);
    CHECK (store_transition (b.store, id, "pending_approval", "queued", "broker", NULL) == 0);
    CHECK (strcmp (s_vet (&b, "carol", "admin", "", id, true, NULL, NULL), PROTO_E_BAD_STATE) == 0);
    //  A deny needs a reason; the stored code altered behind the broker's back is caught.
    int64_t other = s_park (&b, "mallory", "print(2)", FUTURE);
    caller_t c = { .principal = "alice", .role = "approver", .groups = "sre" };
    json_t *msg = json_pack ("{s:s, s:I}", "op", "deny", "id", (json_int_t) other);
    verdict_t v;
    const char *code, *why;
    CHECK (approvals_vet (&b, &c, msg, false, &v, &code, &why) == -1 && strcmp (code, PROTO_E_MISSING) == 0);
    json_decref (msg);
    char sql[160];
    //  An intruder with the file drops the trigger that keeps inputs fixed, then edits.
    snprintf (sql, sizeof sql, "DROP TRIGGER requests_inputs_fixed; "
              "UPDATE requests SET code = 'rm -rf /' WHERE id = %lld", (long long) other);
    CHECK (store_raw_exec (path, sql, NULL, 0) == 0);
    CHECK (strcmp (s_vet (&b, "alice", "approver", "sre", other, true, NULL, NULL), "tampered") == 0);
    //  Expiry: a parked request past its time to live is due once, then no longer tracked.
    approvals_forget (&b, other);
    int64_t old = s_park (&b, "mallory", "print(3)", "2020-01-01T00:00:00.000Z");
    zlistx_t *due = approvals_due (&b);
    CHECK (zlistx_size (due) == 1 && atoll ((char *) zlistx_first (due)) == old);
    zlistx_destroy (&due);
    due = approvals_due (&b);
    CHECK (zlistx_size (due) == 0);
    zlistx_destroy (&due);
    approvals_destroy (&b.approvals);
    store_destroy (&b.store);
    CHECK (check_remove_dir (dir) == 0);
    return 0;
}
