/*  worker/proxy_head.h: the egress proxy's reader of a client's request head (proxy_head.c).
    Pure functions over the bytes a client sent: no I/O, no allocation, never trusting input. */
#ifndef RG_PROXY_HEAD_H
#define RG_PROXY_HEAD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROXY_HEAD_MAX 16384        //  bytes of head read at most (more: 431)
#define PROXY_METHOD_MAX 16         //  as the policy's `methods` tokens
#define PROXY_HOST_MAX 255
//  What proxy_head_forward adds at most to a head: "/" before a bare query, the Host line,
//  "Connection: close", the version of a 1.0 request line.
#define PROXY_FORWARD_MAX (PROXY_HEAD_MAX + 512)

typedef struct {
    char method [PROXY_METHOD_MAX + 1]; //  "" until the request line was read
    char host [PROXY_HOST_MAX + 1];     //  as asked, brackets of an IPv6 literal removed
    int port;                           //  0 until known
    bool tunnel;                        //  CONNECT host:port
    bool bracketed;                     //  host was an [IPv6] literal
    size_t head_len;                    //  bytes up to and including the blank line
    size_t path_off, path_len;          //  plain HTTP: the path and query in the head
    int64_t body_len;                   //  plain HTTP: Content-Length, 0 when none
} proxy_head_t;

//  Reads the head in data[0..len). Returns 1 when it is complete and acceptable (head filled),
//  0 when more bytes are needed, -1 when it is refused: *status is 400 or 431, *why says why
//  in a few words. head->method / host / port hold what was read before the refusal.
int proxy_head_parse (const char *data, size_t len, proxy_head_t *head, int *status,
                      const char **why);

//  The request to send to the origin for a parsed plain-HTTP head: origin-form request line
//  in HTTP/1.1, the Host line from the URI, the client's other headers but the hop-by-hop
//  ones, `Connection: close`. Writes at most cap bytes to out; returns the length or -1.
ssize_t proxy_head_forward (const char *data, const proxy_head_t *head, char *out, size_t cap);

int proxy_head_test (void);
#endif
