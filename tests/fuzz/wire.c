/*  tests/fuzz/wire.c: libFuzzer target for the decoders of the worker's socketpair (wire.h),
    which the privileged back runs over whatever its exposed front sends: the input decoded
    whole, and cut into datagrams (each prefixed by a 2-byte length) fed to the reassembler.
    A message that decodes has every pointer inside the bytes it came from. */
#include "worker/wire.h"
#include "worker/grant.h"
#include "tests/fuzz/common.h"
#include <stdlib.h>
#include <string.h>

static void
s_check (const char *data, size_t size)
{
    wire_msg_t msg;
    const char *why = NULL;
    if (wire_decode (data, size, &msg, &why) != 0) {
        if (!why || !*why)
            abort ();
        return;
    }
    const char *p [] = { msg.owner, msg.session, msg.lang, msg.code, msg.frame };
    for (int i = 0; i < 5; i++)
        if (p [i] && (p [i] < data || p [i] > data + size))
            abort ();
    if (msg.code && (msg.code + msg.code_len >= data + size || msg.code [msg.code_len]))
        abort ();
    if (msg.frame && msg.frame + msg.frame_len != data + size)
        abort ();
    //  A grant that decodes is NUL-terminated inside the message and well-formed.
    if (msg.grant && (msg.grant < data || msg.grant + msg.grant_len >= data + size
                      || msg.grant [msg.grant_len] || (msg.grant_len && !grant_valid (msg.grant, msg.grant_len))))
        abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *copy = malloc (size ? size : 1);
    if (!copy)
        return 0;
    memcpy (copy, data, size);
    s_check (copy, size);
    wire_rx_t rx = { { NULL, 0, 0 }, 0 };
    for (size_t at = 0; at + 2 <= size; ) {
        size_t len = (size_t) data [at] | (size_t) data [at + 1] << 8;
        at += 2;
        if (len > size - at)
            len = size - at;
        const char *why = NULL;
        int rc = wire_rx_feed (&rx, copy + at, len, &why);
        if (rc == 1)
            s_check (rx.buf.data, rx.buf.len);
        else
        if (rc < 0 && (!why || !*why))
            abort ();
        at += len;
    }
    wire_rx_free (&rx);
    free (copy);
    return 0;
}
