/*  policy/mask.c: the masker. It owns the built-in detector table, the compiled patterns, the
    exact secret values and their encoded forms, and the span merging that turns all hits into
    one masked copy. Cost is one pass per detector (JIT-compiled, start-of-token anchored so a
    long run of similar bytes is tried once, not at every byte) plus a sort of the hits. */
#define _GNU_SOURCE                             //  memmem
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/mask.h"
#include "common/check.h"
#include <pcre2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Budgets per match attempt: generous for honest patterns (a 16 KiB key block needs a few
//  thousand steps), small enough that an exponential pattern gives up within milliseconds.
#define MASK_MATCH_LIMIT  200000
#define MASK_DEPTH_LIMIT  20000
#define MASK_HEAP_LIMIT   (32 * 1024)           //  KiB
#define MASK_JIT_STACK    (1024 * 1024)

//  Ranks: when hits overlap, the merged mask is named after the lowest rank.
enum { RANK_SECRET = 0, RANK_CUSTOM = 1, RANK_SPECIFIC = 2, RANK_GENERIC = 3 };

//  A validator sees the whole match and may reject it or narrow [*start, *end).
typedef bool (check_fn) (const char *text, size_t len, const PCRE2_SIZE *ov, int rc,
                         size_t *start, size_t *end);

typedef struct {
    char *name;
    int rank;
    pcre2_code *re;             //  NULL for an exact secret
    pcre2_match_data *md;
    int group;                  //  capture group to mask; 0 = the whole match
    check_fn *check;
    char **forms;               //  exact secret: the value and its encodings
    size_t nforms;
} detector_t;

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

struct _mask_t {
    detector_t *dets;
    size_t ndets;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
};

static check_fn s_check_card, s_check_email, s_check_jwt, s_check_pem;

//  --------------------------------------------------------------------------
//  Built-in detectors. Each starts with a negative lookbehind of its own first-character
//  class so that matching is attempted once per token, which keeps hostile output linear.

static const struct {
    const char *name;
    int rank;
    const char *pattern;
    check_fn *check;
} s_builtins[] = {
    { "aws-access-key-id", RANK_SPECIFIC,
      "(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])", NULL },
    { "aws-secret-access-key", RANK_SPECIFIC,
      "(?i)(?<![a-z0-9])(?:(?:aws[_-]?)?secret[_-]?access[_-]?key|aws[_-]?secret[_-]?key)[\"']?"
      "[ \\t]*[:=][ \\t]*[\"']?(?<secret>[a-z0-9/+=]{40})(?![a-z0-9/+=])", NULL },
    { "github-token", RANK_SPECIFIC,
      "(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{50,240})"
      "(?![A-Za-z0-9_])", NULL },
    { "slack-token", RANK_SPECIFIC,
      "(?<![A-Za-z0-9-])(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,250}", NULL },
    { "slack-webhook", RANK_SPECIFIC,
      "(?<![A-Za-z0-9.-])https://hooks\\.slack\\.com/(?:services|workflows|triggers)/"
      "(?<secret>[A-Za-z0-9_/-]{8,300})", NULL },
    { "private-key", RANK_SPECIFIC,
      "-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
      "(?:[A-Za-z0-9+/=:,.\\s\\\\]++|-(?!----))*+"
      "(-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----)?", s_check_pem },
    { "jwt", RANK_SPECIFIC,
      "(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{7,}\\.[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]*", s_check_jwt },
    { "bearer-token", RANK_GENERIC,
      "(?i)(?<![a-z0-9_-])authorization[\"']?[ \\t]*[:=][ \\t]*[\"']?(?:bearer|token)[ \\t]+"
      "(?<secret>[a-z0-9._~+/-]+=*)", NULL },
    { "bearer-token", RANK_GENERIC,
      "(?i)(?<![a-z0-9_-])bearer[ \\t]+(?<secret>(?=[a-z._~+/-]*[0-9])[a-z0-9._~+/-]{16,}=*)",
      NULL },
    { "basic-auth", RANK_GENERIC,
      "(?i)(?<![a-z0-9_-])authorization[\"']?[ \\t]*[:=][ \\t]*[\"']?basic[ \\t]+"
      "(?<secret>[a-z0-9+/]+=*)", NULL },
    { "password", RANK_GENERIC,
      "(?i)(?<![a-z0-9])(?:passw(?:or)?d|passphrase|pwd|pass|secret|token|api[_-]?key"
      "|private[_-]?key)[\"']?[ \\t]*(?:=(?![=>~])|:(?![:=]))[ \\t]*"
      "(?|\"(?<secret>[^\"\\r\\n]{1,512})\"|'(?<secret>[^'\\r\\n]{1,512})'"
      "|(?<secret>[^\\s\"',;&)\\]}]{1,512}))", NULL },
    { "url-password", RANK_GENERIC,
      "(?i)(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,30}://[^\\s:/@?#\"']{0,256}:"
      "(?<secret>[^\\s/@?#\"']{1,256})@", NULL },
    { "card-number", RANK_GENERIC,
      "(?<![0-9])(?:[0-9]{13,19}|[0-9]{4}([ -])[0-9]{4}\\1[0-9]{4}\\1[0-9]{4}(?:\\1[0-9]{1,3})?"
      "|[0-9]{4}([ -])[0-9]{6}\\2[0-9]{4,5})(?![0-9])", s_check_card },
    { "email", RANK_GENERIC,
      "(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}+", s_check_email },
};

//  --------------------------------------------------------------------------
//  Validators

//  Payment cards: 13-19 digits, a known network's first digit (so ms timestamps that start
//  with 1 are not cards), not all one digit, and the Luhn checksum.
static bool
s_check_card (const char *text, size_t len, const PCRE2_SIZE *ov, int rc, size_t *start,
              size_t *end)
{
    int digits[19], n = 0;
    for (size_t i = *start; i < *end && n < 19; i++)
        if (text[i] >= '0' && text[i] <= '9')
            digits[n++] = text[i] - '0';
    if (n < 13 || digits[0] < 2 || digits[0] > 6)
        return false;
    if (digits[0] == 2) {                       //  Mastercard 2221-2720
        int p = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3];
        if (p < 2221 || p > 2720)
            return false;
    }
    bool same = true;
    int sum = 0;
    for (int i = 0; i < n; i++) {
        int d = digits[n - 1 - i];
        if (i % 2 == 1 && (d *= 2) > 9)
            d -= 9;
        sum += d;
        same = same && digits[i] == digits[0];
    }
    return !same && sum % 10 == 0;
}

static bool
s_alpha (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

//  True if text[start] follows "scheme://user:", i.e. it is a URL's password (url-password's).
static bool
s_in_userinfo (const char *text, size_t start)
{
    if (start == 0 || text[start - 1] != ':')
        return false;
    size_t k = start - 1;                       //  on the ':'; walk back over the user name
    while (k > 0 && start - k < 300 && text[k - 1] && !strchr (" \t\r\n:/@?#\"'", text[k - 1]))
        k--;
    return k >= 3 && text[k - 1] == '/' && text[k - 2] == '/' && text[k - 3] == ':';
}

//  E-mail: the possessive domain run is trimmed of trailing dots and dashes (sentence ends),
//  then must be two or more well-formed labels ending in an alphabetic TLD.
static bool
s_check_email (const char *text, size_t len, const PCRE2_SIZE *ov, int rc, size_t *start,
               size_t *end)
{
    const char *at = memchr (text + *start, '@', *end - *start);
    if (!at || s_in_userinfo (text, *start))
        return false;
    size_t dom = (size_t) (at - text) + 1, e = *end;
    while (e > dom && (text[e - 1] == '.' || text[e - 1] == '-'))
        e--;
    size_t labels = 0, label_start = dom;
    for (size_t i = dom; i <= e; i++) {
        if (i < e && text[i] != '.')
            continue;
        size_t l = i - label_start;
        if (l == 0 || l > 63 || text[label_start] == '-' || text[i - 1] == '-')
            return false;
        labels++;
        if (i == e) {                           //  the TLD
            if (l < 2)
                return false;
            for (size_t k = label_start; k < i; k++)
                if (!s_alpha (text[k]))
                    return false;
        }
        label_start = i + 1;
    }
    *end = e;
    return labels >= 2;
}

static int
s_b64_value (char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
}

//  JWT: the header must decode to a JSON object that names "alg" or "typ".
static bool
s_check_jwt (const char *text, size_t len, const PCRE2_SIZE *ov, int rc, size_t *start,
             size_t *end)
{
    char head[192];
    size_t n = 0, bits = 0;
    unsigned acc = 0;
    for (size_t i = *start; i < *end && text[i] != '.' && n < sizeof head - 1; i++) {
        int v = s_b64_value (text[i]);
        if (v < 0)
            return false;
        acc = (acc << 6 | (unsigned) v) & 0xFFFFFF;
        if ((bits += 6) >= 8) {
            bits -= 8;
            head[n++] = (char) (acc >> bits & 0xFF);
        }
    }
    head[n] = 0;
    return n > 2 && head[0] == '{' && (strstr (head, "\"alg\"") || strstr (head, "\"typ\""));
}

//  Private keys: a complete block, or a block cut short by the end of the output (truncated
//  output must not leak half a key) if it already holds a line of key material.
static bool
s_check_pem (const char *text, size_t len, const PCRE2_SIZE *ov, int rc, size_t *start,
             size_t *end)
{
    if (rc > 1 && ov[2] != PCRE2_UNSET)
        return true;
    if (*end != len)
        return false;
    size_t run = 0;
    for (size_t i = *start; i < *end; i++) {
        run = s_b64_value (text[i]) >= 0 || text[i] == '=' ? run + 1 : 0;
        if (run >= 40)
            return true;
    }
    return false;
}

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
    for (size_t i = 0; i < sizeof s_builtins / sizeof s_builtins[0]; i++) {
        char err[256];
        if (s_add_regex (self, s_builtins[i].name, s_builtins[i].rank, s_builtins[i].pattern,
                         s_builtins[i].check, err, sizeof err)) {
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
s_scan_regex (mask_t *self, size_t d, const char *text, size_t len, spans_t *spans)
{
    const detector_t *det = &self->dets[d];
    bool per_line = false;
    for (size_t offset = 0; offset <= len; ) {
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
s_scan_forms (const detector_t *det, size_t d, const char *text, size_t len, spans_t *spans)
{
    for (size_t f = 0; f < det->nforms; f++) {
        size_t n = strlen (det->forms[f]);
        for (const char *at = text; at && (size_t) (at - text) + n <= len; ) {
            at = memmem (at, len - (size_t) (at - text), det->forms[f], n);
            if (at) {
                s_span_add (spans, (size_t) (at - text), (size_t) (at - text) + n, det->rank, d);
                at++;                           //  overlapping occurrences too
            }
        }
    }
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

static char *
s_render (const mask_t *self, const char *text, size_t len, const spans_t *spans, size_t n,
          size_t *out_len)
{
    size_t size = len + 1;
    for (size_t i = 0; i < n; i++)
        size += strlen ("[MASKED:]") + strlen (self->dets[spans->items[i].det].name);
    char *out = malloc (size);
    if (!out)
        return NULL;
    size_t o = 0, from = 0;
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

//  Byte patterns may cut a UTF-8 character; widening the mask to whole characters keeps
//  valid UTF-8 output valid (the broker stores outputs as JSON strings).
static void
s_widen_utf8 (const char *text, size_t len, spans_t *spans)
{
    for (size_t i = 0; i < spans->size; i++) {
        span_t *s = &spans->items[i];
        for (int k = 0; k < 3 && s->start > 0 && ((unsigned char) text[s->start] & 0xC0) == 0x80; k++)
            s->start--;
        for (int k = 0; k < 3 && s->end < len && ((unsigned char) text[s->end] & 0xC0) == 0x80; k++)
            s->end++;
    }
}

char *
mask_apply (mask_t *self, const char *text, size_t len, size_t *out_len, int *count)
{
    if (!self || (!text && len))
        return NULL;
    if (!text)
        text = "";
    spans_t spans = { NULL, 0, 0, false };
    for (size_t d = 0; d < self->ndets; d++) {
        if (self->dets[d].re)
            s_scan_regex (self, d, text, len, &spans);
        else
            s_scan_forms (&self->dets[d], d, text, len, &spans);
    }
    char *out = NULL;
    if (!spans.failed) {
        s_widen_utf8 (text, len, &spans);
        size_t n = s_merge (&spans);
        out = s_render (self, text, len, &spans, n, out_len);
        if (out && count)
            *count = (int) n;
    }
    free (spans.items);
    return out;
}

//  --------------------------------------------------------------------------
//  Self-test

static bool
s_masks_to (mask_t *mask, const char *in, const char *want)
{
    size_t n = 0;
    int count = -1;
    char *out = mask_apply (mask, in, strlen (in), &n, &count);
    bool ok = out && strcmp (out, want) == 0 && n == strlen (want)
              && (count > 0) == (strcmp (in, want) != 0);
    if (!ok)
        fprintf (stderr, "mask: %s\n  got  %s\n  want %s\n", in, out ? out : "(null)", want);
    free (out);
    return ok;
}

//  Inputs that must come out unchanged.
static bool
s_keeps (mask_t *mask, const char *in)
{
    return s_masks_to (mask, in, in);
}

static void
s_test_keys (mask_t *m)
{
    CHECK (s_masks_to (m, "key AKIAIOSFODNN7EXAMPLE end", "key [MASKED:aws-access-key-id] end"));
    CHECK (s_masks_to (m, "ASIAY34FZKBOKMUTVV7A", "[MASKED:aws-access-key-id]"));
    CHECK (s_keeps (m, "AKIAIOSFODNN7EXAMP and AKIAIOSFODNN7EXAMPLEX and akiaiosfodnn7example"));
    CHECK (s_masks_to (m, "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                       "aws_secret_access_key = [MASKED:aws-secret-access-key]\n"));
    CHECK (s_masks_to (m, "{\"SecretAccessKey\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"}",
                       "{\"SecretAccessKey\": \"[MASKED:aws-secret-access-key]\"}"));
    CHECK (s_keeps (m, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY aws_secret_access_key = short"));
    const char *gh[] = { "ghp_", "gho_", "ghu_", "ghs_", "ghr_" };
    for (size_t i = 0; i < 5; i++) {
        char in[128];
        snprintf (in, sizeof in, "token %s%s.", gh[i], "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789");
        CHECK (s_masks_to (m, in, "token [MASKED:github-token]."));
    }
    CHECK (s_masks_to (m, "github_pat_11ABCDEFG0123456789abcd_EFGHIJKLMNOPQRSTUVWXYZabcdefghij"
                          "klmnopqrstuvwxyz0123456789ABCDEFGHIJ",
                       "[MASKED:github-token]"));
    CHECK (s_keeps (m, "ghp_short ghx_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 github_pat_x"));
    CHECK (s_masks_to (m, "SLACK=xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx ok",
                       "SLACK=[MASKED:slack-token] ok"));
    CHECK (s_masks_to (m, "xoxp-1234-5678-abcd xoxa-2-abcdefghij xapp-1-A0123456-789-abc",
                       "[MASKED:slack-token] [MASKED:slack-token] [MASKED:slack-token]"));
    CHECK (s_keeps (m, "xoxb-123 xoxz-1234567890-abcdef"));
    CHECK (s_masks_to (m, "POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXX",
                       "POST https://hooks.slack.com/services/[MASKED:slack-webhook]"));
    CHECK (s_keeps (m, "see https://hooks.slack.com/ and https://hooks.slack.com/services/"));
}

static void
s_test_tokens (mask_t *m)
{
    CHECK (s_masks_to (m, "Authorization: Bearer abc.def-ghi\r\n",
                       "Authorization: Bearer [MASKED:bearer-token]\r\n"));
    CHECK (s_masks_to (m, "-H 'authorization: bearer Zm9vYmFyYmF6cXV4MTIzNDU2'",
                       "-H 'authorization: bearer [MASKED:bearer-token]'"));
    CHECK (s_masks_to (m, "use Bearer 3f9a8b7c6d5e4f3a2b1c now", "use Bearer [MASKED:bearer-token] now"));
    CHECK (s_masks_to (m, "Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [MASKED:basic-auth]"));
    CHECK (s_keeps (m, "the bearer of bad news; Bearer token required; Bearer responsibilities"));
    const char *jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6Ikpv"
                      "aG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    char in[512];
    snprintf (in, sizeof in, "jwt=%s;", jwt);
    CHECK (s_masks_to (m, in, "jwt=[MASKED:jwt];"));
    snprintf (in, sizeof in, "cookie: %s\n", jwt);
    CHECK (s_masks_to (m, in, "cookie: [MASKED:jwt]\n"));
    CHECK (s_keeps (m, "com.example.package eyJustkidding.notreallyatoken.x eyJhbGciOiJ.x.y"));
}

static void
s_test_pem (mask_t *m)
{
    const char *block = "-----BEGIN RSA PRIVATE KEY-----\n"
                        "MIIEowIBAAKCAQEAx3R2mXv0Vq8vJx1Yb8m4kq9Zt5pJq2r3W0zL1s8f6e7d9c0b\n"
                        "Zt5pJq2r3W0zL1s8f6e7d9c0bMIIEowIBAAKCAQEAx3R2mXv0Vq8vJx1Yb8m4k==\n"
                        "-----END RSA PRIVATE KEY-----";
    char in[1024];
    snprintf (in, sizeof in, "key:\n%s\nafter", block);
    CHECK (s_masks_to (m, in, "key:\n[MASKED:private-key]\nafter"));
    CHECK (s_masks_to (m, "'-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU"
                          "AAAAEbm9uZQ\\n-----END OPENSSH PRIVATE KEY-----\\n'",
                       "'[MASKED:private-key]\\n'"));
    //  Cut short by an output limit: still masked to the end.
    CHECK (s_masks_to (m, "x -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ",
                       "x [MASKED:private-key]"));
    CHECK (s_keeps (m, "grep for BEGIN PRIVATE KEY in files"));
    CHECK (s_keeps (m, "echo '-----BEGIN PRIVATE KEY-----' > marker.txt\ndone"));
    CHECK (s_keeps (m, "-----BEGIN PRIVATE KEY-----\n"));
    CHECK (s_keeps (m, "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
                       "-----END PUBLIC KEY-----"));
}

static void
s_test_passwords (mask_t *m)
{
    CHECK (s_masks_to (m, "password=hunter2", "password=[MASKED:password]"));
    CHECK (s_masks_to (m, "DB_PASSWORD: 's3cr3t!' x", "DB_PASSWORD: '[MASKED:password]' x"));
    CHECK (s_masks_to (m, "{\"api_key\": \"abc 123\", \"n\": 1}", "{\"api_key\": \"[MASKED:password]\", \"n\": 1}"));
    CHECK (s_masks_to (m, "GET /x?token=abc123&page=2", "GET /x?token=[MASKED:password]&page=2"));
    CHECK (s_masks_to (m, "client_secret = Zx9", "client_secret = [MASKED:password]"));
    CHECK (s_keeps (m, "password=\nEnter password:\npassword:\nnext\nif password == other: pass\n"));
    CHECK (s_keeps (m, "passwords are hashed; \"password\": \"\"; bypass=1; token_count=3"));
    CHECK (s_masks_to (m, "postgres://admin:hunter2@db.internal:5432/app",
                       "postgres://admin:[MASKED:url-password]@db.internal:5432/app"));
    CHECK (s_masks_to (m, "redis://:p%40ss@cache:6379", "redis://:[MASKED:url-password]@cache:6379"));
    CHECK (s_keeps (m, "https://example.com:443/path and ftp://host/a:b@c ok"));
}

static void
s_test_cards_mails (mask_t *m)
{
    CHECK (s_masks_to (m, "card 4111 1111 1111 1111 exp", "card [MASKED:card-number] exp"));
    CHECK (s_masks_to (m, "4111-1111-1111-1111", "[MASKED:card-number]"));
    CHECK (s_masks_to (m, "n=5555555555554444;", "n=[MASKED:card-number];"));
    CHECK (s_masks_to (m, "amex 3782 822463 10005.", "amex [MASKED:card-number]."));
    CHECK (s_keeps (m, "4111111111111112 4111 1111 1111 1112 4111 1111-1111 1111"));
    CHECK (s_keeps (m, "ts=1700000000000 id=0000000000000000 x=12345678901234567890123"));
    CHECK (s_keeps (m, "[[0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0]]"));
    CHECK (s_masks_to (m, "mail bob.smith+tag@example.co.uk.", "mail [MASKED:email]."));
    CHECK (s_masks_to (m, "<alice@corp.example>", "<[MASKED:email]>"));
    CHECK (s_keeps (m, "user@localhost numpy@1.26 @decorator a@b.c x@-bad.com"));
}

static void
s_test_secrets (void)
{
    mask_t *m = mask_new ();
    CHECK (mask_add_secret (m, "db", "s3cr3t-V4lue!") == 0);
    CHECK (mask_add_secret (m, "bad name", "x") == -1);
    CHECK (mask_add_secret (m, "empty", "") == -1);
    CHECK (s_masks_to (m, "s3cr3t-V4lue!", "[MASKED:db]"));
    CHECK (s_masks_to (m, "a s3cr3t-V4lue! b s3cr3t-V4lue!", "a [MASKED:db] b [MASKED:db]"));
    CHECK (s_masks_to (m, "?p=s3cr3t-V4lue%21&q=s3cr3t-V4lue%21", "?p=[MASKED:db]&q=[MASKED:db]"));
    //  base64 of the secret alone and after 1 or 2 bytes (inside a larger blob): only the
    //  characters that carry the secret's bits are masked.
    CHECK (s_masks_to (m, "czNjcjN0LVY0bHVlIQ==", "[MASKED:db]Q=="));
    CHECK (s_masks_to (m, "YXMzY3IzdC1WNGx1ZSE=", "YX[MASKED:db]E="));
    CHECK (s_masks_to (m, "YWJzM2NyM3QtVjRsdWUh", "YWJ[MASKED:db]"));
    CHECK (s_keeps (m, "s3cr3t-V4lue s3cr3t-v4lue!"));

    //  Overlaps: the union is masked once, under the most specific name.
    CHECK (mask_add_secret (m, "api", "abcdef123456") == 0);
    CHECK (mask_add_pattern (m, "ticket", "[0-9]{6}XYZ", NULL, 0) == 0);
    CHECK (s_masks_to (m, "id=abcdef123456XYZ.", "id=[MASKED:api]."));
    CHECK (s_masks_to (m, "password=abcdef123456", "password=[MASKED:api]"));
    CHECK (s_masks_to (m, "password=ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
                       "password=[MASKED:github-token]"));
    //  Adjacent hits stay two masks.
    CHECK (s_masks_to (m, "abcdef123456s3cr3t-V4lue!", "[MASKED:api][MASKED:db]"));
    mask_destroy (&m);
    CHECK (m == NULL);
    mask_destroy (&m);
}

static void
s_test_custom (void)
{
    mask_t *m = mask_new ();
    char err[256] = "";
    CHECK (mask_add_pattern (m, "internal-token", "itk_[a-z0-9]{32}", err, sizeof err) == 0);
    CHECK (mask_add_pattern (m, "sess", "(?<![a-z])session=(?<secret>[a-f0-9]{16})", err, sizeof err) == 0);
    CHECK (s_masks_to (m, "itk_0123456789abcdef0123456789abcdef",
                       "[MASKED:internal-token]"));
    CHECK (s_masks_to (m, "x session=0123456789abcdef y", "x session=[MASKED:sess] y"));
    CHECK (s_keeps (m, "itk_0123 session=xyz"));
    CHECK (mask_add_pattern (m, "broken", "a(b", err, sizeof err) == -1);
    CHECK (strstr (err, "missing closing parenthesis") && strstr (err, "offset 3"));
    CHECK (mask_add_pattern (m, "no spaces", "a", err, sizeof err) == -1);
    CHECK (mask_add_pattern (m, "utf", "(*UTF)a", err, sizeof err) == -1);
    size_t off = 99;
    CHECK (mask_check_pattern ("ok[a-z]+", &off, err, sizeof err) == 0);
    CHECK (mask_check_pattern ("x{2,1}", &off, err, sizeof err) == -1 && off == 5);
    CHECK (mask_add_pattern (m, "cafe", "caf.", err, sizeof err) == 0);
    CHECK (s_masks_to (m, "un caf\xc3\xa9!", "un [MASKED:cafe]!"));       //  whole characters

    //  An exponential pattern is over budget: its line is masked, the rest is scanned.
    CHECK (mask_add_pattern (m, "evil", "(x+x+)+y", err, sizeof err) == 0);
    char *hostile = malloc (6000);
    memset (hostile, 'x', 5000);
    strcpy (hostile + 5000, "!y\nok line xxy\n");
    size_t n;
    int count;
    int64_t t0 = clock ();
    char *out = mask_apply (m, hostile, strlen (hostile), &n, &count);
    double secs = (double) (clock () - t0) / CLOCKS_PER_SEC;
    CHECK (out && strcmp (out, "[MASKED:evil]\nok line [MASKED:evil]\n") == 0);
    CHECK (secs < 5);
    free (out);
    free (hostile);
    mask_destroy (&m);
}

//  Hostile shapes for each detector, a MiB each: every one must finish fast (linear scans).
static void
s_test_hostile (void)
{
    const char *units[] = { "a", "1", "1 ", "-----BEGIN PRIVATE KEY-----", "eyJ", "eyJabcdefghij.",
                            "password=", "Bearer ", "https://", "a@", "a@b.", "xoxb-", "ghp_",
                            "AKIA", "authorization: bearer ", "-", "s://u:", "4111 " };
    mask_t *m = mask_new ();
    size_t size = 1024 * 1024;
    char *buf = malloc (size + 64);
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t ulen = strlen (units[u]), n = 0;
        while (n + ulen <= size) {
            memcpy (buf + n, units[u], ulen);
            n += ulen;
        }
        clock_t t0 = clock ();
        size_t out_len;
        char *out = mask_apply (m, buf, n, &out_len, NULL);
        double secs = (double) (clock () - t0) / CLOCKS_PER_SEC;
        CHECK (out != NULL);
        CHECK (secs < 2.0);
        if (secs >= 2.0)
            fprintf (stderr, "mask: hostile '%s' took %.2fs\n", units[u], secs);
        free (out);
    }
    free (buf);
    mask_destroy (&m);
}

//  Several MiB of ordinary output with secrets sprinkled in, at the start and at the end.
static void
s_test_large (void)
{
    mask_t *m = mask_new ();
    CHECK (mask_add_secret (m, "vault", "Vv9-secret-value-42") == 0);
    const char *line = "2026-01-01T00:00:00Z INFO request id=1234 path=/api/v1/items took 12ms ok\n";
    size_t llen = strlen (line), size = 4 * 1024 * 1024, n = 0;
    char *buf = malloc (size + 256);
    n += (size_t) sprintf (buf, "Vv9-secret-value-42 ");
    for (size_t i = 0; n + llen + 64 < size; i++) {
        if (i % 10000 == 5000)
            n += (size_t) sprintf (buf + n, "key AKIAIOSFODNN7EXAMPLE\n");
        memcpy (buf + n, line, llen);
        n += llen;
    }
    n += (size_t) sprintf (buf + n, "end Vv9-secret-value-42");
    clock_t t0 = clock ();
    size_t out_len;
    int count = 0;
    char *out = mask_apply (m, buf, n, &out_len, &count);
    double secs = (double) (clock () - t0) / CLOCKS_PER_SEC;
    CHECK (out && count >= 2 + (int) (n / llen / 10000));
    CHECK (out && strncmp (out, "[MASKED:vault] ", 15) == 0);
    CHECK (out && out_len > 14 && strcmp (out + out_len - 14, "[MASKED:vault]") == 0);
    CHECK (out && !strstr (out, "AKIAIOSFODNN7EXAMPLE") && !strstr (out, "Vv9-secret"));
    CHECK (secs < 4.0);
    if (secs >= 1.0)
        fprintf (stderr, "mask: 4 MiB took %.2fs\n", secs);
    free (out);

    //  Embedded NUL bytes are data like any other.
    const char bin[] = "\0pre\0AKIAIOSFODNN7EXAMPLE\0";
    out = mask_apply (m, bin, sizeof bin - 1, &out_len, &count);
    CHECK (out && count == 1 && out_len == 5 + strlen ("[MASKED:aws-access-key-id]") + 1);
    CHECK (out && memcmp (out, "\0pre\0[MASKED:aws-access-key-id]\0", out_len) == 0);
    free (out);
    out = mask_apply (m, NULL, 0, &out_len, &count);
    CHECK (out && out_len == 0 && count == 0 && *out == 0);
    free (out);
    free (buf);
    mask_destroy (&m);
}

int
mask_test (void)
{
    mask_t *m = mask_new ();
    CHECK (m != NULL);
    if (!m)
        return -1;
    s_test_keys (m);
    s_test_tokens (m);
    s_test_pem (m);
    s_test_passwords (m);
    s_test_cards_mails (m);
    mask_destroy (&m);
    s_test_secrets ();
    s_test_custom ();
    s_test_hostile ();
    s_test_large ();
    return 0;
}
