/*  approver/http.h: the Slack interaction endpoint, `POST /slack/actions` (libmicrohttpd, its
    own thread). A callback is checked in this order: body size cap, v0 signature and
    five-minute window, parse, team and app; then it is answered 200 at once and the click is
    queued for the daemon's loop, which acts on it (Slack wants its answer within 3 s). Plain
    HTTP on loopback: TLS belongs to a reverse proxy in front. */
#ifndef RG_HTTP_H
#define RG_HTTP_H
#include "approver/payload.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct _http_t http_t;

typedef struct {
    const char *listen;             //  "127.0.0.1:7712"
    const char *signing_secret;
    const char *team_id;
    const char *app_id;
    size_t max_body;                //  bytes; larger bodies get 413 (or a dropped connection)
} http_config_t;

//  Starts serving. NULL with a logged error if the address is bad or busy.
http_t *http_new (const http_config_t *config);
void http_destroy (http_t **self_p);

//  A file descriptor that is readable while clicks are queued (for poll).
int http_fd (http_t *self);

//  Takes the oldest queued click into *click; false if none.
bool http_next_click (http_t *self, click_t *click);

//  Counts of callbacks answered, by outcome, for logs and tests.
typedef struct {
    unsigned long accepted, too_large, unsigned_, bad_payload, wrong_team, not_found;
} http_stats_t;
void http_stats (http_t *self, http_stats_t *stats);

//  Parses "HOST:PORT" (IPv4 literal) for the listener. 0 or -1. Pure.
int http_parse_listen (const char *text, char *host, size_t host_size, int *port);

int http_test (void);
#endif
