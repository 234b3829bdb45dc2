/*  worker/link.c: the DEALER connection to the broker, its heartbeats and reconnects. */
#include "worker/link.h"
#include "common/proto.h"
#include "common/util.h"
#include <assert.h>
#include <errno.h>


struct _link_t {
    char *endpoint;
    zcert_t *cert;
    char *server_key;
    zsock_t *sock;
    int64_t heard;              //  last message from the broker (monotonic ms)
    int64_t next_beat;
};

static zsock_t *
s_connect (link_t *self)
{
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    if (!sock) {
        log_error ("link: cannot create a DEALER socket: %s", zmq_strerror (zmq_errno ()));
        return NULL;
    }
    zcert_apply (self->cert, sock);
    zsock_set_curve_serverkey (sock, self->server_key);
    zsock_set_linger (sock, 0);
    zsock_set_maxmsgsize (sock, PROTO_MAX_WIRE);
    if (zsock_connect (sock, "%s", self->endpoint) < 0) {
        log_error ("link: connect %s: %s", self->endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
    }
    return sock;
}

link_t *
link_new (const char *endpoint, zcert_t *cert, const char *server_key)
{
    link_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoint = strdup (endpoint);
    self->server_key = strdup (server_key);
    self->cert = zcert_dup (cert);
    if (!self->endpoint || !self->server_key || !self->cert
    ||  !(self->sock = s_connect (self))) {
        link_destroy (&self);
        return NULL;
    }
    self->heard = clock_mono_ms ();
    self->next_beat = self->heard + PROTO_HEARTBEAT_MS;
    return self;
}

void
link_destroy (link_t **self_p)
{
    assert (self_p);
    link_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->sock);
    zcert_destroy (&self->cert);
    free (self->endpoint);
    free (self->server_key);
    free (self);
    *self_p = NULL;
}

void *
link_handle (link_t *self)
{
    return zsock_resolve (self->sock);
}

int
link_send_text (link_t *self, const char *text, size_t len)
{
    int rc = zmq_send (zsock_resolve (self->sock), text, len, ZMQ_DONTWAIT);
    if (rc < 0)
        log_error ("link: send to %s dropped a message: %s", self->endpoint,
                   zmq_strerror (zmq_errno ()));
    return rc < 0 ? -1 : 0;
}

int
link_send (link_t *self, json_t **msg_p)
{
    char *text = json_dumps (*msg_p, JSON_COMPACT);
    json_decref (*msg_p);
    *msg_p = NULL;
    if (!text) {
        log_error ("link: cannot encode a message");
        return -1;
    }
    int rc = link_send_text (self, text, strlen (text));
    free (text);
    return rc;
}

//  Reads and drops the remaining frames of a multi-frame message.
static void
s_drop_rest (void *handle, zmq_msg_t *msg)
{
    while (zmq_msg_more (msg)) {
        zmq_msg_close (msg);
        zmq_msg_init (msg);
        if (zmq_msg_recv (msg, handle, ZMQ_DONTWAIT) < 0)
            break;
    }
}

int
link_recv (link_t *self, json_t **msg_p)
{
    void *handle = zsock_resolve (self->sock);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    if (zmq_msg_recv (&msg, handle, ZMQ_DONTWAIT) < 0) {
        int err = zmq_errno ();
        if (err != EAGAIN && err != EINTR)
            log_error ("link: receive: %s", zmq_strerror (err));
        zmq_msg_close (&msg);
        return 0;
    }
    self->heard = clock_mono_ms ();     //  anything from the broker proves it is alive
    bool multi = zmq_msg_more (&msg);
    proto_error_t error = { PROTO_E_BAD_FRAMES, "more than one frame" };
    *msg_p = NULL;
    if (!multi)
        proto_parse_broker (zmq_msg_data (&msg), zmq_msg_size (&msg), msg_p, &error);
    s_drop_rest (handle, &msg);
    zmq_msg_close (&msg);
    if (!*msg_p) {
        log_error ("link: ignored a bad message from the broker (%s: %s)", error.code,
                   error.message);
        return -1;
    }
    return 1;
}

int64_t
link_deadline_ms (link_t *self)
{
    int64_t silence = self->heard + PROTO_SILENCE_MS;
    return self->next_beat < silence ? self->next_beat : silence;
}

int
link_tick (link_t *self)
{
    int64_t now = clock_mono_ms ();
    int reconnected = 0;
    if (now >= self->heard + PROTO_SILENCE_MS) {
        log_warn ("link: broker %s silent for %d ms; reconnecting", self->endpoint,
                  (int) (now - self->heard));
        zsock_t *sock = s_connect (self);
        if (sock) {
            zsock_destroy (&self->sock);
            self->sock = sock;
            reconnected = 1;
        }
        self->heard = now;      //  give the new connection its own three seconds
    }
    //  After a reconnect the caller's `ready` must come first; it counts as a beat.
    if (reconnected)
        self->next_beat = now + PROTO_HEARTBEAT_MS;
    else
    if (now >= self->next_beat) {
        json_t *beat = proto_heartbeat ();
        link_send (self, &beat);
        self->next_beat = now + PROTO_HEARTBEAT_MS;
    }
    return reconnected;
}
