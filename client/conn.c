/*  client/conn.c: the client side of the broker protocol: requests matched to replies by
    `rid`, over one CURVE connection (client/zmtp.c, which speaks ZeroMQ's wire protocol
    itself, so that neither the CLI nor the approver's calls need libzmq's context and
    threads). */
#include "client/conn.h"
#include "client/zmtp.h"
#include "client/zmtp_wire.h"
#include "common/util.h"
#include <sodium.h>

struct _conn_t {
    zmtp_t *link;
    int64_t next_rid;
    int wake_fd;            //  readable: stop waiting (conn_wake_on), or -1
    conn_push_fn *on_push;  //  gets pushed messages conn_call meets (conn_on_push), or NULL
    void *push_arg;
    char prefix[17];        //  random per connection, so rids of two CLIs never collide
};

conn_t *
conn_new_z85 (const char *endpoint, const char *public_key, const char *secret_key,
              const char *server_key)
{
    uint8_t pub[32], sec[32], server[32];
    zmtp_t *link = NULL;
    if (zmtp_z85_decode (public_key, pub) == 0 && zmtp_z85_decode (secret_key, sec) == 0
    &&  zmtp_z85_decode (server_key, server) == 0)
        link = zmtp_new (endpoint, pub, sec, server);
    sodium_memzero (sec, sizeof sec);
    if (!link)
        return NULL;
    conn_t *self = (conn_t *) zmalloc (sizeof (conn_t));
    self->link = link;
    random_hex (8, self->prefix);
    self->wake_fd = -1;
    return self;
}

conn_t *
conn_new (const char *endpoint, zcert_t *cert, zcert_t *server)
{
    return conn_new_z85 (endpoint, zcert_public_txt (cert), zcert_secret_txt (cert),
                         zcert_public_txt (server));
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

json_t *
conn_recv (conn_t *self, int timeout_ms)
{
    size_t size;
    uint8_t *frame = zmtp_recv (self->link, timeout_ms, self->wake_fd, &size);
    json_t *msg = frame ? json_loadb ((const char *) frame, size, 0, NULL) : NULL;
    free (frame);
    return msg;
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

int
conn_send (conn_t *self, json_t *req, char rid[40])
{
    snprintf (rid, 40, "%s-%lld", self->prefix, (long long) ++self->next_rid);
    json_object_set_new (req, "rid", json_string (rid));
    char *text = json_dumps (req, JSON_COMPACT);
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

json_t *
conn_call (conn_t *self, json_t *req, int timeout_ms)
{
    char rid[40];
    if (conn_send (self, req, rid) != 0)
        return NULL;
    bool again = s_safe_again (req);
    //  Connections opened by the time it went out: one that opens after a later loss
    //  started without it (the first one to open carries what waited for it).
    uint64_t sent_on = zmtp_opened (self->link);
    int64_t deadline = clock_mono_ms () + timeout_ms;
    while (clock_mono_ms () < deadline) {
        int64_t left = deadline - clock_mono_ms ();
        json_t *reply = conn_recv (self, (int) (again && left > 100 ? 100 : left));
        if (!reply && (!again || s_woken (self)))
            return NULL;
        if (!reply) {
            uint64_t opened = zmtp_opened (self->link);
            if (opened > (sent_on ? sent_on : 1)) {
                char *text = json_dumps (req, JSON_COMPACT);     //  the same rid
                if (!text || zmtp_send (self->link, text, strlen (text)) != 0) {
                    free (text);
                    return NULL;
                }
                free (text);
                sent_on = opened;
            }
            continue;
        }
        const char *got = json_string_value (json_object_get (reply, "rid"));
        if (got && strcmp (got, rid) == 0 && !json_object_get (reply, "op"))
            return reply;
        if (self->on_push && json_object_get (reply, "op"))
            self->on_push (self->push_arg, reply);
        json_decref (reply);
    }
    return NULL;
}
