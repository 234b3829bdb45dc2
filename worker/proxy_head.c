/*  worker/proxy_head.c: the egress proxy's request-head reader and the origin-form rewrite
    (see proxy_head.h). Strict on purpose: the proxy stands between a sandboxed snippet and
    the network, so anything ambiguous (bare CR, folded headers, a body framed by
    Transfer-Encoding, two Content-Lengths that differ, userinfo in a URI) is refused with 400
    rather than guessed at, and the origin only ever sees a head this file wrote. */
#include "worker/proxy_head.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REFUSE(code, text) do { *status = (code); *why = (text); return -1; } while (0)

//  The end of the head: the offset just past the blank line, or 0 when not there yet.
//  Lines end in LF, optionally preceded by CR.
static size_t
s_head_end (const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data [i] != '\n')
            continue;
        if (i + 1 < len && data [i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && data [i + 1] == '\r' && data [i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static bool
s_tchar (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || (c && strchr ("!#$%&'*+-.^_`|~", c));
}

//  Port digits: 1..65535, digits only.
static int
s_port (const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return -1;
    int port = 0;
    for (size_t i = 0; i < n; i++) {
        if (p [i] < '0' || p [i] > '9')
            return -1;
        port = port * 10 + (p [i] - '0');
    }
    return port >= 1 && port <= 65535 ? port : -1;
}

//  host[:port] of a URI or CONNECT target; default_port 0 means the port is required.
static int
s_authority (const char *p, size_t n, int default_port, proxy_head_t *head, const char **why)
{
    size_t host_end, port_at = 0;
    if (memchr (p, '@', n))
        return *why = "userinfo in URI", -1;
    if (n && p [0] == '[') {
        const char *close = memchr (p, ']', n);
        if (!close)
            return *why = "bad IPv6 literal", -1;
        size_t inner = (size_t) (close - p) - 1;
        char text [64];
        struct in6_addr a6;
        if (inner == 0 || inner >= sizeof text)
            return *why = "bad IPv6 literal", -1;
        memcpy (text, p + 1, inner);
        text [inner] = 0;
        if (inet_pton (AF_INET6, text, &a6) != 1)
            return *why = "bad IPv6 literal", -1;
        memcpy (head->host, text, inner + 1);
        head->bracketed = true;
        host_end = inner + 2;
        if (host_end < n && p [host_end] != ':')
            return *why = "bad host", -1;
    }
    else {
        const char *colon = memchr (p, ':', n);
        host_end = colon ? (size_t) (colon - p) : n;
        if (host_end == 0 || host_end > 254)
            return *why = "bad host", -1;
        for (size_t i = 0; i < host_end; i++) {
            char c = p [i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                  || c == '-' || c == '.' || c == '_'))
                return *why = "bad host", -1;
        }
        memcpy (head->host, p, host_end);
        head->host [host_end] = 0;
    }
    if (host_end < n)
        port_at = host_end + 1;
    if (port_at) {
        head->port = s_port (p + port_at, n - port_at);
        if (head->port < 0)
            return head->port = 0, *why = "bad port", -1;
    }
    else
    if (default_port)
        head->port = default_port;
    else
        return *why = "port required", -1;
    return 0;
}

//  METHOD SP target SP HTTP/1.x, the line being data[0..n).
static int
s_request_line (const char *data, size_t n, proxy_head_t *head, const char **why)
{
    const char *sp1 = memchr (data, ' ', n);
    if (!sp1 || sp1 == data || (size_t) (sp1 - data) > PROXY_METHOD_MAX)
        return *why = "bad method", -1;
    for (const char *m = data; m < sp1; m++)
        if (*m < 'A' || *m > 'Z')
            return *why = "bad method", -1;
    memcpy (head->method, data, (size_t) (sp1 - data));
    head->method [sp1 - data] = 0;
    const char *target = sp1 + 1, *end = data + n;
    const char *sp2 = memchr (target, ' ', (size_t) (end - target));
    if (!sp2 || sp2 == target)
        return *why = "bad request line", -1;
    size_t vlen = (size_t) (end - sp2 - 1);
    if (vlen != 8 || (memcmp (sp2 + 1, "HTTP/1.0", 8) && memcmp (sp2 + 1, "HTTP/1.1", 8)))
        return *why = "bad HTTP version", -1;
    size_t tlen = (size_t) (sp2 - target);
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char) target [i] <= 0x20 || (unsigned char) target [i] >= 0x7f)
            return *why = "bad request target", -1;
    if (strcmp (head->method, "CONNECT") == 0) {
        head->tunnel = true;
        return s_authority (target, tlen, 0, head, why);
    }
    if (tlen >= 8 && strncasecmp (target, "https://", 8) == 0)
        return *why = "https URI: use CONNECT", -1;
    if (tlen < 7 || strncasecmp (target, "http://", 7) != 0)
        return *why = target [0] == '/' ? "not a proxy request (origin-form)"
                                        : "bad request target", -1;
    if (memchr (target, '#', tlen))
        return *why = "fragment in URI", -1;
    const char *auth = target + 7;
    size_t alen = strcspn (auth, "/? ");
    if (auth + alen > sp2)
        alen = (size_t) (sp2 - auth);
    if (s_authority (auth, alen, 80, head, why))
        return -1;
    head->path_off = (size_t) (auth + alen - data);
    head->path_len = (size_t) (sp2 - (auth + alen));
    return 0;
}

//  Content-Length: digits only; a second one must say the same.
static int
s_content_length (const char *v, size_t n, proxy_head_t *head, bool *seen)
{
    int64_t value = 0;
    if (n == 0 || n > 15)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v [i] < '0' || v [i] > '9')
            return -1;
        value = value * 10 + (v [i] - '0');
    }
    if (*seen && value != head->body_len)
        return -1;
    *seen = true;
    head->body_len = value;
    return 0;
}

//  One header line data[0..n): name ":" OWS value OWS.
static int
s_header (const char *line, size_t n, proxy_head_t *head, bool *cl_seen, const char **why)
{
    const char *colon = memchr (line, ':', n);
    if (!colon || colon == line)
        return *why = line [0] == ' ' || line [0] == '\t' ? "folded header" : "bad header", -1;
    for (const char *c = line; c < colon; c++)
        if (!s_tchar ((unsigned char) *c))
            return *why = "bad header name", -1;
    const char *v = colon + 1, *end = line + n;
    for (const char *c = v; c < end; c++)
        if (((unsigned char) *c < 0x20 && *c != '\t') || *c == 0x7f)
            return *why = "control character in header", -1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end [-1] == ' ' || end [-1] == '\t'))
        end--;
    size_t name_len = (size_t) (colon - line);
    if (name_len == 17 && strncasecmp (line, "transfer-encoding", 17) == 0 && !head->tunnel)
        return *why = "request body without Content-Length", -1;
    if (name_len == 14 && strncasecmp (line, "content-length", 14) == 0 && !head->tunnel
    &&  s_content_length (v, (size_t) (end - v), head, cl_seen))
        return *why = "bad Content-Length", -1;
    return 0;
}

int
proxy_head_parse (const char *data, size_t len, proxy_head_t *head, int *status,
                  const char **why)
{
    memset (head, 0, sizeof *head);
    if (len > PROXY_HEAD_MAX)
        len = PROXY_HEAD_MAX + 1;       //  enough to tell "too large" from "complete"
    size_t end = s_head_end (data, len);
    if (end == 0 || end > PROXY_HEAD_MAX) {
        if (len >= PROXY_HEAD_MAX)
            REFUSE (431, "request head too large");
        return 0;
    }
    bool first = true, cl_seen = false;
    for (size_t at = 0; at < end; ) {
        const char *nl = memchr (data + at, '\n', end - at);
        size_t n = (size_t) (nl - (data + at));
        if (n && data [at + n - 1] == '\r')
            n--;
        if (n == 0)                     //  the blank line: s_head_end put it last
            break;
        if (memchr (data + at, '\r', n) || memchr (data + at, 0, n))
            REFUSE (400, "control character in head");
        if (first ? s_request_line (data + at, n, head, why)
                  : s_header (data + at, n, head, &cl_seen, why))
            REFUSE (400, *why);
        first = false;
        at = (size_t) (nl - data) + 1;
    }
    if (first)
        REFUSE (400, "empty request");
    head->head_len = end;
    return 1;
}

//  Hop-by-hop headers and Host (rewritten from the URI) are not forwarded.
static bool
s_dropped (const char *line, size_t n)
{
    static const char *names [] = { "proxy-connection", "proxy-authorization", "connection",
                                    "keep-alive", "host" };
    const char *colon = memchr (line, ':', n);
    size_t name_len = colon ? (size_t) (colon - line) : n;
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++)
        if (strlen (names [i]) == name_len && strncasecmp (line, names [i], name_len) == 0)
            return true;
    return false;
}

static bool
s_put (char *out, size_t cap, size_t *at, const char *text, size_t n)
{
    if (n > cap - *at)
        return false;
    memcpy (out + *at, text, n);
    *at += n;
    return true;
}

ssize_t
proxy_head_forward (const char *data, const proxy_head_t *head, char *out, size_t cap)
{
    size_t at = 0, mlen = strlen (head->method);
    const char *path = data + head->path_off;
    char host [PROXY_HOST_MAX + 16];
    int hlen = snprintf (host, sizeof host, head->bracketed ? "[%s]" : "%s", head->host);
    if (head->port != 80)
        hlen += snprintf (host + hlen, sizeof host - (size_t) hlen, ":%d", head->port);
    bool ok = s_put (out, cap, &at, head->method, mlen) && s_put (out, cap, &at, " ", 1)
           && (head->path_len && path [0] == '/' ? true : s_put (out, cap, &at, "/", 1))
           && s_put (out, cap, &at, path, head->path_len)
           && s_put (out, cap, &at, " HTTP/1.1\r\nHost: ", 17)
           && s_put (out, cap, &at, host, (size_t) hlen) && s_put (out, cap, &at, "\r\n", 2);
    const char *line = memchr (data, '\n', head->head_len);
    for (size_t off = line ? (size_t) (line - data) + 1 : head->head_len; ok; ) {
        const char *nl = memchr (data + off, '\n', head->head_len - off);
        if (!nl)
            break;
        size_t n = (size_t) (nl - (data + off));
        if (n && data [off + n - 1] == '\r')
            n--;
        if (n == 0)
            break;
        if (!s_dropped (data + off, n))
            ok = s_put (out, cap, &at, data + off, n) && s_put (out, cap, &at, "\r\n", 2);
        off = (size_t) (nl - data) + 1;
    }
    ok = ok && s_put (out, cap, &at, "Connection: close\r\n\r\n", 21);
    return ok ? (ssize_t) at : -1;
}
