/*  approver/sign.h: Slack request signing, version v0 (reference/slack.md section 4). */
#ifndef RG_SIGN_H
#define RG_SIGN_H
#include <stddef.h>
#include <stdint.h>

#define SIGN_WINDOW_S  300          //  Slack's replay window, applied in both directions
#define SIGN_HEX_SIZE  68           //  "v0=" + 64 hex + NUL

typedef enum {
    SIGN_OK = 0,
    SIGN_MISSING,                   //  a header is absent or empty
    SIGN_BAD_TIMESTAMP,             //  not a plain decimal number of seconds
    SIGN_STALE,                     //  more than SIGN_WINDOW_S away from now, past or future
    SIGN_BAD_FORMAT,                //  signature is not "v0=" + 64 hex characters
    SIGN_MISMATCH                   //  well-formed but wrong
} sign_result_t;

//  Computes "v0=" + hex HMAC-SHA256(secret, "v0:" + timestamp + ":" + body) into out.
void sign_compute (const char *secret, const char *timestamp, const void *body, size_t size,
                   char out[SIGN_HEX_SIZE]);

//  Checks the two header values against the raw body at wall-clock time now_s. Pure: never
//  asserts on its input; NULL headers are SIGN_MISSING. The comparison is constant-time.
sign_result_t sign_verify (const char *secret, const char *timestamp, const char *signature,
                           const void *body, size_t size, int64_t now_s);

const char *sign_result_str (sign_result_t result);

int sign_test (void);
#endif
