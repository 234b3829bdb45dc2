/*  tests/fuzz/worker.c: libFuzzer target for both readers of the worker link: what a worker
    sends the broker (proto_parse_worker: ready, heartbeat, result, session_closed) and what
    the broker sends a worker (proto_parse_broker: run, close, heartbeat, announce). A frame
    that parses has a string op; anything else fails with an error code. Seeds:
    tests/corpus/frames/worker. */
#include "common/proto.h"
#include "tests/fuzz/common.h"
#include <jansson.h>
#include <stdlib.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    json_t *msg = NULL;
    proto_error_t err;
    if (proto_parse_worker (data, size, &msg, &err) == 0) {
        if (!json_is_string (json_object_get (msg, "op")))
            abort ();
        json_decref (msg);
    }
    else if (!err.code || !*err.code)
        abort ();
    msg = NULL;
    if (proto_parse_broker (data, size, &msg, &err) == 0) {
        if (!json_is_string (json_object_get (msg, "op")))
            abort ();
        json_decref (msg);
    }
    else if (!err.code || !*err.code)
        abort ();
    return 0;
}
