/*  approver/sign.c: Slack request signing (v0): HMAC-SHA256 over "v0:<ts>:<raw body>" with
    the signing secret's ASCII bytes as the key. libsodium's streaming HMAC takes a key of any
    length (the one-shot call wants exactly 32 bytes), and sodium_memcmp compares in constant
    time so a forger learns nothing from how long a rejection takes. */
#include "approver/sign.h"
#include "common/check.h"
#include "common/util.h"
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
sign_compute (const char *secret, const char *timestamp, const void *body, size_t size,
              char out[SIGN_HEX_SIZE])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init (&st, (const unsigned char *) secret, strlen (secret));
    crypto_auth_hmacsha256_update (&st, (const unsigned char *) "v0:", 3);
    crypto_auth_hmacsha256_update (&st, (const unsigned char *) timestamp, strlen (timestamp));
    crypto_auth_hmacsha256_update (&st, (const unsigned char *) ":", 1);
    crypto_auth_hmacsha256_update (&st, (const unsigned char *) body, size);
    crypto_auth_hmacsha256_final (&st, mac);
    memcpy (out, "v0=", 3);
    sodium_bin2hex (out + 3, SIGN_HEX_SIZE - 3, mac, sizeof mac);
    sodium_memzero (&st, sizeof st);
}

sign_result_t
sign_verify (const char *secret, const char *timestamp, const char *signature,
             const void *body, size_t size, int64_t now_s)
{
    if (!timestamp || !signature || !*timestamp || !*signature)
        return SIGN_MISSING;
    int64_t ts;
    if (decimal_parse (timestamp, 12, 0, INT64_MAX, &ts))   //  seconds: no sign, no spaces
        return SIGN_BAD_TIMESTAMP;
    if (ts > now_s + SIGN_WINDOW_S || ts < now_s - SIGN_WINDOW_S)
        return SIGN_STALE;
    if (strlen (signature) != SIGN_HEX_SIZE - 1 || strncmp (signature, "v0=", 3) != 0)
        return SIGN_BAD_FORMAT;
    char expected[SIGN_HEX_SIZE];
    sign_compute (secret, timestamp, body ? body : "", body ? size : 0, expected);
    //  Slack sends lower-case hex; an upper-case copy is a different string and fails, as in
    //  Slack's own SDK.
    return sodium_memcmp (expected, signature, SIGN_HEX_SIZE - 1) == 0 ? SIGN_OK : SIGN_MISMATCH;
}

const char *
sign_result_str (sign_result_t result)
{
    switch (result) {
        case SIGN_OK: return "ok";
        case SIGN_MISSING: return "missing signature headers";
        case SIGN_BAD_TIMESTAMP: return "malformed timestamp";
        case SIGN_STALE: return "timestamp outside the five-minute window";
        case SIGN_BAD_FORMAT: return "malformed signature";
        case SIGN_MISMATCH: return "signature mismatch";
    }
    return "unknown";
}

int
sign_test (void)
{
    //  Slack's published example (reference/slack.md section 4).
    const char *secret = "8f742231b10e8888abcd99yyyzzz85a5";
    const char *ts = "1531420618";
    const char *body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
        "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
        "%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121"
        ".803a0bc887a14d10d2c447fce8b6703c";
    const char *want = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    size_t n = strlen (body);
    char got[SIGN_HEX_SIZE];
    sign_compute (secret, ts, body, n, got);
    CHECK (strcmp (got, want) == 0);
    CHECK (sign_verify (secret, ts, want, body, n, 1531420618) == SIGN_OK);
    CHECK (sign_verify (secret, ts, want, body, n, 1531420618 + 300) == SIGN_OK);
    CHECK (sign_verify (secret, ts, want, body, n, 1531420618 + 301) == SIGN_STALE);
    CHECK (sign_verify (secret, ts, want, body, n, 1531420618 - 301) == SIGN_STALE);
    CHECK (sign_verify (secret, NULL, want, body, n, 1531420618) == SIGN_MISSING);
    CHECK (sign_verify (secret, ts, "", body, n, 1531420618) == SIGN_MISSING);
    CHECK (sign_verify (secret, "-1531420618", want, body, n, 1531420618) == SIGN_BAD_TIMESTAMP);
    CHECK (sign_verify (secret, "1531420618 ", want, body, n, 1531420618) == SIGN_BAD_TIMESTAMP);
    CHECK (sign_verify (secret, "99999999999999999999", want, body, n, 1531420618) == SIGN_BAD_TIMESTAMP);
    const char *bad_ts[] = { "+1531420618", " 1531420618", "1531420618\n", "0x5b47a0ca", "1531420618.5",
                             "0001531420618", "1e9", "\xd9\xa1" };
    for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++)
        CHECK (sign_verify (secret, bad_ts[i], want, body, n, 1531420618) == SIGN_BAD_TIMESTAMP);
    CHECK (sign_verify (secret, "001531420618", want, body, n, 1531420618) == SIGN_MISMATCH);
    CHECK (sign_verify (secret, ts, "v1=a2114d57", body, n, 1531420618) == SIGN_BAD_FORMAT);
    //  One flipped bit anywhere: body, secret, timestamp, signature.
    CHECK (sign_verify (secret, ts, want, body, n - 1, 1531420618) == SIGN_MISMATCH);
    CHECK (sign_verify ("8f742231b10e8888abcd99yyyzzz85a6", ts, want, body, n, 1531420618) == SIGN_MISMATCH);
    CHECK (sign_verify (secret, "1531420619", want, body, n, 1531420618) == SIGN_MISMATCH);
    char bad[SIGN_HEX_SIZE];
    memcpy (bad, want, sizeof bad);
    bad[SIGN_HEX_SIZE - 2] = 'a';
    CHECK (sign_verify (secret, ts, bad, body, n, 1531420618) == SIGN_MISMATCH);
    for (char *p = bad; *p; p++)
        *p = (char) toupper ((unsigned char) *p);
    CHECK (sign_verify (secret, ts, bad, body, n, 1531420618) != SIGN_OK);
    CHECK (sign_verify (secret, ts, want, NULL, 0, 1531420618) == SIGN_MISMATCH);
    return 0;
}
