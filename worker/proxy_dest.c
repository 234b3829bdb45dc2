/*  worker/proxy_dest.c: grant entries, name matching and address classes (proxy_dest.h).
    Every address is handled as IPv6 with IPv4 mapped in (::ffff:a.b.c.d) so one comparison
    and one classifier serve both families, and an IPv4 address cannot slip past a check by
    being spelled in one of its IPv6 forms. */
#include "worker/proxy_dest.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void
s_map4 (uint32_t be, struct in6_addr *out)
{
    memset (out, 0, sizeof *out);
    out->s6_addr [10] = 0xff;
    out->s6_addr [11] = 0xff;
    memcpy (out->s6_addr + 12, &be, 4);
}

bool
proxy_host_literal (const char *host, struct in6_addr *out)
{
    struct in_addr a4;
    if (inet_pton (AF_INET, host, &a4) == 1)
        return s_map4 (a4.s_addr, out), true;
    return inet_pton (AF_INET6, host, out) == 1;
}

bool
proxy_addr_norm (const struct sockaddr *sa, struct in6_addr *out)
{
    if (sa->sa_family == AF_INET)
        return s_map4 (((const struct sockaddr_in *) sa)->sin_addr.s_addr, out), true;
    if (sa->sa_family == AF_INET6)
        return *out = ((const struct sockaddr_in6 *) sa)->sin6_addr, true;
    return false;
}

int
proxy_entry_parse (const char *text, proxy_entry_t *entry)
{
    memset (entry, 0, sizeof *entry);
    const char *colon = strrchr (text, ':');
    if (!colon || colon == text)
        return -1;
    char *end;
    long port = strtol (colon + 1, &end, 10);
    if (!colon [1] || *end || port < 1 || port > 65535 || !isdigit ((unsigned char) colon [1]))
        return -1;
    entry->port = (int) port;
    size_t n = (size_t) (colon - text);
    if (text [0] == '[') {
        if (n < 3 || text [n - 1] != ']' || n - 2 >= sizeof entry->name)
            return -1;
        memcpy (entry->name, text + 1, n - 2);
        entry->name [n - 2] = 0;
        entry->is_ip = inet_pton (AF_INET6, entry->name, &entry->ip) == 1;
        return entry->is_ip ? 0 : -1;
    }
    if (n >= 2 && text [0] == '*' && text [1] == '.') {
        entry->wildcard = true;
        text += 2;
        n -= 2;
    }
    if (n && text [n - 1] == '.')
        n--;
    if (n == 0 || n >= sizeof entry->name)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = (char) tolower ((unsigned char) text [i]);
        if (!(isalnum ((unsigned char) c) || c == '-' || c == '.' || c == '_'))
            return -1;
        entry->name [i] = c;
    }
    if (!entry->wildcard && proxy_host_literal (entry->name, &entry->ip))
        entry->is_ip = true;
    return 0;
}

bool
proxy_entry_names (const proxy_entry_t *entry, const char *host, int port)
{
    if (entry->is_ip || entry->port != port)
        return false;
    size_t n = strlen (host), en = strlen (entry->name);
    if (n && host [n - 1] == '.')
        n--;
    if (!entry->wildcard)
        return n == en && strncasecmp (host, entry->name, n) == 0;
    //  "*.example.com" wants "x.example.com", not "example.com" nor "xexample.com".
    return n > en + 1 && host [n - en - 1] == '.'
        && strncasecmp (host + n - en, entry->name, en) == 0;
}

static proxy_addr_class_t
s_classify4 (const uint8_t *b)
{
    if (b [0] == 127)
        return PROXY_ADDR_LOOPBACK;
    if (b [0] == 0)
        return PROXY_ADDR_UNSPECIFIED;
    if (b [0] == 169 && b [1] == 254)
        return PROXY_ADDR_LINK_LOCAL;
    if (b [0] == 10 || (b [0] == 172 && (b [1] & 0xf0) == 16) || (b [0] == 192 && b [1] == 168)
    ||  (b [0] == 100 && (b [1] & 0xc0) == 64))
        return PROXY_ADDR_PRIVATE;
    if ((b [0] & 0xf0) == 224)
        return PROXY_ADDR_MULTICAST;
    if ((b [0] & 0xf0) == 240)          //  240/4, 255.255.255.255 (broadcast) included
        return PROXY_ADDR_RESERVED;
    return PROXY_ADDR_PUBLIC;
}

proxy_addr_class_t
proxy_addr_classify (const struct in6_addr *addr)
{
    static const uint8_t zero [16] = { 0 };
    static const uint8_t nat64 [12] = { 0, 0x64, 0xff, 0x9b };
    const uint8_t *b = addr->s6_addr;
    if (memcmp (b, zero, 15) == 0 && b [15] <= 1)
        return b [15] ? PROXY_ADDR_LOOPBACK : PROXY_ADDR_UNSPECIFIED;
    //  ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), 64:ff9b::a.b.c.d (NAT64).
    if ((memcmp (b, zero, 10) == 0 && ((b [10] == 0xff && b [11] == 0xff) || (!b [10] && !b [11])))
    ||  memcmp (b, nat64, 12) == 0)
        return s_classify4 (b + 12);
    if (b [0] == 0xfe && (b [1] & 0xc0) == 0x80)
        return PROXY_ADDR_LINK_LOCAL;
    if ((b [0] & 0xfe) == 0xfc || (b [0] == 0xfe && (b [1] & 0xc0) == 0xc0))
        return PROXY_ADDR_PRIVATE;      //  fc00::/7 unique local, fec0::/10 old site-local
    if (b [0] == 0xff)
        return PROXY_ADDR_MULTICAST;
    return PROXY_ADDR_PUBLIC;
}

const char *
proxy_addr_class_reason (proxy_addr_class_t cls)
{
    switch (cls) {
        case PROXY_ADDR_LOOPBACK: return "loopback address";
        case PROXY_ADDR_UNSPECIFIED: return "unspecified address";
        case PROXY_ADDR_LINK_LOCAL: return "link-local address";
        case PROXY_ADDR_PRIVATE: return "private address";
        case PROXY_ADDR_MULTICAST: return "multicast address";
        case PROXY_ADDR_RESERVED: return "reserved address";
        default: return "public address";
    }
}

static bool
s_ip_entry (const proxy_rules_t *rules, const struct in6_addr *addr, int port)
{
    for (size_t i = 0; i < rules->count; i++)
        if (rules->entries [i].is_ip && rules->entries [i].port == port
        &&  memcmp (&rules->entries [i].ip, addr, sizeof *addr) == 0)
            return true;
    return false;
}

int
proxy_rules_request (const proxy_rules_t *rules, const char *method, const char *host,
                     int port, bool *by_name, const char **reason)
{
    struct in6_addr literal;
    *by_name = false;
    if (proxy_host_literal (host, &literal)) {
        if (!s_ip_entry (rules, &literal, port)) {
            proxy_addr_class_t cls = proxy_addr_classify (&literal);
            return *reason = cls ? proxy_addr_class_reason (cls) : "not in grant", -1;
        }
    }
    else {
        //  The destination as asked is what was approved: a name must be granted as a name
        //  (an IP entry does not admit every name that resolves to it). Its addresses are
        //  checked after resolution (proxy_rules_address).
        for (size_t i = 0; i < rules->count; i++)
            *by_name |= proxy_entry_names (&rules->entries [i], host, port);
        if (!*by_name)
            return *reason = "not in grant", -1;
    }
    if (rules->method_count == 0)
        return 0;
    for (size_t i = 0; i < rules->method_count; i++)
        if (strcmp (rules->methods [i], method) == 0)
            return 0;
    return *reason = "method not allowed", -1;
}

int
proxy_rules_address (const proxy_rules_t *rules, bool by_name, const struct in6_addr *addr,
                     int port, const char **reason)
{
    if (s_ip_entry (rules, addr, port))
        return 0;
    if (!by_name)
        return *reason = "address not in grant", -1;
    proxy_addr_class_t cls = proxy_addr_classify (addr);
    if (cls != PROXY_ADDR_PUBLIC)
        return *reason = proxy_addr_class_reason (cls), -1;
    for (size_t i = 0; i < rules->own_count; i++) {
        struct in6_addr own;
        if (proxy_addr_norm ((const struct sockaddr *) &rules->own [i], &own)
        &&  memcmp (&own, addr, sizeof own) == 0)
            return *reason = "the proxy's own address", -1;
    }
    return 0;
}
