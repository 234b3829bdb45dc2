/*  tests/fuzz/certfile.c: libFuzzer target for common/certfile.c's reader of cert files (a
    path the CLI is given may hold anything): each key it returns is empty or 40 characters
    of the line that held it. */
#define _GNU_SOURCE
#include "common/certfile.h"
#include "tests/fuzz/common.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char pub[41], sec[41];
    certfile_parse ((const char *) data, size, pub, sec);
    size_t p = strlen (pub), s = strlen (sec);
    if ((p != 0 && p != 40) || (s != 0 && s != 40))
        abort ();
    if ((p && !memmem (data, size, pub, 40)) || (s && !memmem (data, size, sec, 40)))
        abort ();
    return 0;
}
