/*  client/conn.c: the client side of the broker protocol. */
#include "client/conn.h"
#include "common/util.h"

struct _conn_t {
    zsock_t *sock;
    int64_t next_rid;
    char prefix[17];        //  random per connection, so rids of two CLIs never collide
};

conn_t *
conn_new (const char *endpoint, zcert_t *cert, zcert_t *server)
{
    conn_t *self = (conn_t *) zmalloc (sizeof (conn_t));
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        free (self);
        return NULL;
    }
    zsock_set_linger (self->sock, 0);
    zcert_apply (cert, self->sock);
    zsock_set_curve_serverkey (self->sock, zcert_public_txt (server));
    if (zsock_connect (self->sock, "%s", endpoint) != 0) {
        zsock_destroy (&self->sock);
        free (self);
        return NULL;
    }
    random_hex (8, self->prefix);
    return self;
}

void
conn_destroy (conn_t **self_p)
{
    if (*self_p) {
        zsock_destroy (&(*self_p)->sock);
        free (*self_p);
        *self_p = NULL;
    }
}

json_t *
conn_recv (conn_t *self, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (self->sock, NULL);
    json_t *msg = NULL;
    if (zpoller_wait (poller, timeout_ms) == self->sock) {
        char *text = zstr_recv (self->sock);
        if (text)
            msg = json_loads (text, 0, NULL);
        zstr_free (&text);
    }
    zpoller_destroy (&poller);
    return msg;
}

json_t *
conn_call (conn_t *self, json_t *req, int timeout_ms)
{
    char rid[40];
    snprintf (rid, sizeof rid, "%s-%lld", self->prefix, (long long) ++self->next_rid);
    json_object_set_new (req, "rid", json_string (rid));
    char *text = json_dumps (req, JSON_COMPACT);
    int rc = zstr_send (self->sock, text);
    free (text);
    if (rc != 0)
        return NULL;
    int64_t deadline = clock_mono_ms () + timeout_ms;
    while (clock_mono_ms () < deadline) {
        json_t *reply = conn_recv (self, (int) (deadline - clock_mono_ms ()));
        if (!reply)
            return NULL;
        const char *got = json_string_value (json_object_get (reply, "rid"));
        if (got && strcmp (got, rid) == 0 && !json_object_get (reply, "op"))
            return reply;
        json_decref (reply);
    }
    return NULL;
}
