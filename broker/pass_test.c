/*  broker/pass_test.c: the self-test of broker/pass.c: replies wait for the pass's commit and
    go out in order; if it does not commit, a message that wrote is answered `busy`, once,
    with its own rid, and the others' replies stand. Real sockets (inproc) and a real store. */
#include "broker/pass.h"
#include "broker/approvals.h"
#include "broker/backlog.h"
#include "broker/dispatch.h"
#include "broker/notify.h"
#include "broker/outbox.h"
#include "broker/state.h"
#include "store/store_int.h"
#include "common/check.h"
#include "common/proto.h"
#include <sqlite3.h>
#include <unistd.h>

//  A commit that fails although each statement succeeds: a deferred foreign key that a
//  trigger breaks, checked only at the outermost COMMIT.
#define FAIL_COMMIT "CREATE TABLE inject (r INTEGER REFERENCES requests (id) DEFERRABLE " \
                    "INITIALLY DEFERRED); CREATE TRIGGER inject_commit AFTER INSERT ON events " \
                    "WHEN NEW.type = 'worker_joined' BEGIN INSERT INTO inject VALUES (-1); END;"

static int s_after_calls;
static bool s_after_committed;

static void
s_after (broker_t *broker, void *arg, bool committed)
{
    (void) broker;
    (void) arg;
    s_after_calls++;
    s_after_committed = committed;
}

//  The client's next reply: its rid and its error code ("ok" if none) in out; "" if none came
//  within timeout_ms.
static void
s_next (zsock_t *client, int timeout_ms, char *out, size_t size)
{
    zsock_set_rcvtimeo (client, timeout_ms);
    char *text = zstr_recv (client);
    json_t *reply = text ? json_loads (text, 0, NULL) : NULL;
    const char *code = json_string_value (json_object_get (json_object_get (reply, "error"), "code"));
    const char *rid = json_string_value (json_object_get (reply, "rid"));
    *out = 0;
    if (reply)
        snprintf (out, size, "%s %s", rid ? rid : "-", code ? code : "ok");
    json_decref (reply);
    zstr_free (&text);
}

//  One pass of two messages: the first only reads, the second writes (an event) and is
//  answered twice, then asks to be called after the commit. Returns what pass_end did.
static bool
s_pass (broker_t *b, zframe_t *routing, zsock_t *client, bool *held)
{
    json_t *r1 = json_string ("r1"), *r2 = json_string ("r2");
    caller_t c = { .routing = routing, .rid = r2 };
    CHECK (pass_begin (b) && pass_open (b));
    pass_next (b);
    broker_send_client (b, routing, proto_reply_ok (r1, json_object ()));
    pass_next (b);
    json_t *data = json_pack ("{s:s}", "worker", "w");
    CHECK (store_event (b->store, 0, "worker_joined", "test", data) == 0);
    json_decref (data);
    pass_wrote (b, &c, 0);
    broker_send_client (b, routing, proto_reply_ok (r2, json_object ()));
    broker_send_client (b, routing, proto_reply_ok (r2, json_object ()));
    pass_after (b, s_after, NULL);
    char got[64];
    s_next (client, 100, got, sizeof got);
    *held = *got == 0;                          //  nothing before the commit
    bool committed = pass_end (b);
    CHECK (!pass_open (b));
    json_decref (r1);
    json_decref (r2);
    return committed;
}

//  Denies reading the requests table: a store whose reads fail as well as its commits.
static int
s_deny_requests (void *arg, int action, const char *table, const char *b, const char *c,
                 const char *d)
{
    (void) arg, (void) b, (void) c, (void) d;
    return action == SQLITE_READ && table && strcmp (table, "requests") == 0 ? SQLITE_DENY : SQLITE_OK;
}

//  Runs `sql` on the database at path through a connection of its own.
static void
s_exec (const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    CHECK (sqlite3_open (path, &db) == SQLITE_OK && sqlite3_exec (db, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close (db);
}

//  Ticks the backlog as the loop would, once its next retry is due.
static bool
s_tick (broker_t *b)
{
    usleep (1000u * (unsigned) backlog_timeout (b, 1000) + 1000);
    return backlog_tick (b);
}

//  True if request id is on the run queue.
static bool
s_queued (broker_t *b, int64_t id)
{
    zlistx_t *ids = dispatch_queued_with (b, "");
    bool found = false;
    for (char *at = (char *) zlistx_first (ids); at; at = (char *) zlistx_next (ids))
        found |= atoll (at) == id;
    zlistx_destroy (&ids);
    return found;
}

//  A cancel that did not commit, when the request's row cannot even be read back then: the
//  request is back on the run queue once the store answers again, and until then the
//  broker stays down (nothing of its session may run before it).
static void
s_test_reenter (broker_t *b, const char *path, zframe_t *routing)
{
    json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", "alice", "role", "agent",
                             "session", "s1", "lang", "python", "code", "x = 1");
    int64_t id = 0;
    bool duplicate = true;
    CHECK (store_submit (b->store, req, &id, &duplicate) == 0 && !duplicate);
    json_decref (req);
    CHECK (state_fire (b, id, "received", EV_ALLOW, "broker", NULL, NULL) == 0);
    CHECK (s_queued (b, id));
    s_exec (path, FAIL_COMMIT);
    json_t *rid = json_string ("r3");
    caller_t c = { .routing = routing, .rid = rid };
    CHECK (pass_begin (b) && pass_open (b));
    pass_next (b);
    CHECK (state_fire (b, id, "queued", EV_CANCEL, "alice", NULL, NULL) == 0);
    pass_wrote (b, &c, id);
    broker_send_client (b, routing, proto_reply_ok (rid, json_object ()));
    json_t *data = json_pack ("{s:s}", "worker", "w");
    CHECK (store_event (b->store, 0, "worker_joined", "test", data) == 0);     //  dooms the commit
    json_decref (data);
    CHECK (!s_queued (b, id));               //  unqueued by the cancel
    sqlite3_set_authorizer (b->store->db, s_deny_requests, NULL);
    CHECK (!pass_end (b));
    CHECK (!s_queued (b, id) && backlog_down (b));
    //  Commits work again but reads still fail: still down, still not queued.
    s_exec (path, "DROP TRIGGER inject_commit; DROP TABLE inject;");
    CHECK (!s_tick (b));
    CHECK (!s_queued (b, id) && backlog_down (b));
    //  Reads work: queued again, as the record has it, and the broker is up.
    sqlite3_set_authorizer (b->store->db, NULL, NULL);
    CHECK (s_tick (b));
    CHECK (s_queued (b, id) && !backlog_down (b));
    json_t *row = store_get (b->store, id);
    CHECK (row && strcmp (json_string_value (json_object_get (row, "state")), "queued") == 0);
    json_decref (row);
    json_decref (rid);
}

int
pass_test (void)
{
    char dir[] = "/tmp/replgate-pass-XXXXXX", path[256];
    CHECK (mkdtemp (dir) != NULL);
    snprintf (path, sizeof path, "%s/t.db", dir);
    broker_t b = { .store = store_new (path, 0), .backlog = backlog_new (), .notify = notify_new (),
                   .outbox = outbox_new (), .pass = pass_new (), .dispatch = dispatch_new (),
                   .approvals = approvals_new () };
    b.clients = zsock_new_router ("inproc://pass-test");
    zsock_t *client = zsock_new_dealer (">inproc://pass-test");
    CHECK (b.store && b.clients && client);
    zstr_send (client, "hello");
    zmsg_t *hello = zmsg_recv (b.clients);
    zframe_t *routing = hello ? zmsg_pop (hello) : NULL;
    zmsg_destroy (&hello);
    CHECK (routing != NULL);
    //  Committed: every reply, in order, and the after-commit call, only then.
    bool held = false;
    char got[64];
    CHECK (s_pass (&b, routing, client, &held) && held);
    CHECK (s_after_calls == 1 && s_after_committed);
    s_next (client, 1000, got, sizeof got);
    CHECK (strcmp (got, "r1 ok") == 0);
    s_next (client, 1000, got, sizeof got);
    CHECK (strcmp (got, "r2 ok") == 0);
    s_next (client, 1000, got, sizeof got);
    CHECK (strcmp (got, "r2 ok") == 0);
    //  Not committed: the reader's reply stands, the writer gets one `busy` with its rid.
    sqlite3 *db = NULL;
    CHECK (sqlite3_open (path, &db) == SQLITE_OK && sqlite3_exec (db, FAIL_COMMIT, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close (db);
    CHECK (!s_pass (&b, routing, client, &held) && held);
    CHECK (s_after_calls == 2 && !s_after_committed);
    s_next (client, 1000, got, sizeof got);
    CHECK (strcmp (got, "r1 ok") == 0);
    s_next (client, 1000, got, sizeof got);
    CHECK (strcmp (got, "r2 busy") == 0);
    s_next (client, 100, got, sizeof got);
    CHECK (*got == 0);
    CHECK (backlog_down (&b));
    //  A pass that could not open (the store is down): nothing is held, nothing waits.
    CHECK (!pass_begin (&b) && !pass_open (&b));
    pass_next (&b);
    broker_send_client (&b, routing, proto_reply_ok (NULL, json_object ()));
    CHECK (pass_end (&b));
    s_next (client, 1000, got, sizeof got);
    CHECK (*got != 0);
    //  Up again once the failing commit's cause is gone.
    s_exec (path, "DROP TRIGGER inject_commit; DROP TABLE inject;");
    CHECK (s_tick (&b) && !backlog_down (&b));
    s_test_reenter (&b, path, routing);
    s_next (client, 1000, got, sizeof got);
    CHECK (strcmp (got, "r3 busy") == 0);
    zframe_destroy (&routing);
    zsock_destroy (&client);
    zsock_destroy (&b.clients);
    pass_destroy (&b.pass);
    CHECK (b.pass == NULL);
    outbox_destroy (&b.outbox);
    notify_destroy (&b.notify);
    dispatch_destroy (&b.dispatch);
    approvals_destroy (&b.approvals);
    backlog_destroy (&b.backlog);
    store_destroy (&b.store);
    CHECK (check_remove_dir (dir) == 0);
    return 0;
}
