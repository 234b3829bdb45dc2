/*  approver/bridge.c: subscription and call sockets to the broker (see bridge.h). */
#include "approver/bridge.h"
#include "client/conn.h"
#include "common/keys.h"
#include "common/util.h"

struct _bridge_t {
    char *endpoint;
    zcert_t *cert, *server;
    conn_t *calls;
    zsock_t *events;
    zsock_t *monitor;           //  PAIR reading the events socket's monitor
    int handshakes;             //  on the current events socket
    bool resubscribe;
    int generation;             //  makes each monitor endpoint unique
};

bridge_t *
bridge_new (const char *endpoint, zcert_t *cert, zcert_t *server)
{
    bridge_t *self = (bridge_t *) zmalloc (sizeof (bridge_t));
    self->endpoint = strdup (endpoint);
    self->cert = zcert_dup (cert);
    self->server = zcert_dup (server);
    self->calls = conn_new (endpoint, cert, server);
    if (!self->calls) {
        log_error ("bridge: cannot connect to %s", endpoint);
        bridge_destroy (&self);
    }
    return self;
}

static void
s_close_events (bridge_t *self)
{
    if (self->events)
        zmq_socket_monitor (zsock_resolve (self->events), NULL, 0);
    zsock_destroy (&self->monitor);
    zsock_destroy (&self->events);
}

void
bridge_destroy (bridge_t **self_p)
{
    if (*self_p) {
        bridge_t *self = *self_p;
        s_close_events (self);
        conn_destroy (&self->calls);
        zcert_destroy (&self->cert);
        zcert_destroy (&self->server);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

//  A new DEALER with a monitor; the old one (and with it the broker's stale subscription,
//  which the broker drops once a push to it fails) goes away.
static int
s_open_events (bridge_t *self)
{
    s_close_events (self);
    self->events = zsock_new (ZMQ_DEALER);
    self->monitor = zsock_new (ZMQ_PAIR);
    if (!self->events || !self->monitor) {
        log_error ("bridge: cannot create sockets: %s", zmq_strerror (zmq_errno ()));
        return -1;
    }
    zsock_set_linger (self->events, 0);
    keys_apply_client (self->events, self->cert, self->server);
    char mon[80];
    snprintf (mon, sizeof mon, "inproc://approver-bridge-%p-%d", (void *) self, ++self->generation);
    int events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
               | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor (zsock_resolve (self->events), mon, events) != 0
     || zsock_connect (self->monitor, "%s", mon) != 0
     || zsock_connect (self->events, "%s", self->endpoint) != 0) {
        log_error ("bridge: cannot monitor or connect to %s: %s", self->endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    self->handshakes = 0;
    return 0;
}

int
bridge_subscribe (bridge_t *self, int64_t since)
{
    if (s_open_events (self))
        return -1;
    json_t *req = json_pack ("{s:s, s:s, s:I}", "op", "subscribe", "rid", "approver-subscribe", "since", (json_int_t) since);
    char *text = json_dumps (req, JSON_COMPACT);
    json_decref (req);
    int rc = text ? zstr_send (self->events, text) : -1;
    free (text);
    if (rc != 0)
        log_error ("bridge: cannot send subscribe: %s", zmq_strerror (zmq_errno ()));
    else
        log_info ("bridge: subscribing to %s from event %lld", self->endpoint, (long long) since);
    self->resubscribe = false;
    return rc;
}

void *
bridge_handle (bridge_t *self)
{
    return self->events ? zsock_resolve (self->events) : NULL;
}

json_t *
bridge_next_event (bridge_t *self)
{
    while (self->events) {
        char *text = NULL;
        if (zmq_poll (&(zmq_pollitem_t) { zsock_resolve (self->events), 0, ZMQ_POLLIN, 0 }, 1, 0) <= 0
         || !(text = zstr_recv (self->events)))
            return NULL;
        json_t *msg = json_loads (text, 0, NULL);
        zstr_free (&text);
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

//  Reads one monitor event: its number, or -1 if none is waiting. A monitor message is two
//  frames: 6 bytes (event, value) and the endpoint.
static int
s_monitor_event (bridge_t *self)
{
    zmsg_t *msg = NULL;
    if (zmq_poll (&(zmq_pollitem_t) { zsock_resolve (self->monitor), 0, ZMQ_POLLIN, 0 }, 1, 0) <= 0
     || !(msg = zmsg_recv (self->monitor)))
        return -1;
    zframe_t *head = zmsg_first (msg);
    uint16_t event = 0;
    if (head && zframe_size (head) == 6)
        memcpy (&event, zframe_data (head), sizeof event);
    zmsg_destroy (&msg);
    return event;
}

bool
bridge_needs_resubscribe (bridge_t *self)
{
    int event;
    while (self->monitor && (event = s_monitor_event (self)) >= 0) {
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            if (++self->handshakes > 1) {
                log_info ("bridge: broker connection re-established; re-subscribing");
                self->resubscribe = true;
            }
        }
        else if (event == ZMQ_EVENT_DISCONNECTED)
            log_warn ("bridge: lost the broker at %s; waiting for it", self->endpoint);
        else if (event)
            log_error ("bridge: the broker refused our key (CURVE handshake failed, event 0x%x)", event);
    }
    bool out = self->resubscribe;
    self->resubscribe = false;
    return out;
}

json_t *
bridge_call (bridge_t *self, json_t *req, int timeout_ms)
{
    if (!self->calls)
        self->calls = conn_new (self->endpoint, self->cert, self->server);
    json_t *reply = self->calls ? conn_call (self->calls, req, timeout_ms) : NULL;
    if (!reply && self->calls) {
        //  Linger 0: the request, if still queued, dies with the socket.
        conn_destroy (&self->calls);
        self->calls = conn_new (self->endpoint, self->cert, self->server);
        if (!self->calls)
            log_error ("bridge: cannot reconnect the call socket to %s", self->endpoint);
    }
    return reply;
}
