/*  worker/wire.h: the typed messages between the worker's two processes (see front.h): the
    unprivileged front, which speaks ZeroMQ and JSON to the broker, and the privileged back,
    which owns the sessions, the sandboxes and the secrets. They share one AF_UNIX
    SOCK_SEQPACKET socketpair.

    A message is an 8-byte header (type, three zero bytes, the body's length as a u32) and
    its body; both ends are this program, so integers are in host order. A message longer
    than WIRE_CHUNK goes as several datagrams: the first with the header, the rest plain
    continuations, never interleaved with another message. Bodies:

      RUN     front -> back   i64 id, eight i64 limits (timeout_ms, output_bytes, memory_mb,
                              pids, tmp_mb, cpu_milli, egress_connections, egress_bytes),
                              i64 flags (1: stream its output; no other bit may be set),
                              then owner, session, lang, code, grant: each a u32 length,
                              the bytes and a NUL (only code may hold NULs; grant is empty
                              or well-formed grant text, grant.h)
      CLOSE   front -> back   owner, session, lang, as in RUN
      INTERRUPT front -> back i64 id, then owner, session, lang: SIGINT into that run
      STATE   front -> back   empty: "send me a ready frame" (after announce or a reconnect)
      STOP    front -> back   empty: the broker drained us and --exit-when-drained: stop cleanly
      READY, RESULT, CLOSED, OUTPUT   back -> front: the body is a finished JSON frame
                              (`ready`, `result` already masked, `session_closed`, `output`
                              already masked) to forward as it is

    The decoders are pure and never trust their bytes: every length is checked against the
    datagram or message that carries it. The back treats any message it cannot decode as
    the front being compromised (front.h says what follows). */
#ifndef RG_WIRE_H
#define RG_WIRE_H
#include "common/buf.h"
#include "worker/session.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_HEADER 8
#define WIRE_CHUNK (64 << 10)       //  bytes per datagram past the header; the default socket
                                    //  buffer (208 KiB) takes one whole
#define WIRE_MAX_CODE (64 << 20)    //  PROTO_MAX_WIRE: no broker frame, so no code, is longer
#define WIRE_MAX (WIRE_MAX_CODE + 4096)    //  largest body: code and the rest of a RUN
#define WIRE_MAX_NAME 256           //  owner, session and lang

typedef enum {
    WIRE_RUN = 1,
    WIRE_CLOSE = 2,
    WIRE_STATE = 3,
    WIRE_INTERRUPT = 4,
    WIRE_STOP = 5,
    WIRE_READY = 16,
    WIRE_RESULT = 17,
    WIRE_CLOSED = 18,
    WIRE_OUTPUT = 19
} wire_type_t;

//  One decoded message. Its pointers point into the bytes it was decoded from; strings are
//  NUL-terminated there.
typedef struct {
    wire_type_t type;
    int64_t id;                     //  RUN, INTERRUPT
    session_limits_t limits;        //  RUN
    const char *owner;              //  RUN, CLOSE, INTERRUPT
    const char *session;
    const char *lang;
    const char *code;               //  RUN: code_len bytes, a NUL after them
    size_t code_len;
    const char *grant;              //  RUN: the network grant (grant.h), grant_len bytes; 0: none
    size_t grant_len;
    const char *frame;              //  READY, RESULT, CLOSED, OUTPUT: frame_len bytes of JSON
    size_t frame_len;
} wire_msg_t;

//  Appends msg, header and body, to out. 0, or -1 if a field is missing or too long (nothing
//  appended) or out of memory.
int wire_encode (const wire_msg_t *msg, buf_t *out);
//  Decodes one whole message (header and body) of len bytes. 0, or -1 with *why naming the
//  defect (static text).
int wire_decode (const char *data, size_t len, wire_msg_t *msg, const char **why);

//  Reassembles messages from datagrams. Zero it to start; wire_rx_free to end.
typedef struct {
    buf_t buf;                      //  the message so far, header included
    size_t want;                    //  its whole length once the header came; 0 between messages
} wire_rx_t;

//  Takes one datagram: 1 when a message is complete (rx->buf holds it; the next feed starts
//  afresh), 0 when more datagrams must follow, -1 with *why when the datagram cannot be part
//  of a well-formed message (empty, header short or with an unknown type, a body over
//  WIRE_MAX, or any size but the one the sender's cutting gives: a first datagram of
//  WIRE_HEADER + WIRE_CHUNK bytes or the whole message if shorter, then WIRE_CHUNK bytes or
//  the rest).
int wire_rx_feed (wire_rx_t *rx, const char *data, size_t len, const char **why);
void wire_rx_free (wire_rx_t *rx);

//  --------------------------------------------------------------------------
//  One end of the socketpair: a non-blocking descriptor with its queues. Sends never block
//  (a message that does not fit waits in the queue for wire_flush), so neither process can
//  wedge the other by not reading.

typedef struct _wire_t wire_t;

//  Takes fd (made non-blocking; closed by wire_destroy). NULL out of memory.
wire_t *wire_new (int fd);
void wire_destroy (wire_t **self_p);
int wire_fd (wire_t *self);
//  True while queued bytes wait for the socket to take them (poll for POLLOUT).
bool wire_pending (wire_t *self);

//  Queues msg and sends what the socket takes now. 0, or -1 (logged) if the peer is gone,
//  the message cannot be encoded or the queue is over WIRE_QUEUE_MAX.
#define WIRE_QUEUE_MAX (256LL << 20)
int wire_send (wire_t *self, const wire_msg_t *msg);
//  Sends what the socket takes now. 0, or -1 if the peer is gone.
int wire_flush (wire_t *self);

typedef enum {
    WIRE_NONE = 0,                  //  nothing complete yet
    WIRE_MESSAGE = 1,               //  *msg is valid until the next wire_recv
    WIRE_EOF = -1,                  //  the peer closed its end (or an error: logged)
    WIRE_BAD = -2                   //  malformed: *why says how
} wire_status_t;
wire_status_t wire_recv (wire_t *self, wire_msg_t *msg, const char **why);

int wire_test (void);
#endif
