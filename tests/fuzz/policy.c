/*  tests/fuzz/policy.c: libFuzzer target for the policy parser, the JSON position finder and
    the masker. Every input is parsed as a policy (and, if accepted, used to decide on itself as
    code and to build masks), walked by jpos, and masked as output, whole and streamed in
    chunks, which must give the same bytes. Built and run by
    `make fuzz` (tests/fuzz/run.sh); seed: policy/default.json. */
#include "policy/jpos.h"
#include "policy/mask.h"
#include "policy/mask_stream.h"
#include "policy/policy.h"
#include "tests/fuzz/common.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static mask_t *s_mask;

static void
s_decide_on_itself (policy_t *policy, const char *text, size_t size)
{
    policy_input_t in = { .lang = "shell", .principal = "fuzz", .role = "agent",
                          .groups_csv = "ops, sre,", .session = "prod-1", .code = text,
                          .code_len = size };
    policy_decision_t d;
    if (policy_decide (policy, &in, &d) == 0) {
        policy_may_approve (&d, "alice", "sre,ops");
        json_decref (policy_decision_json (&d));
        free (policy_network_text (d.network));
    }
    json_decref (policy_explain (policy, &in));
    mask_t *mask = mask_new ();
    char err[256];
    if (mask && policy_add_masks (policy, mask, err, sizeof err) == 0)
        free (mask_apply (mask, text, size, NULL, NULL));
    mask_destroy (&mask);
}

//  Streamed in chunks (sizes from the input's bytes) the text masks as it does whole, as long
//  as no match outgrows the hold-back bound.
static void
s_stream_matches (const char *text, size_t size, const char *whole, size_t whole_len)
{
    mask_stream_t *stream = mask_stream_new (1 << 20);
    char *joined = calloc (1, 1);
    size_t joined_len = 0;
    for (size_t at = 0, i = 0; stream && joined && at <= size; i++) {
        size_t step = 1 + (size ? (unsigned char) text[i % size] % 64 : 0), n = 0;
        step = at + step < size ? step : size - at;
        bool last = at + step >= size;
        char *out = mask_stream_feed (stream, s_mask, text + at, step, last, &n);
        char *grown = out ? realloc (joined, joined_len + n + 1) : NULL;
        if (grown) {
            memcpy (grown + joined_len, out, n);
            joined = grown;
            joined_len += n;
        }
        free (out);
        if (last || !grown)
            break;
        at += step;
    }
    if (joined && whole && (joined_len != whole_len || memcmp (joined, whole, whole_len) != 0))
        abort ();
    free (joined);
    mask_stream_destroy (&stream);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_mask) {
        s_mask = mask_new ();
        mask_add_secret (s_mask, "fuzz-secret", "s3cr3t/value+42");
        mask_add_pattern (s_mask, "custom", "(?<![a-z])tok_(?<secret>[a-z0-9]{8,})", NULL, 0);
    }
    const char *text = (const char *) data;
    char err[512];
    policy_t *policy = policy_parse (text, size, "fuzz.json", err, sizeof err);
    if (policy) {
        policy_sha256 (policy);
        s_decide_on_itself (policy, text, size);
    }
    policy_destroy (&policy);

    jpos_seg_t path[] = { { "rules", 0 }, { NULL, 0 }, { "match", 0 }, { "code", 0 } };
    size_t offset, at;
    int line, col;
    for (size_t depth = 0; depth <= 4; depth++)
        if (jpos_locate (text, size, path, depth, depth ? JPOS_KEY : JPOS_VALUE, &offset) == 0) {
            jpos_line_col (text, size, offset, &line, &col);
            if (jpos_locate (text, size, path, depth, JPOS_VALUE, &offset) == 0)
                jpos_string_byte (text, size, offset, size % 17, &at);
        }

    size_t out_len;
    int count;
    char *whole = mask_apply (s_mask, text, size, &out_len, &count);
    s_stream_matches (text, size, whole, out_len);
    free (whole);
    return 0;
}
