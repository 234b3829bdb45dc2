/*  policy/mask.c: the masker's construction. It owns the compiled patterns (built-in and
    custom), their match budgets, and the exact secret values with their encoded forms.
    Applying is policy/mask_apply.c; the built-in table is policy/mask_builtins.c. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/mask_int.h"
#include "common/util.h"
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
    pcre2_jit_compile (*re, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);  //  else the interpreter
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

static mask_t *
s_new (bool builtins)
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
    for (size_t i = 0; builtins && i < mask_builtin_count; i++) {
        const mask_builtin_t *b = &mask_builtins[i];
        char err[256];
        if (s_add_regex (self, b->name, b->rank, b->pattern, b->check, err, sizeof err)) {
            mask_destroy (&self);
            return NULL;
        }
    }
    return self;
}

mask_t *
mask_new (void)
{
    return s_new (true);
}

mask_t *
mask_new_empty (void)
{
    return s_new (false);
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
        for (size_t k = 0; k < det->nforms; k++) {
            explicit_bzero (det->forms[k], strlen (det->forms[k]));
            free (det->forms[k]);
        }
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
//  Exact secrets and their encoded forms. Each form is the secret as an encoder writes it
//  inside a larger string, so it is found whatever surrounds it; where the escaping depends
//  on the surroundings (the quote Python picks, a leading ~ or # for bash) every variant is
//  a form of its own. Forms are scanned with memmem, so a variant costs one pass.

//  Frees a buffer that held secret bytes without leaving them in freed memory.
static void
s_free_secret (char *buf, size_t size)
{
    if (buf)
        explicit_bzero (buf, size);
    free (buf);
}

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

//  A form is built in a buffer of 8 bytes per byte of the value: the widest escape is
//  6 bytes for one (\u0001, '"'"' is 5).
typedef struct {
    char *buf;
    size_t len, size;
} form_t;

static int
s_form_open (form_t *f, size_t n)
{
    f->len = 0;
    f->size = n * 8 + 1;
    f->buf = malloc (f->size);
    return f->buf ? 0 : -1;
}

static void
s_form_put (form_t *f, const char *fmt, unsigned value)
{
    f->len += (size_t) snprintf (f->buf + f->len, f->size - f->len, fmt, value);
}

static void
s_form_raw (form_t *f, const char *bytes, size_t n)
{
    memcpy (f->buf + f->len, bytes, n);
    f->len += n;
}

//  Adds the form unless it was abandoned (ok false: the value is not valid UTF-8).
static int
s_form_close (form_t *f, detector_t *det, bool ok)
{
    int rc = ok ? s_add_form (det, f->buf, f->len) : 0;
    s_free_secret (f->buf, f->size);
    return rc;
}

//  Percent-encoding of everything but RFC 3986 unreserved bytes; variants for the hex case,
//  '/' kept (Python's quote()) and space as '+' (forms, quote_plus()).
enum { URL_UPPER = 1, URL_SLASH = 2, URL_PLUS = 4 };

static int
s_add_url_form (detector_t *det, const char *value, size_t n, int flags)
{
    form_t f;
    if (s_form_open (&f, n))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) value[i];
        if (s_alpha ((char) c) || (c >= '0' && c <= '9') || strchr ("-._~", c)
        ||  (c == '/' && (flags & URL_SLASH)))
            f.buf[f.len++] = (char) c;
        else
        if (c == ' ' && (flags & URL_PLUS))
            f.buf[f.len++] = '+';
        else
            s_form_put (&f, flags & URL_UPPER ? "%%%02X" : "%%%02x", c);
    }
    return s_form_close (&f, det, true);
}

//  The value inside a JSON string: as json.dumps and jansson write it (ensure_ascii or not,
//  lower or upper hex), and with \b \f spelled \u0008 \u000c as some encoders do.
enum { JSON_ASCII = 1, JSON_UPPER = 2, JSON_LONG = 4 };

static int
s_add_json_form (detector_t *det, const char *value, size_t n, int flags)
{
    form_t f;
    if (s_form_open (&f, n))
        return -1;
    const char *hex = flags & JSON_UPPER ? "\\u%04X" : "\\u%04x";
    bool ok = true;
    for (size_t i = 0; i < n && ok; ) {
        unsigned char c = (unsigned char) value[i];
        bool shortb = !(flags & JSON_LONG) && (c == '\b' || c == '\f');
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                        : c == '\r' ? "\\r" : c == '\t' ? "\\t" : !shortb ? NULL
                        : c == '\b' ? "\\b" : "\\f";
        uint32_t cp;
        size_t len = 1;
        if (esc)
            s_form_raw (&f, esc, 2);
        else
        if (c >= 0x20 && (c < 0x7F || !(flags & JSON_ASCII)))
            f.buf[f.len++] = (char) c;
        else
        if ((ok = (len = utf8_decode (value + i, n - i, &cp)) > 0)) {
            if (cp >= 0x10000) {                //  a UTF-16 surrogate pair
                s_form_put (&f, hex, 0xD800 + ((cp - 0x10000) >> 10));
                cp = 0xDC00 + ((cp - 0x10000) & 0x3FF);
            }
            s_form_put (&f, hex, cp);
        }
        i += len;
    }
    return s_form_close (&f, det, ok);
}

//  Code points Python's repr() escapes although a UTF-8 terminal could show them (not
//  str.isprintable()): controls, separators but the space, format characters, private use
//  and non-characters. Unassigned ones are escaped too and are not known here.
static bool
s_py_printable (uint32_t cp)
{
    return !(cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD || cp == 0x1680
             || (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F)
             || (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || (cp >= 0xD800 && cp <= 0xF8FF)
             || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) || cp >= 0xFFFE);
}

//  The value inside a Python string literal: repr() and ascii() of the str, repr() of its
//  UTF-8 bytes, each with ' escaped (repr quotes with ' when the text holds both quotes)
//  or not.
enum { PY_ASCII = 1, PY_BYTES = 2, PY_QUOTE = 4 };

static int
s_add_py_form (detector_t *det, const char *value, size_t n, int flags)
{
    form_t f;
    if (s_form_open (&f, n))
        return -1;
    bool ok = true;
    for (size_t i = 0; i < n && ok; ) {
        unsigned char c = (unsigned char) value[i];
        const char *esc = c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                        : c == '\t' ? "\\t" : c == '\'' && (flags & PY_QUOTE) ? "\\'" : NULL;
        uint32_t cp = c;
        size_t len = 1;
        if (esc)
            s_form_raw (&f, esc, 2);
        else
        if (c >= 0x20 && c < 0x7F)
            f.buf[f.len++] = (char) c;
        else
        if (c < 0x80 || (flags & PY_BYTES))
            s_form_put (&f, "\\x%02x", c);
        else
        if (!(ok = (len = utf8_decode (value + i, n - i, &cp)) > 0))
            ;
        else
        if (!(flags & PY_ASCII) && s_py_printable (cp))
            s_form_raw (&f, value + i, len);
        else
            s_form_put (&f, cp <= 0xFF ? "\\x%02x" : cp <= 0xFFFF ? "\\u%04x" : "\\U%08x", cp);
        i += len;
    }
    return s_form_close (&f, det, ok);
}

//  The value as bash's printf %q (and ${v@Q}) quotes it: backslashes before shell
//  characters, a leading ~ or # escaped or not (it depends on what precedes the secret);
//  or $'...' when anything is not printable, with non-ASCII as is (UTF-8 locale) or as
//  octal bytes (C locale).
enum { SH_LEAD = 1, SH_ANSI = 2, SH_OCTAL = 4 };

static int
s_add_sh_form (detector_t *det, const char *value, size_t n, int flags)
{
    form_t f;
    if (s_form_open (&f, n))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) value[i];
        const char *named = strchr ("\a\b\x1b\f\n\r\t\v", c);
        bool after_sep = i > 0 && (value[i - 1] == '=' || value[i - 1] == ':');
        if (!(flags & SH_ANSI)) {
            if ((c && strchr (" \t\n'\"\\|&;()<>!{}*[?]^$`,", c))
            ||  (c == '~' && (after_sep || (i == 0 && (flags & SH_LEAD))))
            ||  (c == '#' && i == 0 && (flags & SH_LEAD)))
                f.buf[f.len++] = '\\';
            f.buf[f.len++] = (char) c;
        }
        else
        if (c == '\\' || c == '\'') {
            f.buf[f.len++] = '\\';
            f.buf[f.len++] = (char) c;
        }
        else
        if (c && named) {
            f.buf[f.len++] = '\\';
            f.buf[f.len++] = "abEfnrtv"[named - "\a\b\x1b\f\n\r\t\v"];
        }
        else
        if (c < 0x20 || c == 0x7F || (c >= 0x80 && (flags & SH_OCTAL)))
            s_form_put (&f, "\\%03o", c);
        else
            f.buf[f.len++] = (char) c;
    }
    return s_form_close (&f, det, true);
}

//  Inside single quotes ('...', shlex.quote, ${v@Q}) a quote is written '\'' or '"'"'.
static int
s_add_squote_form (detector_t *det, const char *value, size_t n, const char *quote)
{
    form_t f;
    if (s_form_open (&f, n))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (value[i] == '\'')
            s_form_raw (&f, quote, strlen (quote));
        else
            f.buf[f.len++] = value[i];
    return s_form_close (&f, det, true);
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
    s_free_secret ((char *) in, n + 2);
    s_free_secret (out, (n + 2) / 3 * 4 + 8);
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
    int rc = s_add_form (det, value, n);
    for (int flags = 0; flags < 8 && rc == 0; flags++)
        rc = s_add_url_form (det, value, n, flags) || s_add_json_form (det, value, n, flags)
          || s_add_py_form (det, value, n, flags) || s_add_sh_form (det, value, n, flags);
    if (rc == 0 && strchr (value, '\''))
        rc = s_add_squote_form (det, value, n, "'\\''")
          || s_add_squote_form (det, value, n, "'\"'\"'");
    //  Escaped twice: JSON inside JSON (a logged request body), repr() of a repr().
    for (size_t i = 0, single = det->nforms; i < single && rc == 0; i++) {
        const char *form = det->forms[i];
        size_t len = strlen (form);
        if (strpbrk (form, "\\\"'"))
            rc = s_add_json_form (det, form, len, 0) || s_add_py_form (det, form, len, 0)
              || s_add_py_form (det, form, len, PY_QUOTE);
    }
    const char *std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (rc == 0)
        rc = s_add_b64_forms (det, value, n, std) || s_add_b64_forms (det, value, n, url);
    return rc ? -1 : 0;
}
