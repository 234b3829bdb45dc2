/*  worker/link.h: the worker's connection to the broker: a CURVE DEALER connection carrying
    one JSON object per frame, heartbeats every second, and a fresh connection when the broker
    has been silent for three seconds (the caller then announces itself again with `ready`).
    No libzmq: common/zmtp.c speaks the wire protocol in the caller's thread. */
#ifndef RG_LINK_H
#define RG_LINK_H
#include "common/zmtp.h"
#include <jansson.h>
#include <poll.h>
#include <stdint.h>


typedef struct _link_t link_t;

//  keys (the worker's pair and the broker's public key) are copied. NULL (logged) if the
//  endpoint is not valid.
link_t *link_new (const char *endpoint, const zmtp_keys_t *keys);
void link_destroy (link_t **self_p);

//  What to give poll(2) (the descriptor changes on reconnect), and the longest the caller
//  may wait (ms, -1: no limit); after the poll, link_handle with what it said, once a turn
//  (see zmtp_poll_item and zmtp_handle).
int link_poll_item (link_t *self, struct pollfd *pfd);
void link_handle (link_t *self, short revents);

//  Sends one message without blocking and destroys it (also on failure). 0 or -1.
int link_send (link_t *self, json_t **msg_p);
//  Sends one frame already encoded (len bytes of JSON) without blocking. 0 or -1.
int link_send_text (link_t *self, const char *text, size_t len);

//  The next message link_handle read: 1 with *msg_p set (caller owns it), 0 if none is
//  waiting, -1 if one arrived but was not a JSON object (logged, already dropped).
int link_recv (link_t *self, json_t **msg_p);

//  Monotonic ms when link_tick() must next run.
int64_t link_deadline_ms (link_t *self);

//  Sends a heartbeat when due and reconnects after PROTO_SILENCE_MS of silence. Returns 1
//  when it started a new connection (send `ready` now), else 0.
int link_tick (link_t *self);

#endif
