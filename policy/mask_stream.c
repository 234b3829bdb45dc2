/*  policy/mask_stream.c: masking a stream of chunks as if it were one text. A secret split
    across two chunks must be masked like one that arrived whole, so what could still become
    a hit (mask_release_point) waits for the next chunk; the rest is masked and released at
    once. The wait is bounded by hold_max: past it, the oldest held bytes are released
    (masked as they are), so a stream that never completes a match still flows. */
#include "policy/mask_stream.h"
#include "common/buf.h"
#include <stdlib.h>
#include <string.h>

struct _mask_stream_t {
    size_t hold_max;
    buf_t held;                 //  bytes received but not released yet
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
    size_t size = self->held.len;
    size_t point = last ? size : mask_release_point (mask, text, size);
    if (size - point > self->hold_max)
        point = size - self->hold_max;
    char *out = mask_apply (mask, text, point, out_len, NULL);
    if (out)
        buf_consume (&self->held, point);
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
    //  Every way of cutting the text into chunks releases what masking it whole gives.
    for (size_t step = 1; step <= strlen (text) + 1; step++) {
        char *joined = s_stream (mask, text, step, 4096);
        CHECK (joined && whole && strcmp (joined, whole) == 0);
        free (joined);
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
