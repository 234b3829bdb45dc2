/*  common/zmtp_wire.h: the byte formats of ZMTP 3.0 (RFC 23) that a CURVE client reads and
    writes: greetings, frames, command names, metadata properties, and Z85 keys (RFC 32).
    Pure functions over caller's bytes, no allocation; they never assert on input, and a
    fuzz target (tests/fuzz) feeds them what a hostile server could send. zmtp.c is the
    connection that uses them. */
#ifndef RG_ZMTP_WIRE_H
#define RG_ZMTP_WIRE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZMTP_GREETING 64        //  bytes of a greeting, each way
#define ZMTP_HEADER_MAX 9       //  the longest frame header: flags and an 8-byte size

typedef struct {
    bool more;                  //  another frame of the same message follows
    bool command;
    const uint8_t *body;        //  points into the decoded bytes
    size_t size;
} zmtp_frame_t;

//  A big-endian unsigned integer of `bytes` bytes (1 to 8): how ZMTP writes sizes and
//  CurveZMQ its short nonces.
void zmtp_put_be (uint8_t *out, uint64_t value, int bytes);
uint64_t zmtp_get_be (const uint8_t *in, int bytes);

//  Our greeting as a CURVE client of ZMTP 3.0.
void zmtp_greeting (uint8_t out[ZMTP_GREETING]);

//  0 if in is the greeting of a ZMTP 3.x peer that speaks CURVE; -1 otherwise.
int zmtp_greeting_check (const uint8_t in[ZMTP_GREETING]);

//  Decodes the frame that starts buf: the bytes it took (header and body), 0 if buf holds
//  only part of it, -1 if it is malformed (a reserved flag set) or its body is over max.
long zmtp_frame_decode (const uint8_t *buf, size_t len, size_t max, zmtp_frame_t *frame);

//  Writes the header of a frame of `size` bytes into out: its length (2 or 9).
size_t zmtp_frame_header (uint8_t out[ZMTP_HEADER_MAX], bool more, bool command, size_t size);

//  True if body (a command, or a CURVE MESSAGE) is named `name`: *data and *size are then
//  what follows the name.
bool zmtp_named (const uint8_t *body, size_t size, const char *name, const uint8_t **data,
                 size_t *data_size);

//  Looks up property `name` (ASCII, case-insensitive as RFC 23 says) in a metadata list:
//  0 found (*value, *value_size), 1 absent, -1 the list is malformed.
int zmtp_property (const uint8_t *list, size_t size, const char *name, const uint8_t **value,
                   size_t *value_size);

//  Writes one property into out (room for 1 + name + 4 + value bytes): the bytes written.
size_t zmtp_property_put (uint8_t *out, const char *name, const char *value);

//  Decodes a 40-character Z85 key into 32 bytes: 0, or -1 if it is not exactly that.
int zmtp_z85_decode (const char *text, uint8_t out[32]);

int zmtp_wire_test (void);
#endif
