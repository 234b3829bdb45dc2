/*  policy/mask_stream.c: masking a stream of chunks as if it were one text. A secret split
    across two chunks must be masked like one that arrived whole, so what could still become
    a hit (mask_release_point) waits for the next chunk; the rest is masked and released at
    once. The wait is bounded by hold_max: past it, the oldest held bytes are released
    (masked as they are), so a stream that never completes a match still flows.

    The last CONTEXT bytes released stay in front of what is held, as context: a pattern's
    lookbehind or a validator must see what came before a chunk, or a digit run cut in two
    would look like a card number starting at the cut (or a value after a lookbehind's key
    would go unseen). Likewise what is held back is context after what is released: an
    address cut before a secret that follows it must not look like one that ends there. */
#include "policy/mask_stream.h"
#include "common/buf.h"
#include <stdlib.h>
#include <string.h>

#define CONTEXT 256             //  released bytes kept for lookbehinds and validators

struct _mask_stream_t {
    size_t hold_max;
    buf_t held;                 //  context (released), then bytes received but not released
    size_t context;             //  how many of held's first bytes are context
};

mask_stream_t *
mask_stream_new (size_t hold_max)
{
    mask_stream_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->hold_max = hold_max;
    return self;
}

void
mask_stream_destroy (mask_stream_t **self_p)
{
    if (!*self_p)
        return;
    buf_free (&(*self_p)->held);
    free (*self_p);
    *self_p = NULL;
}

char *
mask_stream_feed (mask_stream_t *self, mask_t *mask, const char *data, size_t len, bool last,
                  size_t *out_len)
{
    if (len && buf_append (&self->held, data, len) != 0)
        return NULL;
    const char *text = self->held.data ? self->held.data : "";
    size_t size = self->held.len, from = self->context;
    size_t point = last ? size : mask_release_point (mask, text, size, from);
    if (size - point > self->hold_max)
        point = size - self->hold_max < from ? from : size - self->hold_max;
    char *out = mask_apply_after (mask, text, size, from, point, out_len);
    if (out) {
        size_t keep = point < CONTEXT ? point : CONTEXT;
        buf_consume (&self->held, point - keep);
        self->context = keep;
    }
    return out;
}

//  --------------------------------------------------------------------------
//  Self-test

#include "common/check.h"

//  Feeds text cut into chunks of `step` bytes; returns everything released, joined.
static char *
s_stream (mask_t *mask, const char *text, size_t step, size_t hold_max)
{
    mask_stream_t *stream = mask_stream_new (hold_max);
    buf_t all = { 0 };
    size_t len = strlen (text);
    for (size_t at = 0; stream && at <= len; at += step) {
        size_t n = at + step < len ? step : len - at, out_len = 0;
        char *out = mask_stream_feed (stream, mask, text + at, n, at + step > len, &out_len);
        if (out)
            buf_append (&all, out, out_len);
        free (out);
    }
    mask_stream_destroy (&stream);
    return buf_take (&all);
}

int
mask_stream_test (void)
{
    mask_t *mask = mask_new ();
    CHECK (mask && mask_add_secret (mask, "DB", "hunter2-very-secret") == 0);
    const char *text = "user ok\npassword=correct-horse-battery line\nthe db pw is hunter2-very-secret!\n"
                       "key AKIAIOSFODNN7EXAMPLE done\n";
    size_t whole_len = 0;
    char *whole = mask_apply (mask, text, strlen (text), &whole_len, NULL);
    CHECK (whole && !strstr (whole, "hunter2") && !strstr (whole, "correct-horse")
           && !strstr (whole, "AKIAIOSFODNN7EXAMPLE"));
    //  Every way of cutting the text into chunks releases what masking it whole gives. The
    //  others: a digit run whose tail alone would pass for a card number (the cut must not
    //  hide the digits before it), stray UTF-8 continuation bytes beside a secret, and what
    //  would be an address if the secret after it were not there (released alone, before the
    //  secret is whole, its end would look like the end of the text).
    const char *texts[] = { text, "id 000000000000000000000000000000000004539578763621486 end\n",
                            "a\xa9\xa9hunter2-very-secret\xa9\xa9\xa9" "b\xc3\xa9\n",
                            "to rM3Qvd@m.Fshunter2-very-secret now\n" };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        size_t len = 0;
        char *expect = mask_apply (mask, texts[t], strlen (texts[t]), &len, NULL);
        for (size_t step = 1; step <= strlen (texts[t]) + 1; step++) {
            char *joined = s_stream (mask, texts[t], step, 4096);
            CHECK (joined && expect && strcmp (joined, expect) == 0);
            free (joined);
        }
        free (expect);
    }
    //  What cannot become a hit is released at once; the start of a secret waits.
    mask_stream_t *stream = mask_stream_new (4096);
    size_t n = 0;
    char *out = mask_stream_feed (stream, mask, "plain line\nhunter2-very", 23, false, &n);
    CHECK (out && strcmp (out, "plain line\n") == 0 && n == 11);
    free (out);
    out = mask_stream_feed (stream, mask, "-secret and more", 16, false, &n);
    CHECK (out && strncmp (out, "[MASKED:DB] and ", 16) == 0);
    free (out);
    out = mask_stream_feed (stream, mask, NULL, 0, true, &n);
    CHECK (out && !strstr (out, "secret"));
    free (out);
    mask_stream_destroy (&stream);
    //  The wait is bounded: a match that never completes does not hold the stream forever.
    char *joined = s_stream (mask, "password=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 4, 8);
    CHECK (joined && strlen (joined) > 0);
    free (joined);
    //  A UTF-8 character is never split between two releases.
    stream = mask_stream_new (4096);
    out = mask_stream_feed (stream, mask, "caf\xc3", 4, false, &n);
    CHECK (out && strcmp (out, "caf") == 0);
    free (out);
    out = mask_stream_feed (stream, mask, "\xa9\n", 2, false, &n);
    CHECK (out && strcmp (out, "\xc3\xa9\n") == 0);
    free (out);
    mask_stream_destroy (&stream);
    free (whole);
    mask_destroy (&mask);
    return 0;
}
