/*  worker/grant.c: a run's network grant as text between the worker's processes (see
    grant.h). */
#include "worker/grant.h"
#include "common/check.h"
#include <string.h>

//  A host:port item: printable ASCII, no space, with a colon; a method: A-Z.
static bool
s_item_ok (const char *item, size_t len, bool method)
{
    if (len == 0 || len > (method ? 16 : GRANT_MAX_ITEM))
        return false;
    bool colon = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) item [i];
        if (method ? !(c >= 'A' && c <= 'Z') : !(c > ' ' && c < 0x7f))
            return false;
        colon |= c == ':';
    }
    return method || colon;
}

static int
s_add (json_t *list, const char *word, bool method, buf_t *out, const char **why, size_t max)
{
    size_t i;
    json_t *item;
    if (list && (!json_is_array (list) || json_array_size (list) > max)) {
        *why = method ? "network.methods must be an array of at most 16 methods"
                      : "network.allow must be an array of at most 64 HOST:PORT entries";
        return -1;
    }
    json_array_foreach (list, i, item) {
        const char *text = json_string_value (item);
        size_t len = json_string_length (item);
        if (!text || !s_item_ok (text, len, method)) {
            *why = method ? "network.methods holds something other than a method name"
                          : "network.allow holds something other than a HOST:PORT entry";
            return -1;
        }
        if (buf_appendf (out, "%s %s\n", word, text) < 0) {
            *why = "out of memory";
            return -1;
        }
    }
    return 0;
}

int
grant_from_json (json_t *network, buf_t *out, const char **why)
{
    size_t start = out->len;
    const char *key;
    json_t *value;
    if (!json_is_object (network)) {
        *why = "network must be an object";
        return -1;
    }
    json_object_foreach (network, key, value)
        if (strcmp (key, "allow") != 0 && strcmp (key, "methods") != 0) {
            *why = "network holds a key other than allow and methods";
            return -1;
        }
    json_t *allow = json_object_get (network, "allow");
    if (json_array_size (allow) == 0) {
        *why = "network.allow must name at least one HOST:PORT";
        return -1;
    }
    if (s_add (allow, "allow", false, out, why, GRANT_MAX_ALLOW) < 0
    ||  s_add (json_object_get (network, "methods"), "method", true, out, why, GRANT_MAX_METHODS) < 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

//  Walks the lines of text: calls back with each item; -1 at the first malformed line.
static int
s_each (const char *text, size_t len, size_t *allows, size_t *methods,
        void (*fn) (const char *item, size_t len, bool method, void *arg), void *arg)
{
    *allows = *methods = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr (p, '\n', (size_t) (end - p));
        if (!nl)
            return -1;
        bool method = (size_t) (nl - p) > 7 && memcmp (p, "method ", 7) == 0;
        bool allow = !method && (size_t) (nl - p) > 6 && memcmp (p, "allow ", 6) == 0;
        const char *item = p + (method ? 7 : 6);
        size_t n = (size_t) (nl - item);
        if (!(method || allow) || !s_item_ok (item, n, method) || (allow && *methods)
        ||  (method ? ++*methods > GRANT_MAX_METHODS : ++*allows > GRANT_MAX_ALLOW))
            return -1;
        if (fn)
            fn (item, n, method, arg);
        p = nl + 1;
    }
    return *allows > 0 ? 0 : -1;
}

bool
grant_valid (const char *text, size_t len)
{
    size_t a, m;
    return text && len <= GRANT_MAX && !memchr (text, 0, len) && s_each (text, len, &a, &m, NULL, NULL) == 0;
}

typedef struct {
    const char **allow, **methods;
    size_t a, m;
} s_split_t;

static void
s_put (const char *item, size_t len, bool method, void *arg)
{
    s_split_t *s = (s_split_t *) arg;
    ((char *) item) [len] = 0;      //  the newline after it
    if (method)
        s->methods [s->m++] = item;
    else
        s->allow [s->a++] = item;
}

int
grant_split (char *text, const char **allow, size_t *allow_count, const char **methods,
             size_t *method_count)
{
    size_t len = strlen (text);
    if (!grant_valid (text, len))
        return -1;
    s_split_t s = { allow, methods, 0, 0 };
    s_each (text, len, allow_count, method_count, s_put, &s);
    return 0;
}

//  --------------------------------------------------------------------------
//  Self-test.

int
grant_test (void)
{
    buf_t out = { 0 };
    const char *why = NULL;
    json_t *ok = json_pack ("{s:[s,s], s:[s]}", "allow", "files.example.com:443", "10.1.2.3:5432",
                            "methods", "GET");
    CHECK (grant_from_json (ok, &out, &why) == 0);
    CHECK (out.len && grant_valid (out.data, out.len));
    char text [512];
    snprintf (text, sizeof text, "%.*s", (int) out.len, out.data);
    CHECK (strcmp (text, "allow files.example.com:443\nallow 10.1.2.3:5432\nmethod GET\n") == 0);
    const char *allow [GRANT_MAX_ALLOW], *methods [GRANT_MAX_METHODS];
    size_t na = 0, nm = 0;
    CHECK (grant_split (text, allow, &na, methods, &nm) == 0 && na == 2 && nm == 1
           && strcmp (allow [1], "10.1.2.3:5432") == 0 && strcmp (methods [0], "GET") == 0);
    const char *bad [] = {
        "{\"allow\": []}", "{\"allow\": [\"a b:1\"]}", "{\"allow\": [\"nocolon\"]}",
        "{\"allow\": [\"a:1\"], \"methods\": [\"get\"]}", "{\"allow\": [\"a:1\"], \"x\": 1}",
        "{\"allow\": [\"a:1\\n allow b:2\"]}", "{\"allow\": [1]}", "[]", "{\"allow\": \"a:1\"}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        json_t *j = json_loads (bad [i], 0, NULL);
        size_t before = out.len;
        CHECK (grant_from_json (j, &out, &why) < 0 && out.len == before);
        json_decref (j);
    }
    const char *texts [] = { "", "allow a:1", "method GET\nallow a:1\n", "allow a:1\nmethod get\n",
                             "allow a:1\nallow \n", "deny a:1\n", "allow a:1\n\n" };
    for (size_t i = 0; i < sizeof texts / sizeof texts [0]; i++)
        CHECK (!grant_valid (texts [i], strlen (texts [i])));
    CHECK (!grant_valid ("allow a:1\0\n", 11));
    json_decref (ok);
    buf_free (&out);
    return 0;
}
