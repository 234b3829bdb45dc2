/*  worker/wire_test.c: self-test of the front/back messages (wire.h): round trips, and
    every kind of malformed message the back must refuse instead of acting on. */
#include "worker/wire.h"
#include "common/check.h"
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static wire_msg_t
s_run (const char *code, size_t len)
{
    return (wire_msg_t) { .type = WIRE_RUN, .id = 42,
                          .limits = { 10000, 1 << 20, 512, 128, 64, 1500, 256, 1 << 30 },
                          .owner = "alice", .session = "s1", .lang = "python",
                          .code = code, .code_len = len };
}

static void
s_round_trips (void)
{
    buf_t b = { NULL, 0, 0 };
    wire_msg_t in = s_run ("x\0y", 3), out;
    const char *why = NULL;
    CHECK (wire_encode (&in, &b) == 0);
    CHECK (wire_decode (b.data, b.len, &out, &why) == 0);
    CHECK (out.type == WIRE_RUN && out.id == 42 && out.limits.output_bytes == 1 << 20
           && out.limits.cpu_milli == 1500 && out.limits.tmp_mb == 64);
    CHECK (strcmp (out.owner, "alice") == 0 && strcmp (out.session, "s1") == 0
           && strcmp (out.lang, "python") == 0);
    CHECK (out.code_len == 3 && memcmp (out.code, "x\0y", 4) == 0);
    CHECK (out.grant_len == 0 && out.limits.egress_connections == 256);
    //  A grant and the egress caps travel with the run; a malformed grant does not.
    b.len = 0;
    in.grant = "allow files.example.com:443\nmethod GET\n";
    in.grant_len = strlen (in.grant);
    in.limits.egress_bytes = 12345;
    CHECK (wire_encode (&in, &b) == 0 && wire_decode (b.data, b.len, &out, &why) == 0
           && out.grant_len == in.grant_len && strcmp (out.grant, in.grant) == 0
           && out.limits.egress_bytes == 12345);
    b.data [b.len - 3] = ' ';                   //  "GE T": not a method
    CHECK (wire_decode (b.data, b.len, &out, &why) == -1 && strcmp (why, "a malformed network grant") == 0);
    in.grant = "allow a b:1\n";
    in.grant_len = strlen (in.grant);
    size_t had = b.len;
    CHECK (wire_encode (&in, &b) == -1 && b.len == had);
    in.grant = NULL;
    in.grant_len = 0;
    in.limits.egress_bytes = 1 << 30;
    b.len = 0;
    CHECK (wire_encode (&in, &b) == 0);
    //  Every prefix of it is refused, and so is one byte more.
    int refused = 0;
    for (size_t n = 0; n < b.len; n++)
        refused += wire_decode (b.data, n, &out, &why) == -1;
    CHECK (refused == (int) b.len);
    b.data [b.len] = 0;
    CHECK (wire_decode (b.data, b.len + 1, &out, &why) == -1);
    b.len = 0;
    wire_msg_t close = { .type = WIRE_CLOSE, .owner = "a", .session = "s", .lang = "shell" };
    wire_msg_t state = { .type = WIRE_STATE };
    wire_msg_t result = { .type = WIRE_RESULT, .frame = "{\"op\":\"result\"}", .frame_len = 15 };
    CHECK (wire_encode (&close, &b) == 0 && wire_decode (b.data, b.len, &out, &why) == 0
           && out.type == WIRE_CLOSE && strcmp (out.lang, "shell") == 0 && !out.code);
    b.len = 0;
    wire_msg_t interrupt = { .type = WIRE_INTERRUPT, .id = 9, .owner = "a", .session = "s",
                             .lang = "python" };
    CHECK (wire_encode (&interrupt, &b) == 0 && wire_decode (b.data, b.len, &out, &why) == 0
           && out.type == WIRE_INTERRUPT && out.id == 9 && strcmp (out.session, "s") == 0);
    for (size_t n = 0; n < b.len; n++)
        CHECK (wire_decode (b.data, n, &out, &why) == -1);
    b.len = 0;
    in.limits.stream = true;
    CHECK (wire_encode (&in, &b) == 0 && wire_decode (b.data, b.len, &out, &why) == 0
           && out.limits.stream);
    b.len = 0;
    CHECK (wire_encode (&state, &b) == 0 && b.len == WIRE_HEADER
           && wire_decode (b.data, b.len, &out, &why) == 0 && out.type == WIRE_STATE);
    b.len = 0;
    CHECK (wire_encode (&result, &b) == 0 && wire_decode (b.data, b.len, &out, &why) == 0
           && out.frame_len == 15 && memcmp (out.frame, "{\"op\":\"result\"}", 15) == 0);
    //  What cannot be encoded is not: a missing name, a name too long, an unknown type.
    char long_name [WIRE_MAX_NAME + 2];
    memset (long_name, 'n', sizeof long_name - 1);
    long_name [sizeof long_name - 1] = 0;
    size_t before = b.len;
    wire_msg_t bad = s_run ("", 0);
    bad.owner = NULL;
    CHECK (wire_encode (&bad, &b) == -1);
    bad.owner = long_name;
    CHECK (wire_encode (&bad, &b) == -1);
    bad = (wire_msg_t) { .type = (wire_type_t) 9 };
    CHECK (wire_encode (&bad, &b) == -1 && b.len == before);
    buf_free (&b);
}

//  Hand-made bodies a hostile front could send.
static void
s_malformed (void)
{
    buf_t b = { NULL, 0, 0 };
    wire_msg_t m = s_run ("1", 1), out;
    const char *why = NULL;
    CHECK (wire_encode (&m, &b) == 0);
    size_t owner_at = WIRE_HEADER + 80;     //  the owner's length, after id, limits and flags
    char *copy = malloc (b.len + 16);
    CHECK (copy != NULL);
    if (!copy)
        return;
    //  Unknown type, reserved bytes set, body length off by one either way.
    memcpy (copy, b.data, b.len);
    copy [0] = 7;
    CHECK (wire_decode (copy, b.len, &out, &why) == -1 && strcmp (why, "unknown type") == 0);
    memcpy (copy, b.data, b.len);
    copy [2] = 1;
    CHECK (wire_decode (copy, b.len, &out, &why) == -1);
    memcpy (copy, b.data, b.len);
    uint32_t body = (uint32_t) (b.len - WIRE_HEADER + 1);
    memcpy (copy + 4, &body, 4);
    CHECK (wire_decode (copy, b.len, &out, &why) == -1);
    //  A text's length past the end, a huge one, a missing NUL, a NUL inside a name.
    uint32_t huge = 0xffffffffu;
    memcpy (copy, b.data, b.len);
    memcpy (copy + owner_at, &huge, 4);
    CHECK (wire_decode (copy, b.len, &out, &why) == -1);
    uint32_t six = 6;
    memcpy (copy, b.data, b.len);
    memcpy (copy + owner_at, &six, 4);      //  "alice" + its NUL + the next length's byte
    CHECK (wire_decode (copy, b.len, &out, &why) == -1);
    memcpy (copy, b.data, b.len);
    copy [owner_at + 4 + 5] = 'x';          //  alice's NUL
    CHECK (wire_decode (copy, b.len, &out, &why) == -1);
    memcpy (copy, b.data, b.len);
    copy [owner_at + 4 + 2] = 0;            //  "al\0ce"
    CHECK (wire_decode (copy, b.len, &out, &why) == -1 && out.owner == NULL);
    //  A negative output cap cannot become a huge size_t.
    memcpy (copy, b.data, b.len);
    int64_t minus = -1;
    memcpy (copy + WIRE_HEADER + 16, &minus, 8);
    CHECK (wire_decode (copy, b.len, &out, &why) == -1);
    //  Flags other than "stream" are refused.
    memcpy (copy, b.data, b.len);
    int64_t flags = 2;
    memcpy (copy + WIRE_HEADER + 72, &flags, 8);
    CHECK (wire_decode (copy, b.len, &out, &why) == -1);
    free (copy);
    buf_free (&b);
}

static void
s_reassembly (void)
{
    wire_rx_t rx = { { NULL, 0, 0 }, 0 };
    const char *why = NULL;
    char d [WIRE_HEADER + WIRE_CHUNK + 1];
    memset (d, 0, sizeof d);
    //  Empty, short, unknown type, oversize body, oversize datagram.
    CHECK (wire_rx_feed (&rx, d, 0, &why) == -1);
    d [0] = WIRE_RESULT;
    CHECK (wire_rx_feed (&rx, d, 5, &why) == -1);
    d [0] = 99;
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER, &why) == -1);
    d [0] = WIRE_RESULT;
    uint32_t body = WIRE_MAX + 1;
    memcpy (d + 4, &body, 4);
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER, &why) == -1);
    CHECK (wire_rx_feed (&rx, d, sizeof d, &why) == -1);
    //  A datagram longer or shorter than the body it announces.
    body = 4;
    memcpy (d + 4, &body, 4);
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER + 5, &why) == -1);
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER + 3, &why) == -1);
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER + 4, &why) == 1 && rx.buf.len == WIRE_HEADER + 4);
    //  Two datagrams: a continuation too long, too short, then right.
    body = WIRE_CHUNK + 3;
    memcpy (d + 4, &body, 4);
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER + 3, &why) == -1);
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER + WIRE_CHUNK, &why) == 0);
    CHECK (wire_rx_feed (&rx, d, 4, &why) == -1);
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER + WIRE_CHUNK, &why) == 0);
    CHECK (wire_rx_feed (&rx, d, 2, &why) == -1);
    CHECK (wire_rx_feed (&rx, d, WIRE_HEADER + WIRE_CHUNK, &why) == 0);
    CHECK (wire_rx_feed (&rx, d, 3, &why) == 1 && rx.buf.len == WIRE_HEADER + WIRE_CHUNK + 3);
    wire_rx_free (&rx);
}

//  Through a real socketpair: messages bigger than a datagram, and the end of the peer.
static void
s_socketpair (void)
{
    int sv [2];
    CHECK (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    wire_t *a = wire_new (sv [0]), *b = wire_new (sv [1]);
    CHECK (a && b);
    if (!a || !b)
        return;
    size_t big = 3 * WIRE_CHUNK + 17;
    char *code = malloc (big);
    CHECK (code != NULL);
    if (!code)
        return;
    for (size_t i = 0; i < big; i++)
        code [i] = (char) (i * 7);
    wire_msg_t run = s_run (code, big), out;
    wire_msg_t small = { .type = WIRE_STATE };
    CHECK (wire_send (a, &run) == 0 && wire_send (a, &small) == 0);
    const char *why = NULL;
    wire_status_t got = WIRE_NONE;
    for (int i = 0; i < 100 && got == WIRE_NONE; i++) {
        wire_flush (a);
        got = wire_recv (b, &out, &why);
    }
    CHECK (got == WIRE_MESSAGE && out.type == WIRE_RUN && out.code_len == big
           && memcmp (out.code, code, big) == 0);
    for (int i = 0; i < 100 && (got = wire_recv (b, &out, &why)) == WIRE_NONE; i++)
        wire_flush (a);
    CHECK (got == WIRE_MESSAGE && out.type == WIRE_STATE && !wire_pending (a));
    CHECK (wire_recv (b, &out, &why) == WIRE_NONE);
    //  A raw datagram bigger than a chunk is refused, not cut and taken.
    CHECK (send (sv [0], code, WIRE_HEADER + WIRE_CHUNK + 1, 0) > 0);
    CHECK (wire_recv (b, &out, &why) == WIRE_BAD);
    wire_destroy (&a);
    CHECK (a == NULL && wire_recv (b, &out, &why) == WIRE_EOF);
    wire_destroy (&b);
    free (code);
}

//  Random bytes never crash the decoder and never yield a pointer outside them.
static void
s_random (void)
{
    char body [96];
    wire_msg_t out;
    const char *why;
    srand (12);
    int decoded = 0, outside = 0;
    for (int round = 0; round < 50000; round++) {
        size_t len = (size_t) (rand () % (int) sizeof body);
        for (size_t i = 0; i < len; i++)
            body [i] = (char) (rand () % 3 ? rand () % 4 : rand ());
        if (len >= WIRE_HEADER) {
            body [0] = (char) (rand () % 2 ? WIRE_CLOSE : rand () % 20);
            uint32_t n = (uint32_t) (len - WIRE_HEADER);
            if (rand () % 4)
                memcpy (body + 4, &n, 4);
        }
        if (wire_decode (body, len, &out, &why) == 0) {
            decoded++;
            const char *p [] = { out.owner, out.session, out.lang, out.code, out.frame };
            for (int i = 0; i < 5; i++)
                outside += p [i] && (p [i] < body || p [i] > body + len);
        }
    }
    CHECK (decoded > 0 && outside == 0);
}

int
wire_test (void)
{
    s_round_trips ();
    s_malformed ();
    s_reassembly ();
    s_socketpair ();
    s_random ();
    return 0;
}
