/*  policy/redact.c: masking of result fields (used by the broker for its detectors and by the
    worker for the exact values of the secrets it holds). */
#include "policy/redact.h"
#include "common/check.h"
#include <stdlib.h>
#include <string.h>

static int
s_field (mask_t *mask, json_t *obj, const char *key)
{
    json_t *v = json_object_get (obj, key);
    if (!json_is_string (v))
        return 0;
    size_t n = 0;
    int count = 0;
    char *masked = mask_apply (mask, json_string_value (v), json_string_length (v), &n, &count);
    if (!masked) {
        json_object_set_new (obj, key, json_string ("[MASKED:unavailable]"));
        return 1;
    }
    if (count > 0)
        json_object_set_new (obj, key, json_stringn (masked, n));
    free (masked);
    return count;
}

int
redact_result (mask_t *mask, json_t *result)
{
    static const char *top[] = { "stdout", "stderr", "value", "error_value", "traceback" };
    int count = 0;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        count += s_field (mask, result, top[i]);
    json_t *error = json_object_get (result, "error");
    if (json_is_object (error)) {
        count += s_field (mask, error, "value");
        count += s_field (mask, error, "traceback");
    }
    return count;
}

int
redact_test (void)
{
    mask_t *mask = mask_new ();
    CHECK (mask_add_secret (mask, "db_password", "s3cr3t-Value-42") == 0);
    json_t *r = json_pack ("{s:s, s:s, s:s, s:{s:s, s:s}, s:i}",
                           "stdout", "pw=s3cr3t-Value-42\n", "stderr", "clean\n",
                           "value", "'s3cr3t-Value-42'", "error",
                           "value", "bad s3cr3t-Value-42", "traceback", "  x = 's3cr3t-Value-42'",
                           "exit_code", 1);
    CHECK (redact_result (mask, r) == 4);
    char *text = json_dumps (r, 0);
    CHECK (!strstr (text, "s3cr3t-Value-42"));
    CHECK (strstr (text, "[MASKED:db_password]"));
    CHECK (strcmp (json_string_value (json_object_get (r, "stderr")), "clean\n") == 0);
    CHECK (json_integer_value (json_object_get (r, "exit_code")) == 1);
    free (text);
    json_decref (r);
    mask_destroy (&mask);
    return 0;
}
