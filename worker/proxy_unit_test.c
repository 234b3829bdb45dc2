/*  worker/proxy_unit_test.c: self-tests of the egress proxy's pure parts: the request-head
    reader and rewrite (proxy_head.c), grant matching and address classes (proxy_dest.c). */
#include "worker/proxy_dest.h"
#include "worker/proxy_head.h"
#include "common/check.h"
#include <arpa/inet.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static int
s_parse (const char *text, proxy_head_t *h, int *status, const char **why)
{
    *status = 0;
    *why = NULL;
    return proxy_head_parse (text, strlen (text), h, status, why);
}

static bool
s_refused (const char *text, int want_status)
{
    proxy_head_t h;
    int status;
    const char *why;
    return s_parse (text, &h, &status, &why) == -1 && status == want_status && why && *why;
}

int
proxy_head_test (void)
{
    proxy_head_t h;
    int status;
    const char *why;
    const char *get = "GET http://Example.COM:8080/a/b?c=d HTTP/1.0\r\nHost: evil\r\n"
                      "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic x\r\n"
                      "Connection: keep-alive\r\nKeep-Alive: 5\r\nAccept: */*\r\n\r\nBODY";
    CHECK (s_parse (get, &h, &status, &why) == 1 && !h.tunnel && h.port == 8080
           && strcmp (h.method, "GET") == 0 && strcmp (h.host, "Example.COM") == 0
           && h.head_len == strlen (get) - 4 && h.body_len == 0);
    char out [PROXY_FORWARD_MAX];
    ssize_t n = proxy_head_forward (get, &h, out, sizeof out);
    const char *want = "GET /a/b?c=d HTTP/1.1\r\nHost: Example.COM:8080\r\nAccept: */*\r\n"
                       "Connection: close\r\n\r\n";
    CHECK (n == (ssize_t) strlen (want) && memcmp (out, want, (size_t) n) == 0);
    CHECK (proxy_head_forward (get, &h, out, 20) == -1);
    //  Every prefix of a complete head is "more, please".
    int more = 0;
    size_t head_len = h.head_len;
    for (size_t i = 0; i < head_len; i++)
        more += proxy_head_parse (get, i, &h, &status, &why) == 0;
    CHECK (more == (int) strlen (get) - 4);
    //  Default port, bare LF lines, an empty path and a bare query.
    CHECK (s_parse ("HEAD http://a.b HTTP/1.1\n\n", &h, &status, &why) == 1 && h.port == 80);
    n = proxy_head_forward ("HEAD http://a.b HTTP/1.1\n\n", &h, out, sizeof out);
    CHECK (n > 0 && strncmp (out, "HEAD / HTTP/1.1\r\nHost: a.b\r\n", 28) == 0);
    CHECK (s_parse ("GET http://a.b?x HTTP/1.1\r\n\r\n", &h, &status, &why) == 1);
    n = proxy_head_forward ("GET http://a.b?x HTTP/1.1\r\n\r\n", &h, out, sizeof out);
    CHECK (n > 0 && strncmp (out, "GET /?x HTTP/1.1\r\n", 18) == 0);
    CHECK (s_parse ("POST http://a.b/ HTTP/1.1\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n",
                    &h, &status, &why) == 1 && h.body_len == 12);
    CHECK (s_parse ("CONNECT files.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n", &h, &status, &why)
           == 1 && h.tunnel && h.port == 443 && strcmp (h.host, "files.example.com") == 0);
    CHECK (s_parse ("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n", &h, &status, &why) == 1
           && h.bracketed && strcmp (h.host, "2001:db8::1") == 0);
    CHECK (s_parse ("GET http://[::1]:81/ HTTP/1.1\r\n\r\n", &h, &status, &why) == 1);
    n = proxy_head_forward ("GET http://[::1]:81/ HTTP/1.1\r\n\r\n", &h, out, sizeof out);
    CHECK (n > 0 && strstr (out, "\r\nHost: [::1]:81\r\n"));
    //  Refused: each with a reason, method and host kept when read.
    CHECK (s_refused ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400));
    CHECK (s_refused ("GET https://a.b/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://user:pw@a.b/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b:0/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b:65536/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b:/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b:80x/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a b/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b/#f HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://[::1/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://[zz]/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b/ HTTP/2.0\r\n\r\n", 400));
    CHECK (s_refused ("get http://a.b/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GETTINGTOOLONGMETHOD http://a.b/ HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("CONNECT a.b HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("CONNECT a.b:99999 HTTP/1.1\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b/ HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b/ HTTP/1.1\r\nX\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b/ HTTP/1.1\r\nX: a\rb\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400));
    CHECK (s_refused ("GET http://a.b/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400));
    CHECK (s_refused ("\r\n\r\n", 400));
    CHECK (s_parse ("POST http://a.b/ HTTP/1.1\r\nX\r\n\r\n", &h, &status, &why) == -1
           && strcmp (h.method, "POST") == 0 && strcmp (h.host, "a.b") == 0);
    //  A head past 16 KiB: 431, complete or not.
    size_t big = PROXY_HEAD_MAX + 100;
    char *text = malloc (big + 1);
    if (text) {
        memset (text, 'a', big);
        memcpy (text, "GET http://a.b/ HTTP/1.1\r\nX: ", 29);
        memcpy (text + big - 4, "\r\n\r\n", 4);
        text [big] = 0;
        CHECK (s_refused (text, 431));
        CHECK (proxy_head_parse (text, PROXY_HEAD_MAX, &h, &status, &why) == -1 && status == 431);
        CHECK (proxy_head_parse (text, PROXY_HEAD_MAX - 1, &h, &status, &why) == 0);
        free (text);
    }
    return 0;
}

static proxy_addr_class_t
s_class (const char *text)
{
    struct in6_addr a;
    if (!proxy_host_literal (text, &a))
        return (proxy_addr_class_t) -1;
    return proxy_addr_classify (&a);
}

static void
s_classes (void)
{
    static const struct { const char *addr; proxy_addr_class_t cls; } cases [] = {
        { "127.0.0.1", PROXY_ADDR_LOOPBACK }, { "127.255.1.2", PROXY_ADDR_LOOPBACK },
        { "::1", PROXY_ADDR_LOOPBACK }, { "0.0.0.0", PROXY_ADDR_UNSPECIFIED },
        { "0.1.2.3", PROXY_ADDR_UNSPECIFIED }, { "::", PROXY_ADDR_UNSPECIFIED },
        { "169.254.169.254", PROXY_ADDR_LINK_LOCAL }, { "fe80::1", PROXY_ADDR_LINK_LOCAL },
        { "febf::1", PROXY_ADDR_LINK_LOCAL }, { "10.0.0.1", PROXY_ADDR_PRIVATE },
        { "172.16.0.1", PROXY_ADDR_PRIVATE }, { "172.31.255.255", PROXY_ADDR_PRIVATE },
        { "172.32.0.1", PROXY_ADDR_PUBLIC }, { "172.15.0.1", PROXY_ADDR_PUBLIC },
        { "192.168.1.1", PROXY_ADDR_PRIVATE }, { "100.64.0.1", PROXY_ADDR_PRIVATE },
        { "100.127.255.255", PROXY_ADDR_PRIVATE }, { "100.128.0.1", PROXY_ADDR_PUBLIC },
        { "fc00::1", PROXY_ADDR_PRIVATE }, { "fdff::1", PROXY_ADDR_PRIVATE },
        { "224.0.0.1", PROXY_ADDR_MULTICAST }, { "239.255.255.250", PROXY_ADDR_MULTICAST },
        { "ff02::1", PROXY_ADDR_MULTICAST }, { "240.0.0.1", PROXY_ADDR_RESERVED },
        { "255.255.255.255", PROXY_ADDR_RESERVED },
        { "::ffff:169.254.169.254", PROXY_ADDR_LINK_LOCAL }, { "::ffff:127.0.0.1", PROXY_ADDR_LOOPBACK },
        { "::ffff:10.1.2.3", PROXY_ADDR_PRIVATE }, { "::ffff:0.0.0.0", PROXY_ADDR_UNSPECIFIED },
        { "::ffff:224.1.1.1", PROXY_ADDR_MULTICAST }, { "::127.0.0.1", PROXY_ADDR_LOOPBACK },
        { "::169.254.169.254", PROXY_ADDR_LINK_LOCAL }, { "::192.168.0.1", PROXY_ADDR_PRIVATE },
        { "64:ff9b::a9fe:a9fe", PROXY_ADDR_LINK_LOCAL }, { "::ffff:93.184.216.34", PROXY_ADDR_PUBLIC },
        { "93.184.216.34", PROXY_ADDR_PUBLIC }, { "2001:db8::1", PROXY_ADDR_PUBLIC },
        { "2606:4700::1111", PROXY_ADDR_PUBLIC }, { "1.1.1.1", PROXY_ADDR_PUBLIC },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        bool ok = s_class (cases [i].addr) == cases [i].cls;
        CHECK (ok);
        if (!ok)
            fprintf (stderr, "  class of %s\n", cases [i].addr);
    }
    CHECK (strcmp (proxy_addr_class_reason (PROXY_ADDR_LINK_LOCAL), "link-local address") == 0);
}

int
proxy_dest_test (void)
{
    s_classes ();
    proxy_entry_t e [6];
    CHECK (proxy_entry_parse ("Files.Example.com.:443", &e [0]) == 0 && !e [0].is_ip
           && strcmp (e [0].name, "files.example.com") == 0 && e [0].port == 443);
    CHECK (proxy_entry_parse ("*.internal.example:80", &e [1]) == 0 && e [1].wildcard);
    CHECK (proxy_entry_parse ("10.1.2.3:5432", &e [2]) == 0 && e [2].is_ip);
    CHECK (proxy_entry_parse ("[2001:db8::1]:443", &e [3]) == 0 && e [3].is_ip);
    CHECK (proxy_entry_parse ("127.0.0.1:8080", &e [4]) == 0 && e [4].is_ip);
    CHECK (proxy_entry_parse ("files.example.com", &e [5]) == -1);
    CHECK (proxy_entry_parse ("a.b:0", &e [5]) == -1 && proxy_entry_parse ("a.b:99999", &e [5]) == -1);
    CHECK (proxy_entry_parse ("[zz]:1", &e [5]) == -1 && proxy_entry_parse ("a/b:1", &e [5]) == -1);
    CHECK (proxy_entry_names (&e [0], "FILES.example.COM", 443));
    CHECK (proxy_entry_names (&e [0], "files.example.com.", 443));
    CHECK (!proxy_entry_names (&e [0], "files.example.com", 80));
    CHECK (!proxy_entry_names (&e [0], "xfiles.example.com", 443));
    CHECK (!proxy_entry_names (&e [0], "a.files.example.com", 443));
    CHECK (proxy_entry_names (&e [1], "a.internal.example", 80));
    CHECK (proxy_entry_names (&e [1], "a.b.INTERNAL.example.", 80));
    CHECK (!proxy_entry_names (&e [1], "internal.example", 80));
    CHECK (!proxy_entry_names (&e [1], "xinternal.example", 80));
    CHECK (!proxy_entry_names (&e [2], "10.1.2.3", 5432));
    //  The rules: names, literals, methods, classes, explicit IP entries, own addresses.
    const char *get [] = { "GET" };
    struct sockaddr_storage own = { 0 };
    struct sockaddr_in *own4 = (struct sockaddr_in *) &own;
    own4->sin_family = AF_INET;
    inet_pton (AF_INET, "93.184.216.34", &own4->sin_addr);
    proxy_rules_t rules = { e, 5, NULL, 0, &own, 1 };
    bool by_name;
    const char *why = NULL;
    struct in6_addr a;
    CHECK (proxy_rules_request (&rules, "CONNECT", "files.example.com", 443, &by_name, &why) == 0
           && by_name);
    CHECK (proxy_rules_request (&rules, "GET", "other.example", 444, &by_name, &why) == -1
           && strcmp (why, "not in grant") == 0);
    //  A name no name entry allows is refused, even toward an IP entry's port: the grant
    //  names what may be asked for.
    CHECK (proxy_rules_request (&rules, "GET", "db.example", 5432, &by_name, &why) == -1
           && strcmp (why, "not in grant") == 0);
    proxy_host_literal ("10.1.2.3", &a);
    CHECK (proxy_rules_address (&rules, false, &a, 5432, &why) == 0);
    proxy_host_literal ("10.1.2.4", &a);
    CHECK (proxy_rules_address (&rules, false, &a, 5432, &why) == -1
           && strcmp (why, "address not in grant") == 0);
    CHECK (proxy_rules_request (&rules, "GET", "169.254.169.254", 80, &by_name, &why) == -1
           && strcmp (why, "link-local address") == 0);
    CHECK (proxy_rules_request (&rules, "GET", "127.0.0.1", 8080, &by_name, &why) == 0);
    CHECK (proxy_rules_request (&rules, "GET", "127.0.0.1", 8081, &by_name, &why) == -1);
    CHECK (proxy_rules_request (&rules, "GET", "8.8.8.8", 53, &by_name, &why) == -1
           && strcmp (why, "not in grant") == 0);
    proxy_host_literal ("127.0.0.1", &a);
    CHECK (proxy_rules_address (&rules, true, &a, 443, &why) == -1
           && strcmp (why, "loopback address") == 0);
    CHECK (proxy_rules_address (&rules, true, &a, 8080, &why) == 0);
    proxy_host_literal ("::ffff:169.254.169.254", &a);
    CHECK (proxy_rules_address (&rules, true, &a, 443, &why) == -1
           && strcmp (why, "link-local address") == 0);
    proxy_host_literal ("93.184.216.34", &a);
    CHECK (proxy_rules_address (&rules, true, &a, 443, &why) == -1
           && strcmp (why, "the proxy's own address") == 0);
    proxy_host_literal ("93.184.216.35", &a);
    CHECK (proxy_rules_address (&rules, true, &a, 443, &why) == 0);
    rules.methods = get;
    rules.method_count = 1;
    CHECK (proxy_rules_request (&rules, "CONNECT", "files.example.com", 443, &by_name, &why) == -1
           && strcmp (why, "method not allowed") == 0);
    CHECK (proxy_rules_request (&rules, "GET", "files.example.com", 443, &by_name, &why) == 0);
    return 0;
}
