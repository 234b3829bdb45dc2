/*  broker/wsend.c: one message to a worker connection (see wsend.h). */
#include "broker/wsend.h"
#include "common/util.h"

int
wsend (broker_t *broker, zframe_t *routing, const char *name, json_t *body)
{
    char *text = json_dumps (body, JSON_COMPACT);
    zmsg_t *msg = zmsg_new ();
    zmsg_addmem (msg, zframe_data (routing), zframe_size (routing));
    zmsg_addstr (msg, text);
    free (text);
    int rc = zmsg_send (&msg, broker->workers);
    if (rc != 0) {
        log_warn ("worker %s: send failed: %s", name, zmq_strerror (zmq_errno ()));
        zmsg_destroy (&msg);
    }
    return rc;
}
