/*  approver/bridge.c: subscription and call connections to the broker (see bridge.h). */
#include "approver/bridge.h"
#include "client/conn.h"
#include "common/util.h"
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct _bridge_t {
    char *endpoint;
    zmtp_keys_t keys;
    conn_t *calls;
    zmtp_t *events;
    uint64_t opened;            //  handshakes of the events connection seen so far
    uint64_t ended;             //  ends of it seen so far
    char said[128];             //  how the last logged end came; "" once a handshake succeeds
};

bridge_t *
bridge_new (const char *endpoint, const zmtp_keys_t *keys)
{
    bridge_t *self = (bridge_t *) calloc (1, sizeof (bridge_t));
    if (!self)
        return NULL;
    self->endpoint = strdup (endpoint);
    self->keys = *keys;
    self->calls = self->endpoint ? conn_new (endpoint, keys) : NULL;
    if (!self->calls) {
        log_error ("bridge: cannot connect to %s", endpoint);
        bridge_destroy (&self);
    }
    return self;
}

void
bridge_destroy (bridge_t **self_p)
{
    if (*self_p) {
        bridge_t *self = *self_p;
        zmtp_destroy (&self->events);
        conn_destroy (&self->calls);
        free (self->endpoint);
        sodium_memzero (self, sizeof *self);
        free (self);
        *self_p = NULL;
    }
}

int
bridge_subscribe (bridge_t *self, int64_t since)
{
    //  A new connection: the old one (and with it the broker's stale subscription, which the
    //  broker drops once a push to it fails) goes away.
    zmtp_destroy (&self->events);
    self->opened = self->ended = 0;
    self->said[0] = 0;
    self->events = zmtp_new (self->endpoint, &self->keys);
    json_t *req = json_pack ("{s:s, s:s, s:I}", "op", "subscribe", "rid", "approver-subscribe",
                             "since", (json_int_t) since);
    char *text = req ? json_dumps (req, JSON_COMPACT) : NULL;
    json_decref (req);
    int rc = self->events && text ? zmtp_send (self->events, text, strlen (text)) : -1;
    free (text);
    if (rc != 0)
        log_error ("bridge: cannot subscribe to %s (out of memory?)", self->endpoint);
    else
        log_info ("bridge: subscribing to %s from event %lld", self->endpoint, (long long) since);
    return rc;
}

int
bridge_poll_item (bridge_t *self, struct pollfd *pfd)
{
    if (self->events)
        return zmtp_poll_item (self->events, pfd);
    *pfd = (struct pollfd) { .fd = -1 };
    return -1;
}

void
bridge_handle (bridge_t *self, short revents)
{
    if (self->events)
        zmtp_handle (self->events, revents);
}

json_t *
bridge_next_event (bridge_t *self)
{
    size_t size;
    uint8_t *text;
    while (self->events && (text = zmtp_take (self->events, &size))) {
        json_t *msg = json_loadb ((const char *) text, size, 0, NULL);
        free (text);
        const char *op = json_string_value (json_object_get (msg, "op"));
        if (op && strcmp (op, "event") == 0)
            return msg;
        if (json_is_false (json_object_get (msg, "ok")))
            log_error ("bridge: subscribe refused: %s",
                       json_string_value (json_object_get (json_object_get (msg, "error"), "message")));
        json_decref (msg);
    }
    return NULL;
}

bool
bridge_needs_resubscribe (bridge_t *self)
{
    if (!self->events)
        return false;
    //  Each way a connection ends is logged once (not at every retry); a handshake that
    //  succeeds forgets it, so the next loss is logged again.
    uint64_t ended = zmtp_ended (self->events);
    const char *why = ended != self->ended ? zmtp_why (self->events) : NULL;
    self->ended = ended;
    if (why && strcmp (why, self->said) != 0) {
        if (zmtp_refused (self->events))
            log_error ("bridge: the broker refused our key (%s)", self->endpoint);
        else
            log_warn ("bridge: lost the broker at %s (%s); waiting for it", self->endpoint, why);
        snprintf (self->said, sizeof self->said, "%s", why);
    }
    uint64_t opened = zmtp_opened (self->events);
    if (opened == self->opened)
        return false;
    self->said[0] = 0;
    bool again = self->opened > 0;     //  the first handshake carried the subscription
    self->opened = opened;
    if (again)
        log_info ("bridge: broker connection re-established; re-subscribing");
    return again;
}

json_t *
bridge_call (bridge_t *self, json_t *req, int timeout_ms)
{
    if (!self->calls)
        self->calls = conn_new (self->endpoint, &self->keys);
    json_t *reply = self->calls ? conn_call (self->calls, req, timeout_ms) : NULL;
    if (!reply && self->calls) {
        //  The request, if still queued, dies with the connection.
        conn_destroy (&self->calls);
        self->calls = conn_new (self->endpoint, &self->keys);
        if (!self->calls)
            log_error ("bridge: cannot reconnect the call connection to %s", self->endpoint);
    }
    return reply;
}
