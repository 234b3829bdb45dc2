/*  common/egress_check.c: the checks of a run's egress record (see egress_check.h). The worker's proxy
    already sanitized what it reports, but the broker writes every entry into the hash-chained
    log and shows it on terminals: what it takes must be exactly the documented shape, so a
    worker that is wrong (or not ours) cannot put anything else on the record. */
#include "common/egress_check.h"
#include "common/proto.h"
#include "common/check.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef enum { K_HOST, K_ADDRESS, K_PORT, K_METHOD, K_COUNT, K_MS, K_OUTCOME, K_REASON } kind_t;

typedef struct {
    const char *name;
    kind_t kind;
    bool required;
} ekey_t;

static const ekey_t s_entry_keys[] = {
    { "host", K_HOST, true }, { "address", K_ADDRESS, false }, { "port", K_PORT, true },
    { "method", K_METHOD, true }, { "bytes_out", K_COUNT, true }, { "bytes_in", K_COUNT, true },
    { "ms", K_MS, true }, { "outcome", K_OUTCOME, true }, { "reason", K_REASON, false },
};
static const char *s_total_keys[] = { "connections", "denied", "bytes_out", "bytes_in", "dropped" };
#define COUNT(a) (sizeof (a) / sizeof (a)[0])

//  The bytes each kind of text may hold. A host or an address: printable ASCII. A method: a
//  word of A-Z. A reason is the proxy's words: any UTF-8 the frame reader let through, but no
//  control character (a terminal shows it; a NUL would cut it).
static bool s_printable (unsigned char c) { return c >= 0x20 && c <= 0x7e; }
static bool s_upper (unsigned char c) { return c >= 'A' && c <= 'Z'; }
static bool s_no_control (unsigned char c) { return c >= 0x20 && c != 0x7f; }

//  True if v is a string of min to max bytes, each one `allowed` admits.
static bool
s_text (json_t *v, size_t min, size_t max, bool (*allowed) (unsigned char))
{
    const char *text = json_string_value (v);
    size_t len = json_string_length (v);
    if (!text || len < min || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!allowed ((unsigned char) text[i]))
            return false;
    return true;
}

//  Type first (bad_type), then bounds (bad_value); NULL if v fits kind.
static const char *
s_check_value (kind_t kind, json_t *v)
{
    bool typed = kind == K_PORT || kind == K_COUNT ? json_is_integer (v)
               : kind == K_MS ? json_is_number (v) : json_is_string (v);
    if (!typed)
        return PROTO_E_BAD_TYPE;
    bool ok;
    switch (kind) {
        case K_HOST:    ok = s_text (v, 0, EGRESS_MAX_HOST, s_printable); break;
        case K_ADDRESS: ok = s_text (v, 1, EGRESS_MAX_ADDRESS, s_printable); break;
        case K_PORT:    ok = json_integer_value (v) >= 0 && json_integer_value (v) <= 65535; break;
        case K_METHOD:  ok = s_text (v, 1, EGRESS_MAX_METHOD, s_upper); break;
        case K_COUNT:   ok = json_integer_value (v) >= 0; break;
        case K_MS:      ok = json_number_value (v) >= 0; break;
        case K_OUTCOME: ok = strcmp (json_string_value (v), "allowed") == 0
                          || strcmp (json_string_value (v), "denied") == 0; break;
        default:        ok = s_text (v, 0, EGRESS_MAX_REASON, s_no_control); break;
    }
    return ok ? NULL : PROTO_E_BAD_VALUE;
}

static const ekey_t *
s_entry_key (const char *name)
{
    for (size_t i = 0; i < COUNT (s_entry_keys); i++)
        if (strcmp (s_entry_keys[i].name, name) == 0)
            return &s_entry_keys[i];
    return NULL;
}

static const char *
s_check_entry (json_t *entry, size_t index, char *why, size_t size)
{
    if (!json_is_object (entry)) {
        snprintf (why, size, "egress entry %zu is not an object", index);
        return PROTO_E_BAD_TYPE;
    }
    const char *name, *code;
    json_t *v;
    json_object_foreach (entry, name, v) {
        const ekey_t *k = s_entry_key (name);
        if (!k) {
            snprintf (why, size, "egress entry %zu has an unknown field '%.32s'", index, name);
            return PROTO_E_UNKNOWN_KEY;
        }
        if ((code = s_check_value (k->kind, v))) {
            snprintf (why, size, "egress entry %zu: field '%s' has the wrong %s", index, name,
                      strcmp (code, PROTO_E_BAD_TYPE) == 0 ? "type" : "value");
            return code;
        }
    }
    for (size_t i = 0; i < COUNT (s_entry_keys); i++)
        if (s_entry_keys[i].required && !json_object_get (entry, s_entry_keys[i].name)) {
            snprintf (why, size, "egress entry %zu lacks field '%s'", index, s_entry_keys[i].name);
            return PROTO_E_MISSING;
        }
    //  A reason says why the proxy refused: an allowed connection has none.
    if (json_object_get (entry, "reason")
    &&  strcmp (json_string_value (json_object_get (entry, "outcome")), "denied") != 0) {
        snprintf (why, size, "egress entry %zu: a reason on an allowed connection", index);
        return PROTO_E_BAD_VALUE;
    }
    return NULL;
}

const char *
egress_check_entries (json_t *egress, char *why, size_t size)
{
    if (!json_is_array (egress)) {
        snprintf (why, size, "field 'egress' must be an array");
        return PROTO_E_BAD_TYPE;
    }
    if (json_array_size (egress) > EGRESS_MAX_ENTRIES) {
        snprintf (why, size, "field 'egress' holds more than %d entries", EGRESS_MAX_ENTRIES);
        return PROTO_E_BAD_VALUE;
    }
    size_t i;
    json_t *entry;
    const char *code;
    json_array_foreach (egress, i, entry)
        if ((code = s_check_entry (entry, i, why, size)))
            return code;
    return NULL;
}

const char *
egress_check_totals (json_t *totals, char *why, size_t size)
{
    if (!json_is_object (totals)) {
        snprintf (why, size, "field 'egress_totals' must be an object");
        return PROTO_E_BAD_TYPE;
    }
    const char *name;
    json_t *v;
    json_object_foreach (totals, name, v) {
        size_t i = 0;
        while (i < COUNT (s_total_keys) && strcmp (s_total_keys[i], name) != 0)
            i++;
        if (i == COUNT (s_total_keys)) {
            snprintf (why, size, "egress_totals has an unknown field '%.32s'", name);
            return PROTO_E_UNKNOWN_KEY;
        }
        if (!json_is_integer (v) || json_integer_value (v) < 0) {
            snprintf (why, size, "egress_totals: field '%s' must be an integer >= 0", name);
            return json_is_integer (v) ? PROTO_E_BAD_VALUE : PROTO_E_BAD_TYPE;
        }
    }
    for (size_t i = 0; i < COUNT (s_total_keys); i++)
        if (!json_object_get (totals, s_total_keys[i])) {
            snprintf (why, size, "egress_totals lacks field '%s'", s_total_keys[i]);
            return PROTO_E_MISSING;
        }
    return NULL;
}

//  --------------------------------------------------------------------------------------
//  Self-test

static bool
s_is (const char *code, const char *expect)
{
    return code && strcmp (code, expect) == 0;
}

//  The code egress_check_entries gives one entry, spec'd as JSON text.
static const char *
s_test_one (const char *text)
{
    json_error_t error;
    json_t *entry = json_loads (text, 0, &error), *egress = json_array ();
    char why[256];
    json_array_append_new (egress, entry ? entry : json_string ("unparsed"));
    const char *code = egress_check_entries (egress, why, sizeof why);
    json_decref (egress);
    return code ? code : "ok";
}

#define GOOD "\"host\":\"files.example.com\",\"port\":443,\"method\":\"CONNECT\",\"bytes_out\":517," \
             "\"bytes_in\":4096,\"ms\":12.5"

static void
s_test_entries (void)
{
    CHECK (!strcmp (s_test_one ("{" GOOD ",\"address\":\"93.184.216.34\",\"outcome\":\"allowed\"}"), "ok"));
    CHECK (!strcmp (s_test_one ("{" GOOD ",\"outcome\":\"denied\",\"reason\":\"link-local address\"}"), "ok"));
    CHECK (!strcmp (s_test_one ("{" GOOD ",\"outcome\":\"denied\"}"), "ok"));
    //  A reason may hold any UTF-8 but no control character (DEL is refused above).
    CHECK (!strcmp (s_test_one ("{" GOOD ",\"outcome\":\"denied\",\"reason\":\"caf\\u00e9\"}"), "ok"));
    CHECK (!strcmp (s_test_one ("{\"host\":\"\",\"port\":0,\"method\":\"GET\",\"bytes_out\":0,"
                                "\"bytes_in\":0,\"ms\":0,\"outcome\":\"denied\"}"), "ok"));
    CHECK (!strcmp (s_test_one ("{" GOOD ",\"outcome\":\"allowed\",\"reason\":\"x\"}"), PROTO_E_BAD_VALUE));
    CHECK (!strcmp (s_test_one ("{" GOOD ",\"outcome\":\"maybe\"}"), PROTO_E_BAD_VALUE));
    CHECK (!strcmp (s_test_one ("{" GOOD ",\"outcome\":\"allowed\",\"x\":1}"), PROTO_E_UNKNOWN_KEY));
    CHECK (!strcmp (s_test_one ("{" GOOD "}"), PROTO_E_MISSING));
    CHECK (!strcmp (s_test_one ("[1]"), PROTO_E_BAD_TYPE));
    static const char *bad_type[] = {
        "{\"host\":1,\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":\"443\",\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"GET\",\"bytes_out\":1.5,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":\"1\",\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":null,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"address\":null,\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
    };
    for (size_t i = 0; i < COUNT (bad_type); i++)
        CHECK (!strcmp (s_test_one (bad_type[i]), PROTO_E_BAD_TYPE));
    static const char *bad_value[] = {
        "{\"host\":\"h\\u00e9\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\\n\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":65536,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":-1,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"get\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"ABCDEFGHIJKLMNOPQ\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"GET\",\"bytes_out\":-1,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":-5,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":-0.5,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"address\":\"\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"denied\",\"reason\":\"a\\u001bb\"}",
        "{\"host\":\"h\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"denied\",\"reason\":\"a\\u007fb\"}",
        "{\"host\":\"h\",\"address\":\"1.2.3.4\\u007f\",\"port\":443,\"method\":\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"allowed\"}",
    };
    for (size_t i = 0; i < COUNT (bad_value); i++)
        CHECK (!strcmp (s_test_one (bad_value[i]), PROTO_E_BAD_VALUE));
}

//  Bounds: host 255 bytes, address 64, reason 200, 1000 entries; one more of each is refused.
static void
s_test_bounds (void)
{
    char host[300], text[1024], why[256];
    memset (host, 'a', sizeof host);
    for (int extra = 0; extra < 2; extra++) {
        snprintf (text, sizeof text, "{\"host\":\"%.*s\",\"address\":\"%.*s\",\"port\":1,\"method\":"
                  "\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"denied\","
                  "\"reason\":\"%.*s\"}", 255 + extra, host, 64, host, 200, host);
        CHECK (!strcmp (s_test_one (text), extra ? PROTO_E_BAD_VALUE : "ok"));
        snprintf (text, sizeof text, "{\"host\":\"h\",\"address\":\"%.*s\",\"port\":1,\"method\":"
                  "\"GET\",\"bytes_out\":0,\"bytes_in\":0,\"ms\":0,\"outcome\":\"denied\","
                  "\"reason\":\"%.*s\"}", 64 + extra, host, 200, host);
        CHECK (!strcmp (s_test_one (text), extra ? PROTO_E_BAD_VALUE : "ok"));
        snprintf (text, sizeof text, "{\"host\":\"h\",\"port\":1,\"method\":\"GET\",\"bytes_out\":0,"
                  "\"bytes_in\":0,\"ms\":0,\"outcome\":\"denied\",\"reason\":\"%.*s\"}",
                  200 + extra, host);
        CHECK (!strcmp (s_test_one (text), extra ? PROTO_E_BAD_VALUE : "ok"));
    }
    json_t *egress = json_array ();
    json_t *entry = json_pack ("{s:s, s:i, s:s, s:i, s:i, s:f, s:s}", "host", "h", "port", 80,
                               "method", "GET", "bytes_out", 0, "bytes_in", 0, "ms", 0.0,
                               "outcome", "allowed");
    for (int i = 0; i < EGRESS_MAX_ENTRIES; i++)
        json_array_append (egress, entry);
    CHECK (egress_check_entries (egress, why, sizeof why) == NULL);
    json_array_append (egress, entry);
    CHECK (s_is (egress_check_entries (egress, why, sizeof why), PROTO_E_BAD_VALUE));
    CHECK (strstr (why, "1000") != NULL);
    CHECK (s_is (egress_check_entries (entry, why, sizeof why), PROTO_E_BAD_TYPE));
    json_decref (entry);
    json_decref (egress);
}

static void
s_test_totals (void)
{
    char why[256];
    json_t *t = json_pack ("{s:i, s:i, s:i, s:i, s:i}", "connections", 2, "denied", 1,
                           "bytes_out", 517, "bytes_in", 4096, "dropped", 0);
    CHECK (egress_check_totals (t, why, sizeof why) == NULL);
    json_object_set_new (t, "denied", json_integer (-1));
    CHECK (s_is (egress_check_totals (t, why, sizeof why), PROTO_E_BAD_VALUE));
    json_object_set_new (t, "denied", json_real (1.0));
    CHECK (s_is (egress_check_totals (t, why, sizeof why), PROTO_E_BAD_TYPE));
    json_object_set_new (t, "denied", json_integer (0));
    json_object_set_new (t, "extra", json_integer (0));
    CHECK (s_is (egress_check_totals (t, why, sizeof why), PROTO_E_UNKNOWN_KEY));
    json_object_del (t, "extra");
    json_object_del (t, "dropped");
    CHECK (s_is (egress_check_totals (t, why, sizeof why), PROTO_E_MISSING));
    CHECK (strstr (why, "dropped") != NULL);
    CHECK (s_is (egress_check_totals (json_array_get (t, 0), why, sizeof why), PROTO_E_BAD_TYPE));
    json_decref (t);
}

int
egress_check_test (void)
{
    s_test_entries ();
    s_test_bounds ();
    s_test_totals ();
    return 0;
}
