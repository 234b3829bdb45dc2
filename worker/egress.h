/*  worker/egress.h: the proxy of a run that has a network grant, as the back sees it.

    A run with a grant, and only that run, gets a forward proxy of its own (worker/proxy.h):
    a process started from a fresh image of this program (so none of the back's memory, the
    secrets included, is in it), as the front's uid with no capability, in the host's network
    namespace, listening on 127.0.0.1 of the session's own namespace (the socket is made
    there through setns, and a socket stays in the namespace it was made in). The snippet
    reaches it through HTTP_PROXY and friends; the sandbox keeps no route anywhere else.
    When the run ends the proxy is stopped (its connections close, and it reports them) and
    what it reported goes into the run's result: `egress` and `egress_totals`.

    Reports come on a pipe, one line each: "P PORT" once when it listens (egress_proxy_main),
    then proxy.h's tab-separated "E ..." per connection ended and "L connections|bytes" when
    the run passed a cap. */
#ifndef RG_WORKER_EGRESS_H
#define RG_WORKER_EGRESS_H
#include "worker/session.h"
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct _egress_t egress_t;

#define EGRESS_MAX_ENTRIES 1000     //  per run; past it only the totals count (`dropped`)

//  Once, before any run: the proxies' uid, and the broker's endpoint (a numeric tcp://
//  address there is one the proxies refuse unless a grant names it).
void egress_configure (uid_t uid, const char *broker);

//  Starts the proxy for a run of the session whose process is `pid` (its network namespace
//  gets the listening socket and a loopback that is up), serving the grant text (grant.h)
//  within limits' egress caps. NULL with *why set (static or in why_buf) on failure.
egress_t *egress_new (pid_t pid, const char *grant, const session_limits_t *limits,
                      char *why_buf, size_t why_size);

//  Kills the proxy if it still runs, reaps it and frees everything. Safe on NULL.
void egress_destroy (egress_t **self_p);

//  The proxy's URL as the snippet sees it ("http://127.0.0.1:PORT").
const char *egress_url (egress_t *self);

//  The report pipe, to poll for POLLIN while the run runs.
int egress_fd (egress_t *self);

//  Reads what the proxy reported so far. True once it said the run passed a cap.
bool egress_step (egress_t *self);

//  Stops the proxy (its connections end and are reported, within a short bound), then adds
//  `egress` and `egress_totals` to result. Destroys self and NULLs the caller's pointer.
void egress_finish (egress_t **self_p, json_t *result);

//  The proxy process itself (`replgate-worker --egress-proxy ...`, started by egress_new).
int egress_proxy_main (int argc, char *argv []);

//  Parses one "E ..." report line (without its newline) into a result entry. NULL if it
//  is malformed. Pure.
json_t *egress_entry (const char *line);

int egress_test (void);
#endif
