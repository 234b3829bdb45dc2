/*  approver/http.c: libmicrohttpd serving Slack's interaction callbacks (see http.h). The
    handler is the only code on the server thread; it shares nothing with the daemon's loop
    but the click queue, guarded by a mutex and signalled through an eventfd. */
#include "approver/http.h"
#include "approver/sign.h"
#include "common/buf.h"
#include "common/check.h"
#include "common/util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 1024              //  clicks waiting for the loop; more are refused (503)

typedef struct _item_t {
    click_t click;
    struct _item_t *next;
} item_t;

struct _http_t {
    struct MHD_Daemon *daemon;
    char *secret, *team, *app;
    size_t max_body;
    pthread_mutex_t lock;
    item_t *head, *tail;
    size_t queued;
    int efd;
    http_stats_t stats;
};

//  One request's body as it arrives.
typedef struct {
    buf_t bytes;
    size_t dropped;                 //  bytes over the cap, read and thrown away
    unsigned int refuse;            //  status to answer once the body is read (404, 405)
} body_t;

int
http_parse_listen (const char *text, char *host, size_t host_size, int *port)
{
    const char *colon = text ? strrchr (text, ':') : NULL;
    if (!colon || (size_t) (colon - text) >= host_size || colon == text)
        return -1;
    memcpy (host, text, (size_t) (colon - text));
    host[colon - text] = 0;
    char *end;
    long p = strtol (colon + 1, &end, 10);
    struct in_addr addr;
    if (*end || end == colon + 1 || p < 1 || p > 65535 || inet_pton (AF_INET, host, &addr) != 1)
        return -1;
    *port = (int) p;
    return 0;
}

static enum MHD_Result
s_reply (struct MHD_Connection *conn, unsigned int status, const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer (strlen (text), (void *) text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header (r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response (conn, status, r);
    MHD_destroy_response (r);
    return rc;
}

static bool
s_enqueue (http_t *self, const click_t *click)
{
    item_t *item = (item_t *) malloc (sizeof (item_t));
    if (!item)
        return false;
    item->click = *click;
    item->next = NULL;
    pthread_mutex_lock (&self->lock);
    bool ok = self->queued < QUEUE_MAX;
    if (ok) {
        if (self->tail)
            self->tail->next = item;
        else
            self->head = item;
        self->tail = item;
        self->queued++;
        uint64_t one = 1;
        if (write (self->efd, &one, sizeof one) != sizeof one)
            log_error ("http: eventfd write: %s", strerror (errno));
    }
    pthread_mutex_unlock (&self->lock);
    if (!ok)
        free (item);
    return ok;
}

//  The whole body is in: signature, parse, team/app, then queue and answer.
static enum MHD_Result
s_finish (http_t *self, struct MHD_Connection *conn, body_t *body)
{
    const char *ts = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "X-Slack-Request-Timestamp");
    const char *sig = MHD_lookup_connection_value (conn, MHD_HEADER_KIND, "X-Slack-Signature");
    sign_result_t verdict = sign_verify (self->secret, ts, sig, body->bytes.data, body->bytes.len, (int64_t) time (NULL));
    if (verdict != SIGN_OK) {
        __atomic_add_fetch (&self->stats.unsigned_, 1, __ATOMIC_RELAXED);
        log_warn ("http: refused a callback (%zu bytes): %s", body->bytes.len, sign_result_str (verdict));
        return s_reply (conn, MHD_HTTP_UNAUTHORIZED, sign_result_str (verdict));
    }
    click_t click;
    char err[128];
    if (payload_parse (body->bytes.data, body->bytes.len, &click, err, sizeof err)) {
        __atomic_add_fetch (&self->stats.bad_payload, 1, __ATOMIC_RELAXED);
        log_warn ("http: signed callback with an unusable payload: %s", err);
        return s_reply (conn, MHD_HTTP_BAD_REQUEST, err);
    }
    if (strcmp (click.team_id, self->team) != 0 || strcmp (click.app_id, self->app) != 0) {
        __atomic_add_fetch (&self->stats.wrong_team, 1, __ATOMIC_RELAXED);
        log_warn ("http: callback for team %s app %s refused (configured: %s, %s)", click.team_id,
                  click.app_id, self->team, self->app);
        return s_reply (conn, MHD_HTTP_FORBIDDEN, "wrong team or app");
    }
    if (!s_enqueue (self, &click)) {
        log_error ("http: click queue full; refused a click by %s", click.user_id);
        return s_reply (conn, MHD_HTTP_SERVICE_UNAVAILABLE, "busy");
    }
    __atomic_add_fetch (&self->stats.accepted, 1, __ATOMIC_RELAXED);
    return s_reply (conn, MHD_HTTP_OK, "");
}

//  Only POST /slack/actions is served. Refusals are answered once the body has been read,
//  as a response cannot be queued while one is still arriving.
static void
s_first_call (http_t *self, const char *url, const char *method, body_t *body)
{
    if (strcmp (url, "/slack/actions") != 0) {
        body->refuse = MHD_HTTP_NOT_FOUND;
        __atomic_add_fetch (&self->stats.not_found, 1, __ATOMIC_RELAXED);
    }
    else if (strcmp (method, "POST") != 0)
        body->refuse = MHD_HTTP_METHOD_NOT_ALLOWED;
}

static enum MHD_Result
s_handler (void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    http_t *self = (http_t *) cls;
    body_t *body = (body_t *) *ctx;
    if (!body) {
        body = (body_t *) calloc (1, sizeof (body_t));
        if (!body)
            return MHD_NO;
        *ctx = body;
        s_first_call (self, url, method, body);
        return MHD_YES;
    }
    if (*upload_size) {
        //  Over the cap, the rest is read and dropped so the client gets its 413 (a response
        //  cannot be queued mid-upload); far over it, the connection is simply cut.
        if (body->dropped || body->bytes.len + *upload_size > self->max_body) {
            body->dropped += *upload_size;
            *upload_size = 0;
            return body->dropped > 16 * self->max_body ? MHD_NO : MHD_YES;
        }
        if (buf_append (&body->bytes, upload, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (body->refuse)
        return s_reply (conn, body->refuse, body->refuse == MHD_HTTP_NOT_FOUND ? "not found" : "POST only");
    if (body->dropped) {
        __atomic_add_fetch (&self->stats.too_large, 1, __ATOMIC_RELAXED);
        log_warn ("http: refused a %zu-byte callback (cap %zu)", body->bytes.len + body->dropped, self->max_body);
        return s_reply (conn, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
    }
    return s_finish (self, conn, body);
}

static void
s_completed (void *cls, struct MHD_Connection *conn, void **ctx, enum MHD_RequestTerminationCode code)
{
    body_t *body = (body_t *) *ctx;
    if (body) {
        buf_free (&body->bytes);
        free (body);
        *ctx = NULL;
    }
}

http_t *
http_new (const http_config_t *config)
{
    char host[64];
    int port;
    if (http_parse_listen (config->listen, host, sizeof host, &port)) {
        log_error ("http: bad listen address \"%s\" (want IPV4:PORT)", config->listen ? config->listen : "");
        return NULL;
    }
    http_t *self = (http_t *) calloc (1, sizeof (http_t));
    if (!self)
        return NULL;
    self->secret = strdup (config->signing_secret);
    self->team = strdup (config->team_id);
    self->app = strdup (config->app_id);
    self->max_body = config->max_body;
    self->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0 || pthread_mutex_init (&self->lock, NULL) != 0) {
        log_error ("http: eventfd or mutex: %s", strerror (errno));
        if (self->efd >= 0)
            close (self->efd);
        free (self->secret); free (self->team); free (self->app);
        free (self);
        return NULL;
    }
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
    inet_pton (AF_INET, host, &addr.sin_addr);
    self->daemon = MHD_start_daemon (MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        s_handler, self,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, self,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 10,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 256,
        MHD_OPTION_END);
    if (!self->daemon) {
        log_error ("http: cannot listen on %s (in use, or not a local address?)", config->listen);
        http_destroy (&self);
        return NULL;
    }
    log_info ("http: Slack interactions on http://%s/slack/actions", config->listen);
    return self;
}

void
http_destroy (http_t **self_p)
{
    if (*self_p) {
        http_t *self = *self_p;
        if (self->daemon)
            MHD_stop_daemon (self->daemon);     //  joins the server thread first
        while (self->head) {
            item_t *next = self->head->next;
            free (self->head);
            self->head = next;
        }
        pthread_mutex_destroy (&self->lock);
        close (self->efd);
        free (self->secret); free (self->team); free (self->app);
        free (self);
        *self_p = NULL;
    }
}

int
http_fd (http_t *self)
{
    return self->efd;
}

bool
http_next_click (http_t *self, click_t *click)
{
    pthread_mutex_lock (&self->lock);
    item_t *item = self->head;
    if (item) {
        self->head = item->next;
        if (!self->head)
            self->tail = NULL;
        self->queued--;
    }
    if (!self->head) {
        uint64_t n;             //  drain the eventfd: nothing left to signal
        if (read (self->efd, &n, sizeof n) < 0 && errno != EAGAIN)
            log_error ("http: eventfd read: %s", strerror (errno));
    }
    pthread_mutex_unlock (&self->lock);
    if (!item)
        return false;
    *click = item->click;
    free (item);
    return true;
}

void
http_stats (http_t *self, http_stats_t *stats)
{
    pthread_mutex_lock (&self->lock);
    *stats = self->stats;
    pthread_mutex_unlock (&self->lock);
}

int
http_test (void)
{
    char host[64];
    int port = 0;
    CHECK (http_parse_listen ("127.0.0.1:7712", host, sizeof host, &port) == 0 && port == 7712);
    CHECK (strcmp (host, "127.0.0.1") == 0);
    CHECK (http_parse_listen ("127.0.0.1:0", host, sizeof host, &port) == -1);
    CHECK (http_parse_listen ("127.0.0.1:70000", host, sizeof host, &port) == -1);
    CHECK (http_parse_listen ("localhost:7712", host, sizeof host, &port) == -1);
    CHECK (http_parse_listen (":7712", host, sizeof host, &port) == -1);
    CHECK (http_parse_listen ("127.0.0.1:12x", host, sizeof host, &port) == -1);
    CHECK (http_parse_listen (NULL, host, sizeof host, &port) == -1);
    return 0;
}
