/*  policy/network_text.c: a rule's network grant as people read it ("files.example.com:443,
    *.internal.example:80 (methods GET, HEAD)"), policy.h's policy_network_text. Apart from the
    engine because `replgate approve` shows it and links nothing else of the policy (no PCRE2,
    no libunistring): see client/handoff.c. */
#include "policy/policy.h"
#include <stdlib.h>
#include <string.h>

//  Appends the strings of list to out (sized by the caller), joined with ", ".
static void
s_join (char *out, json_t *list)
{
    for (size_t i = 0; i < json_array_size (list); i++) {
        const char *item = json_string_value (json_array_get (list, i));
        strcat (out, i ? ", " : "");
        strcat (out, item ? item : "?");
    }
}

static size_t
s_joined_size (json_t *list)
{
    size_t size = 0;
    for (size_t i = 0; i < json_array_size (list); i++) {
        const char *item = json_string_value (json_array_get (list, i));
        size += (item ? strlen (item) : 1) + 2;
    }
    return size;
}

char *
policy_network_text (json_t *network)
{
    json_t *allow = json_object_get (network, "allow");
    json_t *methods = json_object_get (network, "methods");
    if (!json_is_array (allow))
        return NULL;
    if (!json_is_array (methods))
        methods = NULL;
    size_t size = s_joined_size (allow) + s_joined_size (methods) + sizeof " (methods )";
    char *out = malloc (size);
    if (!out)
        return NULL;
    *out = 0;
    s_join (out, allow);
    if (methods) {
        strcat (out, " (methods ");
        s_join (out, methods);
        strcat (out, ")");
    }
    return out;
}
