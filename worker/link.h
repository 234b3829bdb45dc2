/*  worker/link.h: the worker's connection to the broker: a CURVE DEALER socket carrying one
    JSON object per frame, heartbeats every second, and a fresh socket when the broker has
    been silent for three seconds (the caller then announces itself again with `ready`). */
#ifndef RG_LINK_H
#define RG_LINK_H
#include <czmq.h>
#include <jansson.h>


typedef struct _link_t link_t;

//  cert must hold a secret key; server_key is the broker's public key (Z85). The link keeps
//  a copy of what it needs. NULL if the socket cannot be made.
link_t *link_new (const char *endpoint, zcert_t *cert, const char *server_key);
void link_destroy (link_t **self_p);

//  The socket to give zmq_poll (a libzmq socket handle, changes on reconnect).
void *link_handle (link_t *self);

//  Sends one message without blocking and destroys it (also on failure). 0 or -1.
int link_send (link_t *self, json_t **msg_p);
//  Sends one frame already encoded (len bytes of JSON) without blocking. 0 or -1.
int link_send_text (link_t *self, const char *text, size_t len);

//  Receives one message without blocking: 1 with *msg_p set (caller owns it), 0 if none is
//  waiting, -1 if one arrived but was not a JSON object (logged, already dropped).
int link_recv (link_t *self, json_t **msg_p);

//  Monotonic ms when link_tick() must next run.
int64_t link_deadline_ms (link_t *self);

//  Sends a heartbeat when due and reconnects after PROTO_SILENCE_MS of silence. Returns 1
//  when it made a new socket (send `ready` now), else 0.
int link_tick (link_t *self);

#endif
