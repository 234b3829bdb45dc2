/*  tests/fuzz/claim.c: libFuzzer target for the claim decoder, which runs in a freshly
    cloned sandbox child and must never trust its bytes: a claim that decodes has a
    NUL-terminated argv of at most CLAIM_ARGS strings, all inside the buffer. */
#include "worker/claim.h"
#include "tests/fuzz/common.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size > CLAIM_MAX)
        return 0;
    char *buf = malloc (size ? size : 1);
    if (!buf)
        return 0;
    memcpy (buf, data, size);
    claim_t claim;
    if (claim_decode (buf, size, &claim) == 0) {
        int n = 0;
        while (n <= CLAIM_ARGS && claim.argv[n]) {
            if (claim.argv[n] < buf || claim.argv[n] >= buf + size)
                abort ();
            n++;
        }
        if (n == 0 || n > CLAIM_ARGS || !claim.scratch_opts)
            abort ();
    }
    free (buf);
    return 0;
}
