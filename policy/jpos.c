/*  policy/jpos.c: a tiny JSON scanner that walks source text along a path and reports where a
    key or value starts. It owns nothing and allocates nothing. It only descends along the
    path and skips every other value by counting brackets, so deep or hostile documents cost one
    linear pass and no recursion. It trusts nothing: malformed text just yields -1. */
#include "policy/jpos.h"
#include "common/check.h"
#include "common/util.h"
#include <string.h>

//  --------------------------------------------------------------------------
//  Scanning primitives. Each takes the text, its size and a cursor; none reads past size.

static size_t
s_ws (const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static int
s_hex4 (const char *s, size_t n, size_t i, unsigned *out)
{
    if (i + 4 > n)
        return -1;
    unsigned v = 0;
    for (size_t k = i; k < i + 4; k++) {
        char c = s[k];
        unsigned d = c >= '0' && c <= '9' ? (unsigned) (c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned) (c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned) (c - 'A' + 10) : 16;
        if (d == 16)
            return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

//  Decodes a \u escape at s[*i] == '\\' (with a following surrogate half if any).
static int
s_unicode (const char *s, size_t n, size_t *i, unsigned char out[4], size_t *len)
{
    unsigned cp, lo;
    if (s_hex4 (s, n, *i + 2, &cp))
        return -1;
    *i += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (*i + 1 >= n || s[*i] != '\\' || s[*i + 1] != 'u' || s_hex4 (s, n, *i + 2, &lo)
            || lo < 0xDC00 || lo > 0xDFFF)
            return -1;
        *i += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    else
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return -1;
    *len = utf8_encode (cp, (char *) out);
    return 0;
}

//  Decodes the next piece of a string literal at s[*i] (inside the quotes) into out[0..*len).
//  Returns 1 for a piece, 0 at the closing quote (cursor left on it), -1 on malformed text.
static int
s_next (const char *s, size_t n, size_t *i, unsigned char out[4], size_t *len)
{
    if (*i >= n)
        return -1;
    char c = s[*i];
    if (c == '"')
        return 0;
    if (c != '\\') {
        out[0] = (unsigned char) c;
        *len = 1;
        (*i)++;
        return 1;
    }
    if (*i + 1 >= n)
        return -1;
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *hit = s[*i + 1] ? strchr (from, s[*i + 1]) : NULL;
    if (hit) {
        out[0] = (unsigned char) to[hit - from];
        *len = 1;
        *i += 2;
        return 1;
    }
    if (s[*i + 1] != 'u' || s_unicode (s, n, i, out, len))
        return -1;
    return 1;
}

//  Walks the literal at s[i] == '"'; sets *end just past its closing quote.
static int
s_string_end (const char *s, size_t n, size_t i, size_t *end)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else
        if (s[i] == '"') {
            *end = i + 1;
            return 0;
        }
    }
    return -1;
}

static bool
s_key_equals (const char *s, size_t n, size_t i, const char *key)
{
    size_t klen = strlen (key), k = 0, len;
    unsigned char piece[4];
    i++;
    int rc;
    while ((rc = s_next (s, n, &i, piece, &len)) == 1) {
        if (k + len > klen || memcmp (key + k, piece, len) != 0)
            return false;
        k += len;
    }
    return rc == 0 && k == klen;
}

//  Skips one value of any kind; containers by bracket counting (strings honoured).
static int
s_skip_value (const char *s, size_t n, size_t i, size_t *end)
{
    if (i >= n)
        return -1;
    if (s[i] == '"')
        return s_string_end (s, n, i, end);
    if (s[i] != '{' && s[i] != '[') {
        size_t j = i;
        while (j < n && !strchr (",}] \t\r\n", s[j]) && s[j])
            j++;
        *end = j;
        return j > i ? 0 : -1;
    }
    size_t depth = 0;
    for (; i < n; i++) {
        if (s[i] == '"') {
            if (s_string_end (s, n, i, &i))
                return -1;
            i--;
        }
        else
        if (s[i] == '{' || s[i] == '[')
            depth++;
        else
        if ((s[i] == '}' || s[i] == ']') && --depth == 0) {
            *end = i + 1;
            return 0;
        }
    }
    return -1;
}

//  --------------------------------------------------------------------------
//  One step down: a member of the object at s[i] == '{', or an element of the array at '['.

static int
s_member (const char *s, size_t n, size_t i, const char *key, size_t *key_at, size_t *value_at)
{
    for (i = s_ws (s, n, i + 1); i < n && s[i] == '"'; ) {
        size_t k = i, end;
        if (s_string_end (s, n, i, &i))
            return -1;
        i = s_ws (s, n, i);
        if (i >= n || s[i] != ':')
            return -1;
        size_t v = s_ws (s, n, i + 1);
        if (s_key_equals (s, n, k, key)) {
            *key_at = k;
            *value_at = v;
            return 0;
        }
        if (s_skip_value (s, n, v, &end))
            return -1;
        i = s_ws (s, n, end);
        if (i >= n || s[i] != ',')
            return -1;
        i = s_ws (s, n, i + 1);
    }
    return -1;
}

static int
s_element (const char *s, size_t n, size_t i, size_t index, size_t *value_at)
{
    i = s_ws (s, n, i + 1);
    for (size_t at = 0; i < n && s[i] != ']'; at++) {
        size_t end;
        if (at == index) {
            *value_at = i;
            return 0;
        }
        if (s_skip_value (s, n, i, &end))
            return -1;
        i = s_ws (s, n, end);
        if (i >= n || s[i] != ',')
            return -1;
        i = s_ws (s, n, i + 1);
    }
    return -1;
}

//  --------------------------------------------------------------------------
//  Public functions

int
jpos_locate (const char *text, size_t size, const jpos_seg_t *path, size_t depth,
             jpos_what_t what, size_t *offset)
{
    if (!text || !offset || (depth && !path))
        return -1;
    size_t i = s_ws (text, size, 0), key_at = 0;
    if (i >= size)
        return -1;
    for (size_t d = 0; d < depth; d++) {
        int rc = -1;
        if (path[d].key && text[i] == '{')
            rc = s_member (text, size, i, path[d].key, &key_at, &i);
        else
        if (!path[d].key && text[i] == '[')
            rc = s_element (text, size, i, path[d].index, &i);
        if (rc || i >= size)
            return -1;
    }
    if (what == JPOS_KEY && (depth == 0 || !path[depth - 1].key))
        return -1;
    *offset = what == JPOS_KEY ? key_at : i;
    return 0;
}

void
jpos_line_col (const char *text, size_t size, size_t offset, int *line, int *col)
{
    int l = 1, c = 1;
    if (offset > size)
        offset = size;
    for (size_t i = 0; text && i < offset; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        }
        else
        if (((unsigned char) text[i] & 0xC0) != 0x80)
            c++;
    }
    *line = l;
    *col = c;
}

int
jpos_string_byte (const char *text, size_t size, size_t literal, size_t decoded, size_t *offset)
{
    if (!text || !offset || literal >= size || text[literal] != '"')
        return -1;
    size_t i = literal + 1, done = 0, len;
    unsigned char piece[4];
    for (;;) {
        size_t at = i;
        int rc = s_next (text, size, &i, piece, &len);
        if (rc < 0 || (rc == 0 && decoded > done))
            return -1;
        if (rc == 0 || decoded < done + len) {
            *offset = at;
            return 0;
        }
        done += len;
    }
}

//  --------------------------------------------------------------------------
//  Self-test

static void
s_check_at (const char *text, const jpos_seg_t *path, size_t depth, jpos_what_t what,
            int want_line, int want_col)
{
    size_t off;
    int line = 0, col = 0;
    int rc = jpos_locate (text, strlen (text), path, depth, what, &off);
    CHECK (rc == 0);
    if (rc == 0)
        jpos_line_col (text, strlen (text), off, &line, &col);
    CHECK (line == want_line && col == want_col);
}

int
jpos_test (void)
{
    const char *doc =
        "{\n"
        "  \"a\": [1, {\"x\": \"]}\\\"\"}, {\"b\\u00e9\": true, \"c\": [[], {}]}],\n"
        "  \"\\ud83d\\ude00\": null, \"d\":\"\xc3\xa9\", \"e\": 7\n"
        "}\n";
    jpos_seg_t p1[] = { { "a", 0 }, { NULL, 2 }, { "c", 0 }, { NULL, 1 } };
    s_check_at (doc, p1, 4, JPOS_VALUE, 2, 55);
    s_check_at (doc, p1, 3, JPOS_KEY, 2, 45);
    jpos_seg_t p2[] = { { "a", 0 }, { NULL, 2 }, { "b\xc3\xa9", 0 } };
    s_check_at (doc, p2, 3, JPOS_KEY, 2, 28);
    s_check_at (doc, p2, 3, JPOS_VALUE, 2, 39);
    jpos_seg_t p3[] = { { "\xf0\x9f\x98\x80", 0 } };
    s_check_at (doc, p3, 1, JPOS_VALUE, 3, 19);
    jpos_seg_t p4[] = { { "e", 0 } };
    s_check_at (doc, p4, 1, JPOS_VALUE, 3, 39);        //  columns count characters
    s_check_at (doc, NULL, 0, JPOS_VALUE, 1, 1);

    //  Missing members, wrong container kinds, out-of-range indexes and garbage all fail cleanly.
    size_t off;
    jpos_seg_t miss[] = { { "zz", 0 } }, idx[] = { { "a", 0 }, { NULL, 9 } }, bad[] = { { NULL, 0 } };
    CHECK (jpos_locate (doc, strlen (doc), miss, 1, JPOS_VALUE, &off) == -1);
    CHECK (jpos_locate (doc, strlen (doc), idx, 2, JPOS_VALUE, &off) == -1);
    CHECK (jpos_locate (doc, strlen (doc), bad, 1, JPOS_VALUE, &off) == -1);
    CHECK (jpos_locate (doc, strlen (doc), idx, 2, JPOS_KEY, &off) == -1);
    const char *junk[] = { "", "{", "{\"a\"", "{\"a\":", "{\"a\":[", "{\"b\":\"\\", "{\"b\":1 \"a\":2}",
                           "{\"\\ud800\":1,\"a\":2}", "[[[[", "{\"a\\u12\":1}" };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        CHECK (jpos_locate (junk[i], strlen (junk[i]), miss, 1, JPOS_VALUE, &off) == -1);

    //  Decoded offsets map back through escapes: "a\\tb\u00e9c" decodes to a \ t b é c.
    const char *lit = "\"a\\\\tb\\u00e9c\"";
    size_t n = strlen (lit);
    CHECK (jpos_string_byte (lit, n, 0, 0, &off) == 0 && off == 1);
    CHECK (jpos_string_byte (lit, n, 0, 1, &off) == 0 && off == 2);
    CHECK (jpos_string_byte (lit, n, 0, 2, &off) == 0 && off == 4);
    CHECK (jpos_string_byte (lit, n, 0, 5, &off) == 0 && off == 6);   //  second byte of é
    CHECK (jpos_string_byte (lit, n, 0, 6, &off) == 0 && off == 12);
    CHECK (jpos_string_byte (lit, n, 0, 7, &off) == 0 && off == 13);  //  the closing quote
    CHECK (jpos_string_byte (lit, n, 0, 8, &off) == -1);
    CHECK (jpos_string_byte (lit, n, 1, 0, &off) == -1);
    return 0;
}
