/*  broker/outbox.c: replies a client connection could not take yet.
    The client socket is a ROUTER with ROUTER_MANDATORY: a send to a connection whose pipe
    is full fails (EAGAIN) instead of vanishing. Such a reply waits here, and the
    connection's later replies queue behind it, so they arrive in order. While a connection
    has a backlog, clients.c refuses its new requests (`busy`) before anything is recorded:
    a pipelined client that stops reading finds, when it reads again, every request it sent
    either acknowledged or refused, never recorded and unacknowledged. */
#include "broker/outbox.h"
#include "common/util.h"

//  What one connection may have waiting (only the replies of work it had in flight, and
//  `busy` refusals, arrive once it is backlogged), and all of them together.
#define OUTBOX_PER_PEER  20000
#define OUTBOX_MAX       200000

struct _outbox_t {
    zhashx_t *peers;        //  routing id in hex -> zlistx_t of zmsg_t (in order)
    size_t waiting;         //  messages in all the lists
    lograte_t lograte;      //  dropped replies, logged at most once a second
};

static void
s_list_destroy (void **item)
{
    zlistx_t *list = (zlistx_t *) *item;
    if (list) {
        for (zmsg_t *msg = (zmsg_t *) zlistx_first (list); msg; msg = (zmsg_t *) zlistx_next (list))
            zmsg_destroy (&msg);
        zlistx_destroy (&list);
        *item = NULL;
    }
}

outbox_t *
outbox_new (void)
{
    outbox_t *self = (outbox_t *) zmalloc (sizeof (outbox_t));
    self->peers = zhashx_new ();
    zhashx_set_destructor (self->peers, s_list_destroy);
    return self;
}

void
outbox_destroy (outbox_t **self_p)
{
    if (*self_p) {
        zhashx_destroy (&(*self_p)->peers);
        free (*self_p);
        *self_p = NULL;
    }
}

//  0 sent, 1 the pipe is full (try later), -1 the peer is gone (or the send failed). The
//  message stays the caller's either way: frames go out as shared copies (ZFRAME_REUSE), and
//  ROUTER_MANDATORY refuses a full or unknown peer on the first frame, before any is queued.
static int
s_try (broker_t *broker, zmsg_t *msg)
{
    zframe_t *routing = zmsg_first (msg), *body = zmsg_next (msg);
    if (zframe_send (&routing, broker->clients, ZFRAME_MORE | ZFRAME_REUSE | ZFRAME_DONTWAIT) != 0)
        return zmq_errno () == EAGAIN ? 1 : -1;
    return zframe_send (&body, broker->clients, ZFRAME_REUSE | ZFRAME_DONTWAIT) == 0 ? 0 : -1;
}

void
outbox_send (broker_t *broker, zmsg_t **msg_p)
{
    outbox_t *self = broker->outbox;
    zlistx_t *list = NULL;
    char *key = NULL;
    if (zhashx_size (self->peers)) {        //  the warm path skips this: nobody is backlogged
        key = zframe_strhex (zmsg_first (*msg_p));
        list = (zlistx_t *) zhashx_lookup (self->peers, key);
    }
    int rc = list ? 1 : s_try (broker, *msg_p);
    if (rc == 1 && self->waiting < OUTBOX_MAX && (!list || zlistx_size (list) < OUTBOX_PER_PEER)) {
        if (!list) {
            key = key ? key : zframe_strhex (zmsg_first (*msg_p));
            list = zlistx_new ();
            zhashx_insert (self->peers, key, list);
        }
        zlistx_add_end (list, *msg_p);
        *msg_p = NULL;
        self->waiting++;
    }
    else if (rc != 0 && lograte_ok (&self->lograte, "client replies dropped"))
        log_warn ("client reply dropped: %s", rc < 0 ? "the peer is gone" : "its backlog is full");
    zmsg_destroy (msg_p);
    free (key);
}

bool
outbox_backlogged (broker_t *broker, zframe_t *routing)
{
    outbox_t *self = broker->outbox;
    if (!zhashx_size (self->peers))
        return false;
    char *key = zframe_strhex (routing);
    bool waiting = zhashx_lookup (self->peers, key) != NULL;
    free (key);
    return waiting;
}

void
outbox_flush (broker_t *broker)
{
    outbox_t *self = broker->outbox;
    if (!zhashx_size (self->peers))
        return;
    zlistx_t *keys = zhashx_keys (self->peers);
    for (char *key = (char *) zlistx_first (keys); key; key = (char *) zlistx_next (keys)) {
        zlistx_t *list = (zlistx_t *) zhashx_lookup (self->peers, key);
        int rc = 0;
        zmsg_t *msg;
        while (rc == 0 && (msg = (zmsg_t *) zlistx_first (list))) {
            rc = s_try (broker, msg);
            if (rc == 1)
                break;          //  still full: the rest waits, in order
            zlistx_detach_cur (list);
            self->waiting--;
            zmsg_destroy (&msg);
        }
        if (rc < 0 || zlistx_size (list) == 0) {
            self->waiting -= zlistx_size (list);
            zhashx_delete (self->peers, key);
        }
    }
    zlistx_destroy (&keys);
}

size_t
outbox_size (broker_t *broker)
{
    return broker->outbox->waiting;
}
