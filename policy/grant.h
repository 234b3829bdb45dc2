/*  policy/grant.h: internal to the policy engine (grant.c, load.c, policy_test.c); nothing
    else includes it. A rule's network grant: `"network": {"allow": [...], "methods": [...]}`
    read, checked and normalised at load. The grant as people read it is policy.h's
    policy_network_text. */
#ifndef RG_POLICY_GRANT_H
#define RG_POLICY_GRANT_H
#include "policy/reader.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define GRANT_MAX_ALLOW     64
#define GRANT_MAX_METHODS   16
#define GRANT_MAX_METHOD    16          //  characters of one method token
#define GRANT_MAX_NAME      253         //  a DNS name, without the trailing dot
#define GRANT_ENTRY_SIZE    (GRANT_MAX_NAME + 16)   //  "*." name ":" port, or [v6]:port, + NUL

//  One `allow` entry (size bytes, may hold NULs) normalised into out[GRANT_ENTRY_SIZE]: the
//  name lowercased without its trailing dot, an IPv6 address in its canonical form. Returns
//  0, or -1 with why it is not HOST:PORT in *why (a static string). Pure.
int grant_entry (const char *entry, size_t size, char *out, const char **why);

//  Reads the rule's `network` key into *out (a new normalised grant object, left NULL when
//  the rule has none). 0, or -1 after reporting the error with its position.
int grant_parse (reader_t *ctx, json_t *rule, json_t **out);
#endif
