/*  worker/wire.c: the typed messages between the worker's front and back (see wire.h). */
#include "worker/wire.h"
#include "worker/grant.h"
#include "common/util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LIMITS 8
#define FLAG_STREAM 1

static bool
s_type_known (unsigned type)
{
    return type == WIRE_RUN || type == WIRE_CLOSE || type == WIRE_STATE || type == WIRE_INTERRUPT
        || type == WIRE_STOP
        || type == WIRE_READY || type == WIRE_RESULT || type == WIRE_CLOSED || type == WIRE_OUTPUT;
}

static bool
s_has_frame (wire_type_t type)
{
    return type == WIRE_READY || type == WIRE_RESULT || type == WIRE_CLOSED || type == WIRE_OUTPUT;
}

//  --------------------------------------------------------------------------
//  Encoding.

static int
s_put (buf_t *out, const void *data, size_t size)
{
    return buf_append (out, data, size);
}

//  A u32 length, the bytes, a NUL.
static int
s_put_text (buf_t *out, const char *text, size_t len)
{
    uint32_t n = (uint32_t) len;
    return s_put (out, &n, 4) || s_put (out, text, len) || s_put (out, "", 1) ? -1 : 0;
}

static bool
s_name_ok (const char *name)
{
    return name && strlen (name) <= WIRE_MAX_NAME;
}

int
wire_encode (const wire_msg_t *msg, buf_t *out)
{
    bool run = msg->type == WIRE_RUN, interrupt = msg->type == WIRE_INTERRUPT;
    bool names = run || interrupt || msg->type == WIRE_CLOSE;
    if (!s_type_known (msg->type)
    ||  (names && !(s_name_ok (msg->owner) && s_name_ok (msg->session) && s_name_ok (msg->lang)))
    ||  (run && (!msg->code || msg->code_len > WIRE_MAX_CODE))
    ||  (run && msg->grant_len && !grant_valid (msg->grant, msg->grant_len))
    ||  (s_has_frame (msg->type) && (!msg->frame || msg->frame_len > WIRE_MAX)))
        return -1;
    size_t start = out->len;
    uint8_t header [WIRE_HEADER] = { (uint8_t) msg->type };
    int rc = s_put (out, header, WIRE_HEADER);
    if (run) {
        const session_limits_t *l = &msg->limits;
        int64_t fields [1 + LIMITS + 1] = { msg->id, l->timeout_ms, (int64_t) l->output_bytes,
                                            l->memory_mb, l->pids, l->tmp_mb, l->cpu_milli,
                                            l->egress_connections, l->egress_bytes,
                                            l->stream ? FLAG_STREAM : 0 };
        rc = rc ? rc : s_put (out, fields, sizeof fields);
    }
    if (interrupt)
        rc = rc ? rc : s_put (out, &msg->id, sizeof msg->id);
    if (names) {
        rc = rc ? rc : s_put_text (out, msg->owner, strlen (msg->owner));
        rc = rc ? rc : s_put_text (out, msg->session, strlen (msg->session));
        rc = rc ? rc : s_put_text (out, msg->lang, strlen (msg->lang));
    }
    if (run) {
        rc = rc ? rc : s_put_text (out, msg->code, msg->code_len);
        rc = rc ? rc : s_put_text (out, msg->grant_len ? msg->grant : "", msg->grant_len);
    }
    if (s_has_frame (msg->type))
        rc = rc ? rc : s_put (out, msg->frame, msg->frame_len);
    if (rc) {
        out->len = start;
        return -1;
    }
    uint32_t body = (uint32_t) (out->len - start - WIRE_HEADER);
    memcpy (out->data + start + 4, &body, 4);
    return 0;
}

//  --------------------------------------------------------------------------
//  Decoding: a cursor over the body that fails once and stays failed.

typedef struct {
    const char *p;
    const char *end;
    const char *why;            //  the first defect, or NULL
} s_cursor_t;

static void
s_fail (s_cursor_t *c, const char *why)
{
    if (!c->why)
        c->why = why;
}

static int64_t
s_get_i64 (s_cursor_t *c)
{
    int64_t v = 0;
    if (c->why || c->end - c->p < 8)
        s_fail (c, "body too short for its numbers");
    else {
        memcpy (&v, c->p, 8);
        c->p += 8;
    }
    return v;
}

//  A length-prefixed, NUL-terminated text; `name` also refuses NULs inside and more than
//  WIRE_MAX_NAME bytes.
static const char *
s_get_text (s_cursor_t *c, bool name, size_t *len_out)
{
    uint32_t len;
    if (c->why || c->end - c->p < 4) {
        s_fail (c, "body too short for a text's length");
        return NULL;
    }
    memcpy (&len, c->p, 4);
    size_t left = (size_t) (c->end - c->p) - 4;
    if (left < 1 || len > left - 1) {
        s_fail (c, "a text runs past the end of the body");
        return NULL;
    }
    const char *text = c->p + 4;
    if (text [len] != 0)
        s_fail (c, "a text lacks its terminating NUL");
    else
    if (name && (len > WIRE_MAX_NAME || memchr (text, 0, len)))
        s_fail (c, "a name is too long or holds a NUL");
    c->p = text + len + 1;
    if (len_out)
        *len_out = len;
    return c->why ? NULL : text;
}

int
wire_decode (const char *data, size_t len, wire_msg_t *msg, const char **why)
{
    memset (msg, 0, sizeof *msg);
    uint32_t body;
    if (len < WIRE_HEADER) {
        *why = "shorter than a header";
        return -1;
    }
    memcpy (&body, data + 4, 4);
    if (!s_type_known ((uint8_t) data [0]) || data [1] || data [2] || data [3]) {
        *why = "unknown type";
        return -1;
    }
    if (body != len - WIRE_HEADER || body > WIRE_MAX) {
        *why = "body length disagrees with the message size";
        return -1;
    }
    msg->type = (wire_type_t) (uint8_t) data [0];
    s_cursor_t c = { data + WIRE_HEADER, data + len, NULL };
    if (msg->type == WIRE_RUN) {
        msg->id = s_get_i64 (&c);
        session_limits_t *l = &msg->limits;
        l->timeout_ms = s_get_i64 (&c);
        int64_t output = s_get_i64 (&c);
        l->output_bytes = output < 0 ? 0 : (size_t) output;
        if (output < 0)
            s_fail (&c, "negative output_bytes");
        l->memory_mb = s_get_i64 (&c);
        l->pids = s_get_i64 (&c);
        l->tmp_mb = s_get_i64 (&c);
        l->cpu_milli = s_get_i64 (&c);
        l->egress_connections = s_get_i64 (&c);
        l->egress_bytes = s_get_i64 (&c);
        int64_t flags = s_get_i64 (&c);
        if (flags & ~(int64_t) FLAG_STREAM)
            s_fail (&c, "unknown flags");
        l->stream = (flags & FLAG_STREAM) != 0;
    }
    if (msg->type == WIRE_INTERRUPT)
        msg->id = s_get_i64 (&c);
    if (msg->type == WIRE_RUN || msg->type == WIRE_CLOSE || msg->type == WIRE_INTERRUPT) {
        msg->owner = s_get_text (&c, true, NULL);
        msg->session = s_get_text (&c, true, NULL);
        msg->lang = s_get_text (&c, true, NULL);
    }
    if (msg->type == WIRE_RUN) {
        msg->code = s_get_text (&c, false, &msg->code_len);
        msg->grant = s_get_text (&c, false, &msg->grant_len);
        if (msg->grant && msg->grant_len && !grant_valid (msg->grant, msg->grant_len))
            s_fail (&c, "a malformed network grant");
    }
    if (s_has_frame (msg->type)) {
        msg->frame = c.p;
        msg->frame_len = (size_t) (c.end - c.p);
        c.p = c.end;
    }
    if (!c.why && c.p != c.end)
        s_fail (&c, "bytes after the last field");
    *why = c.why;
    if (c.why)
        memset (msg, 0, sizeof *msg);
    return c.why ? -1 : 0;
}

//  --------------------------------------------------------------------------
//  Reassembly.

//  The sender cuts a message into datagrams of exactly WIRE_HEADER + WIRE_CHUNK bytes, then
//  WIRE_CHUNK, the last one shorter: any other length is a message cut short or padded.
int
wire_rx_feed (wire_rx_t *rx, const char *data, size_t len, const char **why)
{
    if (len == 0 || len > WIRE_HEADER + WIRE_CHUNK) {
        *why = len ? "datagram over the chunk size" : "empty datagram";
        return -1;
    }
    size_t expect;
    if (rx->want == 0) {
        uint32_t body;
        if (len < WIRE_HEADER || !s_type_known ((uint8_t) data [0])) {
            *why = len < WIRE_HEADER ? "shorter than a header" : "unknown type";
            return -1;
        }
        memcpy (&body, data + 4, 4);
        if (body > WIRE_MAX) {
            *why = "body over the largest message";
            return -1;
        }
        rx->buf.len = 0;
        rx->want = WIRE_HEADER + (size_t) body;
        expect = rx->want < WIRE_HEADER + WIRE_CHUNK ? rx->want : WIRE_HEADER + WIRE_CHUNK;
    }
    else {
        size_t left = rx->want - rx->buf.len;
        expect = left < WIRE_CHUNK ? left : WIRE_CHUNK;
    }
    if (len != expect) {
        rx->want = 0;
        *why = "a datagram's size disagrees with the message's length";
        return -1;
    }
    if (buf_append (&rx->buf, data, len) < 0) {
        rx->want = 0;
        *why = "out of memory";
        return -1;
    }
    if (rx->buf.len < rx->want)
        return 0;
    rx->want = 0;
    return 1;
}

void
wire_rx_free (wire_rx_t *rx)
{
    buf_free (&rx->buf);
    rx->want = 0;
}

//  --------------------------------------------------------------------------
//  The socket end.

struct _wire_t {
    int fd;
    wire_rx_t rx;
    buf_t out;                  //  queued datagrams, each as a u32 length and its bytes
    size_t sent;                //  bytes of `out` already sent
    char *in;                   //  one datagram, WIRE_HEADER + WIRE_CHUNK bytes and a spare
};

wire_t *
wire_new (int fd)
{
    wire_t *self = calloc (1, sizeof *self);
    if (self)
        self->in = malloc (WIRE_HEADER + WIRE_CHUNK + 1);
    int flags = fcntl (fd, F_GETFL);
    if (!self || !self->in || flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        log_error ("wire: cannot set up the socketpair end: %s", self && self->in
                   ? strerror (errno) : "out of memory");
        if (self)
            free (self->in);
        free (self);
        return NULL;
    }
    self->fd = fd;
    return self;
}

void
wire_destroy (wire_t **self_p)
{
    wire_t *self = *self_p;
    if (!self)
        return;
    close (self->fd);
    wire_rx_free (&self->rx);
    buf_free (&self->out);
    free (self->in);
    free (self);
    *self_p = NULL;
}

int
wire_fd (wire_t *self)
{
    return self->fd;
}

bool
wire_pending (wire_t *self)
{
    return self->sent < self->out.len;
}

int
wire_flush (wire_t *self)
{
    while (self->sent < self->out.len) {
        uint32_t n;
        memcpy (&n, self->out.data + self->sent, 4);
        ssize_t rc = send (self->fd, self->out.data + self->sent + 4, n, MSG_NOSIGNAL);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (rc != (ssize_t) n) {
            log_error ("wire: send: %s", rc < 0 ? strerror (errno) : "datagram cut short");
            return -1;
        }
        self->sent += 4 + n;
    }
    //  Compact once the sent part dominates, so a steady stream costs O(n) moves.
    if (self->sent == self->out.len)
        self->out.len = self->sent = 0;
    else
    if (self->sent > self->out.len / 2) {
        memmove (self->out.data, self->out.data + self->sent, self->out.len - self->sent);
        self->out.len -= self->sent;
        self->sent = 0;
    }
    return 0;
}

int
wire_send (wire_t *self, const wire_msg_t *msg)
{
    buf_t whole = { NULL, 0, 0 };
    if (wire_encode (msg, &whole) < 0) {
        log_error ("wire: cannot encode a message of type %d", (int) msg->type);
        buf_free (&whole);
        return -1;
    }
    if ((long long) (self->out.len - self->sent + whole.len) > WIRE_QUEUE_MAX) {
        log_error ("wire: the peer has not read %zu bytes; giving up on it",
                   self->out.len - self->sent);
        buf_free (&whole);
        return -1;
    }
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < whole.len; ) {
        uint32_t n = (uint32_t) (whole.len - at);
        if (n > WIRE_HEADER + WIRE_CHUNK)
            n = at ? WIRE_CHUNK : WIRE_HEADER + WIRE_CHUNK;
        rc = buf_append (&self->out, &n, 4) || buf_append (&self->out, whole.data + at, n) ? -1 : 0;
        at += n;
    }
    buf_free (&whole);
    if (rc < 0) {
        log_error ("wire: out of memory");
        return -1;
    }
    return wire_flush (self);
}

wire_status_t
wire_recv (wire_t *self, wire_msg_t *msg, const char **why)
{
    while (true) {
        ssize_t n = recv (self->fd, self->in, WIRE_HEADER + WIRE_CHUNK + 1, MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return WIRE_NONE;
        if (n <= 0) {
            if (n < 0)
                log_error ("wire: receive: %s", strerror (errno));
            return WIRE_EOF;
        }
        //  MSG_TRUNC reports the datagram's real size: a bigger one was cut, and refused.
        int rc = wire_rx_feed (&self->rx, self->in, (size_t) n, why);
        if (rc < 0)
            return WIRE_BAD;
        if (rc == 1)
            return wire_decode (self->rx.buf.data, self->rx.buf.len, msg, why) == 0
                 ? WIRE_MESSAGE : WIRE_BAD;
    }
}
