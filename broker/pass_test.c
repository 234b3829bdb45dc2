/*  broker/pass_test.c: the self-test of broker/pass.c: replies wait for the pass's commit and
    go out in order; if it does not commit, a message that wrote is answered `busy`, once,
    with its own rid, and the others' replies stand. Real sockets (inproc) and a real store. */
#include "broker/pass.h"
#include "broker/backlog.h"
#include "broker/notify.h"
#include "broker/outbox.h"
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

int
pass_test (void)
{
    char dir[] = "/tmp/replgate-pass-XXXXXX", path[256];
    CHECK (mkdtemp (dir) != NULL);
    snprintf (path, sizeof path, "%s/t.db", dir);
    broker_t b = { .store = store_new (path, 0), .backlog = backlog_new (), .notify = notify_new (),
                   .outbox = outbox_new (), .pass = pass_new () };
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
    zframe_destroy (&routing);
    zsock_destroy (&client);
    zsock_destroy (&b.clients);
    pass_destroy (&b.pass);
    CHECK (b.pass == NULL);
    outbox_destroy (&b.outbox);
    notify_destroy (&b.notify);
    backlog_destroy (&b.backlog);
    store_destroy (&b.store);
    CHECK (check_remove_dir (dir) == 0);
    return 0;
}
