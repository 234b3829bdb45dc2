/*  policy/redact.c: the text fields of a result and their masking (see redact.h). The worker
    masks its secrets and the broker its detectors through here, so a field added to the
    list is masked by both. */
#include "policy/redact.h"
#include "common/check.h"
#include "common/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Every field of a result that can carry what a snippet printed, raised or returned, with
//  the flag (on the result) that says an output limit cut it. The error's name is one:
//  `raise type(secret, (Exception,), {})()` makes it any text at all.
typedef struct {
    const char *key;
    const char *cut;
} field_t;

static const field_t s_top[] = {
    { "stdout", "stdout_truncated" }, { "stderr", "stderr_truncated" },
    { "value", "value_truncated" }, { "error", NULL },
    { "error_name", "error_name_truncated" }, { "error_value", "error_value_truncated" },
    { "traceback", "traceback_truncated" },
};
static const field_t s_error[] = {
    { "name", "error_name_truncated" }, { "value", "error_value_truncated" },
    { "traceback", "traceback_truncated" },
};

static int
s_each (json_t *result, json_t *obj, const field_t *fields, size_t nfields, redact_fn *fn,
        void *arg)
{
    int count = 0;
    for (size_t i = 0; i < nfields; i++)
        if (json_is_string (json_object_get (obj, fields[i].key))) {
            bool cut = fields[i].cut && json_is_true (json_object_get (result, fields[i].cut));
            count += fn (obj, fields[i].key, cut, arg);
        }
    return count;
}

//  Binary output travels as stdout_base64 / stderr_base64 (the bytes are not text): fn sees
//  the bytes themselves, under the stream's own name, and they go back encoded.
static int
s_each_binary (json_t *result, redact_fn *fn, void *arg)
{
    static const field_t streams[] = { { "stdout", "stdout_truncated" },
                                       { "stderr", "stderr_truncated" } };
    int count = 0;
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        char key[32];
        snprintf (key, sizeof key, "%s_base64", streams[i].key);
        json_t *b64 = json_object_get (result, key);
        if (!json_is_string (b64) || json_object_get (result, streams[i].key))
            continue;
        size_t n = 0;
        char *bytes = base64_decode (json_string_value (b64), json_string_length (b64), &n);
        json_t *scratch = json_object ();
        if (bytes)
            json_object_set_new (scratch, streams[i].key, json_stringn_nocheck (bytes, n));
        free (bytes);
        bool cut = json_is_true (json_object_get (result, streams[i].cut));
        int hits = bytes ? fn (scratch, streams[i].key, cut, arg) : 0;
        json_t *out = json_object_get (scratch, streams[i].key);
        char *again = hits && out ? base64_encode (json_string_value (out), json_string_length (out))
                                  : NULL;
        if (!bytes || (hits && !again))     //  unreadable or unmaskable: never passed on as is
            json_object_set_new (result, key, json_string ("W01BU0tFRDp1bmF2YWlsYWJsZV0="));
        else if (again)
            json_object_set_new (result, key, json_string (again));
        free (again);
        json_decref (scratch);
        count += hits;
    }
    return count;
}

int
redact_foreach (json_t *result, redact_fn *fn, void *arg)
{
    if (!json_is_object (result))
        return 0;
    int count = s_each_binary (result, fn, arg);
    count += s_each (result, result, s_top, sizeof s_top / sizeof s_top[0], fn, arg);
    json_t *error = json_object_get (result, "error");
    if (json_is_object (error))
        count += s_each (result, error, s_error, sizeof s_error / sizeof s_error[0], fn, arg);
    //  A granted run's destinations are the snippet's words too: a name can carry a secret
    //  (`curl https://$TOKEN.example.com`), and the record keeps each one.
    static const field_t host[] = { { "host", NULL } };
    size_t i;
    json_t *entry;
    json_array_foreach (json_object_get (result, "egress"), i, entry)
        if (json_is_object (entry)) {
            count += s_each (result, entry, host, 1, fn, arg);
            json_t *h = json_object_get (entry, "host");
            if (json_string_length (h) > 255)   //  the record's bound (common/egress_check.h)
                json_object_set_new (entry, "host", json_stringn (json_string_value (h), 255));
        }
    return count;
}

static int
s_mask_field (json_t *obj, const char *key, bool cut, void *arg)
{
    json_t *v = json_object_get (obj, key);
    if (json_string_length (v) == 0)
        return 0;           //  the common case (a snippet that printed nothing) costs nothing
    size_t n = 0;
    int count = 0;
    char *masked = (cut ? mask_apply_cut : mask_apply) ((mask_t *) arg, json_string_value (v),
                                                          json_string_length (v), &n, &count);
    if (!masked) {
        json_object_set_new (obj, key, json_string ("[MASKED:unavailable]"));
        return 1;
    }
    //  Bytes that were not text (binary output) stay bytes.
    bool bytes = !utf8_valid (json_string_value (v), json_string_length (v));
    if (count > 0 && json_object_set_new (obj, key, bytes ? json_stringn_nocheck (masked, n)
                                                        : json_stringn (masked, n)) != 0) {
        count = 1;          //  masked text that is not valid UTF-8 is not stored either
        json_object_set_new (obj, key, json_string ("[MASKED:unavailable]"));
    }
    free (masked);
    return count;
}

int
redact_result (mask_t *mask, json_t *result)
{
    return redact_foreach (result, s_mask_field, mask);
}

//  --------------------------------------------------------------------------
//  Self-test

//  Records the fields visited as "key," in a string.
static int
s_note (json_t *obj, const char *key, bool cut, void *arg)
{
    strcat ((char *) arg, key);
    strcat ((char *) arg, cut ? "!," : ",");
    return 1;
}

static void
s_test_fields (void)
{
    //  A worker result as docs/worker-protocol.md has it, every text field set: only the
    //  protocol's own words (op, session, lang, outcome, sandbox) are not visited.
    json_t *r = json_pack ("{s:s, s:i, s:s, s:s, s:s, s:i, s:n, s:s, s:s, s:b, s:b, s:s,"
                           " s:{s:s, s:s, s:s}, s:f, s:f, s:i, s:i, s:b, s:s}",
                           "op", "result", "id", 42, "session", "s1", "lang", "python",
                           "outcome", "error", "exit_code", 1, "signal", "stdout", "o",
                           "stderr", "e", "stdout_truncated", 0, "stderr_truncated", 1,
                           "value", "v", "error", "name", "n", "value", "ev", "traceback", "tb",
                           "wall_ms", 1.5, "cpu_ms", 0.5, "max_rss_kb", 9000,
                           "execution_count", 3, "session_reset", 0, "sandbox", "none");
    json_object_set_new (r, "error_name_truncated", json_true ());
    char seen[256] = "";
    CHECK (redact_foreach (r, s_note, seen) == 6);
    CHECK (strcmp (seen, "stdout,stderr!,value,name!,value,traceback,") == 0);
    json_decref (r);
    //  The columns the broker flattens it into.
    r = json_pack ("{s:s, s:s, s:s, s:s}", "error_name", "n", "error_value", "v",
                   "traceback", "t", "outcome", "error");
    seen[0] = 0;
    CHECK (redact_foreach (r, s_note, seen) == 3);
    CHECK (strcmp (seen, "error_name,error_value,traceback,") == 0);
    json_decref (r);
    CHECK (redact_foreach (NULL, s_note, seen) == 0);
}

//  The worker masks its secrets, then the broker its detectors: each once, and the second
//  leaves the first's masks exactly as they are.
static void
s_test_two_maskers (void)
{
    mask_t *worker = mask_new_empty ();
    mask_t *broker = mask_new ();
    CHECK (worker && broker && mask_add_secret (worker, "DB_PASSWORD", "Zq8-s3cr3t") == 0);
    json_t *r = json_pack ("{s:s, s:s, s:{s:s, s:s, s:s}}",
                           "stdout", "password=Zq8-s3cr3t\nAKIAIOSFODNN7EXAMPLE\n",
                           "stderr", "postgres://u:Zq8-s3cr3t@db/x",
                           "error", "name", "Zq8-s3cr3t", "value", "", "traceback", "Zq8-s3cr3t: ");
    CHECK (redact_result (worker, r) == 4);
    CHECK (strcmp (json_string_value (json_object_get (r, "stdout")),
                   "password=[MASKED:DB_PASSWORD]\nAKIAIOSFODNN7EXAMPLE\n") == 0);
    CHECK (redact_result (broker, r) == 1);
    CHECK (strcmp (json_string_value (json_object_get (r, "stdout")),
                   "password=[MASKED:DB_PASSWORD]\n[MASKED:aws-access-key-id]\n") == 0);
    CHECK (strcmp (json_string_value (json_object_get (r, "stderr")),
                   "postgres://u:[MASKED:DB_PASSWORD]@db/x") == 0);
    json_t *error = json_object_get (r, "error");
    CHECK (strcmp (json_string_value (json_object_get (error, "name")), "[MASKED:DB_PASSWORD]") == 0);
    CHECK (strcmp (json_string_value (json_object_get (error, "traceback")), "[MASKED:DB_PASSWORD]: ") == 0);
    CHECK (redact_result (broker, r) == 0 && redact_result (worker, r) == 0);
    json_decref (r);
    //  An output limit that cut through a secret leaves no start of it.
    r = json_pack ("{s:s, s:b, s:s, s:b}", "stdout", "x Zq8-s3c", "stdout_truncated", 1,
                   "stderr", "x Zq8-s3c", "stderr_truncated", 0);
    CHECK (redact_result (worker, r) == 1);
    CHECK (strcmp (json_string_value (json_object_get (r, "stdout")), "x [MASKED:DB_PASSWORD]") == 0);
    CHECK (strcmp (json_string_value (json_object_get (r, "stderr")), "x Zq8-s3c") == 0);
    json_decref (r);
    mask_destroy (&worker);
    mask_destroy (&broker);
}

int
redact_test (void)
{
    mask_t *mask = mask_new ();
    CHECK (mask_add_secret (mask, "db_password", "s3cr3t-Value-42") == 0);
    json_t *r = json_pack ("{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:i, s:s, s:s}",
                           "stdout", "pw=s3cr3t-Value-42\n", "stderr", "clean\n",
                           "value", "'s3cr3t-Value-42'", "error", "name", "s3cr3t-Value-42",
                           "value", "bad s3cr3t-Value-42", "traceback", "  x = 's3cr3t-Value-42'",
                           "exit_code", 1, "error_name", "E s3cr3t-Value-42", "outcome", "error");
    CHECK (redact_result (mask, r) == 6);
    char *text = json_dumps (r, 0);
    CHECK (!strstr (text, "s3cr3t-Value-42"));
    CHECK (strstr (text, "[MASKED:db_password]"));
    CHECK (strcmp (json_string_value (json_object_get (r, "stderr")), "clean\n") == 0);
    CHECK (strcmp (json_string_value (json_object_get (r, "outcome")), "error") == 0);
    CHECK (json_integer_value (json_object_get (r, "exit_code")) == 1);
    free (text);
    json_decref (r);
    //  A granted run's destinations: a secret in a name is masked, and a masked name stays
    //  within the record's 255 bytes.
    char name[256];
    memset (name, 'a', 250);
    memcpy (name + 235, "s3cr3t-Value-42", 15);
    name[250] = 0;
    r = json_pack ("{s:[{s:s, s:s}, {s:s}]}", "egress", "host", "s3cr3t-Value-42.evil.example",
                   "method", "CONNECT", "host", name);
    CHECK (redact_result (mask, r) == 2);
    json_t *first = json_array_get (json_object_get (r, "egress"), 0);
    json_t *second = json_array_get (json_object_get (r, "egress"), 1);
    CHECK (strcmp (json_string_value (json_object_get (first, "host")),
                   "[MASKED:db_password].evil.example") == 0);
    CHECK (strcmp (json_string_value (json_object_get (first, "method")), "CONNECT") == 0);
    CHECK (json_string_length (json_object_get (second, "host")) == 255
           && !strstr (json_string_value (json_object_get (second, "host")), "s3cr3t"));
    json_decref (r);
    //  Binary output (base64 on the wire) is masked as bytes and stays bytes.
    char *b64 = base64_encode ("\xff" "s3cr3t-Value-42\0", 17);
    r = json_pack ("{s:s, s:b}", "stdout_base64", b64, "stdout_truncated", 0);
    free (b64);
    CHECK (redact_result (mask, r) == 1);
    size_t n = 0;
    json_t *out = json_object_get (r, "stdout_base64");
    char *bytes = base64_decode (json_string_value (out), json_string_length (out), &n);
    CHECK (bytes && n == 22 && memcmp (bytes, "\xff[MASKED:db_password]\0", 22) == 0);
    free (bytes);
    CHECK (json_object_get (r, "stdout") == NULL);
    json_object_set_new (r, "stdout_base64", json_string ("not base64!"));
    CHECK (redact_result (mask, r) == 0);      //  unreadable: replaced, never passed on
    CHECK (strcmp (json_string_value (json_object_get (r, "stdout_base64")),
                   "W01BU0tFRDp1bmF2YWlsYWJsZV0=") == 0);
    json_decref (r);
    mask_destroy (&mask);
    s_test_fields ();
    s_test_two_maskers ();
    return 0;
}
