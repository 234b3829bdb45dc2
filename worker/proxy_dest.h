/*  worker/proxy_dest.h: what the egress proxy may connect to (proxy_dest.c): the grant's
    entries, matched against the destination a client asked for, and the classification of
    every address a name resolved to. Pure functions. */
#ifndef RG_PROXY_DEST_H
#define RG_PROXY_DEST_H
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct {
    char name [256];            //  lowercased, no trailing dot; a wildcard's suffix without "*."
    bool wildcard;              //  "*.suffix"
    bool is_ip;                 //  an IPv4 or [IPv6] literal: ip holds it (IPv4 as ::ffff:a.b.c.d)
    struct in6_addr ip;
    int port;
} proxy_entry_t;

typedef enum {
    PROXY_ADDR_PUBLIC = 0, PROXY_ADDR_LOOPBACK, PROXY_ADDR_UNSPECIFIED, PROXY_ADDR_LINK_LOCAL,
    PROXY_ADDR_PRIVATE, PROXY_ADDR_MULTICAST, PROXY_ADDR_RESERVED
} proxy_addr_class_t;

//  Reads a grant entry as the policy writes it (HOST:PORT, *.HOST:PORT, a.b.c.d:PORT,
//  [v6]:PORT). 0, or -1 when it is none of these.
int proxy_entry_parse (const char *text, proxy_entry_t *entry);

//  Whether a DNS name entry (exact or wildcard) allows host:port. Case-insensitive, a
//  trailing dot ignored; never true for IP entries.
bool proxy_entry_names (const proxy_entry_t *entry, const char *host, int port);

//  The address of a literal host (IPv4 dotted quad or IPv6, no brackets) as ::ffff:-mapped
//  IPv6, or false when host is a name.
bool proxy_host_literal (const char *host, struct in6_addr *out);

//  An IPv4 or IPv6 socket address as IPv6 (IPv4 mapped). false for other families.
bool proxy_addr_norm (const struct sockaddr *sa, struct in6_addr *out);

//  The class of an address; IPv4-mapped, IPv4-compatible and NAT64 (64:ff9b::/96) forms are
//  classified by the IPv4 address inside.
proxy_addr_class_t proxy_addr_classify (const struct in6_addr *addr);
const char *proxy_addr_class_reason (proxy_addr_class_t cls);

//  A grant as the proxy checks it: parsed entries, the allowed methods (none: any) and the
//  addresses refused on top of the classes (the worker's own).
typedef struct {
    const proxy_entry_t *entries; size_t count;
    const char *const *methods; size_t method_count;
    const struct sockaddr_storage *own; size_t own_count;
} proxy_rules_t;

//  Before resolution: whether host:port (as asked) and the method may go on: a name must
//  match a name entry, an IP literal an IP entry (or be refused by its class). 0 with
//  *by_name (a name entry matched: any acceptable address of the name will do, checked by
//  proxy_rules_address), or -1 with *reason.
int proxy_rules_request (const proxy_rules_t *rules, const char *method, const char *host,
                         int port, bool *by_name, const char **reason);

//  One resolved (or literal) address: 0 when it may be connected to, -1 with *reason.
//  An IP entry naming that exact address and port allows it whatever its class.
int proxy_rules_address (const proxy_rules_t *rules, bool by_name, const struct in6_addr *addr,
                         int port, const char **reason);

int proxy_dest_test (void);
#endif
