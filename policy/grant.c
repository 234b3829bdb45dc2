/*  policy/grant.c: a rule's network grant (issue 15). It owns the syntax of `network`:
    `allow`, 1-64 HOST:PORT entries (a DNS name, `*.` and a name, an IPv4 address or an IPv6
    address in brackets; PORT 1-65535), and `methods`, 1-16 HTTP method tokens. Entries are
    normalised here (names lowercased, a trailing dot dropped, IPv6 in canonical form) so
    that duplicates are found and the proxy compares like with like. Pure; never asserts on
    input: every problem is one positioned error through policy/reader.c. */
#include "policy/grant.h"
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static const char *s_need_port = "missing port: an entry is HOST:PORT";

//  A DNS name as the grant takes it: letters (lowercase by now), digits, '-' and '.',
//  labels of 1-63, at most 253 in all.
static bool
s_name_valid (const char *name, size_t len)
{
    if (len == 0 || len > GRANT_MAX_NAME)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        }
        else
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            if (++label > 63)
                return false;
        }
        else
            return false;
    }
    return label > 0;
}

//  PORT: 1-65535 in decimal, no sign, no leading zero (so one port has one spelling).
static int
s_port (const char *text, size_t len, unsigned *port, const char **why)
{
    *port = 0;
    if (len == 0) {
        *why = s_need_port;
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9' || len > 5 || (i == 0 && text[i] == '0')) {
            *why = "the port must be a number from 1 to 65535";
            return -1;
        }
        *port = *port * 10 + (unsigned) (text[i] - '0');
    }
    if (*port > 65535) {
        *why = "the port must be a number from 1 to 65535";
        return -1;
    }
    return 0;
}

//  "[v6]:port" into out, the address in its canonical form.
static int
s_bracketed (const char *entry, size_t size, char *out, const char **why)
{
    const char *close = memchr (entry, ']', size);
    char addr[GRANT_ENTRY_SIZE], canon[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    if (!close) {
        *why = "an IPv6 address in brackets needs its closing ']'";
        return -1;
    }
    size_t len = (size_t) (close - entry) - 1;
    memcpy (addr, entry + 1, len);
    addr[len] = 0;
    if (inet_pton (AF_INET6, addr, &a6) != 1 || !inet_ntop (AF_INET6, &a6, canon, sizeof canon)) {
        *why = "not an IPv6 address inside the brackets";
        return -1;
    }
    const char *rest = close + 1, *end = entry + size;
    if (rest == end || *rest != ':') {
        *why = s_need_port;
        return -1;
    }
    unsigned port;
    if (s_port (rest + 1, (size_t) (end - rest - 1), &port, why))
        return -1;
    snprintf (out, GRANT_ENTRY_SIZE, "[%s]:%u", canon, port);
    return 0;
}

//  host (lowercased, trailing dot dropped) is a name, `*.` and a name, or an IPv4 address.
static int
s_host (const char *host, size_t len, const char **why)
{
    bool wildcard = len >= 2 && host[0] == '*' && host[1] == '.';
    if (len == 0) {
        *why = "missing host: an entry is HOST:PORT";
        return -1;
    }
    if (wildcard && len == 2) {
        *why = "'*.' needs a name after it ('*.example.com')";
        return -1;
    }
    if (wildcard)
        host += 2, len -= 2;
    if (memchr (host, '*', len)) {
        *why = "'*' may only start a name, as '*.'";
        return -1;
    }
    if (!wildcard && strspn (host, "0123456789.") == len) {
        struct in_addr a4;
        if (inet_pton (AF_INET, host, &a4) != 1) {
            *why = "not an IPv4 address (four numbers 0-255, no leading zeros)";
            return -1;
        }
        return 0;
    }
    if (!s_name_valid (host, len)) {
        *why = "not a host name (letters, digits, '-' and '.', labels of 1-63, at most 253)";
        return -1;
    }
    return 0;
}

int
grant_entry (const char *entry, size_t size, char *out, const char **why)
{
    *why = NULL;
    if (!entry || size == 0 || memchr (entry, 0, size)) {
        *why = "missing host: an entry is HOST:PORT";
        return -1;
    }
    if (size >= GRANT_ENTRY_SIZE) {
        *why = "longer than any HOST:PORT (a name is at most 253 characters)";
        return -1;
    }
    if (entry[0] == '[')
        return s_bracketed (entry, size, out, why);
    const char *colon = NULL;           //  the last ':' (a port has none)
    for (size_t i = 0; i < size; i++)
        if (entry[i] == ':')
            colon = entry + i;
    if (!colon) {
        *why = s_need_port;
        return -1;
    }
    size_t written = (size_t) (colon - entry);
    if (memchr (entry, ':', written)) {
        *why = "an IPv6 address needs brackets: '[2001:db8::1]:443'";
        return -1;
    }
    char host[GRANT_ENTRY_SIZE];
    size_t len = written;
    for (size_t i = 0; i < len; i++)
        host[i] = entry[i] >= 'A' && entry[i] <= 'Z' ? (char) (entry[i] + 32) : entry[i];
    if (len > 1 && host[len - 1] == '.' && !(len == 2 && host[0] == '*'))
        len--;                          //  "example.com." is "example.com"
    host[len] = 0;
    unsigned port;
    if (s_host (host, len, why) || s_port (colon + 1, size - written - 1, &port, why))
        return -1;
    snprintf (out, GRANT_ENTRY_SIZE, "%.*s:%hu", GRANT_ENTRY_SIZE - 7, host, (unsigned short) port);
    return 0;
}

//  Where an item of list `key` is: at its index, or at the value when it was one string.
static void
s_push_item (reader_t *ctx, json_t *network, const char *key, size_t i)
{
    reader_push_key (ctx, key);
    if (json_is_array (json_object_get (network, key)))
        reader_push_index (ctx, i);
}

//  `allow` (read by reader_get_list) normalised into a new array; NULL after an error.
static json_t *
s_allow (reader_t *ctx, json_t *network, json_t *list)
{
    if (json_array_size (list) > GRANT_MAX_ALLOW) {
        reader_push_key (ctx, "allow");
        reader_fail (ctx, JPOS_VALUE, "'allow' %s holds more than %d entries", ctx->where,
                     GRANT_MAX_ALLOW);
        return NULL;
    }
    json_t *out = json_array ();
    for (size_t i = 0; out && i < json_array_size (list); i++) {
        json_t *item = json_array_get (list, i);
        const char *entry = json_string_value (item), *why;
        char norm[GRANT_ENTRY_SIZE];
        if (grant_entry (entry, json_string_length (item), norm, &why)) {
            s_push_item (ctx, network, "allow", i);
            reader_fail (ctx, JPOS_VALUE, "bad entry '%.80s' %s: %s", entry, ctx->where, why);
            break;
        }
        for (size_t j = 0; j < json_array_size (out); j++)
            if (strcmp (json_string_value (json_array_get (out, j)), norm) == 0) {
                s_push_item (ctx, network, "allow", i);
                reader_fail (ctx, JPOS_VALUE, "duplicate entry '%.80s' %s (the same as entry %zu)",
                             entry, ctx->where, j + 1);
                json_decref (out);
                return NULL;
            }
        if (json_array_append_new (out, json_string (norm)) != 0) {
            reader_fail (ctx, JPOS_VALUE, "out of memory");
            break;
        }
    }
    if (out && json_array_size (out) == json_array_size (list))
        return out;
    json_decref (out);
    return NULL;
}

//  `methods`: HTTP method tokens, 1-16 of A-Z, each once. 0, or -1 after an error.
static int
s_methods (reader_t *ctx, json_t *network, json_t *list)
{
    if (json_array_size (list) > GRANT_MAX_METHODS) {
        reader_push_key (ctx, "methods");
        return reader_fail (ctx, JPOS_VALUE, "'methods' %s holds more than %d methods", ctx->where,
                            GRANT_MAX_METHODS);
    }
    for (size_t i = 0; i < json_array_size (list); i++) {
        const char *method = json_string_value (json_array_get (list, i));
        size_t len = json_string_length (json_array_get (list, i));
        if (len > GRANT_MAX_METHOD || strspn (method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != len) {
            s_push_item (ctx, network, "methods", i);
            return reader_fail (ctx, JPOS_VALUE, "method '%.40s' %s must be 1-%d of A-Z (as GET, "
                                "CONNECT)", method, ctx->where, GRANT_MAX_METHOD);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp (json_string_value (json_array_get (list, j)), method) == 0) {
                s_push_item (ctx, network, "methods", i);
                return reader_fail (ctx, JPOS_VALUE, "duplicate method '%s' %s", method, ctx->where);
            }
    }
    return 0;
}

int
grant_parse (reader_t *ctx, json_t *rule, json_t **out)
{
    static const char *const keys[] = { "allow", "methods", NULL };
    json_t *network = json_object_get (rule, "network");
    *out = NULL;
    if (!network)
        return 0;
    reader_push_key (ctx, "network");
    reader_where (ctx, "network");
    if (!json_is_object (network))
        return reader_fail (ctx, JPOS_VALUE, "'network' in %s must be an object", ctx->rule);
    json_t *list = NULL, *methods = NULL;
    int rc = reader_check_keys (ctx, network, keys) ? -1
           : reader_get_list (ctx, network, "allow", false, NULL, &list);
    if (rc == 1)
        return reader_fail (ctx, JPOS_VALUE, "missing required key 'allow' %s", ctx->where);
    json_t *allow = rc == 0 ? s_allow (ctx, network, list) : NULL;
    json_decref (list);
    if (!allow || reader_get_list (ctx, network, "methods", false, NULL, &methods) < 0
        || (methods && s_methods (ctx, network, methods))) {
        json_decref (allow);
        json_decref (methods);
        return -1;
    }
    *out = methods ? json_pack ("{s:o, s:o}", "allow", allow, "methods", methods)
                   : json_pack ("{s:o}", "allow", allow);
    if (!*out)
        return reader_fail (ctx, JPOS_VALUE, "out of memory");
    reader_where (ctx, NULL);
    reader_pop (ctx);
    return 0;
}
