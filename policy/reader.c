/*  policy/reader.c: the validating reader behind policy_parse(). It owns error reporting with
    positions ("file:line:col: message", found with policy/jpos.c), the JSON path of the node
    being checked, unknown-key detection with "did you mean" hints, and the typed getters
    (integers, strings, string lists, PCRE2 patterns). Never asserts on input. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "policy/reader.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Errors with positions

static int
s_vfail (reader_t *ctx, bool have_offset, size_t offset, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf (msg, sizeof msg, fmt, ap);
    if (!ctx->err || !ctx->err_size)
        return -1;
    if (!have_offset) {
        snprintf (ctx->err, ctx->err_size, "%s: %s", ctx->file, msg);
        return -1;
    }
    int line, col;
    jpos_line_col (ctx->text, ctx->size, offset, &line, &col);
    snprintf (ctx->err, ctx->err_size, "%s:%d:%d: %s", ctx->file, line, col, msg);
    return -1;
}

//  Fails at the current path's key (JPOS_KEY) or value; always returns -1.
int __attribute__ ((format (printf, 3, 4)))
reader_fail (reader_t *ctx, jpos_what_t what, const char *fmt, ...)
{
    size_t offset = 0;
    bool found = jpos_locate (ctx->text, ctx->size, ctx->path, ctx->depth, what, &offset) == 0
              || jpos_locate (ctx->text, ctx->size, ctx->path, ctx->depth, JPOS_VALUE, &offset) == 0;
    va_list ap;
    va_start (ap, fmt);
    s_vfail (ctx, found, offset, fmt, ap);
    va_end (ap);
    return -1;
}

static int __attribute__ ((format (printf, 3, 4)))
s_fail_at (reader_t *ctx, size_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    s_vfail (ctx, true, offset, fmt, ap);
    va_end (ap);
    return -1;
}

//  Sets the label used in messages: the current rule, or a section of it.
void
reader_where (reader_t *ctx, const char *section)
{
    if (section)
        snprintf (ctx->where, sizeof ctx->where, "in the %s of %s", section, ctx->rule);
    else
        snprintf (ctx->where, sizeof ctx->where, "in %s", ctx->rule);
}

bool
reader_push_key (reader_t *ctx, const char *key)
{
    if (ctx->depth >= JPOS_MAX_DEPTH)
        return false;
    ctx->path[ctx->depth++] = (jpos_seg_t) { key, 0 };
    return true;
}

bool
reader_push_index (reader_t *ctx, size_t index)
{
    if (ctx->depth >= JPOS_MAX_DEPTH)
        return false;
    ctx->path[ctx->depth++] = (jpos_seg_t) { NULL, index };
    return true;
}

void
reader_pop (reader_t *ctx)
{
    if (ctx->depth)
        ctx->depth--;
}

//  Levenshtein distance of short strings, for "did you mean" hints; large when not short.
static size_t
s_distance (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    if (la > 32 || lb > 32)
        return 99;
    size_t row[33];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

//  Unknown keys are errors: a typo must never silently weaken a rule.
int
reader_check_keys (reader_t *ctx, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach (obj, key, value) {
        const char *hint = NULL;
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++) {
            known = strcmp (key, allowed[i]) == 0;
            if (!hint && s_distance (key, allowed[i]) <= 2)
                hint = allowed[i];
        }
        if (known)
            continue;
        reader_push_key (ctx, key);
        if (hint)
            return reader_fail (ctx, JPOS_KEY, "unknown key '%s' %s (did you mean '%s'?)", key,
                                ctx->where, hint);
        return reader_fail (ctx, JPOS_KEY, "unknown key '%s' %s", key, ctx->where);
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Typed getters. Each returns 0 when the key was read, 1 when it is absent (output left
//  alone) and -1 after reporting an error at the key's value.

int
reader_get_int (reader_t *ctx, json_t *obj, const char *key, long long min, long long max, int *out)
{
    json_t *value = json_object_get (obj, key);
    if (!value)
        return 1;
    reader_push_key (ctx, key);
    if (!json_is_integer (value))
        return reader_fail (ctx, JPOS_VALUE, "'%s' %s must be an integer", key, ctx->where);
    long long v = json_integer_value (value);
    if (v < min || v > max)
        return reader_fail (ctx, JPOS_VALUE, "'%s' %s must be between %lld and %lld", key,
                            ctx->where, min, max);
    reader_pop (ctx);
    *out = (int) v;
    return 0;
}

int
reader_get_str (reader_t *ctx, json_t *obj, const char *key, const char **out)
{
    json_t *value = json_object_get (obj, key);
    if (!value)
        return 1;
    reader_push_key (ctx, key);
    if (!json_is_string (value) || json_string_length (value) == 0)
        return reader_fail (ctx, JPOS_VALUE, "'%s' %s must be a non-empty string", key, ctx->where);
    reader_pop (ctx);
    *out = json_string_value (value);
    return 0;
}

static bool
s_in_set (const char *value, const char *const *set)
{
    for (size_t i = 0; set && set[i]; i++)
        if (strcmp (value, set[i]) == 0)
            return true;
    return false;
}

//  Checks one element of a string list (already pushed on the path).
static int
s_check_item (reader_t *ctx, const char *key, json_t *item, const char *const *set)
{
    if (!json_is_string (item) || json_string_length (item) == 0)
        return reader_fail (ctx, JPOS_VALUE, "'%s' %s must hold non-empty strings", key, ctx->where);
    if (set && !s_in_set (json_string_value (item), set)) {
        char expected[128] = "";
        for (size_t i = 0; set[i]; i++)
            snprintf (expected + strlen (expected), sizeof expected - strlen (expected), "%s%s",
                      i ? ", " : "", set[i]);
        return reader_fail (ctx, JPOS_VALUE, "unknown %s '%s' %s (expected %s)", key,
                            json_string_value (item), ctx->where, expected);
    }
    return 0;
}

//  A string or a (non-empty unless may_be_empty) array of strings, optionally from a set.
//  *out receives a new reference to an array.
int
reader_get_list (reader_t *ctx, json_t *obj, const char *key, bool may_be_empty,
                 const char *const *set, json_t **out)
{
    json_t *value = json_object_get (obj, key);
    if (!value)
        return 1;
    reader_push_key (ctx, key);
    if (json_is_string (value)) {
        if (s_check_item (ctx, key, value, set))
            return -1;
        *out = json_pack ("[O]", value);
    }
    else {
        if (!json_is_array (value))
            return reader_fail (ctx, JPOS_VALUE, "'%s' %s must be a string or an array of strings",
                                key, ctx->where);
        if (json_array_size (value) == 0 && !may_be_empty)
            return reader_fail (ctx, JPOS_VALUE, "'%s' %s must not be empty", key, ctx->where);
        for (size_t i = 0; i < json_array_size (value); i++) {
            reader_push_index (ctx, i);
            if (s_check_item (ctx, key, json_array_get (value, i), set))
                return -1;
            reader_pop (ctx);
        }
        *out = json_incref (value);
    }
    reader_pop (ctx);
    return *out ? 0 : reader_fail (ctx, JPOS_VALUE, "out of memory");
}

static pcre2_code *
s_compile (const char *pattern, int *code, size_t *offset)
{
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile ((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED,
                                    PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_MULTILINE,
                                    code, &off, NULL);
    *offset = off;
    if (re)
        pcre2_jit_compile (re, PCRE2_JIT_COMPLETE);     //  the interpreter if JIT is missing
    return re;
}

//  Reports a pattern error at the exact source character the error offset points to.
int
reader_pattern_error (reader_t *ctx, const char *key, const char *msg, size_t decoded)
{
    size_t literal, at;
    if (jpos_locate (ctx->text, ctx->size, ctx->path, ctx->depth, JPOS_VALUE, &literal) == 0
        && jpos_string_byte (ctx->text, ctx->size, literal, decoded, &at) == 0)
        return s_fail_at (ctx, at, "bad pattern '%s' %s: %s (pattern offset %zu)", key,
                          ctx->where, msg, decoded);
    return reader_fail (ctx, JPOS_VALUE, "bad pattern '%s' %s: %s (pattern offset %zu)", key,
                        ctx->where, msg, decoded);
}

int
reader_get_pattern (reader_t *ctx, json_t *obj, const char *key, pcre2_code **out)
{
    const char *pattern;
    int rc = reader_get_str (ctx, obj, key, &pattern);
    if (rc)
        return rc;
    int code;
    size_t offset;
    *out = s_compile (pattern, &code, &offset);
    if (*out)
        return 0;
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message (code, msg, sizeof msg);
    reader_push_key (ctx, key);
    return reader_pattern_error (ctx, key, (const char *) msg, offset);
}
