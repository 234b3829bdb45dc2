/*  approver/payload.c: form decoding and block_actions parsing. Only the fields the approver
    acts on are read; everything else Slack sends (token, state, the full message) is ignored.
    The legacy verification `token` is deliberately not checked: the signature replaces it. */
#include "approver/payload.h"
#include "common/check.h"
#include "common/util.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
s_hex (char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

//  Decodes [p, end) into a fresh buffer; NULL on a truncated or non-hex escape.
static char *
s_unescape (const char *p, const char *end, size_t *out_size)
{
    char *out = (char *) malloc ((size_t) (end - p) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    while (p < end) {
        if (*p == '%') {
            if (end - p >= 3) {
                int hi = s_hex (p[1]);
                int lo = s_hex (p[2]);
                if (hi >= 0 && lo >= 0) {
                    out[n++] = (char) (hi * 16 + lo);
                    p += 3;
                    continue;
                }
            }
            free (out);
            return NULL;
        }
        out[n++] = *p == '+' ? ' ' : *p;
        p++;
    }
    out[n] = 0;
    if (out_size)
        *out_size = n;
    return out;
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

//  A request id: 1 to 18 decimal digits.
static int
s_parse_id (const char *text, int64_t *id)
{
    size_t len = strlen (text);
    if (len == 0 || len > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        v = v * 10 + (text[i] - '0');
    }
    *id = v;
    return v > 0 ? 0 : -1;
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
    if (s_parse_id (value, &click->request_id)) {
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
    char *enc = (char *) malloc (strlen (json) * 3 + 16);
    strcpy (enc, "payload=");
    char *o = enc + 8;
    for (const char *p = json; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c == ' ')
            *o++ = '+';
        else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            *o++ = (char) c;
        else
            o += sprintf (o, "%%%02X", c);
    }
    *o = 0;
    char err[128];
    int rc = payload_parse (enc, strlen (enc), click, err, sizeof err);
    free (enc);
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
