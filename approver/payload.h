/*  approver/payload.h: decoding Slack's interaction callbacks (reference/slack.md section 3):
    an x-www-form-urlencoded body whose `payload` field holds the block_actions JSON. */
#ifndef RG_PAYLOAD_H
#define RG_PAYLOAD_H
#include <stddef.h>
#include <stdint.h>

//  One button click, flattened. Every string is NUL-terminated and fits its buffer: a field
//  that does not fit makes the whole payload invalid rather than silently cut.
typedef struct {
    char team_id[32];
    char app_id[32];
    char user_id[32];
    char user_name[96];
    char action_id[64];             //  "approve" or "deny"
    char block_id[256];
    char action_ts[40];
    char trigger_id[128];
    char response_url[512];
    char message_ts[40];
    char channel_id[32];
    int64_t request_id;             //  from the button's value, cross-checked with block_id
} click_t;

//  Finds form field `name` in body and URL-decodes it (%XX and '+' as space) into a fresh
//  NUL-terminated buffer (caller frees). NULL if absent or badly encoded. Pure.
char *payload_form_field (const char *body, size_t size, const char *name, size_t *out_size);

//  Parses a raw request body into click. Returns 0, or -1 with a short reason in err. Pure:
//  garbage of any kind is an error, never a crash.
int payload_parse (const char *body, size_t size, click_t *click, char *err, size_t err_size);

int payload_test (void);
#endif
