/*  tests/fuzz/proxy.c: libFuzzer target for the egress proxy's request-head reader
    (worker/proxy_head.h), which reads whatever a sandboxed snippet sends its proxy. A head
    that parses has its fields inside their bounds and rewrites into a head that parses
    again to the same destination; a refusal always has a status and a reason. */
#include "worker/proxy_head.h"
#include "tests/fuzz/common.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *copy = malloc (size ? size : 1);
    if (!copy)
        return 0;
    memcpy (copy, data, size);
    proxy_head_t head, again;
    int status = 0;
    const char *why = NULL;
    int rc = proxy_head_parse (copy, size, &head, &status, &why);
    if (rc < 0 && (!why || !*why || (status != 400 && status != 431)))
        abort ();
    if (rc == 1) {
        if (head.head_len > size || head.head_len > PROXY_HEAD_MAX || head.port < 1
        ||  head.port > 65535 || strlen (head.host) > PROXY_HOST_MAX || !head.host [0]
        ||  head.path_off + head.path_len > head.head_len)
            abort ();
        if (!head.tunnel) {
            static char out [PROXY_FORWARD_MAX];
            ssize_t n = proxy_head_forward (copy, &head, out, sizeof out);
            if (n < 0)
                abort ();
            //  The origin-form head is no proxy request: it must not parse as one.
            if (proxy_head_parse (out, (size_t) n, &again, &status, &why) == 1)
                abort ();
        }
    }
    free (copy);
    return 0;
}
