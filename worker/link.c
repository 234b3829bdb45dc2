/*  worker/link.c: the connection to the broker (one CURVE DEALER connection, spoken by
    common/zmtp.c in this thread), its heartbeats, and a fresh connection when the broker
    has been silent too long. */
#include "worker/link.h"
#include "common/proto.h"
#include "common/util.h"
#include "common/zmtp.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>


struct _link_t {
    char *endpoint;
    zmtp_t *conn;
    int64_t heard;              //  last message from the broker (monotonic ms)
    int64_t next_beat;
};

link_t *
link_new (const char *endpoint, const zmtp_keys_t *keys)
{
    link_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->endpoint = strdup (endpoint);
    if (self->endpoint && !(self->conn = zmtp_new (endpoint, keys)))
        log_error ("link: cannot connect to %s (tcp://HOST:PORT or ipc://PATH)", endpoint);
    if (!self->conn) {
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
    zmtp_destroy (&self->conn);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

int
link_poll_item (link_t *self, struct pollfd *pfd)
{
    return zmtp_poll_item (self->conn, pfd);
}

void
link_handle (link_t *self, short revents)
{
    zmtp_handle (self->conn, revents);
}

int
link_send_text (link_t *self, const char *text, size_t len)
{
    if (zmtp_send (self->conn, text, len) == 0)
        return 0;
    log_error ("link: send to %s dropped a message: out of memory", self->endpoint);
    return -1;
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

int
link_recv (link_t *self, json_t **msg_p)
{
    size_t size;
    uint8_t *frame = zmtp_take (self->conn, &size);
    if (!frame)
        return 0;
    self->heard = clock_mono_ms ();     //  anything from the broker proves it is alive
    proto_error_t error;
    *msg_p = NULL;
    proto_parse_broker ((const char *) frame, size, msg_p, &error);
    free (frame);
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
    if (now >= self->heard + PROTO_SILENCE_MS) {
        //  A connection the broker stopped answering may look alive for minutes (no RST
        //  from a host that went away): start again, and drop what waited for it, as the
        //  broker has given up on this worker's runs by now.
        log_warn ("link: broker %s silent for %d ms; reconnecting", self->endpoint,
                  (int) (now - self->heard));
        zmtp_restart (self->conn);
        self->heard = now;      //  give the new connection its own three seconds
        self->next_beat = now + PROTO_HEARTBEAT_MS;     //  the caller's `ready` counts as one
        return 1;
    }
    if (now >= self->next_beat) {
        json_t *beat = proto_heartbeat ();
        link_send (self, &beat);
        self->next_beat = now + PROTO_HEARTBEAT_MS;
    }
    return 0;
}
