/*  client/zmtp.h: one CURVE-secured ZeroMQ DEALER connection to the broker's ROUTER, spoken
    on a plain socket (ZMTP 3.0, CurveZMQ), for the CLI and the approver; see zmtp.c. One
    caller thread. */
#ifndef RG_ZMTP_H
#define RG_ZMTP_H
#include <poll.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _zmtp_t zmtp_t;

//  Starts connecting to endpoint (tcp://HOST:PORT, tcp://[IPV6]:PORT or ipc://PATH) as the
//  client key pair (public_key, secret_key) to the server whose public key is server_key
//  (32 bytes each, copied). NULL if the endpoint is not one of those.
zmtp_t *zmtp_new (const char *endpoint, const uint8_t public_key[32],
                  const uint8_t secret_key[32], const uint8_t server_key[32]);
void zmtp_destroy (zmtp_t **self_p);

//  Queues one single-frame message (copied); it goes out, in order, once the connection is
//  up, over a new connection if this one is lost before it is sealed. 0, or -1 (no memory).
int zmtp_send (zmtp_t *self, const void *data, size_t size);

//  The next message from the server (caller frees; its size in *size), waiting up to
//  timeout_ms (0: only what is there now; -1: no limit). NULL on timeout, on a signal, or
//  as soon as wake_fd (if >= 0) is readable. Each call moves the connection along:
//  connecting, reconnecting, the handshake, writing what is queued.
uint8_t *zmtp_recv (zmtp_t *self, int timeout_ms, int wake_fd, size_t *size);

//  For a caller that polls other descriptors too: fills pfd with what to wait for (fd -1
//  while a reconnect waits) and returns the longest it may wait (ms, -1: no limit) before it
//  calls zmtp_recv (with timeout 0) again.
int zmtp_poll_item (zmtp_t *self, struct pollfd *pfd);

//  How many connections have completed their handshake so far.
uint64_t zmtp_opened (zmtp_t *self);

//  Why the last connection ended, or NULL if none has.
const char *zmtp_why (zmtp_t *self);

int zmtp_test (void);
#endif
