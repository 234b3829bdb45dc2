/*  approver/payload.c: form decoding and block_actions parsing. Only the fields the approver
    acts on are read; everything else Slack sends (token, state, the full message) is ignored.
    The legacy verification `token` is deliberately not checked: the signature replaces it. */
#include "approver/payload.h"
#include "common/check.h"
#include "common/util.h"
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Decodes [p, end) into a fresh buffer; NULL on a truncated or non-hex escape.
static char *
s_unescape (const char *p, const char *end, size_t *out_size)
{
    size_t size = (size_t) (end - p);
    if (size > INT_MAX)
        return NULL;            //  curl takes the length as an int
    //  curl_easy_unescape passes a bad escape through as it stands; Slack never sends one,
    //  so a body with one is refused rather than guessed at.
    for (const char *q = p; (q = memchr (q, '%', (size_t) (end - q))); q++)
        if (end - q < 3 || !isxdigit ((unsigned char) q [1]) || !isxdigit ((unsigned char) q [2]))
            return NULL;
    //  In a form '+' is a space, which curl does not know; a real '+' comes as %2B, so the
    //  spaces are put back before the escapes are decoded.
    char *text = (char *) malloc (size + 1);
    if (!text)
        return NULL;
    for (size_t i = 0; i < size; i++)
        text [i] = p [i] == '+' ? ' ' : p [i];
    text [size] = 0;
    //  No handle: curl uses one only to convert characters on platforms that are not ASCII.
    //  (A length of 0 means strlen to curl, which is 0 here too.)
    int n = 0;
    char *decoded = curl_easy_unescape (NULL, text, (int) size, &n);
    if (!decoded) {
        free (text);
        return NULL;
    }
    memcpy (text, decoded, (size_t) n + 1);          //  decoding never makes it longer
    curl_free (decoded);
    if (out_size)
        *out_size = (size_t) n;
    return text;
}

char *
payload_form_field (const char *body, size_t size, const char *name, size_t *out_size)
{
    if (!body || !name)
        return NULL;
    size_t name_len = strlen (name);
    const char *p = body, *end = body + size;
    while (p < end) {
        const char *amp = memchr (p, '&', (size_t) (end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr (p, '=', (size_t) (stop - p));
        if (eq && (size_t) (eq - p) == name_len && memcmp (p, name, name_len) == 0)
            return s_unescape (eq + 1, stop, out_size);
        p = stop + 1;
    }
    return NULL;
}

//  Copies string member `key` of obj (a path of objects separated by '.') into buf.
static int
s_copy (json_t *obj, const char *path, char *buf, size_t size, bool required)
{
    char key[64];
    const char *p = path;
    json_t *v = obj;
    while (v && *p) {
        const char *dot = strchr (p, '.');
        size_t len = dot ? (size_t) (dot - p) : strlen (p);
        if (len >= sizeof key)
            return -1;
        memcpy (key, p, len);
        key[len] = 0;
        v = json_is_object (v) ? json_object_get (v, key) : NULL;
        p += len + (dot ? 1 : 0);
    }
    buf[0] = 0;
    if (!json_is_string (v))
        return required ? -1 : 0;
    size_t len = json_string_length (v);
    const char *s = json_string_value (v);
    if (len >= size || strlen (s) != len || (required && len == 0))
        return -1;              //  too long, or an embedded NUL
    memcpy (buf, s, len + 1);
    return 0;
}

#define FAIL(...) do { snprintf (err, err_size, __VA_ARGS__); goto done; } while (0)

static int
s_parse_action (json_t *root, click_t *click, char *err, size_t err_size)
{
    json_t *actions = json_object_get (root, "actions");
    if (!json_is_array (actions) || json_array_size (actions) != 1) {
        snprintf (err, err_size, "expected exactly one action");
        return -1;
    }
    json_t *a = json_array_get (actions, 0);
    char value[32];
    if (s_copy (a, "action_id", click->action_id, sizeof click->action_id, true)
     || s_copy (a, "block_id", click->block_id, sizeof click->block_id, true)
     || s_copy (a, "action_ts", click->action_ts, sizeof click->action_ts, true)
     || s_copy (a, "value", value, sizeof value, true)) {
        snprintf (err, err_size, "action lacks action_id, block_id, action_ts or value");
        return -1;
    }
    if (strcmp (click->action_id, "approve") != 0 && strcmp (click->action_id, "deny") != 0) {
        snprintf (err, err_size, "unknown action_id");
        return -1;
    }
    //  block_id is "approval:<id>:<rev>"; the value must name the same request.
    char prefix[48];
    //  A request id: 1 to 18 decimal digits.
    if (decimal_parse (value, 18, 1, INT64_MAX, &click->request_id)) {
        snprintf (err, err_size, "button value is not a request id");
        return -1;
    }
    snprintf (prefix, sizeof prefix, "approval:%lld:", (long long) click->request_id);
    if (strncmp (click->block_id, prefix, strlen (prefix)) != 0) {
        snprintf (err, err_size, "block_id does not match the button value");
        return -1;
    }
    return 0;
}

int
payload_parse (const char *body, size_t size, click_t *click, char *err, size_t err_size)
{
    memset (click, 0, sizeof *click);
    int rc = -1;
    json_t *root = NULL;
    size_t json_size = 0;
    char *json = payload_form_field (body, size, "payload", &json_size);
    if (!json)
        FAIL ("no url-encoded payload field");
    if (!utf8_valid (json, json_size))
        FAIL ("payload is not UTF-8");
    json_error_t jerr;
    root = json_loadb (json, json_size, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object (root))
        FAIL ("payload is not a JSON object");
    char type[32];
    if (s_copy (root, "type", type, sizeof type, true) || strcmp (type, "block_actions") != 0)
        FAIL ("not a block_actions payload");
    if (s_copy (root, "team.id", click->team_id, sizeof click->team_id, true)
     || s_copy (root, "api_app_id", click->app_id, sizeof click->app_id, true)
     || s_copy (root, "user.id", click->user_id, sizeof click->user_id, true)
     || s_copy (root, "response_url", click->response_url, sizeof click->response_url, true)
     || s_copy (root, "trigger_id", click->trigger_id, sizeof click->trigger_id, false)
     || s_copy (root, "container.message_ts", click->message_ts, sizeof click->message_ts, false)
     || s_copy (root, "channel.id", click->channel_id, sizeof click->channel_id, false))
        FAIL ("missing or oversized team, app, user or response_url");
    if (s_copy (root, "user.username", click->user_name, sizeof click->user_name, false)
     || (!click->user_name[0]
         && s_copy (root, "user.name", click->user_name, sizeof click->user_name, false)))
        FAIL ("oversized user name");
    if (s_parse_action (root, click, err, err_size))
        goto done;
    rc = 0;
done:
    json_decref (root);
    free (json);
    return rc;
}

static int
s_parse_json (const char *json, click_t *click)
{
    char *escaped = curl_easy_escape (NULL, json, (int) strlen (json));
    char *enc = escaped ? (char *) malloc (strlen (escaped) + 9) : NULL;
    int rc = -1;
    if (enc) {
        char err[128];
        sprintf (enc, "payload=%s", escaped);
        rc = payload_parse (enc, strlen (enc), click, err, sizeof err);
    }
    free (enc);
    curl_free (escaped);
    return rc;
}

int
payload_test (void)
{
    size_t n;
    char *v = payload_form_field ("a=1&payload=x%2By+z%20w&b", 25, "payload", &n);
    CHECK (v && strcmp (v, "x+y z w") == 0 && n == 7);
    free (v);
    CHECK (payload_form_field ("payload=%zz", 11, "payload", NULL) == NULL);
    CHECK (payload_form_field ("payload=%4", 10, "payload", NULL) == NULL);
    CHECK (payload_form_field ("payloadx=1", 10, "payload", NULL) == NULL);
    CHECK (payload_form_field ("payload=%", 9, "payload", NULL) == NULL);
    CHECK (payload_form_field ("payload=%%41", 12, "payload", NULL) == NULL);
    CHECK (payload_form_field ("payload=a%4G", 12, "payload", NULL) == NULL);
    CHECK (payload_form_field ("payload=ab%41", 12, "payload", NULL) == NULL);  //  cut by size
    v = payload_form_field ("x=%zz&payload=%2B+%2b%41%c3%A9%00z&y=%", 34, "payload", &n);
    CHECK (v && n == 8 && memcmp (v, "+ +A\xc3\xa9\0z", 9) == 0);          //  NUL kept, counted
    free (v);
    v = payload_form_field ("payload=a\0b+c", 13, "payload", &n);            //  a raw NUL too
    CHECK (v && n == 5 && memcmp (v, "a\0b c", 6) == 0);
    free (v);
    v = payload_form_field ("payload=", 8, "payload", &n);
    CHECK (v && n == 0);
    free (v);
    const char *good = "{\"type\":\"block_actions\",\"team\":{\"id\":\"T1\",\"domain\":\"d\"},"
        "\"api_app_id\":\"A1\",\"user\":{\"id\":\"U1\",\"username\":\"ann\"},\"trigger_id\":\"1.2.x\","
        "\"response_url\":\"https:\\/\\/hooks.slack.com\\/actions\\/T1\\/1\\/t\","
        "\"container\":{\"type\":\"message\",\"message_ts\":\"1.000001\"},"
        "\"actions\":[{\"action_id\":\"approve\",\"block_id\":\"approval:42:1\",\"value\":\"42\","
        "\"type\":\"button\",\"action_ts\":\"1700000000.123456\"}]}";
    click_t c;
    CHECK (s_parse_json (good, &c) == 0);
    CHECK (c.request_id == 42 && strcmp (c.user_id, "U1") == 0 && strcmp (c.team_id, "T1") == 0);
    CHECK (strcmp (c.response_url, "https://hooks.slack.com/actions/T1/1/t") == 0);
    CHECK (strcmp (c.user_name, "ann") == 0 && strcmp (c.action_id, "approve") == 0);
    //  Forged or garbage bodies: each is refused, none crashes.
    const char *bad[] = {
        "", "payload", "{}", "[]", "null", "\"x\"", "{\"type\":\"view_submission\"}",
        "{\"type\":\"block_actions\"}",
        "{\"type\":\"block_actions\",\"team\":{\"id\":7},\"api_app_id\":\"A1\",\"user\":{\"id\":\"U1\"},"
        "\"response_url\":\"u\",\"actions\":[]}",
        "{\"type\":\"block_actions\",\"team\":{\"id\":\"T1\"},\"api_app_id\":\"A1\",\"user\":{\"id\":\"U1\"},"
        "\"response_url\":\"u\",\"actions\":[{\"action_id\":\"approve\",\"block_id\":\"approval:41:1\","
        "\"value\":\"42\",\"action_ts\":\"1\"}]}",
        "{\"type\":\"block_actions\",\"team\":{\"id\":\"T1\"},\"api_app_id\":\"A1\",\"user\":{\"id\":\"U1\"},"
        "\"response_url\":\"u\",\"actions\":[{\"action_id\":\"rm -rf\",\"block_id\":\"approval:42:1\","
        "\"value\":\"42\",\"action_ts\":\"1\"}]}",
        "{\"type\":\"block_actions\",\"team\":{\"id\":\"T1\"},\"api_app_id\":\"A1\",\"user\":{\"id\":\"U1\"},"
        "\"response_url\":\"u\",\"actions\":[{\"action_id\":\"deny\",\"block_id\":\"approval:42:1\","
        "\"value\":\"-42\",\"action_ts\":\"1\"}]}",
        "{\"type\":\"block_actions\",\"team\":{\"id\":\"T1\\u0000x\"},\"api_app_id\":\"A1\",\"user\":"
        "{\"id\":\"U1\"},\"response_url\":\"u\",\"actions\":[]}",
        "{\"type\":\"block_actions\",\"type\":\"block_actions\"}",
        "{\"type\":\"block_actions\",\"team\":{\"id\":\"TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK (s_parse_json (bad[i], &c) == -1);
    char err[128];
    CHECK (payload_parse ("payload=%FF%FE", 14, &c, err, sizeof err) == -1);
    CHECK (payload_parse (NULL, 0, &c, err, sizeof err) == -1);
    //  Random bytes: must never crash (ASan run catches overreads).
    char junk[512];
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (char) (rand () & 0xff);
        memcpy (junk, "payload=", 8);
        payload_parse (junk, (size_t) (rand () % (int) sizeof junk), &c, err, sizeof err);
    }
    return 0;
}
