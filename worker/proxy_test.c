/*  worker/proxy_test.c: proxy_test(), the egress proxy driven over real loopback sockets:
    proxy_serve forked on a listening socket, small origin servers in threads, clients in
    this process, and the report lines read back and checked. Also prints the throughput of
    a 100 MB download through a tunnel against the same download made directly. */
#define _GNU_SOURCE
#include "worker/proxy.h"
#include "worker/proxy_head.h"
#include "common/check.h"
#include "common/util.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int proxy_head_test (void);
int proxy_dest_test (void);

enum { O_HTTP, O_ECHO, O_BULK };
static const char s_response [] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

typedef struct {
    int fd, port, mode;
    size_t bulk;
    char got [4096];                //  O_HTTP: the last head received
    size_t got_len;
    volatile int stop;
    pthread_t tid;
} origin_t;

typedef struct {
    pid_t pid;
    int port, report;
    char buf [65536];
    size_t len;
} proxy_run_t;

static int
s_listen (int *port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    socklen_t len = sizeof sin;
    if (fd < 0 || bind (fd, (struct sockaddr *) &sin, sizeof sin) != 0 || listen (fd, 64) != 0
    ||  getsockname (fd, (struct sockaddr *) &sin, &len) != 0)
        return -1;
    *port = ntohs (sin.sin_port);
    return fd;
}

static void
s_serve_one (origin_t *o, int fd)
{
    char buf [65536];
    if (o->mode == O_HTTP) {
        o->got_len = 0;
        while (o->got_len < sizeof o->got - 1 && !memmem (o->got, o->got_len, "\r\n\r\n", 4)) {
            ssize_t n = recv (fd, o->got + o->got_len, sizeof o->got - 1 - o->got_len, 0);
            if (n <= 0)
                break;
            o->got_len += (size_t) n;
        }
        o->got [o->got_len] = 0;
        send (fd, s_response, sizeof s_response - 1, MSG_NOSIGNAL);
    }
    else
    if (o->mode == O_ECHO) {
        ssize_t n;
        while ((n = recv (fd, buf, sizeof buf, 0)) > 0)
            send (fd, buf, (size_t) n, MSG_NOSIGNAL);
    }
    else {
        memset (buf, 'x', sizeof buf);
        for (size_t sent = 0; sent < o->bulk; ) {
            size_t want = o->bulk - sent < sizeof buf ? o->bulk - sent : sizeof buf;
            ssize_t n = send (fd, buf, want, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            sent += (size_t) n;
        }
    }
    close (fd);
}

static void *
s_origin_thread (void *arg)
{
    origin_t *o = arg;
    while (!o->stop) {
        struct pollfd pfd = { o->fd, POLLIN, 0 };
        if (poll (&pfd, 1, 50) <= 0)
            continue;
        int fd = accept (o->fd, NULL, NULL);
        if (fd >= 0)
            s_serve_one (o, fd);
    }
    return NULL;
}

static void
s_origin_start (origin_t *o, int mode, size_t bulk)
{
    memset (o, 0, sizeof *o);
    o->mode = mode;
    o->bulk = bulk;
    o->fd = s_listen (&o->port);
    CHECK (o->fd >= 0 && pthread_create (&o->tid, NULL, s_origin_thread, o) == 0);
}

static void
s_origin_stop (origin_t *o)
{
    o->stop = 1;
    pthread_join (o->tid, NULL);
    close (o->fd);
}

static int
s_proxy_start (proxy_run_t *p, const proxy_grant_t *grant)
{
    int fds [2], lfd = s_listen (&p->port);
    p->len = 0;
    if (lfd < 0 || pipe2 (fds, O_CLOEXEC) != 0)
        return -1;
    fcntl (lfd, F_SETFL, O_NONBLOCK);
    p->pid = fork ();
    if (p->pid == 0) {
        close (fds [0]);
        _exit (proxy_serve (lfd, grant, fds [1]));
    }
    close (lfd);
    close (fds [1]);
    p->report = fds [0];
    return p->pid > 0 ? 0 : -1;
}

//  The next report line (without its newline) within 5 s, or NULL.
static char *
s_line (proxy_run_t *p, char *out, size_t size)
{
    for (int64_t until = clock_mono_ms () + 5000; ; ) {
        char *nl = memchr (p->buf, '\n', p->len);
        if (nl) {
            size_t n = (size_t) (nl - p->buf);
            snprintf (out, size, "%.*s", (int) n, p->buf);
            memmove (p->buf, nl + 1, p->len - n - 1);
            p->len -= n + 1;
            return out;
        }
        struct pollfd pfd = { p->report, POLLIN, 0 };
        int64_t left = until - clock_mono_ms ();
        if (p->report < 0 || left <= 0 || poll (&pfd, 1, (int) left) <= 0)
            return NULL;
        ssize_t n = read (p->report, p->buf + p->len, sizeof p->buf - p->len);
        if (n <= 0)
            return NULL;
        p->len += (size_t) n;
    }
}

typedef struct {
    char method [32], host [300], address [64], outcome [16], reason [200];
    int port;
    long long out, in;
    double ms;
} record_t;

static bool
s_record (proxy_run_t *p, record_t *r)
{
    char line [1024];
    if (!s_line (p, line, sizeof line))
        return false;
    char *f [10];
    int n = 0;
    for (char *save = NULL, *t = strtok_r (line, "\t", &save); t && n < 10;
         t = strtok_r (NULL, "\t", &save))
        f [n++] = t;
    if (n != 10 || strcmp (f [0], "E") != 0)
        return false;
    snprintf (r->method, sizeof r->method, "%s", f [1]);
    snprintf (r->host, sizeof r->host, "%s", f [2]);
    r->port = atoi (f [3]);
    snprintf (r->address, sizeof r->address, "%s", f [4]);
    r->out = atoll (f [5]);
    r->in = atoll (f [6]);
    r->ms = atof (f [7]);
    snprintf (r->outcome, sizeof r->outcome, "%s", f [8]);
    snprintf (r->reason, sizeof r->reason, "%s", f [9]);
    return strchr (f [7], '.') && strlen (strchr (f [7], '.')) == 4;
}

static void
s_proxy_stop (proxy_run_t *p)
{
    int status = -1;
    kill (p->pid, SIGTERM);
    waitpid (p->pid, &status, 0);
    CHECK (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    //  Keeps what the proxy wrote last for the caller to read (the pipe is at its end).
    ssize_t n;
    while (p->len < sizeof p->buf
    &&     (n = read (p->report, p->buf + p->len, sizeof p->buf - p->len)) > 0)
        p->len += (size_t) n;
    close (p->report);
    p->report = -1;
}

static int
s_client (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                               .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
    if (fd >= 0 && connect (fd, (struct sockaddr *) &sin, sizeof sin) != 0) {
        close (fd);
        return -1;
    }
    return fd;
}

//  Reads until `want` bytes, end of file or 5 s; returns the bytes read.
static size_t
s_read (int fd, char *out, size_t size, size_t want)
{
    size_t len = 0;
    while (len < want && len < size - 1) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll (&pfd, 1, 5000) <= 0)
            break;
        ssize_t n = recv (fd, out + len, size - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    out [len] = 0;
    return len;
}

//  One request through the proxy, its whole answer in out.
static size_t
s_ask (int port, const char *request, char *out, size_t size)
{
    int fd = s_client (port);
    if (fd < 0)
        return 0;
    send (fd, request, strlen (request), MSG_NOSIGNAL);
    size_t n = s_read (fd, out, size, size);
    close (fd);
    return n;
}

static void
s_test_http_and_tunnel (void)
{
    origin_t web, echo;
    s_origin_start (&web, O_HTTP, 0);
    s_origin_start (&echo, O_ECHO, 0);
    char a1 [64], a2 [64], req [512], out [4096];
    snprintf (a1, sizeof a1, "127.0.0.1:%d", web.port);
    snprintf (a2, sizeof a2, "127.0.0.1:%d", echo.port);
    const char *allow [] = { a1, a2 };
    proxy_grant_t grant = { allow, 2, NULL, 0, 100, 0, NULL, 0 };
    proxy_run_t p;
    record_t r;
    CHECK (s_proxy_start (&p, &grant) == 0);
    //  Plain HTTP: origin-form line, Host from the URI, hop-by-hop headers gone.
    snprintf (req, sizeof req, "GET http://127.0.0.1:%d/path?q=1 HTTP/1.1\r\nHost: elsewhere\r\n"
              "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
              "User-Agent: selftest\r\n\r\n", web.port);
    size_t n = s_ask (p.port, req, out, sizeof out);
    CHECK (n == sizeof s_response - 1 && memcmp (out, s_response, n) == 0);
    char host [64];
    snprintf (host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", web.port);
    CHECK (strncmp (web.got, "GET /path?q=1 HTTP/1.1\r\n", 24) == 0 && strstr (web.got, host)
           && strstr (web.got, "\r\nUser-Agent: selftest\r\n") && strstr (web.got, "\r\nConnection: close\r\n")
           && !strstr (web.got, "Proxy-") && !strstr (web.got, "elsewhere"));
    CHECK (s_record (&p, &r) && strcmp (r.method, "GET") == 0 && strcmp (r.host, "127.0.0.1") == 0
           && r.port == web.port && strcmp (r.address, "127.0.0.1") == 0
           && r.out == (long long) web.got_len && r.in == (long long) sizeof s_response - 1
           && strcmp (r.outcome, "allowed") == 0 && strcmp (r.reason, "-") == 0);
    //  CONNECT: 200 once the origin is connected, then bytes both ways.
    int fd = s_client (p.port);
    snprintf (req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", echo.port);
    send (fd, req, strlen (req), MSG_NOSIGNAL);
    const char *ok = "HTTP/1.1 200 Connection established\r\n\r\n";
    n = s_read (fd, out, sizeof out, strlen (ok));
    CHECK (n == strlen (ok) && memcmp (out, ok, n) == 0);
    send (fd, "ping-pong", 9, MSG_NOSIGNAL);
    n = s_read (fd, out, sizeof out, 9);
    CHECK (n == 9 && memcmp (out, "ping-pong", 9) == 0);
    shutdown (fd, SHUT_WR);
    CHECK (s_read (fd, out, sizeof out, sizeof out) == 0);
    close (fd);
    CHECK (s_record (&p, &r) && strcmp (r.method, "CONNECT") == 0 && r.out == 9 && r.in == 9
           && strcmp (r.outcome, "allowed") == 0);
    //  A port of a granted address that the grant does not name.
    snprintf (req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", web.port == 1 ? 2 : 1);
    n = s_ask (p.port, req, out, sizeof out);
    CHECK (strncmp (out, "HTTP/1.1 403 Forbidden\r\n", 24) == 0 && strstr (out, "\r\n\r\nloopback address\n"));
    CHECK (s_record (&p, &r) && strcmp (r.outcome, "denied") == 0 && r.out == 0 && r.in == 0);
    s_proxy_stop (&p);
    s_origin_stop (&web);
    s_origin_stop (&echo);
}

//  The refusals: not granted, loopback by name, wildcards, methods, malformed, too large.
static void
s_expect (proxy_run_t *p, const char *request, const char *status, const char *reason)
{
    char out [4096], body [256];
    record_t r;
    s_ask (p->port, request, out, sizeof out);
    snprintf (body, sizeof body, "\r\n\r\n%s\n", reason);
    bool ok = strncmp (out, status, strlen (status)) == 0 && strstr (out, body);
    CHECK (ok);
    bool rec = s_record (p, &r) && strcmp (r.outcome, "denied") == 0 && strcmp (r.reason, reason) == 0;
    CHECK (rec);
    if (!ok || !rec)
        fprintf (stderr, "  asked %.60s, got %.80s / %s\n", request, out, r.reason);
}

static void
s_test_refusals (void)
{
    origin_t web;
    s_origin_start (&web, O_HTTP, 0);
    char a1 [64], a2 [64], a3 [64], req [512];
    snprintf (a1, sizeof a1, "localhost:%d", web.port);
    snprintf (a2, sizeof a2, "*.localhost:%d", web.port);
    snprintf (a3, sizeof a3, "127.0.0.1:%d", web.port);
    const char *allow [] = { a1, a2, a3 };
    const char *methods [] = { "GET", "HEAD" };
    proxy_grant_t grant = { allow, 2, methods, 2, 100, 0, NULL, 0 };
    proxy_run_t p;
    CHECK (s_proxy_start (&p, &grant) == 0);
    s_expect (&p, "GET http://example.com/ HTTP/1.1\r\n\r\n", "HTTP/1.1 403", "not in grant");
    //  localhost is granted by name only: it resolves to loopback, refused.
    snprintf (req, sizeof req, "GET http://localhost:%d/ HTTP/1.1\r\n\r\n", web.port);
    s_expect (&p, req, "HTTP/1.1 403", "loopback address");
    snprintf (req, sizeof req, "GET http://127.0.0.1:%d/ HTTP/1.1\r\n\r\n", web.port);
    s_expect (&p, req, "HTTP/1.1 403", "loopback address");
    //  *.localhost: not the suffix itself, nor a name that only ends with its letters.
    snprintf (req, sizeof req, "GET http://xlocalhost:%d/ HTTP/1.1\r\n\r\n", web.port);
    s_expect (&p, req, "HTTP/1.1 403", "not in grant");
    snprintf (req, sizeof req, "GET http://a.localhost:%d/ HTTP/1.1\r\n\r\n", web.port);
    char out [4096];
    record_t r;
    s_ask (p.port, req, out, sizeof out);
    CHECK (s_record (&p, &r) && strcmp (r.reason, "not in grant") != 0 && strcmp (r.host, "a.localhost") == 0);
    snprintf (req, sizeof req, "POST http://localhost:%d/ HTTP/1.1\r\n\r\n", web.port);
    s_expect (&p, req, "HTTP/1.1 403", "method not allowed");
    snprintf (req, sizeof req, "CONNECT localhost:%d HTTP/1.1\r\n\r\n", web.port);
    s_expect (&p, req, "HTTP/1.1 403", "method not allowed");
    s_expect (&p, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400", "not a proxy request (origin-form)");
    s_expect (&p, "GET https://a.b/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400", "https URI: use CONNECT");
    s_expect (&p, "GET http://u@a.b/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400", "userinfo in URI");
    s_expect (&p, "CONNECT a.b:70000 HTTP/1.1\r\n\r\n", "HTTP/1.1 400", "bad port");
    static char big [PROXY_HEAD_MAX + 4096];
    memset (big, 'a', sizeof big - 1);
    memcpy (big, "GET http://a.b/ HTTP/1.1\r\nX: ", 29);
    s_expect (&p, big, "HTTP/1.1 431", "request head too large");
    s_proxy_stop (&p);
    //  Naming the address and port itself lets loopback through.
    grant.allow_count = 3;
    CHECK (s_proxy_start (&p, &grant) == 0);
    snprintf (req, sizeof req, "GET http://127.0.0.1:%d/ HTTP/1.1\r\n\r\n", web.port);
    CHECK (s_ask (p.port, req, out, sizeof out) == sizeof s_response - 1);
    CHECK (s_record (&p, &r) && strcmp (r.outcome, "allowed") == 0);
    s_proxy_stop (&p);
    s_origin_stop (&web);
}

static void
s_test_limits (void)
{
    origin_t bulk;
    s_origin_start (&bulk, O_BULK, 1 << 20);
    char a1 [64], req [256], out [4096];
    snprintf (a1, sizeof a1, "127.0.0.1:%d", bulk.port);
    const char *allow [] = { a1 };
    proxy_grant_t grant = { allow, 1, NULL, 0, 2, 0, NULL, 0 };
    proxy_run_t p;
    record_t r;
    char line [256];
    //  The third connection past a cap of two gets 429, and the cap is reported once.
    CHECK (s_proxy_start (&p, &grant) == 0);
    int c1 = s_client (p.port), c2 = s_client (p.port);
    s_ask (p.port, "GET http://a.b/ HTTP/1.1\r\n\r\n", out, sizeof out);
    CHECK (strncmp (out, "HTTP/1.1 429 ", 13) == 0);
    CHECK (s_line (&p, line, sizeof line) && strcmp (line, "L\tconnections") == 0);
    CHECK (s_record (&p, &r) && strcmp (r.reason, "connection limit") == 0);
    s_ask (p.port, "GET http://a.b/ HTTP/1.1\r\n\r\n", out, sizeof out);
    CHECK (s_record (&p, &r) && strcmp (r.reason, "connection limit") == 0);
    close (c1);
    close (c2);
    CHECK (s_record (&p, &r) && s_record (&p, &r));
    s_proxy_stop (&p);
    CHECK (s_line (&p, line, sizeof line) == NULL);     //  no second L line
    //  Bytes past the cap end every connection and are reported once.
    grant.max_connections = 0;
    grant.max_bytes = 100000;
    CHECK (s_proxy_start (&p, &grant) == 0);
    int idle = s_client (p.port);
    snprintf (req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", bulk.port);
    int fd = s_client (p.port);
    send (fd, req, strlen (req), MSG_NOSIGNAL);
    size_t n = 0;
    ssize_t got;
    while ((got = recv (fd, out, sizeof out, 0)) > 0)
        n += (size_t) got;
    close (fd);
    CHECK (n > 0 && n <= 100000 + 65536);
    CHECK (s_line (&p, line, sizeof line) && strcmp (line, "L\tbytes") == 0);
    record_t r2;
    CHECK (s_record (&p, &r) && s_record (&p, &r2));
    record_t *tunnel = strcmp (r.method, "CONNECT") == 0 ? &r : &r2;
    CHECK (strcmp (tunnel->method, "CONNECT") == 0 && tunnel->in > 100000
           && tunnel->in <= 100000 + 65536 && tunnel->in >= (long long) n - 39
           && strcmp (tunnel->outcome, "allowed") == 0);
    close (idle);
    s_proxy_stop (&p);
    s_origin_stop (&bulk);
}

//  SIGTERM ends open connections with their records.
static void
s_test_sigterm (void)
{
    origin_t echo;
    s_origin_start (&echo, O_ECHO, 0);
    char a1 [64], req [256], out [256];
    snprintf (a1, sizeof a1, "127.0.0.1:%d", echo.port);
    const char *allow [] = { a1 };
    proxy_grant_t grant = { allow, 1, NULL, 0, 0, 0, NULL, 0 };
    proxy_run_t p;
    record_t r;
    CHECK (s_proxy_start (&p, &grant) == 0);
    int fd = s_client (p.port);
    snprintf (req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.0\r\n\r\nearly", echo.port);
    send (fd, req, strlen (req), MSG_NOSIGNAL);
    s_read (fd, out, sizeof out, 39 + 5);
    CHECK (memcmp (out + 39, "early", 5) == 0);
    int half = s_client (p.port);
    send (half, "GET http://a", 12, MSG_NOSIGNAL);
    usleep (100 * 1000);
    s_proxy_stop (&p);
    record_t r2;
    CHECK (s_record (&p, &r) && s_record (&p, &r2));
    record_t *tunnel = strcmp (r.method, "CONNECT") == 0 ? &r : &r2, *head = tunnel == &r ? &r2 : &r;
    CHECK (strcmp (tunnel->method, "CONNECT") == 0 && tunnel->out == 5 && tunnel->in == 5
           && strcmp (tunnel->outcome, "allowed") == 0);
    CHECK (strcmp (head->method, "-") == 0 && strcmp (head->outcome, "denied") == 0
           && strcmp (head->reason, "proxy stopped") == 0);
    close (fd);
    close (half);
    s_origin_stop (&echo);
}

static double
s_download (int port, const char *request, size_t total)
{
    static char buf [65536];
    double start = clock_mono_us ();
    int fd = s_client (port);
    if (fd < 0)
        return 0;
    if (request)
        send (fd, request, strlen (request), MSG_NOSIGNAL);
    size_t got = 0;
    ssize_t n;
    while ((n = recv (fd, buf, sizeof buf, 0)) > 0)
        got += (size_t) n;
    close (fd);
    double secs = (clock_mono_us () - start) / 1e6;
    return got >= total && secs > 0 ? (double) total / secs / 1e6 : 0;
}

//  Throughput, printed for the record (no timed assertion: hosts differ).
static void
s_throughput (void)
{
    size_t total = 100u << 20;
    origin_t bulk;
    s_origin_start (&bulk, O_BULK, total);
    char a1 [64], req [256];
    snprintf (a1, sizeof a1, "127.0.0.1:%d", bulk.port);
    const char *allow [] = { a1 };
    proxy_grant_t grant = { allow, 1, NULL, 0, 0, 0, NULL, 0 };
    proxy_run_t p;
    record_t r;
    CHECK (s_proxy_start (&p, &grant) == 0);
    snprintf (req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", bulk.port);
    double direct = 0, proxied = 0;
    for (int i = 0; i < 3; i++) {
        double d = s_download (bulk.port, NULL, total), q = s_download (p.port, req, total);
        direct = d > direct ? d : direct;
        proxied = q > proxied ? q : proxied;
        CHECK (s_record (&p, &r) && r.in == (long long) total);
    }
    printf ("   proxy throughput, 100 MB on loopback: direct %.0f MB/s, through the proxy %.0f MB/s"
            " (%.0f%%)\n", direct, proxied, direct > 0 ? 100 * proxied / direct : 0);
    s_proxy_stop (&p);
    s_origin_stop (&bulk);
}

int
proxy_test (void)
{
    proxy_head_test ();
    proxy_dest_test ();
    s_test_http_and_tunnel ();
    s_test_refusals ();
    s_test_limits ();
    s_test_sigterm ();
    s_throughput ();
    return 0;
}
