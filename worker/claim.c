/*  worker/claim.c: the claim record a prepared sandbox waits for (see claim.h). */
#include "worker/claim.h"
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

ssize_t
claim_encode (char *buf, size_t size, uint64_t file_bytes, const char *scratch_opts,
              char *const argv [])
{
    if (!argv || !argv [0])
        return -1;
    size_t need = 4 + sizeof file_bytes + strlen (scratch_opts) + 1;
    size_t argc = 0;
    for (; argv [argc]; argc++)
        need += strlen (argv [argc]) + 1;
    if (argc > CLAIM_ARGS || need > size || need - 4 > CLAIM_MAX)
        return -1;
    uint32_t body = (uint32_t) (need - 4);
    memcpy (buf, &body, 4);
    memcpy (buf + 4, &file_bytes, sizeof file_bytes);
    char *p = buf + 4 + sizeof file_bytes;
    size_t len = strlen (scratch_opts) + 1;
    memcpy (p, scratch_opts, len);
    p += len;
    for (size_t i = 0; i < argc; i++) {
        len = strlen (argv [i]) + 1;
        memcpy (p, argv [i], len);
        p += len;
    }
    return (ssize_t) need;
}

//  Moves exactly len bytes between fd and buf, across partial transfers; 0, or -1 (end of
//  file counts as failure).
static int
s_transfer (int fd, char *buf, size_t len, bool writing)
{
    while (len) {
        ssize_t n = writing ? write (fd, buf, len) : read (fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t) n;
    }
    return 0;
}

int
claim_write (int fd, const char *buf, size_t len)
{
    return s_transfer (fd, (char *) buf, len, true);
}

ssize_t
claim_read (int fd, char *buf, size_t size)
{
    uint32_t body;
    if (s_transfer (fd, (char *) &body, sizeof body, false) < 0)
        return -1;
    if (body > size || body > CLAIM_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    return s_transfer (fd, buf, body, false) < 0 ? -1 : (ssize_t) body;
}

int
claim_decode (char *buf, size_t len, claim_t *claim)
{
    memset (claim, 0, sizeof *claim);
    if (len < sizeof claim->file_bytes + 2 || buf [len - 1] != 0)
        return -1;              //  too short for the options and one argument
    memcpy (&claim->file_bytes, buf, sizeof claim->file_bytes);
    char *p = buf + sizeof claim->file_bytes, *end = buf + len;
    claim->scratch_opts = p;
    p += strlen (p) + 1;        //  stops at the final NUL at the latest
    size_t argc = 0;
    while (p < end) {
        if (argc == CLAIM_ARGS)
            return -1;
        claim->argv [argc++] = p;
        p += strlen (p) + 1;
    }
    claim->argv [argc] = NULL;
    return argc ? 0 : -1;
}

//  --------------------------------------------------------------------------

#include "common/check.h"
#include <stdlib.h>

int
claim_test (void)
{
    char buf [512], body [512];
    char *argv [] = { "replgate-init", "5", "/usr/bin/python3", "-c", "", NULL };
    ssize_t n = claim_encode (buf, sizeof buf, 64 << 20, "size=64m", argv);
    CHECK (n > 4);
    int p [2];
    CHECK (pipe (p) == 0);
    CHECK (claim_write (p [1], buf, (size_t) n) == 0);
    ssize_t len = claim_read (p [0], body, sizeof body);
    CHECK (len == n - 4);
    claim_t c;
    CHECK (claim_decode (body, (size_t) len, &c) == 0);
    CHECK (c.file_bytes == 64 << 20 && strcmp (c.scratch_opts, "size=64m") == 0);
    CHECK (strcmp (c.argv [2], "/usr/bin/python3") == 0 && strcmp (c.argv [4], "") == 0);
    CHECK (c.argv [5] == NULL);
    //  End of file before and inside a record: the child must give up, not wait or run.
    CHECK (claim_write (p [1], buf, 6) == 0);
    close (p [1]);
    CHECK (claim_read (p [0], body, sizeof body) == -1);
    CHECK (claim_read (p [0], body, sizeof body) == -1);
    close (p [0]);
    //  Refused encodings: no argv, too many arguments, too small a buffer.
    char *none [] = { NULL };
    CHECK (claim_encode (buf, sizeof buf, 0, "", none) == -1);
    char *many [CLAIM_ARGS + 2];
    for (int i = 0; i < CLAIM_ARGS + 1; i++)
        many [i] = "x";
    many [CLAIM_ARGS + 1] = NULL;
    CHECK (claim_encode (buf, sizeof buf, 0, "", many) == -1);
    CHECK (claim_encode (buf, 20, 0, "size=64m", argv) == -1);
    //  Malformed bodies: short, unterminated, options only, too many arguments.
    CHECK (claim_decode (body, 3, &c) == -1);
    memset (body, 'a', 20);
    CHECK (claim_decode (body, 20, &c) == -1);
    memset (body, 0, 10);
    CHECK (claim_decode (body, 9, &c) == -1);
    memset (body, 0, sizeof body);
    CHECK (claim_decode (body, 8 + 1 + CLAIM_ARGS + 1, &c) == -1);
    CHECK (claim_decode (body, 8 + 1 + CLAIM_ARGS, &c) == 0 && c.argv [CLAIM_ARGS - 1]);
    //  Random bodies never crash and never yield an argument past the end.
    srand (7);
    int outside = 0, decoded = 0;
    for (int round = 0; round < 20000; round++) {
        size_t blen = (size_t) (rand () % 64);
        for (size_t i = 0; i < blen; i++)
            body [i] = (char) (rand () % 4 ? rand () % 3 : 0);
        if (claim_decode (body, blen, &c) == 0) {
            decoded++;
            for (int i = 0; c.argv [i]; i++)
                outside += c.argv [i] < body || c.argv [i] >= body + blen;
        }
    }
    CHECK (decoded > 0 && outside == 0);
    return 0;
}
