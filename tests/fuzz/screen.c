/*  tests/fuzz/screen.c: libFuzzer target for the terminal rendering (client/screen.c), which
    gets whatever bytes a snippet printed. The first byte picks the flags. A rendering is
    well-formed UTF-8 (checked here against the table of the Unicode standard, not with the
    renderer's own decoder), holds no control character but a newline (and a tab, unless
    one line), no ESC but the reverse-video sequences of SCREEN_STYLE, no bidirectional or
    invisible character; it reads back to the input, and screen_fit never cuts a marker. */
#include "client/screen.h"
#include "tests/fuzz/common.h"
#include <stdlib.h>
#include <string.h>

//  Well-formed UTF-8 byte sequences (Unicode, table 3-7): the lead byte's range, the range
//  of the byte after it, and the length.
static const struct { unsigned char lo, hi, lo2, hi2; int len; } s_forms[] = {
    { 0x00, 0x7F, 0, 0, 1 }, { 0xC2, 0xDF, 0x80, 0xBF, 2 }, { 0xE0, 0xE0, 0xA0, 0xBF, 3 },
    { 0xE1, 0xEC, 0x80, 0xBF, 3 }, { 0xED, 0xED, 0x80, 0x9F, 3 }, { 0xEE, 0xEF, 0x80, 0xBF, 3 },
    { 0xF0, 0xF0, 0x90, 0xBF, 4 }, { 0xF1, 0xF3, 0x80, 0xBF, 4 }, { 0xF4, 0xF4, 0x80, 0x8F, 4 } };

//  The code point of the well-formed sequence at p, and its length in *len; aborts if none.
static unsigned
s_next (const unsigned char *p, size_t avail, size_t *len)
{
    for (size_t f = 0; f < sizeof s_forms / sizeof s_forms[0]; f++) {
        if (p[0] < s_forms[f].lo || p[0] > s_forms[f].hi)
            continue;
        size_t n = (size_t) s_forms[f].len;
        if (n > avail || (n > 1 && (p[1] < s_forms[f].lo2 || p[1] > s_forms[f].hi2)))
            abort ();
        unsigned cp = n == 1 ? p[0] : p[0] & (0xFFu >> (n + 1));
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                abort ();
            cp = cp << 6 | (p[i] & 0x3Fu);
        }
        *len = n;
        return cp;
    }
    abort ();
}

//  What must never reach a screen as itself.
static int
s_banned (unsigned cp, int flags)
{
    if (cp < 0x20)
        return cp != '\n' && !(cp == '\t' && !(flags & SCREEN_LINE));
    return cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x61C || (cp >= 0x200B && cp <= 0x200F)
        || (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xFEFF
        || (cp >= 0xE0000 && cp <= 0xE007F);
}

static void
s_check (const char *out, size_t size, int flags)
{
    for (size_t at = 0, len = 0; at < size; at += len) {
        if ((flags & SCREEN_STYLE) && out[at] == 0x1B) {
            len = strncmp (out + at, "\x1b[7m", 4) == 0 ? 4 : strncmp (out + at, "\x1b[27m", 5) == 0 ? 5 : 0;
            if (len)
                continue;
        }
        if (s_banned (s_next ((const unsigned char *) out + at, size - at, &len), flags))
            abort ();
        if (flags & SCREEN_LINE && out[at] == '\n')
            abort ();
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int flags = data[0] & (SCREEN_VISIBLE | SCREEN_LINE | SCREEN_STYLE);
    buf_t out = { 0 }, back = { 0 };
    if (screen_render (&out, data + 1, size - 1, flags) != 0)
        abort ();
    if (!(flags & SCREEN_VISIBLE)) {
        if (out.len != size - 1 || memcmp (out.data, data + 1, out.len) != 0)
            abort ();
    }
    else {
        s_check (out.data, out.len, flags);
        if (strlen (out.data) != out.len)
            abort ();
        if (!(flags & SCREEN_LINE)
        &&  (screen_decode (&back, out.data, out.len) != 0 || back.len != size - 1
             || memcmp (back.data, data + 1, back.len) != 0))
            abort ();
        //  A prefix that fits a width is whole markers: it reads back, its styles balance.
        size_t cols = 0, cut = screen_fit (out.data, (size_t) data[0] >> 3, &cols), on = 0, off = 0;
        if (cut > out.len || cols > (size_t) data[0] >> 3)
            abort ();
        back.len = 0;
        if (!(flags & SCREEN_LINE) && screen_decode (&back, out.data, cut) != 0)
            abort ();
        for (const char *p = out.data; (p = strstr (p, "\x1b[")) && p < out.data + cut; p++)
            *(p[2] == '7' ? &on : &off) += 1;
        if (on != off)
            abort ();
    }
    buf_free (&out);
    buf_free (&back);
    return 0;
}
