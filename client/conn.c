/*  client/conn.c: the client side of the broker protocol: requests matched to replies by
    `rid`, over one CURVE connection (common/zmtp.c, which speaks ZeroMQ's wire protocol
    itself, so that neither the CLI nor the approver's calls need libzmq's context and
    threads). */
#include "client/conn.h"
#include "common/zmtp.h"
#include "common/util.h"
#include <stdlib.h>
#include <string.h>

struct _conn_t {
    zmtp_t *link;
    int64_t next_rid;
    int wake_fd;            //  readable: stop waiting (conn_wake_on), or -1
    conn_push_fn *on_push;  //  gets pushed messages conn_call meets (conn_on_push), or NULL
    void *push_arg;
    char prefix[17];        //  random per connection, so rids of two CLIs never collide
};

conn_t *
conn_new (const char *endpoint, const zmtp_keys_t *keys)
{
    conn_t *self = (conn_t *) calloc (1, sizeof (conn_t));
    if (!self)
        return NULL;
    self->link = zmtp_new (endpoint, keys);
    if (!self->link) {
        free (self);
        return NULL;
    }
    random_hex (8, self->prefix);
    self->wake_fd = -1;
    return self;
}

void
conn_destroy (conn_t **self_p)
{
    conn_t *self = *self_p;
    if (self) {
        zmtp_destroy (&self->link);
        free (self);
        *self_p = NULL;
    }
}

//  A frame as JSON, or NULL; frees the frame.
static json_t *
s_decode (uint8_t *frame, size_t size)
{
    json_t *msg = frame ? json_loadb ((const char *) frame, size, 0, NULL) : NULL;
    free (frame);
    return msg;
}

json_t *
conn_recv (conn_t *self, int timeout_ms)
{
    size_t size = 0;
    uint8_t *frame = zmtp_recv (self->link, timeout_ms, self->wake_fd, &size);
    return s_decode (frame, size);
}

json_t *
conn_take (conn_t *self)
{
    size_t size = 0;
    uint8_t *frame = zmtp_take (self->link, &size);
    return s_decode (frame, size);
}

void
conn_wake_on (conn_t *self, int fd)
{
    self->wake_fd = fd;
}

void
conn_on_push (conn_t *self, conn_push_fn *fn, void *arg)
{
    self->on_push = fn;
    self->push_arg = arg;
}

//  req with a fresh rid (also copied into rid), as text (caller frees); NULL if out of memory.
static char *
s_encode (conn_t *self, json_t *req, char rid[40])
{
    snprintf (rid, 40, "%s-%lld", self->prefix, (long long) ++self->next_rid);
    json_object_set_new (req, "rid", json_string (rid));
    return json_dumps (req, JSON_COMPACT);
}

int
conn_send (conn_t *self, json_t *req, char rid[40])
{
    char *text = s_encode (self, req, rid);
    int rc = text ? zmtp_send (self->link, text, strlen (text)) : -1;
    free (text);
    return rc;
}

const char *
conn_why (conn_t *self)
{
    return zmtp_why (self->link);
}

int
conn_poll_item (conn_t *self, struct pollfd *pfd)
{
    return zmtp_poll_item (self->link, pfd);
}

void
conn_handle (conn_t *self, short revents)
{
    zmtp_handle (self->link, revents);
}

//  Ops that change nothing at the broker: sent again under the same rid when the connection
//  they went out on is lost before their answer (the broker restarted), so that a `wait`
//  goes on across a restart. Anything else could be done twice.
static bool
s_safe_again (json_t *req)
{
    const char *op = json_string_value (json_object_get (req, "op"));
    return op && (strcmp (op, "await") == 0 || strcmp (op, "status") == 0 || strcmp (op, "ping") == 0);
}

//  True if the wait should end now: the wake descriptor is readable.
static bool
s_woken (conn_t *self)
{
    struct pollfd p = { .fd = self->wake_fd, .events = POLLIN };
    return self->wake_fd >= 0 && poll (&p, 1, 0) > 0;
}

//  Waits for the reply to rid until deadline. text (its request, kept only when it may be
//  sent again) goes out again, the same rid, whenever a connection opens after the one it
//  went out on was lost. NULL on timeout or when woken.
static json_t *
s_await_reply (conn_t *self, const char *rid, const char *text, int64_t deadline)
{
    //  Connections opened by the time it went out: one that opens after a later loss
    //  started without it (the first one to open carries what waited for it).
    uint64_t sent_on = zmtp_opened (self->link);
    int64_t left;
    while ((left = deadline - clock_mono_ms ()) > 0) {
        json_t *reply = conn_recv (self, (int) left);
        if (!reply && (!text || s_woken (self)))
            return NULL;
        uint64_t opened = zmtp_opened (self->link);
        if (!reply && opened > (sent_on ? sent_on : 1)) {
            if (zmtp_send (self->link, text, strlen (text)) != 0)
                return NULL;
            sent_on = opened;
        }
        if (!reply)
            continue;
        const char *got = json_string_value (json_object_get (reply, "rid"));
        if (got && strcmp (got, rid) == 0 && !json_object_get (reply, "op"))
            return reply;
        if (self->on_push && json_object_get (reply, "op"))
            self->on_push (self->push_arg, reply);
        json_decref (reply);
    }
    return NULL;
}

json_t *
conn_call (conn_t *self, json_t *req, int timeout_ms)
{
    char rid[40], *text = s_encode (self, req, rid);
    if (!text || zmtp_send (self->link, text, strlen (text)) != 0) {
        free (text);
        return NULL;
    }
    bool again = s_safe_again (req);
    zmtp_break_on_open (self->link, again);
    json_t *reply = s_await_reply (self, rid, again ? text : NULL, clock_mono_ms () + timeout_ms);
    zmtp_break_on_open (self->link, false);
    free (text);
    return reply;
}
