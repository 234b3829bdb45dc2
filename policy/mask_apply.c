/*  policy/mask_apply.c: mask_apply(), the span merging that turns all hits into one masked
    copy, sparing the masks already in the text. Cost is one pass per detector (JIT-compiled,
    start-of-token anchored so a long run of similar bytes is tried once, not at every byte)
    plus a sort of the hits. */
#define _GNU_SOURCE                             //  memmem
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/mask_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t start, end;
    int rank;
    size_t det;
} span_t;

typedef struct {
    span_t *items;
    size_t size, cap;
    bool failed;                //  out of memory
} spans_t;

//  --------------------------------------------------------------------------
//  Applying: collect hits from every detector, merge overlaps, write the copy.

static void
s_span_add (spans_t *spans, size_t start, size_t end, int rank, size_t det)
{
    if (end <= start || spans->failed)
        return;
    if (spans->size == spans->cap) {
        size_t cap = spans->cap ? spans->cap * 2 : 64;
        span_t *items = realloc (spans->items, cap * sizeof *items);
        if (!items) {
            spans->failed = true;
            return;
        }
        spans->items = items;
        spans->cap = cap;
    }
    spans->items[spans->size++] = (span_t) { start, end, rank, det };
}

static size_t
s_line_end (const char *text, size_t len, size_t from)
{
    const char *nl = from < len ? memchr (text + from, '\n', len - from) : NULL;
    return nl ? (size_t) (nl - text) : len;
}

//  Records one match (after its validator) and returns where the next attempt starts.
static size_t
s_take_match (const detector_t *det, size_t d, const char *text, size_t len, int rc,
              spans_t *spans)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer (det->md);
    size_t start = ov[0], end = ov[1];
    if (det->check && !det->check (text, len, ov, rc, &start, &end))
        return ov[0] + 1;
    if (det->group && rc > det->group && ov[2 * det->group] != PCRE2_UNSET) {
        start = ov[2 * det->group];
        end = ov[2 * det->group + 1];
    }
    s_span_add (spans, start, end, det->rank, d);
    return ov[1] > ov[0] ? ov[1] : ov[0] + 1;
}

static void
s_scan_regex (mask_t *self, size_t d, const char *text, size_t len, size_t from, spans_t *spans)
{
    const detector_t *det = &self->dets[d];
    bool per_line = false;
    for (size_t offset = from; offset <= len; ) {
        size_t subject = per_line ? s_line_end (text, len, offset) : len;
        int rc = pcre2_match (det->re, (PCRE2_SPTR) text, subject, offset, 0, det->md,
                              self->mctx);
        if (rc == PCRE2_ERROR_NOMATCH && !per_line)
            break;
        if (rc == PCRE2_ERROR_NOMATCH)
            offset = subject + 1;
        else
        if (rc < 0 && !per_line)
            per_line = true;                    //  over budget: retry from here line by line
        else
        if (rc < 0) {
            s_span_add (spans, offset, subject, det->rank, d);
            offset = subject + 1;
        }
        else
            offset = s_take_match (det, d, text, len, rc, spans);
    }
}

static void
s_scan_forms (const detector_t *det, size_t d, const char *text, size_t len, size_t from,
              spans_t *spans)
{
    for (size_t f = 0; f < det->nforms; f++) {
        size_t n = strlen (det->forms[f]);
        for (const char *at = text + from; at && (size_t) (at - text) + n <= len; ) {
            at = memmem (at, len - (size_t) (at - text), det->forms[f], n);
            if (at) {
                s_span_add (spans, (size_t) (at - text), (size_t) (at - text) + n, det->rank, d);
                at++;                           //  overlapping occurrences too
            }
        }
    }
}

//  The length of the longest start of one of an exact secret's forms that text ends with.
static size_t
s_cut_length (const detector_t *det, const char *text, size_t len)
{
    size_t best = 0;
    for (size_t f = 0; f < det->nforms; f++) {
        const char *form = det->forms[f];
        size_t n = strlen (form), k = n - 1 < len ? n - 1 : len;
        for (const char *at = text + len - k; k > best; at++, k--) {
            at = memchr (at, form[0], k);
            if (!at)
                break;
            k = len - (size_t) (at - text);
            if (k > best && memcmp (at, form, k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

//  A text cut short by an output limit may end inside a secret: the longest start of one of
//  its forms that the text ends with is masked too.
static void
s_scan_cut (const detector_t *det, size_t d, const char *text, size_t len, spans_t *spans)
{
    s_span_add (spans, len - s_cut_length (det, text, len), len, det->rank, d);
}

static int
s_span_cmp (const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    return x->end > y->end ? -1 : x->end < y->end;
}

//  Sorts and merges overlapping spans in place; each merged span keeps the best rank's detector.
static size_t
s_merge (spans_t *spans)
{
    if (spans->size == 0)
        return 0;
    qsort (spans->items, spans->size, sizeof (span_t), s_span_cmp);
    size_t out = 0;
    for (size_t i = 1; i < spans->size; i++) {
        span_t *cur = &spans->items[out], *next = &spans->items[i];
        if (next->start < cur->end) {
            if (next->end > cur->end)
                cur->end = next->end;
            if (next->rank < cur->rank) {
                cur->rank = next->rank;
                cur->det = next->det;
            }
        }
        else
            spans->items[++out] = *next;
    }
    return out + 1;
}

//  Keeps what lies in [from, upto), the output: spans are cut there, empty ones go.
static void
s_clip (spans_t *spans, size_t from, size_t upto)
{
    size_t kept = 0;
    for (size_t i = 0; i < spans->size; i++) {
        span_t s = spans->items[i];
        s.start = s.start < from ? from : s.start;
        s.end = s.end > upto ? upto : s.end;
        if (s.end > s.start)
            spans->items[kept++] = s;
    }
    spans->size = kept;
}

//  text[at..len) with the merged spans (all at or after `at`) masked.
static char *
s_render (const mask_t *self, const char *text, size_t len, size_t at, const spans_t *spans,
          size_t n, size_t *out_len)
{
    size_t size = len - at + 1;
    for (size_t i = 0; i < n; i++)
        size += strlen ("[MASKED:]") + strlen (self->dets[spans->items[i].det].name);
    char *out = malloc (size);
    if (!out)
        return NULL;
    size_t o = 0, from = at;
    for (size_t i = 0; i < n; i++) {
        const span_t *s = &spans->items[i];
        memcpy (out + o, text + from, s->start - from);
        o += s->start - from;
        o += (size_t) sprintf (out + o, "[MASKED:%s]", self->dets[s->det].name);
        from = s->end;
    }
    memcpy (out + o, text + from, len - from);
    o += len - from;
    out[o] = 0;
    if (out_len)
        *out_len = o;
    return out;
}

//  --------------------------------------------------------------------------
//  Masks already in the text. "[MASKED:name]" was written by an earlier masker (the
//  worker's, for its secrets, before the broker's detectors run): pattern hits never
//  rewrite one, so masking is idempotent and "password=[MASKED:X]" does not become
//  "password=[MASKED:password]]". Exact secrets are masked wherever they are.

static bool
s_name_char (char c)
{
    return s_alpha (c) || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

//  The "[MASKED:name]" tokens of text, in order (name as mask_name_valid has it).
static void
s_find_tokens (const char *text, size_t len, size_t from, spans_t *tokens)
{
    static const char head[] = "[MASKED:";
    const size_t hl = sizeof head - 1;
    while (from + hl < len) {
        const char *at = memmem (text + from, len - from, head, hl);
        if (!at)
            break;
        size_t start = (size_t) (at - text), k = start + hl;
        while (k < len && k - start - hl < 64 && s_name_char (text[k]))
            k++;
        if (k < len && k > start + hl && text[k] == ']') {
            s_span_add (tokens, start, k + 1, 0, 0);
            from = k + 1;
        }
        else
            from = start + 1;
    }
}

//  Cuts the tokens out of every pattern hit: what remains of a hit on either side of a
//  token is still masked (fail closed), the token stays as it is.
static void
s_spare_tokens (spans_t *spans, const spans_t *tokens)
{
    spans_t out = { NULL, 0, 0, tokens->failed };
    for (size_t i = 0; i < spans->size; i++) {
        span_t s = spans->items[i];
        size_t lo = 0, hi = s.rank == RANK_SECRET ? 0 : tokens->size;
        while (lo < hi) {                       //  the first token that ends after s starts
            size_t mid = lo + (hi - lo) / 2;
            if (tokens->items[mid].end <= s.start)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t from = s.start;
        for (size_t t = lo; s.rank != RANK_SECRET && t < tokens->size
                            && tokens->items[t].start < s.end; t++) {
            s_span_add (&out, from, tokens->items[t].start, s.rank, s.det);
            if (tokens->items[t].end > from)
                from = tokens->items[t].end;
        }
        s_span_add (&out, from, s.end, s.rank, s.det);
    }
    free (spans->items);
    out.failed = out.failed || spans->failed;
    *spans = out;
}

//  Byte patterns may cut a UTF-8 character; widening the mask to whole characters keeps
//  valid UTF-8 output valid (the broker stores outputs as JSON strings). Only a well-formed
//  character the mask cuts is taken in, never stray continuation bytes beside it: so what
//  comes next (the rest of a stream) never changes how much of the text before is masked.
static size_t
s_char_start (const char *text, size_t len, size_t at)
{
    for (size_t k = 1; k <= 3 && k <= at; k++) {
        unsigned char c = (unsigned char) text[at - k];
        if ((c & 0xC0) == 0x80)
            continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (need <= k || at - k + need > len)
            return at;                  //  no character spans `at`, or it is cut short
        for (size_t i = 1; i < need; i++)
            if (((unsigned char) text[at - k + i] & 0xC0) != 0x80)
                return at;
        return at - k;
    }
    return at;
}

static void
s_widen_utf8 (const char *text, size_t len, spans_t *spans)
{
    for (size_t i = 0; i < spans->size; i++) {
        span_t *s = &spans->items[i];
        if (s->start < len)
            s->start = s_char_start (text, len, s->start);
        size_t lead = s->end < len ? s_char_start (text, len, s->end) : s->end;
        if (lead < s->end) {            //  the end cuts a character: take all of it
            unsigned char c = (unsigned char) text[lead];
            s->end = lead + (c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2);
        }
    }
}

//  Masks text[from..upto); text[0..from) is context that lookbehinds and validators see, and
//  text[upto..len) what lookaheads and word boundaries see after it.
static char *
s_apply (mask_t *self, const char *text, size_t len, size_t from, size_t upto, bool cut,
         size_t *out_len, int *count)
{
    if (!self || (!text && len) || from > upto || upto > len)
        return NULL;
    if (!text)
        text = "";
    spans_t spans = { NULL, 0, 0, false };
    for (size_t d = 0; d < self->ndets; d++) {
        if (self->dets[d].re)
            s_scan_regex (self, d, text, len, from, &spans);
        else
            s_scan_forms (&self->dets[d], d, text, len, from, &spans);
        if (!self->dets[d].re && cut)
            s_scan_cut (&self->dets[d], d, text, len, &spans);
    }
    spans_t tokens = { NULL, 0, 0, false };
    if (spans.size && !spans.failed)
        s_find_tokens (text, len, from, &tokens);
    if (tokens.size || tokens.failed)
        s_spare_tokens (&spans, &tokens);
    free (tokens.items);
    char *out = NULL;
    if (!spans.failed) {
        s_widen_utf8 (text, len, &spans);
        s_clip (&spans, from, upto);
        size_t n = s_merge (&spans);
        out = s_render (self, text, upto, from, &spans, n, out_len);
        if (out && count)
            *count = (int) n;
    }
    free (spans.items);
    return out;
}

char *
mask_apply (mask_t *self, const char *text, size_t len, size_t *out_len, int *count)
{
    return s_apply (self, text, len, 0, len, false, out_len, count);
}

char *
mask_apply_after (mask_t *self, const char *text, size_t len, size_t from, size_t upto,
                  size_t *out_len)
{
    return s_apply (self, text, len, from, upto, false, out_len, NULL);
}

char *
mask_apply_cut (mask_t *self, const char *text, size_t len, size_t *out_len, int *count)
{
    return s_apply (self, text, len, 0, len, true, out_len, count);
}

//  --------------------------------------------------------------------------
//  Streams: where a text that more bytes will follow can be cut.

//  The earliest start of a match of det that the bytes to come could still complete or
//  lengthen (PCRE2's hard partial matching), or len. Complete hits go to spans. A pattern
//  over its match limits holds back from where it failed: fail closed.
static size_t
s_partial_start (mask_t *self, size_t d, const char *text, size_t len, size_t from,
                 spans_t *spans)
{
    const detector_t *det = &self->dets[d];
    for (size_t offset = from; offset <= len; ) {
        int rc = pcre2_match (det->re, (PCRE2_SPTR) text, len, offset, PCRE2_PARTIAL_HARD,
                              det->md, self->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return len;
        if (rc == PCRE2_ERROR_PARTIAL)
            return pcre2_get_ovector_pointer (det->md)[0];
        if (rc < 0)
            return offset;
        offset = s_take_match (det, d, text, len, rc, spans);
    }
    return len;
}

size_t
mask_release_point (mask_t *self, const char *text, size_t len, size_t from)
{
    if (!self || !text || from > len)
        return from;
    size_t point = len;
    spans_t spans = { NULL, 0, 0, false };
    for (size_t d = 0; d < self->ndets; d++) {
        size_t start = self->dets[d].re ? s_partial_start (self, d, text, len, from, &spans)
                                        : len - s_cut_length (&self->dets[d], text, len);
        point = start < point ? start : point;
        if (!self->dets[d].re)
            s_scan_forms (&self->dets[d], d, text, len, from, &spans);
    }
    //  A complete hit across the point would be cut in two: the point moves to its start,
    //  until no hit crosses it.
    for (bool moved = true; moved && !spans.failed; ) {
        moved = false;
        for (size_t i = 0; i < spans.size; i++)
            if (spans.items[i].start < point && spans.items[i].end > point) {
                point = spans.items[i].start;
                moved = true;
            }
    }
    if (spans.failed)
        point = from;
    free (spans.items);
    //  Never inside a UTF-8 character: both halves stay valid text. At the end, a lead byte
    //  whose character is not complete yet waits for the rest.
    if (point == len)
        for (size_t k = 1; k <= 3 && k <= len - from; k++) {
            unsigned char c = (unsigned char) text[len - k];
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (c < 0x80 || c >= 0xC0) {
                point = need > k ? len - k : len;
                break;
            }
        }
    for (int k = 0; k < 3 && point > from && point < len && ((unsigned char) text[point] & 0xC0) == 0x80; k++)
        point--;
    return point < from ? from : point;
}
