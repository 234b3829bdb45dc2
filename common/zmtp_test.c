/*  common/zmtp_test.c: common/zmtp.c against a real libzmq ROUTER with CURVE and zauth (what
    the broker runs), and against a hostile server on a raw socket. */
#define _GNU_SOURCE
#include "common/zmtp.h"
#include "common/zmtp_wire.h"
#include "common/check.h"
#include <czmq.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    zcert_t *server, *client, *stranger;
    char dir[64];               //  zauth's trusted certs
    zactor_t *auth;
    zsock_t *router;
    int port;
} bench_t;

static zsock_t *
s_router (bench_t *b, int port)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (router, 0);
    zsock_set_zap_domain (router, "test");
    zcert_apply (b->server, router);
    zsock_set_curve_server (router, 1);
    zsock_set_rcvtimeo (router, 3000);
    if (zsock_bind (router, "tcp://127.0.0.1:%d", port) < 0)
        zsock_destroy (&router);
    return router;
}

static zmtp_t *
s_client (bench_t *b, zcert_t *as, zcert_t *server_cert, const char *endpoint)
{
    char ep[64];
    if (!endpoint)
        snprintf (ep, sizeof ep, "tcp://127.0.0.1:%d", b->port);
    zmtp_keys_t keys;
    memcpy (keys.public_key, zcert_public_key (as), 32);
    memcpy (keys.secret_key, zcert_secret_key (as), 32);
    memcpy (keys.server_key, zcert_public_key (server_cert), 32);
    return zmtp_new (endpoint ? endpoint : ep, &keys);
}

//  Receives one message on the router: its text (caller frees) and whose key it came with.
static char *
s_router_recv (zsock_t *router, zframe_t **routing, char user[41])
{
    zmsg_t *msg = zmsg_recv (router);
    if (!msg || zmsg_size (msg) != 2) {
        zmsg_destroy (&msg);
        return NULL;
    }
    *routing = zmsg_pop (msg);
    zframe_t *body = zmsg_pop (msg);
    const char *key = zframe_meta (body, "User-Id");
    snprintf (user, 41, "%s", key ? key : "");
    char *text = zframe_strdup (body);
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    return text;
}

static void
s_reply (zsock_t *router, zframe_t *routing, const void *data, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zframe_t *to = zframe_dup (routing);
    zmsg_append (msg, &to);
    zmsg_addmem (msg, data, size);
    zmsg_send (&msg, router);
}

//  A turn for the client, as a caller with descriptors of its own takes it (its poll, then
//  zmtp_handle and zmtp_take): true if it had no message to give. Not inlined: inlined into
//  the loop below, gcc 12 takes the freed message for one used later (-Wuse-after-free).
static bool __attribute__ ((noinline))
s_nothing_yet (zmtp_t *c)
{
    size_t n;
    struct pollfd p;
    zmtp_poll_item (c, &p);
    if (poll (&p, 1, 0) < 0)
        return false;
    zmtp_handle (c, p.revents);
    uint8_t *msg = zmtp_take (c, &n);
    bool none = msg == NULL;
    free (msg);
    return none;
}

//  A round trip of `size` bytes each way; true if both arrive whole, from the right key.
static bool
s_round_trip (bench_t *b, zmtp_t *c, size_t size)
{
    char *out = (char *) malloc (size + 1);
    for (size_t i = 0; i < size; i++)
        out[i] = (char) ('a' + i % 26);
    out[size] = 0;
    bool ok = zmtp_send (c, out, size) == 0;
    zframe_t *routing = NULL;
    char user[41];
    //  The client moves its connection only when called: a thread of its own would hide
    //  that; instead it is given turns while the router waits.
    zpoller_t *poller = zpoller_new (b->router, NULL);
    int64_t until = zclock_mono () + 15000;
    char *got = NULL;
    size_t n;
    while (ok && !got && zclock_mono () < until) {
        ok = s_nothing_yet (c);
        if (zpoller_wait (poller, 5))
            got = s_router_recv (b->router, &routing, user);
    }
    zpoller_destroy (&poller);
    ok = ok && got && strlen (got) == size && memcmp (got, out, size) == 0
         && strcmp (user, zcert_public_txt (b->client)) == 0;
    if (ok)
        s_reply (b->router, routing, out, size);
    uint8_t *back = ok ? zmtp_recv (c, 15000, -1, &n) : NULL;
    ok = ok && back && n == size && memcmp (back, out, size) == 0;
    free (back);
    free (got);
    free (out);
    zframe_destroy (&routing);
    return ok;
}

//  A raw server: accepts c's connection and writes `bytes`; zmtp_why afterwards.
static const char *
s_hostile (zmtp_t *c, int listener, const void *bytes, size_t size)
{
    size_t n;
    uint8_t *early = zmtp_recv (c, 50, -1, &n);    //  lets it connect
    free (early);
    int fd = accept (listener, NULL, NULL);
    if (fd < 0 || write (fd, bytes, size) != (ssize_t) size) {
        if (fd >= 0)
            close (fd);
        return "(the test could not write)";
    }
    //  In short waits, ending as soon as it gives up (up to 3 s, for a loaded machine): a
    //  longer one would reconnect, and leave that connection waiting in the listener's
    //  backlog for the next case to accept.
    uint8_t *msg = NULL;
    for (int i = 0; i < 300 && !msg && !zmtp_why (c); i++)
        msg = zmtp_recv (c, 10, -1, &n);
    bool came = msg != NULL;
    free (msg);
    close (fd);
    return came ? "(a message came)" : zmtp_why (c) ? zmtp_why (c) : "(nothing happened)";
}

static void
s_on_alarm (int sig)
{
    (void) sig;
}

//  A zero timeout never waits, even when the clock ticks between the call and its poll (it
//  once waited for the next message then). A stray wait would end at the alarm.
static void
s_test_no_wait (zmtp_t *c)
{
    struct sigaction sa = { .sa_handler = s_on_alarm }, old;
    sigemptyset (&sa.sa_mask);
    CHECK (sigaction (SIGALRM, &sa, &old) == 0);
    alarm (3);
    size_t n;
    int got = 0;
    int64_t t0 = zclock_mono (), calls = 0;
    while (zclock_mono () - t0 < 1000) {         //  some hundred thousand calls
        uint8_t *m = zmtp_recv (c, 0, -1, &n);
        got += m != NULL;
        calls++;
        free (m);
    }
    alarm (0);
    CHECK (sigaction (SIGALRM, &old, NULL) == 0);
    CHECK (got == 0 && calls > 10000 && zclock_mono () - t0 < 2500);
}

//  A message of several frames is dropped whole; the single frame after it arrives. Then a
//  restart: what was queued is dropped, and a new connection carries the next message.
static void
s_test_frames_and_restart (bench_t *b, zmtp_t *c)
{
    CHECK (zmtp_send (c, "hi", 2) == 0);
    zpoller_t *poller = zpoller_new (b->router, NULL);
    zframe_t *routing = NULL;
    char user[41], *hi = NULL;
    size_t n;
    for (int i = 0; i < 1000 && !hi; i++) {
        free (zmtp_recv (c, 0, -1, &n));
        if (zpoller_wait (poller, 10))
            hi = s_router_recv (b->router, &routing, user);
    }
    zpoller_destroy (&poller);
    CHECK (hi && strcmp (hi, "hi") == 0);
    free (hi);
    zmsg_t *parts = zmsg_new ();
    zframe_t *to = zframe_dup (routing);
    zmsg_append (parts, &to);
    zmsg_addstr (parts, "part one");
    zmsg_addstr (parts, "part two");
    zmsg_send (&parts, b->router);
    s_reply (b->router, routing, "whole", 5);
    zframe_destroy (&routing);
    uint8_t *got = zmtp_recv (c, 5000, -1, &n);
    CHECK (got && n == 5 && memcmp (got, "whole", 5) == 0);
    free (got);
    got = zmtp_recv (c, 100, -1, &n);
    CHECK (got == NULL);
    free (got);

    uint64_t opened = zmtp_opened (c);
    CHECK (zmtp_send (c, "stale", 5) == 0);
    zmtp_restart (c);
    CHECK (s_round_trip (b, c, 10));           //  the first to arrive is this one, not "stale"
    CHECK (zmtp_opened (c) == opened + 1);
}

static void
s_test_hostile (bench_t *b)
{
    int listener = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    CHECK (listener >= 0 && bind (listener, (struct sockaddr *) &a, sizeof a) == 0
           && listen (listener, 8) == 0 && getsockname (listener, (struct sockaddr *) &a, &len) == 0);
    char ep[64];
    snprintf (ep, sizeof ep, "tcp://127.0.0.1:%d", ntohs (a.sin_port));
    uint8_t buf[400];
    zmtp_greeting (buf);

    zmtp_t *c = s_client (b, b->client, b->server, ep);
    CHECK (strstr (s_hostile (c, listener, "HTTP/1.1 200 OK\r\n\r\n" "0123456789012345678901234"
                                                     "567890123456789012345678901234567890", 64),
                   "not a ZMTP 3 server") != NULL);
    zmtp_destroy (&c);

    //  A frame that claims 2^63 bytes, then one with a reserved flag.
    memcpy (buf + 64, "\x06\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
    c = s_client (b, b->client, b->server, ep);
    CHECK (strstr (s_hostile (c, listener, buf, 73), "malformed frame") != NULL);
    zmtp_destroy (&c);
    memcpy (buf + 64, "\x84\x01x", 3);
    c = s_client (b, b->client, b->server, ep);
    CHECK (strstr (s_hostile (c, listener, buf, 67), "malformed frame") != NULL);
    zmtp_destroy (&c);

    //  A WELCOME sealed with a key that is not the broker's: a server in between.
    uint8_t mitm_pub[32], mitm_sec[32], nonce[24] = "WELCOME-", plain[128] = { 0 };
    CHECK (crypto_box_keypair (mitm_pub, mitm_sec) == 0);
    memcpy (buf + 64, "\x04\xa8\x07WELCOME", 10);
    randombytes_buf (buf + 74, 16);
    memcpy (nonce + 8, buf + 74, 16);
    c = s_client (b, b->client, b->server, ep);
    //  It must be sealed to the client's ephemeral key, which only HELLO tells: a wrong
    //  box of the right size stands in, as no key but the broker's could make a right one.
    CHECK (crypto_box_easy (buf + 90, plain, sizeof plain, nonce, mitm_pub, mitm_sec) == 0);
    CHECK (strstr (s_hostile (c, listener, buf, 90 + 144), "not the broker") != NULL);
    zmtp_destroy (&c);

    //  READY before WELCOME; an ERROR command; a message before the handshake.
    const char *out_of_order[][2] = { { "\x04\x06\x05READY", "unexpected command" },
                                      { "\x04\x0b\x05" "ERROR\x04nope", "refused our key" },
                                      { "\x00\x09\x07MESSAGE\x01", "unexpected command" } };
    for (size_t i = 0; i < 3; i++) {
        size_t n = 2 + (size_t) (uint8_t) out_of_order[i][0][1];
        memcpy (buf + 64, out_of_order[i][0], n);
        c = s_client (b, b->client, b->server, ep);
        CHECK (strstr (s_hostile (c, listener, buf, 64 + n), out_of_order[i][1]) != NULL);
        CHECK (zmtp_refused (c) == (i == 1));
        zmtp_destroy (&c);
    }
    close (listener);
}

static void
s_test_endpoints (bench_t *b)
{
    //  Z85 keys as libzmq encodes them.
    for (int i = 0; i < 200; i++) {
        uint8_t key[32], back[32];
        char text[41];
        randombytes_buf (key, sizeof key);
        CHECK (zmq_z85_encode (text, key, sizeof key) != NULL);
        CHECK (zmtp_z85_decode (text, back) == 0 && memcmp (key, back, sizeof key) == 0);
    }
    const char *bad[] = { "tcp://", "tcp://host", "tcp://:5", "udp://h:1", "tcp://h:12a",
                          "tcp://h:", "ipc://", "tcp://[]:5" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zmtp_t *c = s_client (b, b->client, b->server, bad[i]);
        CHECK (c == NULL);
        zmtp_destroy (&c);
    }
    char ep[200];
    snprintf (ep, sizeof ep, "ipc://%0150d", 0);
    CHECK (s_client (b, b->client, b->server, ep) == NULL);
}

int
zmtp_test (void)
{
    bench_t b = { .server = zcert_new (), .client = zcert_new (), .stranger = zcert_new () };
    snprintf (b.dir, sizeof b.dir, "/tmp/replgate-zmtp-XXXXXX");
    CHECK (mkdtemp (b.dir) != NULL);
    char path[128];
    snprintf (path, sizeof path, "%s/client.cert", b.dir);
    CHECK (zcert_save_public (b.client, path) == 0);
    b.auth = zactor_new (zauth, NULL);
    zstr_sendx (b.auth, "CURVE", b.dir, NULL);
    zsock_wait (b.auth);
    //  An ephemeral port: bound once to learn it, then the same port throughout.
    zsock_t *probe = zsock_new (ZMQ_ROUTER);
    b.port = zsock_bind (probe, "tcp://127.0.0.1:*");
    zsock_destroy (&probe);
    zmtp_t *c = s_client (&b, b.client, b.server, NULL);
    CHECK (c != NULL);

    //  Nobody listens yet: what is sent waits, and goes out once a server is there.
    size_t n;
    CHECK (zmtp_send (c, "early", 5) == 0);
    CHECK (zmtp_recv (c, 250, -1, &n) == NULL && zmtp_why (c) != NULL);
    b.router = s_router (&b, b.port);
    CHECK (b.router != NULL);
    zframe_t *routing = NULL;
    char user[41];
    zpoller_t *poller = zpoller_new (b.router, NULL);
    char *early = NULL;
    for (int i = 0; i < 1000 && !early; i++) {
        free (zmtp_recv (c, 0, -1, &n));
        if (zpoller_wait (poller, 10))
            early = s_router_recv (b.router, &routing, user);
    }
    zpoller_destroy (&poller);
    CHECK (early && strcmp (early, "early") == 0);
    free (early);
    zframe_destroy (&routing);

    //  Sizes across the short/long frame boundary and up to a large result.
    size_t sizes[] = { 0, 1, 237, 238, 255, 256, 70000, 3 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CHECK (s_round_trip (&b, c, sizes[i]));

    //  Sent after the caller's poll, which did not ask to write: zmtp_handle writes it in
    //  the same turn, whatever revents says.
    struct pollfd pfd;
    CHECK (zmtp_poll_item (c, &pfd) == -1 && !(pfd.events & POLLOUT));
    CHECK (poll (&pfd, 1, 0) == 0);
    CHECK (zmtp_send (c, "late", 4) == 0);
    zmtp_handle (c, pfd.revents);
    zsock_set_rcvtimeo (b.router, 5000);
    char *late = s_router_recv (b.router, &routing, user);
    CHECK (late && strcmp (late, "late") == 0);
    free (late);
    zframe_destroy (&routing);
    zsock_set_rcvtimeo (b.router, 3000);

    //  Many in a row, in order.
    for (int i = 0; i < 300; i++) {
        char text[16];
        snprintf (text, sizeof text, "%d", i);
        CHECK (zmtp_send (c, text, strlen (text)) == 0);
    }
    int in_order = 0;
    poller = zpoller_new (b.router, NULL);
    for (int tries = 0; tries < 10000 && in_order < 300; tries++) {
        free (zmtp_recv (c, 0, -1, &n));
        if (!zpoller_wait (poller, 2))
            continue;
        char *text = s_router_recv (b.router, &routing, user);
        if (text && atoi (text) == in_order)
            in_order++;
        free (text);
        zframe_destroy (&routing);
    }
    zpoller_destroy (&poller);
    CHECK (in_order == 300);

    //  The server goes and comes back on the same port: the next message takes a new
    //  connection (a new handshake, new nonces).
    zsock_destroy (&b.router);
    CHECK (zmtp_recv (c, 200, -1, &n) == NULL);
    b.router = s_router (&b, b.port);
    CHECK (s_round_trip (&b, c, 10));
    s_test_frames_and_restart (&b, c);
    s_test_no_wait (c);

    //  A wake descriptor ends the wait at once.
    int fds[2];
    CHECK (pipe (fds) == 0);
    CHECK (write (fds[1], "x", 1) == 1);
    int64_t t0 = zclock_mono ();
    CHECK (zmtp_recv (c, 2000, fds[0], &n) == NULL && zclock_mono () - t0 < 1000);
    close (fds[0]);
    close (fds[1]);
    CHECK (zmtp_poll_item (c, &pfd) == -1 && pfd.fd >= 0 && (pfd.events & POLLIN));
    zmtp_destroy (&c);
    CHECK (c == NULL);

    //  A key zauth does not trust never gets through, nor a client that has the wrong
    //  server key (it would be talking to someone else).
    zmtp_t *stranger = s_client (&b, b.stranger, b.server, NULL);
    zmtp_t *misled = s_client (&b, b.client, b.stranger, NULL);
    CHECK (zmtp_send (stranger, "let me in", 9) == 0 && zmtp_send (misled, "hello?", 6) == 0);
    zsock_set_rcvtimeo (b.router, 0);
    bool silent = true;
    for (int i = 0; i < 300 && (i < 30 || !zmtp_why (stranger) || !zmtp_why (misled)); i++) {
        uint8_t *a = zmtp_recv (stranger, 10, -1, &n), *m = zmtp_recv (misled, 10, -1, &n);
        zmsg_t *got = zmsg_recv (b.router);
        silent = silent && !a && !m && !got;
        free (a);
        free (m);
        zmsg_destroy (&got);
    }
    CHECK (silent);
    CHECK (zmtp_why (stranger) != NULL && zmtp_why (misled) != NULL);
    CHECK (zmtp_refused (stranger) && !zmtp_refused (misled));     //  libzmq's ZAP says ERROR
    zmtp_destroy (&stranger);
    zmtp_destroy (&misled);

    s_test_hostile (&b);
    s_test_endpoints (&b);
    zsock_destroy (&b.router);
    zactor_destroy (&b.auth);
    zcert_destroy (&b.server);
    zcert_destroy (&b.client);
    zcert_destroy (&b.stranger);
    CHECK (check_remove_dir (b.dir) == 0);
    return 0;
}
