/*  common/zmtp.h: one CURVE-secured ZeroMQ DEALER connection to the broker's ROUTER, spoken
    on a plain socket (ZMTP 3.0, CurveZMQ), for the CLI, the approver and the worker's front;
    see zmtp.c. One caller thread. */
#ifndef RG_ZMTP_H
#define RG_ZMTP_H
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _zmtp_t zmtp_t;

//  Who a client is and whom it talks to (common/certfile.h reads them from cert files).
typedef struct {
    uint8_t public_key[32], secret_key[32];     //  the client's long-term pair
    uint8_t server_key[32];                     //  the broker's public key
} zmtp_keys_t;

//  Starts connecting to endpoint (tcp://HOST:PORT, tcp://[IPV6]:PORT or ipc://PATH) with
//  keys (copied). NULL if the endpoint is not one of those.
zmtp_t *zmtp_new (const char *endpoint, const zmtp_keys_t *keys);
void zmtp_destroy (zmtp_t **self_p);

//  Queues one single-frame message (copied); it goes out, in order, at the next zmtp_recv
//  once the connection is up (so what a caller sends in one turn leaves in one write), over
//  a new connection if this one is lost before it is sealed. 0, or -1 (no memory).
int zmtp_send (zmtp_t *self, const void *data, size_t size);

//  The next message from the server (caller frees; its size in *size), waiting up to
//  timeout_ms (0: only what is there now; -1: no limit). NULL on timeout, on a signal, as
//  soon as wake_fd (if >= 0) is readable, or, while zmtp_break_on_open is on, once a new
//  connection has completed its handshake. Each call moves the connection along:
//  connecting, reconnecting, the handshake, writing what is queued.
uint8_t *zmtp_recv (zmtp_t *self, int timeout_ms, int wake_fd, size_t *size);

//  For a caller that sends something again on each new connection (see zmtp_opened): on,
//  zmtp_recv also returns when one opens, so that it can wait in one piece.
void zmtp_break_on_open (zmtp_t *self, bool on);

//  For a caller that polls other descriptors too, each turn of its loop: zmtp_poll_item
//  fills pfd with what to wait for (fd -1 while a reconnect waits) and returns the longest
//  it may wait (ms, -1: no limit); after its poll(2), zmtp_handle moves the connection on
//  what pfd.revents says (and on its timers, and writes what was queued since), once a
//  turn, whatever poll returned; zmtp_take then pops what arrived, without a system call.
int zmtp_poll_item (zmtp_t *self, struct pollfd *pfd);
void zmtp_handle (zmtp_t *self, short revents);
//  The next message already read (caller frees; its size in *size), or NULL.
uint8_t *zmtp_take (zmtp_t *self, size_t *size);

//  Ends the connection and drops what waits to be sent; a new connection starts at once.
//  For a caller that holds a quiet connection dead (one whose peer vanished may look open
//  for minutes) and starts over on the next.
void zmtp_restart (zmtp_t *self);

//  How many connections have completed their handshake so far.
uint64_t zmtp_opened (zmtp_t *self);

//  How many connections (or attempts at one) have ended so far.
uint64_t zmtp_ended (zmtp_t *self);

//  Why the last connection ended, or NULL if none has.
const char *zmtp_why (zmtp_t *self);

//  True if the last connection ended because the broker refused our key (it sent ERROR).
bool zmtp_refused (zmtp_t *self);

int zmtp_test (void);
#endif
