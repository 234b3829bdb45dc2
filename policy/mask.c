/*  policy/mask.c: the masker's construction. It owns the compiled patterns (built-in and
    custom), their match budgets, and the exact secret values with their encoded forms.
    Applying is policy/mask_apply.c; the built-in table is policy/mask_builtins.c. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/mask_int.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Budgets per match attempt: generous for honest patterns (a 16 KiB key block needs a few
//  thousand steps), small enough that an exponential pattern gives up within milliseconds.
#define MASK_MATCH_LIMIT  200000
#define MASK_DEPTH_LIMIT  20000
#define MASK_HEAP_LIMIT   (32 * 1024)           //  KiB
#define MASK_JIT_STACK    (1024 * 1024)

//  --------------------------------------------------------------------------
//  Construction

static int
s_compile (const char *pattern, pcre2_code **re, size_t *erroffset, char *err, size_t err_size)
{
    int code;
    PCRE2_SIZE off = 0;
    //  NEVER_UTF: outputs are arbitrary bytes; a (*UTF) pattern would error on binary output.
    *re = pcre2_compile ((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED, PCRE2_NEVER_UTF, &code,
                         &off, NULL);
    if (!*re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message (code, msg, sizeof msg);
        if (err && err_size)
            snprintf (err, err_size, "%s at offset %zu", (char *) msg, (size_t) off);
        if (erroffset)
            *erroffset = off;
        return -1;
    }
    pcre2_jit_compile (*re, PCRE2_JIT_COMPLETE);     //  falls back to the interpreter
    return 0;
}

bool
mask_name_valid (const char *name)
{
    size_t n = name ? strlen (name) : 0;
    if (n == 0 || n > 64)
        return false;
    return strspn (name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

int
mask_check_pattern (const char *pattern, size_t *erroffset, char *err, size_t err_size)
{
    pcre2_code *re;
    if (!pattern || s_compile (pattern, &re, erroffset, err, err_size))
        return -1;
    pcre2_code_free (re);
    return 0;
}

static detector_t *
s_grow (mask_t *self, const char *name, int rank)
{
    detector_t *dets = realloc (self->dets, (self->ndets + 1) * sizeof *dets);
    if (!dets)
        return NULL;
    self->dets = dets;
    detector_t *det = &dets[self->ndets];
    memset (det, 0, sizeof *det);
    det->rank = rank;
    det->name = strdup (name);
    if (!det->name)
        return NULL;
    self->ndets++;
    return det;
}

static int
s_add_regex (mask_t *self, const char *name, int rank, const char *pattern, check_fn *check,
             char *err, size_t err_size)
{
    pcre2_code *re;
    if (s_compile (pattern, &re, NULL, err, err_size))
        return -1;
    detector_t *det = s_grow (self, name, rank);
    pcre2_match_data *md = det ? pcre2_match_data_create_from_pattern (re, NULL) : NULL;
    if (!md) {
        pcre2_code_free (re);
        if (err && err_size)
            snprintf (err, err_size, "out of memory");
        return -1;
    }
    det->re = re;
    det->md = md;
    det->check = check;
    int group = pcre2_substring_number_from_name (re, (PCRE2_SPTR) "secret");
    det->group = group > 0 ? group : 0;
    return 0;
}

mask_t *
mask_new (void)
{
    mask_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->mctx = pcre2_match_context_create (NULL);
    self->jit = pcre2_jit_stack_create (32 * 1024, MASK_JIT_STACK, NULL);
    if (!self->mctx) {
        mask_destroy (&self);
        return NULL;
    }
    pcre2_set_match_limit (self->mctx, MASK_MATCH_LIMIT);
    pcre2_set_depth_limit (self->mctx, MASK_DEPTH_LIMIT);
    pcre2_set_heap_limit (self->mctx, MASK_HEAP_LIMIT);
    if (self->jit)
        pcre2_jit_stack_assign (self->mctx, NULL, self->jit);
    for (size_t i = 0; i < mask_builtin_count; i++) {
        const mask_builtin_t *b = &mask_builtins[i];
        char err[256];
        if (s_add_regex (self, b->name, b->rank, b->pattern, b->check, err, sizeof err)) {
            mask_destroy (&self);
            return NULL;
        }
    }
    return self;
}

void
mask_destroy (mask_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mask_t *self = *self_p;
    for (size_t i = 0; i < self->ndets; i++) {
        detector_t *det = &self->dets[i];
        free (det->name);
        pcre2_code_free (det->re);
        pcre2_match_data_free (det->md);
        for (size_t k = 0; k < det->nforms; k++)
            free (det->forms[k]);
        free (det->forms);
    }
    free (self->dets);
    pcre2_match_context_free (self->mctx);
    pcre2_jit_stack_free (self->jit);
    free (self);
    *self_p = NULL;
}

int
mask_add_pattern (mask_t *self, const char *name, const char *pattern, char *err,
                  size_t err_size)
{
    if (!self || !pattern || !mask_name_valid (name)) {
        if (err && err_size)
            snprintf (err, err_size, "mask name must match [A-Za-z0-9_.-]{1,64}");
        return -1;
    }
    return s_add_regex (self, name, RANK_CUSTOM, pattern, NULL, err, err_size);
}

//  --------------------------------------------------------------------------
//  Exact secrets and their encoded forms

static int
s_add_form (detector_t *det, const char *form, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < det->nforms; i++)
        if (strlen (det->forms[i]) == n && memcmp (det->forms[i], form, n) == 0)
            return 0;
    char **forms = realloc (det->forms, (det->nforms + 1) * sizeof *forms);
    if (!forms)
        return -1;
    det->forms = forms;
    if (!(forms[det->nforms] = strndup (form, n)))
        return -1;
    det->nforms++;
    return 0;
}

//  Percent-encoding of everything but RFC 3986 unreserved bytes, with upper or lower hex.
static int
s_add_url_form (detector_t *det, const char *value, size_t n, const char *hex)
{
    char *out = malloc (n * 3 + 1);
    if (!out)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) value[i];
        if (s_alpha ((char) c) || (c >= '0' && c <= '9') || strchr ("-._~", c))
            out[o++] = (char) c;
        else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    int rc = s_add_form (det, out, o);
    free (out);
    return rc;
}

//  The value as it appears inside a JSON string (json.dumps of the output, for example).
static int
s_add_json_form (detector_t *det, const char *value, size_t n)
{
    char *out = malloc (n * 6 + 1);
    if (!out)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) value[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                        : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
        if (esc)
            o += (size_t) sprintf (out + o, "%s", esc);
        else
        if (c < 0x20)
            o += (size_t) sprintf (out + o, "\\u%04x", c);
        else
            out[o++] = (char) c;
    }
    int rc = s_add_form (det, out, o);
    free (out);
    return rc;
}

//  Base64 of the value shifted by 0, 1 or 2 bytes: only the characters that depend on the
//  value's bits alone are kept, so the form is found inside base64 of any larger blob.
static int
s_add_b64_forms (detector_t *det, const char *value, size_t n, const char *alphabet)
{
    unsigned char *in = calloc (1, n + 2);
    char *out = malloc ((n + 2) / 3 * 4 + 8);
    int rc = in && out ? 0 : -1;
    for (size_t shift = 0; shift < 3 && rc == 0; shift++) {
        memset (in, 0, shift);
        memcpy (in + shift, value, n);
        size_t total = shift + n, o = 0, bits = 0;
        uint32_t acc = 0;
        for (size_t i = 0; i < total; i++) {
            acc = (acc << 8 | in[i]) & 0xFFFFFF;
            for (bits += 8; bits >= 6; bits -= 6)
                out[o++] = alphabet[acc >> (bits - 6) & 63];
        }
        size_t first = (shift * 8 + 5) / 6, last = (total * 8) / 6;
        if (last > first && last - first >= 6)
            rc = s_add_form (det, out + first, last - first);
    }
    free (in);
    free (out);
    return rc;
}

int
mask_add_secret (mask_t *self, const char *name, const char *value)
{
    if (!self || !value || !*value || !mask_name_valid (name))
        return -1;
    detector_t *det = s_grow (self, name, RANK_SECRET);
    if (!det)
        return -1;
    size_t n = strlen (value);
    const char *std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (s_add_form (det, value, n)
        || s_add_url_form (det, value, n, "0123456789ABCDEF")
        || s_add_url_form (det, value, n, "0123456789abcdef")
        || s_add_json_form (det, value, n)
        || s_add_b64_forms (det, value, n, std)
        || s_add_b64_forms (det, value, n, url))
        return -1;
    return 0;
}
