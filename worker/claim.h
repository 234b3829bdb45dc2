/*  worker/claim.h: the claim record. A sandbox is prepared (cloned, id-mapped, in its box's
    cgroup) before anyone knows which session will take it, so what depends on the request
    travels later, down the prepared child's go pipe, when a session claims it: the program
    and its arguments, and the size of the scratch area.

    Wire: a 4-byte length (host order: both ends are this process and its clone), then the
    body: 8 bytes of RLIMIT_FSIZE, the tmpfs options, then each argument, every string
    NUL-terminated. claim_read and claim_decode run in the cloned child between clone and
    execve: system calls and plain memory only, and decode is a pure function that never
    trusts the bytes it is given. */
#ifndef RG_CLAIM_H
#define RG_CLAIM_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CLAIM_MAX (256 << 10)   //  largest body: the drivers' sources ride in argv
#define CLAIM_ARGS 32

typedef struct {
    uint64_t file_bytes;        //  RLIMIT_FSIZE of the session
    const char *scratch_opts;   //  tmpfs options of /tmp and the work directory
    char *argv [CLAIM_ARGS + 1];    //  replgate-init's argv, NULL-terminated
} claim_t;

//  Encodes a claim, length prefix included, into buf. Returns its whole length, or -1 if
//  it does not fit in size or CLAIM_MAX, or argv is empty or longer than CLAIM_ARGS.
ssize_t claim_encode (char *buf, size_t size, uint64_t file_bytes, const char *scratch_opts,
                      char *const argv []);
//  Writes len bytes to fd, across partial writes. 0, or -1 with errno set.
int claim_write (int fd, const char *buf, size_t len);
//  Reads one claim's body from fd into buf. Its length, or -1: end of file (the worker
//  dropped the sandbox or died), a read error, or a length over size.
ssize_t claim_read (int fd, char *buf, size_t size);
//  Parses len bytes of body in buf; claim's strings point into buf. 0, or -1 if malformed.
int claim_decode (char *buf, size_t len, claim_t *claim);

int claim_test (void);
#endif
