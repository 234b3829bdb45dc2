/*  tests/fuzz/zmtp.c: libFuzzer target for what common/zmtp_wire.c reads from a server, which
    may be anyone on the network: a greeting, then frames, each read as a command name and a
    metadata list; and a Z85 key as a key file could hold it. Every frame decoded must lie
    inside the input and move the reader on. */
#include "common/zmtp_wire.h"
#include "tests/fuzz/common.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char z85[41];
    size_t n = size < 40 ? size : 40;
    memcpy (z85, data, n);
    z85[n] = 0;
    uint8_t key[32];
    zmtp_z85_decode (z85, key);
    if (size < ZMTP_GREETING)
        return 0;
    zmtp_greeting_check (data);
    size_t at = ZMTP_GREETING;
    zmtp_frame_t f;
    long took;
    while ((took = zmtp_frame_decode (data + at, size - at, 1 << 20, &f)) > 0) {
        if ((size_t) took > size - at || f.body < data + at || f.body + f.size > data + at + took)
            abort ();
        const uint8_t *rest, *value;
        size_t rest_size, value_size;
        const char *names[] = { "WELCOME", "READY", "MESSAGE", "ERROR" };
        for (size_t i = 0; i < 4; i++)
            if (zmtp_named (f.body, f.size, names[i], &rest, &rest_size)
            &&  (rest < f.body || rest + rest_size != f.body + f.size))
                abort ();
        if (zmtp_property (f.body, f.size, "Socket-Type", &value, &value_size) == 0
        &&  (value < f.body || value + value_size > f.body + f.size))
            abort ();
        at += (size_t) took;
    }
    return 0;
}
