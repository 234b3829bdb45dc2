/*  worker/proxy.c: the egress proxy's event loop (see proxy.h). One process, one epoll set
    over the listening socket, every client and origin socket, SIGTERM (a signalfd) and the
    resolver's answers (proxy_resolve.c); what a client may reach is decided in
    proxy_dest.c, its head read in proxy_head.c.

    A connection goes HEAD (reading the request head, 10 s at most) -> RESOLVE (a resolver
    thread has the name) -> CONNECT (non-blocking connect to the one address checked: no
    second lookup between check and connect) -> RELAY (per direction a 64 KiB buffer for the
    bytes the proxy writes itself (the forwarded head, the tunnel's 200), then a pipe that
    splice() moves the rest through without copying it into this process; where no pipe
    could be made, the buffer carries everything. A side is read only while the way toward
    its peer has room, so a slow peer slows its sender).
    A refusal answers with a status line and goes to DRAIN: the client's unread bytes are
    read and dropped for a moment after our reply, because closing a socket with unread
    input sends a reset that can destroy the reply before the client reads it. */
#define _GNU_SOURCE
#include "worker/proxy.h"
#include "worker/proxy_dest.h"
#include "worker/proxy_head.h"
#include "worker/proxy_resolve.h"
#include "common/util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_OPEN 256                //  connections open at once; more wait in the backlog
#define RELAY_BUF (64 * 1024)
#define PIPE_WANT (512 * 1024)
#define HEAD_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 30000
#define DRAIN_MS 2000

enum { ST_HEAD, ST_RESOLVE, ST_CONNECT, ST_RELAY, ST_DRAIN };
enum { K_LISTEN = 1, K_SIGNAL, K_RESOLVER, K_CLIENT, K_ORIGIN };

typedef struct {
    size_t start, end;
    int pipe [2];                   //  -1: none (copy through data)
    size_t piped;                   //  bytes in the pipe
    size_t pipe_size;
    char data [RELAY_BUF];
} pbuf_t;

typedef struct {
    int state, slot;
    uint32_t serial;
    int cfd, ofd;
    uint32_t cmask, omask;          //  events registered for each socket
    char *head;                     //  PROXY_HEAD_MAX bytes while reading the head
    size_t head_len;
    proxy_head_t req;
    bool by_name;
    char address [INET6_ADDRSTRLEN];
    pbuf_t *up, *down;              //  client -> origin, origin -> client
    bool c_eof, o_eof, o_shut, c_shut;
    int64_t body_left;              //  plain HTTP: request body bytes still to forward
    int64_t bytes_out, bytes_in;
    double start_us;
    int64_t deadline;               //  monotonic ms, 0: none
    bool denied;
    char reason [160];
} conn_t;

typedef struct {
    const proxy_grant_t *grant;
    proxy_rules_t rules;
    proxy_entry_t *entries;
    int ep, listen_fd, sig_fd, report_fd;
    bool listening;
    proxy_resolver_t *resolver;
    conn_t *conns [MAX_OPEN];
    size_t open;
    uint32_t serial;
    int64_t accepted, total_bytes;
    bool conn_limit, bytes_limit, close_all;
} proxy_t;

static double
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static uint64_t
s_tag (int kind, int slot, uint32_t serial)
{
    return (uint64_t) kind << 56 | (uint64_t) (slot & 0xffff) << 32 | serial;
}

//  One whole line, blocking (the pipe may have been made non-blocking by whoever owns it).
static void
s_report (proxy_t *self, const char *line, size_t len)
{
    while (len) {
        ssize_t n = write (self->report_fd, line, len);
        if (n > 0) {
            line += n;
            len -= (size_t) n;
        }
        else
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = { self->report_fd, POLLOUT, 0 };
            poll (&pfd, 1, 1000);
        }
        else
        if (n < 0 && errno != EINTR)
            return;                 //  the worker is gone: nobody to tell
    }
}

//  A report field: printable ASCII but tab, at most max bytes, "-" when empty.
static void
s_field (char *out, size_t size, const char *text, size_t max)
{
    size_t n = 0;
    for (; text && text [n] && n < max && n + 1 < size; n++)
        out [n] = text [n] > 0x20 && text [n] < 0x7f ? text [n] : text [n] == ' ' ? ' ' : '?';
    if (n == 0)
        out [n++] = '-';
    out [n] = 0;
}

static void
s_record (proxy_t *self, conn_t *c)
{
    char method [PROXY_METHOD_MAX + 2], host [PROXY_HOST_MAX + 2], address [INET6_ADDRSTRLEN + 1];
    char reason [sizeof c->reason], line [1024];
    s_field (method, sizeof method, c->req.method, PROXY_METHOD_MAX);
    s_field (host, sizeof host, c->req.host, PROXY_HOST_MAX);
    s_field (address, sizeof address, c->address, INET6_ADDRSTRLEN);
    s_field (reason, sizeof reason, c->denied ? c->reason : NULL, sizeof reason - 1);
    int n = snprintf (line, sizeof line, "E\t%s\t%s\t%d\t%s\t%lld\t%lld\t%.3f\t%s\t%s\n",
                      method, host, c->req.port, address, (long long) c->bytes_out,
                      (long long) c->bytes_in, (s_now_us () - c->start_us) / 1000.0,
                      c->denied ? "denied" : "allowed", reason);
    if (n > 0 && (size_t) n < sizeof line)
        s_report (self, line, (size_t) n);
}

static void
s_pbuf_free (pbuf_t *b)
{
    if (b && b->pipe [0] >= 0) {
        close (b->pipe [0]);
        close (b->pipe [1]);
    }
    free (b);
}

//  A direction's buffer, and its pipe if one can be made (descriptors may run short).
static pbuf_t *
s_pbuf_new (void)
{
    pbuf_t *b = malloc (sizeof *b);
    if (!b)
        return NULL;
    b->start = b->end = b->piped = 0;
    if (pipe2 (b->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        b->pipe [0] = b->pipe [1] = -1;
    else {
        fcntl (b->pipe [0], F_SETPIPE_SZ, PIPE_WANT);     //  fewer, larger moves; may fail
        int size = fcntl (b->pipe [0], F_GETPIPE_SZ);
        b->pipe_size = size > 0 ? (size_t) size : 4096;
    }
    return b;
}

static void
s_close (proxy_t *self, conn_t *c)
{
    s_record (self, c);
    if (c->cfd >= 0)
        close (c->cfd);
    if (c->ofd >= 0)
        close (c->ofd);
    free (c->head);
    s_pbuf_free (c->up);
    s_pbuf_free (c->down);
    self->conns [c->slot] = NULL;
    self->open--;
    free (c);
    if (!self->listening && self->open < MAX_OPEN) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = s_tag (K_LISTEN, 0, 0) };
        if (epoll_ctl (self->ep, EPOLL_CTL_MOD, self->listen_fd, &ev) == 0)
            self->listening = true;
    }
}

static void
s_watch (proxy_t *self, conn_t *c, bool origin, uint32_t want)
{
    int fd = origin ? c->ofd : c->cfd;
    uint32_t *cur = origin ? &c->omask : &c->cmask;
    if (fd < 0 || *cur == want)
        return;
    struct epoll_event ev = { .events = want,
                              .data.u64 = s_tag (origin ? K_ORIGIN : K_CLIENT, c->slot, c->serial) };
    if (epoll_ctl (self->ep, EPOLL_CTL_MOD, fd, &ev) == 0)
        *cur = want;
    else
        log_warn ("proxy: epoll_ctl: %s", strerror (errno));
}

//  Answers the client with status and a one-line body, records the refusal, then drains.
static void
s_refuse (proxy_t *self, conn_t *c, int status, const char *reason)
{
    static const struct { int code; const char *text; } texts [] = {
        { 400, "Bad Request" }, { 403, "Forbidden" }, { 408, "Request Timeout" },
        { 429, "Too Many Requests" }, { 431, "Request Header Fields Too Large" },
        { 502, "Bad Gateway" }, { 503, "Service Unavailable" } };
    const char *text = "Error";
    for (size_t i = 0; i < sizeof texts / sizeof texts [0]; i++)
        if (texts [i].code == status)
            text = texts [i].text;
    c->denied = true;
    snprintf (c->reason, sizeof c->reason, "%s", reason);
    char reply [512];
    int n = snprintf (reply, sizeof reply, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                      status, text, strlen (c->reason) + 1, c->reason);
    //  A fresh socket's send buffer takes these few hundred bytes whole.
    if (send (c->cfd, reply, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        c->deadline = 1;            //  nothing to wait for: closes at the next timer pass
    shutdown (c->cfd, SHUT_WR);
    if (c->ofd >= 0) {
        close (c->ofd);
        c->ofd = -1;
    }
    c->state = ST_DRAIN;
    if (c->deadline != 1)
        c->deadline = clock_mono_ms () + DRAIN_MS;
    s_watch (self, c, false, EPOLLIN);
}

//  Bytes relayed, counted toward the run's cap; passing it closes everything (in the loop).
static void
s_count (proxy_t *self, conn_t *c, int64_t *counter, size_t n)
{
    *counter += (int64_t) n;
    self->total_bytes += (int64_t) n;
    if (self->grant->max_bytes > 0 && self->total_bytes > self->grant->max_bytes
    &&  !self->bytes_limit) {
        self->bytes_limit = self->close_all = true;
        s_report (self, "L\tbytes\n", strlen ("L\tbytes\n"));
    }
}

static void
s_accept_one (proxy_t *self, int fd)
{
    int slot = 0;
    while (self->conns [slot])
        slot++;                     //  open < MAX_OPEN: there is one
    conn_t *c = calloc (1, sizeof *c);
    if (!c) {
        close (fd);
        return;
    }
    c->slot = slot;
    c->serial = ++self->serial;
    c->cfd = fd;
    c->ofd = -1;
    c->start_us = s_now_us ();
    c->state = ST_HEAD;
    c->deadline = clock_mono_ms () + HEAD_TIMEOUT_MS;
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = s_tag (K_CLIENT, slot, c->serial) };
    if (epoll_ctl (self->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close (fd);
        free (c);
        return;
    }
    c->cmask = EPOLLIN;
    self->conns [slot] = c;
    self->open++;
    self->accepted++;
    int64_t cap = self->grant->max_connections;
    if (cap > 0 && self->accepted > cap) {
        if (!self->conn_limit)
            s_report (self, "L\tconnections\n", strlen ("L\tconnections\n"));
        self->conn_limit = true;
        s_refuse (self, c, 429, "connection limit");
    }
    else
    if (self->bytes_limit)
        s_refuse (self, c, 429, "byte limit");
    else
    if (!(c->head = malloc (PROXY_HEAD_MAX)))
        s_refuse (self, c, 503, "out of memory");
}

static void
s_accept (proxy_t *self)
{
    while (self->open < MAX_OPEN) {
        int fd = accept4 (self->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn ("proxy: accept: %s", strerror (errno));
            return;
        }
        s_accept_one (self, fd);
    }
    //  Full: the listening socket waits until a connection ends (s_close).
    struct epoll_event ev = { .events = 0, .data.u64 = s_tag (K_LISTEN, 0, 0) };
    if (epoll_ctl (self->ep, EPOLL_CTL_MOD, self->listen_fd, &ev) == 0)
        self->listening = false;
}

static void s_relay (proxy_t *self, conn_t *c);

//  The origin answered the connect: set up the two buffers and what goes first.
static void
s_connected (proxy_t *self, conn_t *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt (c->ofd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        char reason [128];
        snprintf (reason, sizeof reason, "connect failed: %s", strerror (err));
        s_refuse (self, c, 502, reason);
        return;
    }
    c->up = s_pbuf_new ();
    c->down = s_pbuf_new ();
    if (!c->up || !c->down) {
        s_refuse (self, c, 503, "out of memory");
        return;
    }
    size_t extra = c->head_len - c->req.head_len;
    const char *rest = c->head + c->req.head_len;
    if (c->req.tunnel) {
        static const char ok [] = "HTTP/1.1 200 Connection established\r\n\r\n";
        memcpy (c->down->data, ok, sizeof ok - 1);
        c->down->end = sizeof ok - 1;
        c->body_left = -1;
    }
    else {
        //  The head fits: PROXY_FORWARD_MAX < RELAY_BUF, and the body bytes read with the
        //  head are at most PROXY_HEAD_MAX - head_len.
        ssize_t n = proxy_head_forward (c->head, &c->req, c->up->data, RELAY_BUF);
        if (n < 0) {
            s_refuse (self, c, 400, "request head too large");
            return;
        }
        c->up->end = (size_t) n;
        s_count (self, c, &c->bytes_out, (size_t) n);
        c->body_left = c->req.body_len;
        if ((int64_t) extra > c->body_left)
            extra = (size_t) c->body_left;
        c->body_left -= (int64_t) extra;
    }
    memcpy (c->up->data + c->up->end, rest, extra);
    c->up->end += extra;
    s_count (self, c, &c->bytes_out, extra);
    free (c->head);
    c->head = NULL;
    c->state = ST_RELAY;
    c->deadline = 0;
    s_relay (self, c);
}

//  Connects to the address that passed the checks, and to nothing else.
static void
s_connect (proxy_t *self, conn_t *c, const struct sockaddr *sa, socklen_t salen)
{
    char reason [128];
    c->ofd = socket (sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->ofd < 0) {
        snprintf (reason, sizeof reason, "connect failed: %s", strerror (errno));
        s_refuse (self, c, 502, reason);
        return;
    }
    if (connect (c->ofd, sa, salen) != 0 && errno != EINPROGRESS) {
        snprintf (reason, sizeof reason, "connect failed: %s", strerror (errno));
        s_refuse (self, c, 502, reason);
        return;
    }
    struct epoll_event ev = { .events = EPOLLOUT,
                              .data.u64 = s_tag (K_ORIGIN, c->slot, c->serial) };
    if (epoll_ctl (self->ep, EPOLL_CTL_ADD, c->ofd, &ev) != 0) {
        snprintf (reason, sizeof reason, "connect failed: %s", strerror (errno));
        s_refuse (self, c, 502, reason);
        return;
    }
    c->omask = EPOLLOUT;
    c->state = ST_CONNECT;
    c->deadline = clock_mono_ms () + CONNECT_TIMEOUT_MS;
}

//  Picks the first acceptable address among those the name gave (or the literal).
static void
s_choose (proxy_t *self, conn_t *c, const struct addrinfo *res)
{
    const char *first_reason = NULL;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct in6_addr a6;
        if (!proxy_addr_norm (ai->ai_addr, &a6))
            continue;
        const char *reason = NULL;
        bool ok = proxy_rules_address (&self->rules, c->by_name, &a6, c->req.port, &reason) == 0;
        if (!ok && first_reason)
            continue;
        const void *raw = ai->ai_family == AF_INET
            ? (const void *) &((struct sockaddr_in *) ai->ai_addr)->sin_addr
            : (const void *) &((struct sockaddr_in6 *) ai->ai_addr)->sin6_addr;
        inet_ntop (ai->ai_family, raw, c->address, sizeof c->address);
        if (!ok) {
            first_reason = reason;
            continue;
        }
        struct sockaddr_storage ss;
        memcpy (&ss, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET)
            ((struct sockaddr_in *) &ss)->sin_port = htons ((uint16_t) c->req.port);
        else
            ((struct sockaddr_in6 *) &ss)->sin6_port = htons ((uint16_t) c->req.port);
        s_connect (self, c, (struct sockaddr *) &ss, ai->ai_addrlen);
        return;
    }
    s_refuse (self, c, 403, first_reason ? first_reason : "no usable address");
}

static void
s_resolved (proxy_t *self, proxy_job_t *job)
{
    conn_t *c = job->slot >= 0 && job->slot < MAX_OPEN ? self->conns [job->slot] : NULL;
    if (c && c->serial == job->serial && c->state == ST_RESOLVE) {
        if (job->rc != 0)
            s_refuse (self, c, 502, "cannot resolve");
        else
            s_choose (self, c, job->res);
    }
    proxy_job_free (&job);
}

//  The head is complete and well-formed: may it go where it asks?
static void
s_head_done (proxy_t *self, conn_t *c)
{
    const char *reason = NULL;
    if (proxy_rules_request (&self->rules, c->req.method, c->req.host, c->req.port,
                             &c->by_name, &reason) != 0) {
        s_refuse (self, c, 403, reason);
        return;
    }
    s_watch (self, c, false, 0);    //  nothing more is read before the origin answers
    c->deadline = 0;
    struct in6_addr literal;
    if (proxy_host_literal (c->req.host, &literal)) {
        //  Literals need no lookup; getaddrinfo only spells them as a sockaddr.
        struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM };
        struct addrinfo *res = NULL;
        if (getaddrinfo (c->req.host, NULL, &hints, &res) != 0) {
            s_refuse (self, c, 400, "bad host");
            return;
        }
        s_choose (self, c, res);
        freeaddrinfo (res);
        return;
    }
    c->state = ST_RESOLVE;
    if (proxy_resolver_ask (self->resolver, c->slot, c->serial, c->req.host) != 0)
        s_refuse (self, c, 503, "cannot resolve: out of resources");
}

static void
s_read_head (proxy_t *self, conn_t *c)
{
    ssize_t n = recv (c->cfd, c->head + c->head_len, PROXY_HEAD_MAX - c->head_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0)
        c->head_len += (size_t) n;
    int status = 0;
    const char *why = NULL;
    int rc = proxy_head_parse (c->head, c->head_len, &c->req, &status, &why);
    if (rc < 0)
        s_refuse (self, c, status, why);
    else
    if (rc > 0)
        s_head_done (self, c);
    else
    if (n <= 0) {
        c->denied = true;
        snprintf (c->reason, sizeof c->reason, "client left before the request head ended");
        s_close (self, c);
    }
}

//  Room toward the peer, and bytes waiting for it, in direction b.
static bool
s_room (const pbuf_t *b)
{
    return b->pipe [0] >= 0 ? b->piped < b->pipe_size : b->end < RELAY_BUF;
}

static bool
s_waiting (const pbuf_t *b)
{
    return b->end > b->start || b->piped > 0;
}

//  One read from `from` toward b: into its pipe (spliced) or its buffer. Plain HTTP's
//  client bytes past the request's body are read and dropped. 1 moved, 0 not, -1 failed.
static int
s_take (proxy_t *self, conn_t *c, bool upward, pbuf_t *b, int from)
{
    bool *eof = upward ? &c->c_eof : &c->o_eof;
    int64_t limit = upward && c->body_left >= 0 ? c->body_left : INT64_MAX;
    ssize_t n;
    if (limit == 0) {
        char sink [4096];
        n = recv (from, sink, sizeof sink, 0);
    }
    else
    if (b->pipe [0] >= 0) {
        size_t want = b->pipe_size - b->piped;
        n = splice (from, NULL, b->pipe [1], NULL, (int64_t) want < limit ? want : (size_t) limit,
                    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0)
            b->piped += (size_t) n;
    }
    else {
        size_t want = RELAY_BUF - b->end;
        n = recv (from, b->data + b->end, (int64_t) want < limit ? want : (size_t) limit, 0);
        if (n > 0)
            b->end += (size_t) n;
    }
    if (n == 0) {
        *eof = true;
        return 1;
    }
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (limit == 0)
        return 1;
    if (upward && c->body_left >= 0)
        c->body_left -= n;
    s_count (self, c, upward ? &c->bytes_out : &c->bytes_in, (size_t) n);
    return 1;
}

//  One write toward `to`: the buffer's bytes first (the proxy's own), then the pipe's.
static int
s_give (pbuf_t *b, int to)
{
    ssize_t n;
    if (b->end > b->start) {
        n = send (to, b->data + b->start, b->end - b->start, MSG_NOSIGNAL);
        if (n > 0)
            b->start += (size_t) n;
        if (b->start == b->end)
            b->start = b->end = 0;
        else
        if (b->end == RELAY_BUF && b->start > 0) {
            memmove (b->data, b->data + b->start, b->end - b->start);
            b->end -= b->start;
            b->start = 0;
        }
    }
    else
    if (b->piped > 0) {
        n = splice (b->pipe [0], NULL, to, NULL, b->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0)
            b->piped -= (size_t) n;
    }
    else
        return 0;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    return n > 0;
}

//  One read toward the peer (if there is room) and one write to it (if bytes wait).
//  Returns 1 when something moved, 0 when not, -1 when a socket failed.
static int
s_move (proxy_t *self, conn_t *c, bool upward)
{
    pbuf_t *b = upward ? c->up : c->down;
    int from = upward ? c->cfd : c->ofd, to = upward ? c->ofd : c->cfd;
    bool eof = upward ? c->c_eof : c->o_eof;
    bool *shut = upward ? &c->o_shut : &c->c_shut;
    int got = !eof && s_room (b) ? s_take (self, c, upward, b, from) : 0;
    int gave = got < 0 ? 0 : s_give (b, to);
    if (got < 0 || gave < 0)
        return -1;
    if ((upward ? c->c_eof : c->o_eof) && !s_waiting (b) && !*shut) {
        shutdown (to, SHUT_WR);
        *shut = true;
    }
    return got || gave;
}

//  Moves bytes both ways until neither side can, then watches for what would unblock it.
static void
s_relay (proxy_t *self, conn_t *c)
{
    for (;;) {
        int up = s_move (self, c, true);
        int down = up < 0 ? -1 : s_move (self, c, false);
        if (up < 0 || down < 0) {
            s_close (self, c);
            return;
        }
        if (self->close_all)
            return;                 //  the byte cap passed: the loop ends everything
        bool tunnel_done = c->c_shut && c->o_shut;
        //  Plain HTTP: the response is whole when the origin closed (Connection: close).
        bool http_done = !c->req.tunnel && c->c_shut;
        if (tunnel_done || http_done) {
            s_close (self, c);
            return;
        }
        if (!up && !down)
            break;
    }
    s_watch (self, c, false, (!c->c_eof && s_room (c->up) ? EPOLLIN : 0)
                           | (s_waiting (c->down) ? EPOLLOUT : 0));
    s_watch (self, c, true, (!c->o_eof && s_room (c->down) ? EPOLLIN : 0)
                          | (s_waiting (c->up) ? EPOLLOUT : 0));
}

static void
s_drain (proxy_t *self, conn_t *c)
{
    char sink [4096];
    ssize_t n = recv (c->cfd, sink, sizeof sink, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        s_close (self, c);
}

static void
s_client_event (proxy_t *self, conn_t *c, uint32_t events)
{
    if (c->state == ST_HEAD)
        s_read_head (self, c);
    else
    if (c->state == ST_DRAIN)
        s_drain (self, c);
    else
    if (c->state == ST_RELAY)
        s_relay (self, c);
    else
    if (events & (EPOLLERR | EPOLLHUP)) {
        //  Gone while its name resolved or its origin connected: unwatched, it would spin.
        c->denied = true;
        snprintf (c->reason, sizeof c->reason, "client left before the origin answered");
        s_close (self, c);
    }
}

static void
s_event (proxy_t *self, struct epoll_event *ev)
{
    int kind = (int) (ev->data.u64 >> 56);
    int slot = (int) (ev->data.u64 >> 32 & 0xffff);
    uint32_t serial = (uint32_t) ev->data.u64;
    if (kind == K_LISTEN)
        s_accept (self);
    else
    if (kind == K_RESOLVER) {
        proxy_job_t *job;
        while ((job = proxy_resolver_take (self->resolver)))
            s_resolved (self, job);
    }
    else
    if (kind == K_CLIENT || kind == K_ORIGIN) {
        conn_t *c = self->conns [slot];
        if (!c || c->serial != serial)
            return;                 //  ended earlier in this batch
        if (kind == K_CLIENT)
            s_client_event (self, c, ev->events);
        else
        if (c->state == ST_CONNECT)
            s_connected (self, c);
        else
        if (c->state == ST_RELAY)
            s_relay (self, c);
    }
}

//  Deadlines passed: slow heads, connects that hang, drains that last. Returns the ms to
//  the next one (-1: none).
static int
s_timers (proxy_t *self)
{
    int64_t now = clock_mono_ms (), next = -1;
    for (int i = 0; i < MAX_OPEN; i++) {
        conn_t *c = self->conns [i];
        if (!c || !c->deadline)
            continue;
        if (c->deadline <= now) {
            if (c->state == ST_HEAD)
                s_refuse (self, c, 408, "request head timeout");
            else
            if (c->state == ST_CONNECT)
                s_refuse (self, c, 502, "connect failed: Connection timed out");
            else {
                s_close (self, c);
                continue;
            }
            c = self->conns [i];
        }
        if (c && c->deadline && (next < 0 || c->deadline - now < next))
            next = c->deadline > now ? c->deadline - now : 0;
    }
    return (int) next;
}

//  Ends every connection; one that had not reached its origin yet is denied for `reason`.
static void
s_close_all (proxy_t *self, const char *reason)
{
    for (int i = 0; i < MAX_OPEN; i++) {
        conn_t *c = self->conns [i];
        if (!c)
            continue;
        if (c->state != ST_RELAY && !c->denied) {
            c->denied = true;
            snprintf (c->reason, sizeof c->reason, "%s", reason);
        }
        s_close (self, c);
    }
    self->close_all = false;
}

//  The grant's entries, parsed once; one the policy should never have let through is
//  logged and left out (it then allows nothing).
static int
s_rules (proxy_t *self, const proxy_grant_t *grant)
{
    self->entries = calloc (grant->allow_count ? grant->allow_count : 1, sizeof *self->entries);
    if (!self->entries)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < grant->allow_count; i++) {
        if (proxy_entry_parse (grant->allow [i], &self->entries [n]) == 0)
            n++;
        else
            log_warn ("proxy: grant entry '%s' ignored: not HOST:PORT", grant->allow [i]);
    }
    self->rules = (proxy_rules_t) { self->entries, n, grant->methods, grant->method_count,
                                    grant->own, grant->own_count };
    return 0;
}

static int
s_add (proxy_t *self, int fd, int kind)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = s_tag (kind, 0, 0) };
    return epoll_ctl (self->ep, EPOLL_CTL_ADD, fd, &ev);
}

static int
s_setup (proxy_t *self, int listen_fd, const proxy_grant_t *grant, int report_fd)
{
    *self = (proxy_t) { .grant = grant, .listen_fd = listen_fd, .report_fd = report_fd,
                        .ep = -1, .sig_fd = -1, .listening = true };
    //  SIGTERM arrives as a readable fd, blocked first so the resolver threads inherit the
    //  mask and never take it.
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGTERM);
    signal (SIGPIPE, SIG_IGN);
    if (sigprocmask (SIG_BLOCK, &set, NULL) != 0
    ||  (self->sig_fd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0
    ||  (self->ep = epoll_create1 (EPOLL_CLOEXEC)) < 0
    ||  s_rules (self, grant) != 0
    ||  !(self->resolver = proxy_resolver_new ())
    ||  s_add (self, listen_fd, K_LISTEN) != 0 || s_add (self, self->sig_fd, K_SIGNAL) != 0
    ||  s_add (self, proxy_resolver_fd (self->resolver), K_RESOLVER) != 0) {
        log_error ("proxy: cannot start: %s", strerror (errno));
        return -1;
    }
    return 0;
}

int
proxy_serve (int listen_fd, const proxy_grant_t *grant, int report_fd)
{
    proxy_t self;
    if (s_setup (&self, listen_fd, grant, report_fd) != 0)
        return 1;
    bool stop = false;
    while (!stop) {
        struct epoll_event events [64];
        int n = epoll_wait (self.ep, events, 64, s_timers (&self));
        if (n < 0 && errno != EINTR) {
            log_error ("proxy: epoll_wait: %s", strerror (errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if ((int) (events [i].data.u64 >> 56) == K_SIGNAL)
                stop = true;
            else
                s_event (&self, &events [i]);
            if (self.close_all)
                s_close_all (&self, "byte limit");
        }
    }
    s_close_all (&self, "proxy stopped");
    close (self.ep);
    close (self.sig_fd);
    free (self.entries);
    return stop ? 0 : 1;
}
