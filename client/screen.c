/*  client/screen.c: renders text for a person's terminal (the rendering is described in
    screen.h, and which characters become markers, and why, in README.md, "What a terminal
    shows"). Pure functions of their input, except screen_flags, which asks about the fd. */
#define _GNU_SOURCE                             //  memmem
#include "client/screen.h"
#include "common/check.h"
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPEN "\xe2\x9f\xa8"             //  ⟨ U+27E8 opens every marker; a literal one is marked
#define CLOSE "\xe2\x9f\xa9"            //  ⟩ U+27E9
#define STYLE_ON "\x1b[7m"              //  reverse video: no snippet text can produce it
#define STYLE_OFF "\x1b[27m"

//  The names of C0 controls (their ASCII abbreviations), and of DEL after them.
static const char *s_names[33] = {
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR",
    "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB",
    "ESC", "FS", "GS", "RS", "US", "DEL" };

//  The code points past ASCII shown as ⟨U+XXXX⟩: C1 controls (an 8-bit CSI is one); the
//  format characters (Unicode 15 category Cf: bidirectional controls, zero-width and other
//  invisible characters, tags), and U+2065, unassigned among them and default-ignorable, so
//  drawn as nothing; the line and paragraph separators; and ⟨ itself.
static const uint32_t s_marked[][2] = {
    { 0x80, 0x9F }, { 0xAD, 0xAD }, { 0x600, 0x605 }, { 0x61C, 0x61C }, { 0x6DD, 0x6DD },
    { 0x70F, 0x70F }, { 0x890, 0x891 }, { 0x8E2, 0x8E2 }, { 0x180E, 0x180E },
    { 0x200B, 0x200F }, { 0x2028, 0x202E }, { 0x2060, 0x206F },
    { 0x27E8, 0x27E8 }, { 0xFEFF, 0xFEFF }, { 0xFFF9, 0xFFFB }, { 0x110BD, 0x110BD },
    { 0x110CD, 0x110CD }, { 0x13430, 0x1343F }, { 0x1BCA0, 0x1BCA3 }, { 0x1D173, 0x1D17A },
    { 0xE0001, 0xE0001 }, { 0xE0020, 0xE007F } };

static bool
s_is_marked (uint32_t cp)
{
    for (size_t i = 0; i < sizeof s_marked / sizeof s_marked[0]; i++)
        if (cp >= s_marked[i][0] && cp <= s_marked[i][1])
            return true;
    return false;
}

//  The length of the well-formed UTF-8 character at p (RFC 3629: no overlong forms, no
//  surrogates, nothing past U+10FFFF), with its code point in *cp; 0 if there is none.
static size_t
s_utf8 (const unsigned char *p, size_t avail, uint32_t *cp)
{
    static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t len = p[0] < 0x80 ? 1 : p[0] < 0xC2 ? 0 : p[0] < 0xE0 ? 2 : p[0] < 0xF0 ? 3
               : p[0] < 0xF5 ? 4 : 0;
    if (len == 0 || len > avail)
        return 0;
    uint32_t c = len == 1 ? p[0] : p[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3F);
    }
    if (c < least[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

//  Renders the character (or stray byte) at p; *len gets the bytes it took.
static int
s_render_one (buf_t *out, const unsigned char *p, size_t avail, int flags, size_t *len)
{
    uint32_t cp = 0;
    char name[16] = "";
    *len = s_utf8 (p, avail, &cp);
    if (*len == 0) {
        *len = 1;
        snprintf (name, sizeof name, "\\x%02X", *p);
    }
    else if ((cp == '\n' || cp == '\t') && (flags & SCREEN_LINE))
        return cp == '\n' ? buf_append (out, "\xe2\x8f\x8e", 3) : buf_append (out, " ", 1);
    else if ((cp < 0x20 && cp != '\n' && cp != '\t') || cp == 0x7F)
        snprintf (name, sizeof name, "%s", s_names[cp == 0x7F ? 32 : cp]);
    else if (s_is_marked (cp))
        snprintf (name, sizeof name, "U+%04X", (unsigned) cp);
    if (!*name)
        return buf_append (out, p, *len);
    bool style = flags & SCREEN_STYLE;
    return buf_appendf (out, "%s" OPEN "%s" CLOSE "%s", style ? STYLE_ON : "", name,
                        style ? STYLE_OFF : "");
}

int
screen_render (buf_t *out, const void *data, size_t size, int flags)
{
    if (!(flags & SCREEN_VISIBLE))
        return buf_append (out, size ? data : "", size);
    const unsigned char *p = (const unsigned char *) data;
    int rc = buf_reserve (out, size);
    if (rc == 0)
        out->data[out->len] = 0;            //  a NUL even when nothing is appended
    for (size_t at = 0, len = 0; rc == 0 && at < size; at += len)
        rc = s_render_one (out, p + at, size - at, flags, &len);
    return rc;
}

char *
screen_text (const char *text, size_t size, int flags)
{
    buf_t b = { 0 };
    if (screen_render (&b, text ? text : "", text ? size : 0, flags) != 0) {
        buf_free (&b);
        return NULL;
    }
    return buf_take (&b);
}

int
screen_write (FILE *file, const void *data, size_t size, int flags)
{
    if (!(flags & SCREEN_VISIBLE))
        return fwrite (data, 1, size, file) == size ? 0 : -1;
    buf_t b = { 0 };
    int rc = screen_render (&b, data, size, flags);
    if (rc == 0 && fwrite (b.data, 1, b.len, file) != b.len)
        rc = -1;
    buf_free (&b);
    return rc;
}

int
screen_flags (screen_mode_t mode, int fd)
{
    bool tty = isatty (fd) == 1;
    if (mode == SCREEN_RAW || (mode == SCREEN_AUTO && !tty))
        return 0;
    //  A terminal that asked for no styling still gets the markers, plain.
    const char *term = getenv ("TERM"), *no_color = getenv ("NO_COLOR");
    bool style = tty && !(no_color && *no_color) && !(term && strcmp (term, "dumb") == 0);
    return SCREEN_VISIBLE | (style ? SCREEN_STYLE : 0);
}

//  --------------------------------------------------------------------------------------
//  Request rows.

//  The fields of a row that are multi-line by nature: code and what the snippet returned.
static bool
s_multiline (const char *key)
{
    static const char *keys[] = { "code", "stdout", "stderr", "value", "traceback" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp (key, keys[i]) == 0)
            return true;
    return false;
}

static int s_render_in (json_t *value, int flags, bool top);

//  value as shown: a new string for a string; else value itself, one more reference,
//  after rendering what it holds. NULL out of memory.
static json_t *
s_shown (json_t *value, int flags)
{
    if (!json_is_string (value))
        return s_render_in (value, flags, false) == 0 ? json_incref (value) : NULL;
    char *text = screen_text (json_string_value (value), json_string_length (value), flags);
    json_t *shown = text ? json_string (text) : NULL;
    free (text);
    return shown;
}

static int
s_render_in (json_t *value, int flags, bool top)
{
    int rc = 0;
    for (void *it = json_is_object (value) ? json_object_iter (value) : NULL; it && rc == 0;
         it = json_object_iter_next (value, it)) {
        bool multiline = top && s_multiline (json_object_iter_key (it));
        json_t *shown = s_shown (json_object_iter_value (it), multiline ? flags : flags | SCREEN_LINE);
        rc = shown ? json_object_iter_set_new (value, it, shown) : -1;
    }
    for (size_t i = 0; json_is_array (value) && i < json_array_size (value) && rc == 0; i++) {
        json_t *shown = s_shown (json_array_get (value, i), flags | SCREEN_LINE);
        rc = shown ? json_array_set_new (value, i, shown) : -1;
    }
    return rc;
}

int
screen_row (json_t *row, int flags)
{
    return flags & SCREEN_VISIBLE ? s_render_in (row, flags, true) : 0;
}

//  --------------------------------------------------------------------------------------
//  Reading a rendering: fitting it to a width, and back to its bytes.

static bool
s_starts (const char *p, const char *end, const char *prefix)
{
    size_t n = strlen (prefix);
    return (size_t) (end - p) >= n && memcmp (p, prefix, n) == 0;
}

//  One unit of a rendering at t: a marker with its style, a style sequence, or one
//  character. Its bytes; *columns gets its width.
static size_t
s_unit (const char *t, size_t *columns)
{
    const char *end = t + strlen (t);
    size_t n = s_starts (t, end, STYLE_ON) ? strlen (STYLE_ON) : 0;
    if (s_starts (t + n, end, OPEN)) {
        const char *close = strstr (t + n, CLOSE);
        size_t stop = close ? (size_t) (close - t) + strlen (CLOSE) : (size_t) (end - t);
        *columns = 0;
        for (size_t i = n; i < stop; i++)
            *columns += ((unsigned char) t[i] & 0xC0) != 0x80;
        return n && s_starts (t + stop, end, STYLE_OFF) ? stop + strlen (STYLE_OFF) : stop;
    }
    *columns = 0;
    if (n || s_starts (t, end, STYLE_OFF))
        return n ? n : strlen (STYLE_OFF);
    for (n = 1; ((unsigned char) t[n] & 0xC0) == 0x80; n++)
        ;
    *columns = 1;
    return n;
}

size_t
screen_fit (const char *rendered, size_t width, size_t *columns)
{
    size_t at = 0, used = 0, n = 0, cols = 0;
    for (; rendered[at] && (n = s_unit (rendered + at, &cols), used + cols <= width); at += n)
        used += cols;
    if (columns)
        *columns = used;
    return at;
}

//  The bytes a marker's name stands for, appended to out. -1 if it names nothing.
static int
s_unmark (buf_t *out, const char *name, size_t len)
{
    char text[16];
    if (len < 2 || len >= sizeof text)
        return -1;
    memcpy (text, name, len);
    text[len] = 0;
    for (int i = 0; i < 33; i++)
        if (strcmp (text, s_names[i]) == 0)
            return buf_append (out, i == 32 ? "\x7f" : (char []) { (char) i }, 1);
    //  Only the forms s_render_one writes: two upper-case hex digits of a byte, 4 to 6 of a
    //  code point.
    bool byte = strncmp (text, "\\x", 2) == 0, point = strncmp (text, "U+", 2) == 0;
    if (!(byte ? len == 4 : point && len >= 6 && len <= 8)
    ||  strspn (text + 2, "0123456789ABCDEF") != len - 2)
        return -1;
    unsigned long v = strtoul (text + 2, NULL, 16);
    if (byte)
        return buf_append (out, (char []) { (char) v }, 1);
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return -1;
    unsigned char u[4];
    size_t n = v < 0x80 ? 1 : v < 0x800 ? 2 : v < 0x10000 ? 3 : 4;
    u[0] = n == 1 ? (unsigned char) v : (unsigned char) ((0xFF00 >> n) | (v >> (6 * (n - 1))));
    for (size_t i = 1; i < n; i++)
        u[i] = (unsigned char) (0x80 | ((v >> (6 * (n - 1 - i))) & 0x3F));
    return buf_append (out, u, n);
}

int
screen_decode (buf_t *out, const char *rendered, size_t size)
{
    const char *p = rendered, *end = rendered + size;
    if (buf_reserve (out, size) != 0)
        return -1;
    while (p < end) {
        const char *close = s_starts (p, end, OPEN) ? memmem (p, (size_t) (end - p), CLOSE, 3) : NULL;
        size_t skip = s_starts (p, end, STYLE_ON) ? strlen (STYLE_ON)
                    : s_starts (p, end, STYLE_OFF) ? strlen (STYLE_OFF) : 0;
        if (s_starts (p, end, OPEN) && !close)
            return -1;
        if (close && s_unmark (out, p + 3, (size_t) (close - p - 3)) != 0)
            return -1;
        if (!close && !skip && buf_append (out, p, 1) != 0)
            return -1;
        p = close ? close + 3 : p + (skip ? skip : 1);
    }
    return 0;
}

//  --------------------------------------------------------------------------------------
//  Self-test.

static bool
s_renders (const char *in, size_t size, int flags, const char *want)
{
    char *got = screen_text (in, size, flags);
    bool ok = got && strcmp (got, want) == 0;
    if (!ok)
        fprintf (stderr, "screen: rendered '%s', want '%s'\n", got ? got : "(null)", want);
    buf_t back = { 0 };
    if (ok && !(flags & SCREEN_LINE))       //  and it reads back to the same bytes
        ok = screen_decode (&back, got, strlen (got)) == 0 && back.len == size
          && memcmp (back.data, in, size) == 0;
    buf_free (&back);
    free (got);
    return ok;
}
#define RENDERS(in, flags, want) s_renders (in, sizeof in - 1, flags, want)

int
screen_test (void)
{
    int v = SCREEN_VISIBLE;
    CHECK (RENDERS ("print('hi')\n\tx = 1\n", v, "print('hi')\n\tx = 1\n"));
    CHECK (RENDERS ("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", v, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
    //  The attack of issue 13: a comment that wipes its own line and writes another.
    CHECK (RENDERS ("import socket # \x1b[2K\r\x1b[1Aprint('hello world')", v,
                    "import socket # ⟨ESC⟩[2K⟨CR⟩⟨ESC⟩[1Aprint('hello world')"));
    CHECK (RENDERS ("\x00\x07\x08\x0b\x0c\x7f", v, "⟨NUL⟩⟨BEL⟩⟨BS⟩⟨VT⟩⟨FF⟩⟨DEL⟩"));
    //  C1 as a character, and as the stray byte an 8-bit terminal takes for CSI.
    CHECK (RENDERS ("\xc2\x9b" "31m \x9b" "31m", v, "⟨U+009B⟩31m ⟨\\x9B⟩31m"));
    //  Not UTF-8: overlong, surrogate, past U+10FFFF, cut short at the end.
    CHECK (RENDERS ("\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82", v,
                    "⟨\\xC0⟩⟨\\xAF⟩⟨\\xED⟩⟨\\xA0⟩⟨\\x80⟩⟨\\xF4⟩⟨\\x90⟩⟨\\x80⟩⟨\\x80⟩⟨\\xE2⟩⟨\\x82⟩"));
    CHECK (RENDERS ("ok \xe2\x80\xae lmth.exe", v, "ok ⟨U+202E⟩ lmth.exe"));
    CHECK (RENDERS ("a\xe2\x81\xa5" "b", v, "a⟨U+2065⟩b"));     //  found by make fuzz
    CHECK (RENDERS ("a\xe2\x80\x8b" "b\xef\xbb\xbf" "c\xe2\x81\xa6" "d\xf3\xa0\x81\x81\xe2\x80\xa8", v,
                    "a⟨U+200B⟩b⟨U+FEFF⟩c⟨U+2066⟩d⟨U+E0041⟩⟨U+2028⟩"));
    //  Text that spells a marker never looks like one: its ⟨ is marked.
    CHECK (RENDERS ("⟨ESC⟩ \\x1b", v, "⟨U+27E8⟩ESC⟩ \\x1b"));
    CHECK (RENDERS ("a\nb\tc\r", v | SCREEN_LINE, "a⏎b c⟨CR⟩"));
    CHECK (RENDERS ("\x1b", v | SCREEN_STYLE, "\x1b[7m⟨ESC⟩\x1b[27m"));
    CHECK (RENDERS ("\x1b[2K\r", 0, "\x1b[2K\r"));
    CHECK (RENDERS ("", v, ""));

    buf_t b = { 0 };
    CHECK (screen_decode (&b, "⟨ESC", 7) == -1);
    CHECK (screen_decode (&b, "⟨ESCAPE⟩", 12) == -1);
    CHECK (screen_decode (&b, "⟨U+D800⟩", 12) == -1);
    CHECK (screen_decode (&b, "⟨U+110000⟩", 14) == -1);
    CHECK (screen_decode (&b, "⟨\\x4⟩", 9) == -1);
    buf_free (&b);

    //  Fitting never cuts a marker, styled or not, nor a character.
    size_t cols = 0;
    CHECK (screen_fit ("ab⟨ESC⟩c", 4, &cols) == 2 && cols == 2);
    CHECK (screen_fit ("ab⟨ESC⟩c", 7, &cols) == 11 && cols == 7);
    CHECK (screen_fit ("a\x1b[7m⟨CR⟩\x1b[27mb", 4, &cols) == 1 && cols == 1);
    CHECK (screen_fit ("a\x1b[7m⟨CR⟩\x1b[27mb", 6, &cols) == strlen ("a\x1b[7m⟨CR⟩\x1b[27mb")
           && cols == 6);
    CHECK (screen_fit ("h\xc3\xa9!", 2, &cols) == 3 && cols == 2);

    //  A row: code and outputs keep their lines, the rest is one line, nested strings too.
    json_t *row = json_pack ("{s:s, s:s, s:i, s:[{s:s}]}", "code", "a\n\x1b", "reason",
                             "x\n  | fake", "id", 7, "approvals", "approver", "b\x1b[1A");
    CHECK (row && screen_row (row, SCREEN_VISIBLE) == 0);
    CHECK (strcmp (json_string_value (json_object_get (row, "code")), "a\n⟨ESC⟩") == 0);
    CHECK (strcmp (json_string_value (json_object_get (row, "reason")), "x⏎  | fake") == 0);
    CHECK (json_integer_value (json_object_get (row, "id")) == 7);
    CHECK (strcmp (json_string_value (json_object_get (json_array_get (json_object_get (
           row, "approvals"), 0), "approver")), "b⟨ESC⟩[1A") == 0);
    CHECK (screen_row (row, 0) == 0);
    json_decref (row);
    return 0;
}
