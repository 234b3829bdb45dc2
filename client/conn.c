/*  client/conn.c: the client side of the broker protocol, on libzmq alone: a context and a
    socket of its own, so a command that reaches the broker loads libzmq and not czmq with
    its own dependencies and start-up (the CLI loads even libzmq only then: client/lazy.c). */
#include "client/conn.h"
#include "common/util.h"

struct _conn_t {
    void *ctx;
    void *sock;
    int64_t next_rid;
    int wake_fd;            //  readable: stop waiting (conn_wake_on), or -1
    conn_push_fn *on_push;  //  gets pushed messages conn_call meets (conn_on_push), or NULL
    void *push_arg;
    char prefix[17];        //  random per connection, so rids of two CLIs never collide
};

static int
s_key (void *sock, int option, const char *z85)
{
    //  Z85 text of 40 characters; libzmq decodes it and refuses anything else.
    return z85 && strlen (z85) == 40 ? zmq_setsockopt (sock, option, z85, 40) : -1;
}

conn_t *
conn_new_z85 (const char *endpoint, const char *public_key, const char *secret_key,
              const char *server_key)
{
    conn_t *self = (conn_t *) zmalloc (sizeof (conn_t));
    int linger = 0;
    self->ctx = zmq_ctx_new ();
    self->sock = self->ctx ? zmq_socket (self->ctx, ZMQ_DEALER) : NULL;
    if (!self->sock
    ||  zmq_setsockopt (self->sock, ZMQ_LINGER, &linger, sizeof linger) != 0
    ||  s_key (self->sock, ZMQ_CURVE_PUBLICKEY, public_key) != 0
    ||  s_key (self->sock, ZMQ_CURVE_SECRETKEY, secret_key) != 0
    ||  s_key (self->sock, ZMQ_CURVE_SERVERKEY, server_key) != 0
    ||  zmq_connect (self->sock, endpoint) != 0) {
        conn_destroy (&self);
        return NULL;
    }
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
        if (self->sock)
            zmq_close (self->sock);
        if (self->ctx)
            zmq_ctx_term (self->ctx);
        free (self);
        *self_p = NULL;
    }
}

json_t *
conn_recv (conn_t *self, int timeout_ms)
{
    zmq_pollitem_t items[2] = { { self->sock, 0, ZMQ_POLLIN, 0 },
                                { NULL, self->wake_fd, ZMQ_POLLIN, 0 } };
    if (zmq_poll (items, self->wake_fd >= 0 ? 2 : 1, timeout_ms) < 1 || items[1].revents)
        return NULL;                //  timeout, a signal, or told to stop
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    json_t *msg = NULL;
    if (zmq_msg_recv (&frame, self->sock, ZMQ_DONTWAIT) >= 0)
        msg = json_loadb ((const char *) zmq_msg_data (&frame), zmq_msg_size (&frame), 0, NULL);
    zmq_msg_close (&frame);
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
    int rc = text ? zmq_send (self->sock, text, strlen (text), 0) : -1;
    free (text);
    return rc < 0 ? -1 : 0;
}

void *
conn_socket (conn_t *self)
{
    return self->sock;
}

json_t *
conn_call (conn_t *self, json_t *req, int timeout_ms)
{
    char rid[40];
    if (conn_send (self, req, rid) != 0)
        return NULL;
    int64_t deadline = clock_mono_ms () + timeout_ms;
    while (clock_mono_ms () < deadline) {
        json_t *reply = conn_recv (self, (int) (deadline - clock_mono_ms ()));
        if (!reply)
            return NULL;
        const char *got = json_string_value (json_object_get (reply, "rid"));
        if (got && strcmp (got, rid) == 0 && !json_object_get (reply, "op"))
            return reply;
        if (self->on_push && json_object_get (reply, "op"))
            self->on_push (self->push_arg, reply);
        json_decref (reply);
    }
    return NULL;
}
