/*  common/zmtp.c: the client end of one ZeroMQ connection to the broker, DEALER to its
    ROUTER over CURVE, spoken on a plain non-blocking socket with libsodium: ZMTP 3.0 (RFC
    23) framing and the CurveZMQ handshake and message boxes (RFC 26). The broker keeps
    libzmq. The CLI, the approver's calls and the worker's front use this instead: loading
    libzmq and the 14 libraries it links, its context and its I/O thread cost a command of
    the CLI more than the rest of its work, and cost the worker two thread hand-offs per
    message each way (see the README, Performance). Byte formats are in zmtp_wire.c.

    States of the connection, one at a time:
      DOWN        no socket; the next one is tried RETRY_MS after the last was lost (libzmq's
                  default reconnect interval)
      CONNECTING  a non-blocking connect under way
      WELCOME     our greeting and HELLO are sent; reading the server's greeting, then WELCOME
      READY       INITIATE is sent; waiting for READY (the broker's ZAP check happens here)
      OPEN        MESSAGEs both ways
    Any error, end of stream, ERROR command, box that does not open, nonce that does not
    increase or byte out of place goes to DOWN. A message of more than one frame is dropped
    whole: the broker protocol has one frame a message.
    Messages wait in `outbox` in order and are sealed only while OPEN: those sent before or
    during a reconnect go out on the next connection, and one being written when a
    connection is lost is lost with it, as with libzmq.
    Each connection has its own ephemeral key pair. The server proves it holds the broker's
    secret key: WELCOME opens only with it. */
#define _GNU_SOURCE
#include "common/zmtp.h"
#include "common/zmtp_wire.h"
#include "common/buf.h"
#include "common/proto.h"
#include "common/util.h"
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define RETRY_MS 100
#define READ_MAX (1 << 20)
#define MAX_FRAME (PROTO_MAX_WIRE + 64)     //  a message's box, nonce and name
#define KEY crypto_box_PUBLICKEYBYTES
#define MAC crypto_box_MACBYTES

typedef enum { DOWN, CONNECTING, WELCOME, READY, OPEN } state_t;

typedef struct msg_s {
    struct msg_s *next;
    size_t size;
    uint8_t data[];
} msg_t;

typedef struct {
    msg_t *head, *tail;
} queue_t;

struct _zmtp_t {
    char host[256], port[16];   //  tcp
    char path[sizeof ((struct sockaddr_un *) 0)->sun_path];    //  ipc, when *path
    uint8_t public_key[KEY], secret_key[KEY], server_key[KEY];
    state_t state;
    int fd;
    int64_t retry_at;
    bool greeted;               //  the server's greeting is read
    buf_t in, out;
    uint8_t cn_public[KEY], cn_secret[KEY];             //  this connection's pair
    uint8_t shared[crypto_box_BEFORENMBYTES];           //  C' with S', once WELCOME is read
    uint64_t nonce;             //  our next short nonce
    uint64_t peer_nonce;        //  the server's last
    queue_t outbox, inbox;
    char why[128];
    uint64_t ended;             //  connections (or attempts) that ended; why says how the last did
    bool refused;               //  the last ended with the broker's ERROR (its ZAP check said no)
    bool skipping;              //  dropping the rest of a message of several frames
    bool break_on_open;         //  zmtp_recv returns once a handshake completes
    uint64_t opened;            //  handshakes completed
};

static void
s_push (queue_t *q, msg_t *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
}

static msg_t *
s_pop (queue_t *q)
{
    msg_t *m = q->head;
    if (m && !(q->head = m->next))
        q->tail = NULL;
    return m;
}

static void
s_queue_clear (queue_t *q)
{
    msg_t *m;
    while ((m = s_pop (q)))
        free (m);
}

static msg_t *
s_msg (const void *data, size_t size)
{
    msg_t *m = (msg_t *) malloc (sizeof (msg_t) + size + 1);
    if (m) {
        m->size = size;
        memcpy (m->data, data, size);
        m->data[size] = 0;
    }
    return m;
}

static void
s_nonce (uint8_t out[crypto_box_NONCEBYTES], const char *prefix, const uint8_t *rest)
{
    size_t n = strlen (prefix);
    memcpy (out, prefix, n);
    memcpy (out + n, rest, crypto_box_NONCEBYTES - n);
}

//  Ends the connection; the next is tried RETRY_MS later.
static int
s_drop (zmtp_t *self, const char *why)
{
    if (self->fd >= 0)
        close (self->fd);
    self->fd = -1;
    self->state = DOWN;
    self->retry_at = clock_mono_ms () + RETRY_MS;
    self->in.len = self->out.len = 0;
    sodium_memzero (self->cn_secret, sizeof self->cn_secret);
    sodium_memzero (self->shared, sizeof self->shared);
    snprintf (self->why, sizeof self->why, "%s", why);
    self->refused = false;
    self->ended++;
    return -1;
}

//  Appends one frame (header and body) to what is to be written.
static int
s_frame (zmtp_t *self, bool command, const uint8_t *body, size_t size)
{
    uint8_t header[ZMTP_HEADER_MAX];
    size_t n = zmtp_frame_header (header, false, command, size);
    if (buf_append (&self->out, header, n) || buf_append (&self->out, body, size))
        return s_drop (self, "out of memory");
    return 0;
}

static int
s_connect (zmtp_t *self)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    //  IPv4 unless the address is IPv6, as libzmq does (a name that resolves to both would
    //  otherwise go to ::1 first, where a broker on 127.0.0.1 does not listen).
    struct addrinfo hints = { .ai_family = strchr (self->host, ':') ? AF_INET6 : AF_INET,
                              .ai_socktype = SOCK_STREAM }, *ai = NULL;
    const struct sockaddr *addr = (const struct sockaddr *) &un;
    socklen_t len = sizeof un;
    if (*self->path)
        memcpy (un.sun_path, self->path, sizeof un.sun_path);
    else if (getaddrinfo (self->host, self->port, &hints, &ai) != 0 || !ai)
        return s_drop (self, "cannot resolve the broker's host");
    else {
        addr = ai->ai_addr;
        len = ai->ai_addrlen;
    }
    self->fd = socket (addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (self->fd >= 0 && !*self->path)
        setsockopt (self->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int err = self->fd >= 0 && connect (self->fd, addr, len) == 0 ? 0 : errno;
    if (ai)
        freeaddrinfo (ai);
    if (err && err != EINPROGRESS)
        return s_drop (self, strerror (err));
    self->state = CONNECTING;
    return 0;
}

//  The socket is connected: greeting and HELLO (RFC 26), with a new ephemeral pair.
static int
s_hello (zmtp_t *self)
{
    if (crypto_box_keypair (self->cn_public, self->cn_secret) != 0)
        return s_drop (self, "cannot make a key pair");
    self->nonce = 1;
    self->peer_nonce = 0;
    self->greeted = false;
    self->skipping = false;
    uint8_t greeting[ZMTP_GREETING], hello[200] = "\x05HELLO\x01\x00", nonce[crypto_box_NONCEBYTES];
    static const uint8_t zeros[64];
    zmtp_greeting (greeting);
    memcpy (hello + 80, self->cn_public, KEY);          //  after 72 bytes of padding
    zmtp_put_be (hello + 112, self->nonce++, 8);
    s_nonce (nonce, "CurveZMQHELLO---", hello + 112);
    if (crypto_box_easy (hello + 120, zeros, sizeof zeros, nonce, self->server_key, self->cn_secret))
        return s_drop (self, "cannot seal HELLO: a weak broker key");
    if (buf_append (&self->out, greeting, sizeof greeting))
        return s_drop (self, "out of memory");
    self->state = WELCOME;
    return s_frame (self, true, hello, sizeof hello);
}

//  WELCOME: the server's ephemeral key and cookie, boxed to our ephemeral key by the
//  broker's long-term key. Then INITIATE: our long-term key, the vouch that binds it to
//  our ephemeral key, and our metadata.
static int
s_welcome (zmtp_t *self, const uint8_t *data, size_t size)
{
    uint8_t nonce[crypto_box_NONCEBYTES], plain[KEY + 96];
    if (size != 16 + sizeof plain + MAC)
        return s_drop (self, "a malformed WELCOME");
    s_nonce (nonce, "WELCOME-", data);
    if (crypto_box_open_easy (plain, data + 16, sizeof plain + MAC, nonce, self->server_key,
                              self->cn_secret) != 0)
        return s_drop (self, "WELCOME does not open with the broker's key: not the broker");
    if (crypto_box_beforenm (self->shared, plain, self->cn_secret) != 0)
        return s_drop (self, "a weak server key");
    //  The vouch: Box [C', S] (C -> S'), with a random long nonce.
    uint8_t vouch_plain[2 * KEY], init[KEY + 16 + 2 * KEY + MAC + 64];
    memcpy (vouch_plain, self->cn_public, KEY);
    memcpy (vouch_plain + KEY, self->server_key, KEY);
    memcpy (init, self->public_key, KEY);
    randombytes_buf (init + KEY, 16);
    s_nonce (nonce, "VOUCH---", init + KEY);
    if (crypto_box_easy (init + KEY + 16, vouch_plain, sizeof vouch_plain, nonce, plain,
                         self->secret_key) != 0)
        return s_drop (self, "cannot make the vouch");
    size_t init_len = KEY + 16 + 2 * KEY + MAC;
    init_len += zmtp_property_put (init + init_len, "Socket-Type", "DEALER");
    uint8_t body[9 + 96 + 8 + sizeof init + MAC];
    memcpy (body, "\x08INITIATE", 9);
    memcpy (body + 9, plain + KEY, 96);                 //  the cookie, as it came
    zmtp_put_be (body + 105, self->nonce++, 8);
    s_nonce (nonce, "CurveZMQINITIATE", body + 105);
    int rc = crypto_box_easy_afternm (body + 113, init, init_len, nonce, self->shared);
    sodium_memzero (plain, sizeof plain);
    if (rc != 0)
        return s_drop (self, "cannot seal INITIATE");
    self->state = READY;
    return s_frame (self, true, body, 113 + init_len + MAC);
}

//  Opens a box from the server whose short nonce is data[0..8): the plaintext (caller
//  frees), or NULL if the nonce does not increase or the box does not open.
static uint8_t *
s_open (zmtp_t *self, const char *prefix, const uint8_t *data, size_t size, size_t *plain_size)
{
    if (size < 8 + MAC || zmtp_get_be (data, 8) <= self->peer_nonce)
        return NULL;
    uint8_t nonce[crypto_box_NONCEBYTES];
    s_nonce (nonce, prefix, data);
    uint8_t *plain = (uint8_t *) malloc (size - 8 - MAC + 1);
    if (plain && crypto_box_open_easy_afternm (plain, data + 8, size - 8, nonce, self->shared) != 0) {
        free (plain);
        return NULL;
    }
    if (plain) {
        self->peer_nonce = zmtp_get_be (data, 8);
        *plain_size = size - 8 - MAC;
    }
    return plain;
}

static int
s_ready (zmtp_t *self, const uint8_t *data, size_t size)
{
    size_t n;
    uint8_t *meta = s_open (self, "CurveZMQREADY---", data, size, &n);
    const uint8_t *type;
    size_t type_len;
    bool router = meta && zmtp_property (meta, n, "Socket-Type", &type, &type_len) == 0
                  && type_len == 6 && memcmp (type, "ROUTER", 6) == 0;
    bool opened = meta != NULL;
    free (meta);
    if (!router)
        return s_drop (self, opened ? "the server is not a ROUTER" : "READY does not open");
    self->state = OPEN;
    self->opened++;
    return 0;
}

//  Seals one message (flags, then the payload) into a MESSAGE frame.
static int
s_seal (zmtp_t *self, uint8_t flags, const uint8_t *data, size_t size)
{
    uint8_t *body = (uint8_t *) malloc (16 + MAC + 1 + size), nonce[crypto_box_NONCEBYTES];
    uint8_t *plain = (uint8_t *) malloc (1 + size);
    if (!body || !plain) {
        free (body);
        free (plain);
        return s_drop (self, "out of memory");
    }
    memcpy (body, "\x07MESSAGE", 8);
    zmtp_put_be (body + 8, self->nonce++, 8);
    s_nonce (nonce, "CurveZMQMESSAGEC", body + 8);
    plain[0] = flags;
    memcpy (plain + 1, data, size);
    int rc = crypto_box_easy_afternm (body + 16, plain, 1 + size, nonce, self->shared) != 0
           ? s_drop (self, "cannot seal a message") : s_frame (self, false, body, 16 + MAC + 1 + size);
    free (body);
    free (plain);
    return rc;
}

//  A MESSAGE from the server: a frame for the inbox, or a command (a PING gets its PONG).
static int
s_message (zmtp_t *self, const uint8_t *data, size_t size)
{
    size_t n;
    uint8_t *plain = s_open (self, "CurveZMQMESSAGES", data, size, &n);
    if (!plain || n < 1) {
        free (plain);
        return s_drop (self, "a MESSAGE that does not open");
    }
    const uint8_t *ping;
    size_t ping_len;
    int rc = 0;
    if (plain[0] & 0x02) {
        if (zmtp_named (plain + 1, n - 1, "PING", &ping, &ping_len) && ping_len >= 2) {
            uint8_t pong[5 + 16] = "\x04PONG";
            size_t context = ping_len - 2 > 16 ? 16 : ping_len - 2;
            memcpy (pong + 5, ping + 2, context);
            rc = s_seal (self, 0x02, pong, 5 + context);
        }
    }
    else {
        bool more = plain[0] & 0x01, whole = !more && !self->skipping;
        self->skipping = more;
        msg_t *m = whole ? s_msg (plain + 1, n - 1) : NULL;
        if (m)
            s_push (&self->inbox, m);
        else
        if (whole)
            rc = s_drop (self, "out of memory");
    }
    free (plain);
    return rc;
}

//  One frame, as the state expects it.
static int
s_handle (zmtp_t *self, const zmtp_frame_t *f)
{
    const uint8_t *data;
    size_t size;
    if (zmtp_named (f->body, f->size, "ERROR", &data, &size)) {
        s_drop (self, "the broker refused our key");
        self->refused = true;
        return -1;
    }
    if (self->state == WELCOME && f->command && zmtp_named (f->body, f->size, "WELCOME", &data, &size))
        return s_welcome (self, data, size);
    if (self->state == READY && f->command && zmtp_named (f->body, f->size, "READY", &data, &size))
        return s_ready (self, data, size);
    if (self->state == OPEN && zmtp_named (f->body, f->size, "MESSAGE", &data, &size))
        return s_message (self, data, size);
    return s_drop (self, "an unexpected command from the broker");
}

//  Reads what the socket has, up to READ_MAX a turn (a server that never stops writing
//  neither holds the caller nor fills its memory), and handles every whole frame in it.
static int
s_read (zmtp_t *self)
{
    for (int i = 0; i < READ_MAX / 65536; i++) {
        if (buf_reserve (&self->in, 65536))
            return s_drop (self, "out of memory");
        ssize_t n = read (self->fd, self->in.data + self->in.len, 65536);
        if (n == 0)
            return s_drop (self, self->state == OPEN ? "the broker closed the connection"
                           : "the broker closed the connection in the handshake (does our "
                             "copy of its public key match?)");
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return s_drop (self, strerror (errno));
        self->in.len += (size_t) n;
    }
    size_t at = 0;
    if (!self->greeted && self->in.len >= ZMTP_GREETING) {
        if (zmtp_greeting_check ((const uint8_t *) self->in.data) != 0)
            return s_drop (self, "not a ZMTP 3 server speaking CURVE");
        self->greeted = true;
        at = ZMTP_GREETING;
    }
    while (self->greeted && self->state != DOWN) {
        zmtp_frame_t f;
        long took = zmtp_frame_decode ((const uint8_t *) self->in.data + at, self->in.len - at,
                                       MAX_FRAME, &f);
        if (took < 0)
            return s_drop (self, "a malformed frame from the broker");
        if (took == 0)
            break;
        at += (size_t) took;
        if (s_handle (self, &f) != 0)
            return -1;
    }
    buf_consume (&self->in, at);
    return 0;
}

static int
s_flush (zmtp_t *self)
{
    while (self->out.len) {
        ssize_t n = send (self->fd, self->out.data, self->out.len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return s_drop (self, strerror (errno));
        buf_consume (&self->out, (size_t) n);
    }
    return 0;
}

//  Moves the connection along after poll said revents about its socket.
static void
s_step (zmtp_t *self, short revents)
{
    if (self->state == DOWN) {
        if (clock_mono_ms () >= self->retry_at)
            s_connect (self);
        return;
    }
    if (self->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return;
        if (getsockopt (self->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            s_drop (self, strerror (err ? err : errno));
            return;
        }
        if (s_hello (self) != 0)
            return;
    }
    else if ((revents & (POLLIN | POLLHUP | POLLERR)) && s_read (self) != 0)
        return;
    msg_t *m;
    while (self->state == OPEN && self->out.len < 65536 && (m = s_pop (&self->outbox))) {
        int rc = s_seal (self, 0, m->data, m->size);
        free (m);
        if (rc != 0)
            return;
    }
    s_flush (self);
}

int
zmtp_poll_item (zmtp_t *self, struct pollfd *pfd)
{
    pfd->fd = self->fd;
    pfd->revents = 0;
    pfd->events = self->state == CONNECTING ? POLLOUT
                : (short) (POLLIN | (self->out.len || (self->state == OPEN && self->outbox.head) ? POLLOUT : 0));
    if (self->inbox.head)
        return 0;
    if (self->state == DOWN) {
        int64_t wait = self->retry_at - clock_mono_ms ();
        return wait > 0 ? (int) wait : 0;
    }
    return -1;
}

void
zmtp_handle (zmtp_t *self, short revents)
{
    s_step (self, revents);
}

uint8_t *
zmtp_take (zmtp_t *self, size_t *size)
{
    msg_t *m = s_pop (&self->inbox);
    if (!m)
        return NULL;
    *size = m->size;
    memmove (m, m->data, m->size + 1);     //  the caller frees the bytes alone
    return (uint8_t *) m;
}

uint8_t *
zmtp_recv (zmtp_t *self, int timeout_ms, int wake_fd, size_t *size)
{
    int64_t deadline = timeout_ms < 0 ? -1 : clock_mono_ms () + timeout_ms;
    uint64_t opened = self->opened;
    for (;;) {
        uint8_t *data = zmtp_take (self, size);
        if (data)
            return data;
        struct pollfd p[2];
        int wait = zmtp_poll_item (self, &p[0]);
        if (deadline >= 0) {
            //  Past the deadline already (the clock ticked since it was set): do not wait.
            int64_t left = deadline - clock_mono_ms ();
            if (left < 0)
                left = 0;
            if (wait < 0 || left < wait)
                wait = (int) left;
        }
        p[1] = (struct pollfd) { .fd = wake_fd, .events = POLLIN };
        int rc = poll (p, wake_fd >= 0 ? 2 : 1, wait);
        if (rc < 0 || (wake_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP))))
            return NULL;                //  a signal, or told to stop
        s_step (self, p[0].revents);
        if (!self->inbox.head && self->break_on_open && self->opened != opened)
            return NULL;
        if (!self->inbox.head && deadline >= 0 && clock_mono_ms () >= deadline)
            return NULL;
    }
}

int
zmtp_send (zmtp_t *self, const void *data, size_t size)
{
    msg_t *m = s_msg (data, size);
    if (!m)
        return -1;
    s_push (&self->outbox, m);
    return 0;
}

void
zmtp_break_on_open (zmtp_t *self, bool on)
{
    self->break_on_open = on;
}

void
zmtp_restart (zmtp_t *self)
{
    s_queue_clear (&self->outbox);
    s_drop (self, "restarted by its owner");
    s_connect (self);
}

uint64_t
zmtp_opened (zmtp_t *self)
{
    return self->opened;
}

const char *
zmtp_why (zmtp_t *self)
{
    return self->ended ? self->why : NULL;
}

uint64_t
zmtp_ended (zmtp_t *self)
{
    return self->ended;
}

bool
zmtp_refused (zmtp_t *self)
{
    return self->refused;
}

//  Splits endpoint into where to connect: 0, or -1 if it is not tcp://HOST:PORT or ipc://PATH.
static int
s_endpoint (zmtp_t *self, const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        size_t n = strlen (endpoint + 6);
        if (n == 0 || n >= sizeof self->path)
            return -1;
        memcpy (self->path, endpoint + 6, n + 1);
        return 0;
    }
    const char *host = endpoint + 6, *colon = strrchr (endpoint, ':');
    if (strncmp (endpoint, "tcp://", 6) != 0 || !colon || colon < host)
        return -1;
    size_t host_len = (size_t) (colon - host), port_len = strlen (colon + 1);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']')
        host++, host_len -= 2;
    if (host_len == 0 || host_len >= sizeof self->host || port_len == 0
    ||  port_len >= sizeof self->port || strspn (colon + 1, "0123456789") != port_len)
        return -1;
    memcpy (self->host, host, host_len);
    memcpy (self->port, colon + 1, port_len + 1);
    return 0;
}

zmtp_t *
zmtp_new (const char *endpoint, const zmtp_keys_t *keys)
{
    zmtp_t *self = (zmtp_t *) calloc (1, sizeof (zmtp_t));
    if (!self || !endpoint || s_endpoint (self, endpoint) != 0 || sodium_init () < 0) {
        free (self);
        return NULL;
    }
    memcpy (self->public_key, keys->public_key, KEY);
    memcpy (self->secret_key, keys->secret_key, KEY);
    memcpy (self->server_key, keys->server_key, KEY);
    self->fd = -1;
    s_connect (self);               //  under way while the caller prepares its request
    return self;
}

void
zmtp_destroy (zmtp_t **self_p)
{
    zmtp_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close (self->fd);
    s_queue_clear (&self->outbox);
    s_queue_clear (&self->inbox);
    buf_free (&self->in);
    buf_free (&self->out);
    sodium_memzero (self, sizeof *self);
    free (self);
    *self_p = NULL;
}
