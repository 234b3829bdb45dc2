/*  worker/proxy_resolve.h: name resolution for the egress proxy without stalling its loop
    (proxy_resolve.c). getaddrinfo blocks for as long as DNS takes, so a few threads run it
    and hand each answer back through a pipe the loop polls. */
#ifndef RG_PROXY_RESOLVE_H
#define RG_PROXY_RESOLVE_H
#include <netdb.h>
#include <stdint.h>

typedef struct _proxy_job_t {
    struct _proxy_job_t *next;
    int slot;                       //  the asker, as the loop knows it
    uint32_t serial;
    char host [256];
    int rc;                         //  getaddrinfo's return code
    struct addrinfo *res;           //  its answer when rc == 0
} proxy_job_t;

typedef struct _proxy_resolver_t proxy_resolver_t;

//  NULL on failure (logged). Threads start with the first question.
proxy_resolver_t *proxy_resolver_new (void);

//  Readable (non-blocking) when answers are waiting.
int proxy_resolver_fd (proxy_resolver_t *self);

//  Queues a question. 0, or -1 (out of memory, no thread could start).
int proxy_resolver_ask (proxy_resolver_t *self, int slot, uint32_t serial, const char *host);

//  The next answer, or NULL when none is waiting. Free it with proxy_job_free.
proxy_job_t *proxy_resolver_take (proxy_resolver_t *self);
void proxy_job_free (proxy_job_t **job_p);
#endif
