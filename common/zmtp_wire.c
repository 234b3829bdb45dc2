/*  common/zmtp_wire.c: ZMTP 3.0's byte formats for a CURVE client (see zmtp_wire.h). */
#include "common/zmtp_wire.h"
#include "common/check.h"
#include <string.h>
#include <strings.h>

#define FLAG_MORE    0x01
#define FLAG_LONG    0x02
#define FLAG_COMMAND 0x04

void
zmtp_put_be (uint8_t *out, uint64_t value, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, value >>= 8)
        out[i] = (uint8_t) (value & 0xFF);
}

uint64_t
zmtp_get_be (const uint8_t *in, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value = value << 8 | in[i];
    return value;
}

void
zmtp_greeting (uint8_t out[ZMTP_GREETING])
{
    memset (out, 0, ZMTP_GREETING);
    out[0] = 0xFF;              //  signature: 0xFF, 8 bytes of padding, 0x7F
    out[8] = 1;                 //  (the padding a ZMTP 1.0 peer reads as a length)
    out[9] = 0x7F;
    out[10] = 3;                //  version 3.0
    out[11] = 0;
    memcpy (out + 12, "CURVE", 5);
    //  as-server 0 (we are the client) and the filler: all zero
}

int
zmtp_greeting_check (const uint8_t in[ZMTP_GREETING])
{
    static const uint8_t curve[20] = "CURVE";
    if (in[0] != 0xFF || !(in[9] & 1) || in[10] < 3)
        return -1;
    return memcmp (in + 12, curve, sizeof curve) == 0 ? 0 : -1;
}

long
zmtp_frame_decode (const uint8_t *buf, size_t len, size_t max, zmtp_frame_t *frame)
{
    if (len < 1)
        return 0;
    uint8_t flags = buf[0];
    if (flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND))
        return -1;
    size_t header = flags & FLAG_LONG ? 9 : 2;
    if (len < header)
        return 0;
    uint64_t size = flags & FLAG_LONG ? zmtp_get_be (buf + 1, 8) : buf[1];
    if (size > max)
        return -1;
    if (len - header < size)
        return 0;
    frame->more = flags & FLAG_MORE;
    frame->command = flags & FLAG_COMMAND;
    frame->body = buf + header;
    frame->size = (size_t) size;
    return (long) (header + size);
}

size_t
zmtp_frame_header (uint8_t out[ZMTP_HEADER_MAX], bool more, bool command, size_t size)
{
    out[0] = (uint8_t) ((more ? FLAG_MORE : 0) | (command ? FLAG_COMMAND : 0));
    if (size <= 255) {
        out[1] = (uint8_t) size;
        return 2;
    }
    out[0] |= FLAG_LONG;
    zmtp_put_be (out + 1, size, 8);
    return 9;
}

bool
zmtp_named (const uint8_t *body, size_t size, const char *name, const uint8_t **data,
            size_t *data_size)
{
    size_t n = strlen (name);
    if (size < 1 + n || body[0] != n || memcmp (body + 1, name, n) != 0)
        return false;
    *data = body + 1 + n;
    *data_size = size - 1 - n;
    return true;
}

int
zmtp_property (const uint8_t *list, size_t size, const char *name, const uint8_t **value,
               size_t *value_size)
{
    size_t at = 0, want = strlen (name);
    while (at < size) {
        size_t n = list[at];
        if (n == 0 || size - at < 1 + n + 4)
            return -1;
        const uint8_t *key = list + at + 1;
        uint64_t v = zmtp_get_be (key + n, 4);
        at += 1 + n + 4;
        if (v > size - at)
            return -1;
        if (n == want && strncasecmp ((const char *) key, name, n) == 0) {
            *value = list + at;
            *value_size = v;
            return 0;
        }
        at += v;
    }
    return 1;
}

size_t
zmtp_property_put (uint8_t *out, const char *name, const char *value)
{
    size_t n = strlen (name), v = strlen (value);
    out[0] = (uint8_t) n;
    memcpy (out + 1, name, n);
    zmtp_put_be (out + 1 + n, v, 4);
    memcpy (out + 1 + n + 4, value, v);
    return 1 + n + 4 + v;
}

int
zmtp_z85_decode (const char *text, uint8_t out[32])
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 ".-:+=^!/*?&<>()[]{}@%$#";
    if (!text || strlen (text) != 40)
        return -1;
    for (int block = 0; block < 8; block++) {
        uint64_t value = 0;
        for (int i = 0; i < 5; i++) {
            const char *d = text[block * 5 + i] ? strchr (digits, text[block * 5 + i]) : NULL;
            if (!d)
                return -1;
            value = value * 85 + (uint64_t) (d - digits);
        }
        if (value > 0xFFFFFFFFu)
            return -1;
        for (int i = 3; i >= 0; i--, value >>= 8)
            out[block * 4 + i] = (uint8_t) (value & 0xFF);
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Self-test

int
zmtp_wire_test (void)
{
    //  The server public key of RFC 26's example, in Z85 and in hex.
    uint8_t key[32];
    static const uint8_t want[32] = {
        0x54, 0xFC, 0xBA, 0x24, 0xE9, 0x32, 0x49, 0x96, 0x93, 0x16, 0xFB, 0x61, 0x7C, 0x87, 0x2B, 0xB0,
        0xC1, 0xD1, 0xFF, 0x14, 0x80, 0x04, 0x27, 0xC5, 0x94, 0xCB, 0xFA, 0xCF, 0x1B, 0xC2, 0xD6, 0x52 };
    CHECK (zmtp_z85_decode ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", key) == 0);
    CHECK (memcmp (key, want, sizeof want) == 0);
    CHECK (zmtp_z85_decode ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf", key) == -1);
    CHECK (zmtp_z85_decode ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7x", key) == -1);
    CHECK (zmtp_z85_decode ("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y~7", key) == -1);
    CHECK (zmtp_z85_decode ("%%%%%rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H", key) == -1);   //  > 2^32

    uint8_t be[8];
    zmtp_put_be (be, 0x0102030405060708ULL, 8);
    CHECK (be[0] == 1 && be[7] == 8 && zmtp_get_be (be, 8) == 0x0102030405060708ULL);
    zmtp_put_be (be, 0xA1B2C3D4, 4);
    CHECK (be[0] == 0xA1 && be[3] == 0xD4 && zmtp_get_be (be, 4) == 0xA1B2C3D4);

    uint8_t g[ZMTP_GREETING];
    zmtp_greeting (g);
    CHECK (zmtp_greeting_check (g) == 0);
    g[12] = 'N';
    CHECK (zmtp_greeting_check (g) == -1);
    zmtp_greeting (g);
    g[10] = 2;
    CHECK (zmtp_greeting_check (g) == -1);

    uint8_t buf[300], header[ZMTP_HEADER_MAX];
    zmtp_frame_t f;
    CHECK (zmtp_frame_header (header, false, true, 5) == 2 && header[0] == 0x04 && header[1] == 5);
    CHECK (zmtp_frame_header (header, true, false, 256) == 9 && header[0] == 0x03);
    CHECK (header[7] == 1 && header[8] == 0);
    memcpy (buf, "\x04\x05\x05HELLO", 7);
    CHECK (zmtp_frame_decode (buf, 7, 100, &f) == 7 && f.command && !f.more && f.size == 5);
    CHECK (zmtp_frame_decode (buf, 6, 100, &f) == 0);
    CHECK (zmtp_frame_decode (buf, 7, 4, &f) == -1);
    buf[0] = 0x08;
    CHECK (zmtp_frame_decode (buf, 7, 100, &f) == -1);
    memcpy (buf, "\x02\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    CHECK (zmtp_frame_decode (buf, 9, 1 << 20, &f) == -1);
    CHECK (zmtp_frame_decode (buf, 5, 1 << 20, &f) == 0);

    const uint8_t *data;
    size_t size;
    CHECK (zmtp_named ((const uint8_t *) "\x05READYxyz", 9, "READY", &data, &size) && size == 3);
    CHECK (!zmtp_named ((const uint8_t *) "\x05READ", 5, "READY", &data, &size));
    CHECK (!zmtp_named ((const uint8_t *) "\x04READY", 6, "READY", &data, &size));

    size_t n = zmtp_property_put (buf, "Socket-Type", "ROUTER");
    n += zmtp_property_put (buf + n, "X-Empty", "");
    CHECK (zmtp_property (buf, n, "socket-type", &data, &size) == 0 && size == 6
           && memcmp (data, "ROUTER", 6) == 0);
    CHECK (zmtp_property (buf, n, "X-Empty", &data, &size) == 0 && size == 0);
    CHECK (zmtp_property (buf, n, "Identity", &data, &size) == 1);
    CHECK (zmtp_property (buf, n - 1, "Identity", &data, &size) == -1);      //  cut short
    buf[22] = 0;                //  the second name's length (the first property is 22 bytes)
    CHECK (zmtp_property (buf, n, "Identity", &data, &size) == -1);           //  empty name
    return 0;
}
