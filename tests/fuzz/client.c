/*  tests/fuzz/client.c: libFuzzer target for the reader of client frames (proto_parse_client).
    Any bytes either parse into a message the broker may act on, or fail with an error code
    from the documented set and a reply that is valid JSON: never a crash, a leak, or an
    error without a code. Seeds: tests/corpus/frames/{client,admin}. */
#include "common/proto.h"
#include "tests/fuzz/common.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *s_codes[] = { PROTO_E_TOO_LARGE, PROTO_E_BAD_UTF8, PROTO_E_BAD_JSON,
    PROTO_E_NOT_OBJECT, PROTO_E_UNKNOWN_OP, PROTO_E_UNKNOWN_KEY, PROTO_E_MISSING,
    PROTO_E_BAD_TYPE, PROTO_E_BAD_VALUE, NULL };

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    json_t *msg = NULL, *rid = NULL;
    proto_error_t err;
    if (proto_parse_client (data, size, &msg, &rid, &err) == 0) {
        if (!json_is_string (json_object_get (msg, "op")))
            abort ();
        json_decref (msg);
    }
    else {
        bool known = false;
        for (size_t i = 0; s_codes[i]; i++)
            known = known || strcmp (err.code, s_codes[i]) == 0;
        char *reply = proto_reply_error (rid, err.code, err.message);
        json_t *back = reply ? json_loads (reply, 0, NULL) : NULL;
        if (!known || !back || !json_is_object (json_object_get (back, "error")))
            abort ();       //  every refusal must reach the client with a stable code
        json_decref (back);
        free (reply);
    }
    json_decref (rid);
    return 0;
}
