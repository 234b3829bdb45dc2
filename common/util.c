/*  common/util.c: logging, clocks, ISO-8601 times, decimal numbers, group lists, sha256 and
    the bind hash (libsodium), random hex, UTF-8 (the one decoder, encoder, validator and
    repair) and base64. Each is the project's only copy: callers do not roll their own. */
#include "common/util.h"
#include "common/check.h"
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  Counters of the self-tests (common/check.h); they live here so every binary links.
int check_passed = 0;
int check_failed = 0;

static char s_name[64] = "replgate";

void
log_set_name (const char *name)
{
    snprintf (s_name, sizeof s_name, "%s", name);
}

static void
s_log (const char *level, const char *fmt, va_list ap)
{
    char stamp[32];
    time_iso8601 (clock_wall_ms (), stamp, sizeof stamp);
    char line[2048];
    int n = snprintf (line, sizeof line, "%s %s[%d] %s: ", stamp, s_name, (int) getpid (), level);
    if (n < 0 || (size_t) n >= sizeof line)
        n = 0;
    vsnprintf (line + n, sizeof line - n, fmt, ap);
    fprintf (stderr, "%s\n", line);
}

#define LOG_FN(fn, level) \
    void fn (const char *fmt, ...) { va_list ap; va_start (ap, fmt); s_log (level, fmt, ap); va_end (ap); }
LOG_FN (log_info, "info")
LOG_FN (log_warn, "warning")
LOG_FN (log_error, "error")

volatile sig_atomic_t stop_signalled;

static void
s_on_stop_signal (int sig)
{
    (void) sig;
    stop_signalled = 1;
}

int
stop_signals_catch (void)
{
    const char *env = getenv ("ZSYS_SIGHANDLER");
    if (env && strcmp (env, "false") == 0)
        return 0;
    struct sigaction sa = { .sa_handler = s_on_stop_signal };
    sigemptyset (&sa.sa_mask);
    if (sigaction (SIGINT, &sa, NULL) == 0 && sigaction (SIGTERM, &sa, NULL) == 0)
        return 0;
    log_error ("cannot catch SIGINT and SIGTERM: %s", strerror (errno));
    return -1;
}

int64_t
clock_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double
clock_mono_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int64_t
clock_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
lograte_ok (lograte_t *self, const char *what)
{
    int64_t now = clock_mono_ms ();
    if (self->at && now - self->at < 1000) {
        self->swallowed++;
        return false;
    }
    if (self->swallowed)
        log_warn ("%s: %lld more not logged", what, (long long) self->swallowed);
    self->at = now;
    self->swallowed = 0;
    return true;
}

void
time_iso8601 (int64_t wall_ms, char *buf, size_t size)
{
    time_t secs = (time_t) (wall_ms / 1000);
    struct tm tm;
    gmtime_r (&secs, &tm);
    char base[24];
    strftime (base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buf, size, "%s.%03dZ", base, (int) (wall_ms % 1000));
}

//  Parses strictly: sscanf alone would take spaces, signs and short fields ("+26-1-2T3:4:5Z"),
//  and timegm would quietly roll 2026-02-30 over into March, so the shape is checked first
//  and the date must come back unchanged from timegm. Times before 1970 are refused, as -1 is
//  the error. Callers get text from the record, the broker and hand-edited files alike.
int64_t
time_parse_iso8601 (const char *text)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; text && i < sizeof shape - 1; i++)
        if (shape[i] == 'd' ? text[i] < '0' || text[i] > '9' : text[i] != shape[i])
            return -1;
    struct tm tm = { 0 };
    if (!text || sscanf (text, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    const char *rest = text + sizeof shape - 1;
    int ms = 0;
    if (*rest == '.') {
        //  Any number of fraction digits (at least one); milliseconds are the first three.
        size_t digits = strspn (++rest, "0123456789");
        char frac[4] = "000";
        memcpy (frac, rest, digits < 3 ? digits : 3);
        if (digits == 0 || sscanf (frac, "%3d", &ms) != 1)
            return -1;
        rest += digits;
    }
    if (strcmp (rest, "Z") != 0)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    struct tm asked = tm;
    time_t secs = timegm (&tm);
    if (secs < 0 || tm.tm_year != asked.tm_year || tm.tm_mon != asked.tm_mon
    ||  tm.tm_mday != asked.tm_mday || tm.tm_hour != asked.tm_hour || tm.tm_min != asked.tm_min
    ||  tm.tm_sec != asked.tm_sec)
        return -1;
    return (int64_t) secs * 1000 + ms;
}

int
decimal_parse (const char *text, size_t max_digits, int64_t min, int64_t max, int64_t *out)
{
    size_t digits = text ? strspn (text, "0123456789") : 0;
    if (digits == 0 || digits > max_digits || text[digits] != '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll (text, &end, 10);
    if (errno != 0 || end != text + digits || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

void
sha256_hex (const void *data, size_t size, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256 (digest, data, size);
    sodium_bin2hex (out, 65, digest, sizeof digest);
}

void
bind_sha256 (const char *lang, const char *session, const char *code, size_t code_len,
             char out[65])
{
    //  Streamed, so no copy of the code is made and nothing can fail.
    crypto_hash_sha256_state st;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init (&st);
    crypto_hash_sha256_update (&st, (const unsigned char *) lang, strlen (lang) + 1);
    crypto_hash_sha256_update (&st, (const unsigned char *) session, strlen (session) + 1);
    crypto_hash_sha256_update (&st, (const unsigned char *) code, code_len);
    crypto_hash_sha256_final (&st, digest);
    sodium_bin2hex (out, 65, digest, sizeof digest);
}

void
random_hex (size_t n, char *out)
{
    unsigned char bytes[64];
    if (n > sizeof bytes)
        n = sizeof bytes;
    randombytes_buf (bytes, n);
    sodium_bin2hex (out, 2 * n + 1, bytes, n);
}

int
program_beside (const char *name, char *out, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return -1;
    self[n] = 0;
    char *slash = strrchr (self, '/');
    int len = slash ? snprintf (out, size, "%.*s/%s", (int) (slash - self), self, name) : -1;
    if (len < 0 || (size_t) len >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

//  Length of the well-formed sequence at p: 1..4, 0 if ill-formed, -1 if it is a valid
//  prefix that runs past the end. *prefix gets the length of the longest valid prefix, so
//  a broken sequence becomes one U+FFFD (Unicode's "maximal subpart" practice).

static int
s_sequence (const unsigned char *p, size_t avail, size_t *prefix)
{
    *prefix = 1;
    unsigned char c = p [0];
    if (c < 0x80)
        return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xBF;     //  allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;           //  overlong
        if (c == 0xED) hi = 0x9F;           //  surrogates
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;           //  overlong
        if (c == 0xF4) hi = 0x8F;           //  above U+10FFFF
    }
    else
        return 0;
    for (int i = 1; i < need; i++) {
        if ((size_t) i >= avail)
            return -1;
        unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xBF;
        if (p [i] < min || p [i] > max)
            return 0;
        *prefix = (size_t) i + 1;
    }
    return need;
}

bool
csv_has (const char *list, const char *item, size_t len)
{
    while (item && len && list && *list) {
        list += strspn (list, " ,");
        size_t span = strcspn (list, ","), trimmed = span;
        while (trimmed && list[trimmed - 1] == ' ')
            trimmed--;
        if (trimmed == len && memcmp (list, item, len) == 0)
            return true;
        list += span;
    }
    return false;
}

bool
utf8_valid (const char *data, size_t size)
{
    const unsigned char *s = (const unsigned char *) data;
    size_t prefix;
    for (size_t i = 0; i < size;) {
        if (s [i] < 0x80) {
            i++;                //  most text is ASCII: no call for it
            continue;
        }
        int len = s_sequence (s + i, size - i, &prefix);
        if (len <= 0)
            return false;
        i += (size_t) len;
    }
    return true;
}

size_t
utf8_decode (const char *data, size_t size, uint32_t *cp)
{
    static const unsigned char lead_bits [] = { 0, 0x7F, 0x1F, 0x0F, 0x07 };
    const unsigned char *s = (const unsigned char *) data;
    size_t prefix;
    int len = size ? s_sequence (s, size, &prefix) : 0;
    if (len <= 0)
        return 0;
    uint32_t v = s [0] & lead_bits [len];
    for (int i = 1; i < len; i++)
        v = (v << 6) | (s [i] & 0x3F);
    *cp = v;
    return (size_t) len;
}

size_t
utf8_encode (uint32_t cp, char out [4])
{
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    if (cp < 0x80) {
        out [0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        out [0] = (char) (0xC0 | cp >> 6);
        out [1] = (char) (0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out [0] = (char) (0xE0 | cp >> 12);
        out [1] = (char) (0x80 | (cp >> 6 & 0x3F));
        out [2] = (char) (0x80 | (cp & 0x3F));
        return 3;
    }
    out [0] = (char) (0xF0 | cp >> 18);
    out [1] = (char) (0x80 | (cp >> 12 & 0x3F));
    out [2] = (char) (0x80 | (cp >> 6 & 0x3F));
    out [3] = (char) (0x80 | (cp & 0x3F));
    return 4;
}

size_t
utf8_repair (const char *src, size_t len, char *dst, size_t cap, bool cut_tail, bool *lost)
{
    static const char replacement [] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *) src;
    size_t in = 0, out = 0;
    *lost = false;
    while (in < len) {
        size_t prefix;
        int n = s_sequence (p + in, len - in, &prefix);
        if (n < 0 && cut_tail)
            break;              //  the character was split by the cap, not malformed
        const char *from = n > 0 ? src + in : replacement;
        size_t size = n > 0 ? (size_t) n : 3;
        if (out + size > cap) {
            *lost = true;
            break;
        }
        memcpy (dst + out, from, size);
        out += size;
        in += n > 0 ? (size_t) n : prefix;
    }
    return out;
}

json_t *
text_display (const char *src, size_t len)
{
    char *out = (char *) malloc (len * 3 + 1);
    if (!out)
        return NULL;
    bool lost;
    size_t n = utf8_repair (src, len, out, len * 3, false, &lost), k = 0;
    char *shown = (char *) malloc (n * 3 + 1);
    for (size_t i = 0; shown && i < n; i++)
        if (out[i])
            shown[k++] = out[i];
        else {
            memcpy (shown + k, "\xef\xbf\xbd", 3);
            k += 3;
        }
    json_t *text = shown ? json_stringn (shown, k) : NULL;
    free (shown);
    free (out);
    return text;
}

bool
text_is_plain (const char *src, size_t len)
{
    return !memchr (src, 0, len) && utf8_valid (src, len);
}

char *
base64_encode (const char *src, size_t len)
{
    size_t size = sodium_base64_ENCODED_LEN (len, sodium_base64_VARIANT_ORIGINAL);
    char *out = (char *) malloc (size);
    if (out)
        sodium_bin2base64 (out, size, (const unsigned char *) src, len,
                           sodium_base64_VARIANT_ORIGINAL);
    return out;
}

char *
base64_decode (const char *src, size_t len, size_t *out_len)
{
    char *out = (char *) malloc (len / 4 * 3 + 1);
    if (out && sodium_base642bin ((unsigned char *) out, len / 4 * 3 + 1, src, len, NULL,
                                  out_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
        free (out);
        out = NULL;
    }
    return out;
}

//  The parser gets the record's own text, and whatever a hand-edited file or a peer holds.
static void
s_test_iso8601 (void)
{
    CHECK (time_parse_iso8601 ("1970-01-01T00:00:00.000Z") == 0);
    CHECK (time_parse_iso8601 ("1970-01-01T00:00:01.500Z") == 1500);
    CHECK (time_parse_iso8601 ("2026-11-28T12:00:00.05Z") == 1795867200050);
    CHECK (time_parse_iso8601 ("2026-11-28T12:00:00.1239Z") == 1795867200123);
    CHECK (time_parse_iso8601 ("2024-02-29T00:00:00Z") == 1709164800000);
    CHECK (time_parse_iso8601 ("9999-12-31T23:59:59.999Z") == 253402300799999);
    const char *bad[] = {
        NULL, "", "Z", "2026", "2026-11-2", "2026-11-28T12:00:00", "2026-11-28T12:00:00.000",
        "2026-11-28T12:00:00.Z", "2026-11-28T12:00:00.000Zjunk", "2026-11-28T12:00:00.000z",
        "2026-11-28t12:00:00Z", "2026-11-28T12:00:00+00:00", " 2026-11-28T12:00:00Z",
        "+026-11-28T12:00:00Z", "2026-1-28T12:00:00.000Z", "2026-11-28T1:00:00Z",
        "2026-11-28T12:00:-1Z", "2026-11-28T12:00: 1Z", "2026-13-28T12:00:00.000Z",
        "2026-00-28T12:00:00Z", "2026-11-00T12:00:00Z", "2026-02-29T12:00:00Z",
        "2026-04-31T12:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T12:60:00Z",
        "2026-11-28T12:00:60Z", "1969-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z",
        "2026-11-28T12:00:00.-5Z", "2026-11-28T12:00:00.+5Z", "2026-11-28T12:00:00.5 Z",
        "2026\xef\xbc\x8d" "11-28T12:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK (time_parse_iso8601 (bad[i]) == -1);
    //  A fraction of any length is read without overflow; the first three digits count.
    char lots[4096];
    memcpy (lots, "2026-11-28T12:00:00.", 20);
    memset (lots + 20, '9', sizeof lots - 22);
    memcpy (lots + sizeof lots - 2, "Z", 2);
    CHECK (time_parse_iso8601 (lots) == 1795867200999);
}

//  The decoder accepts exactly the UTF-8 forms of the scalar values: every value round-trips,
//  and every string of up to three bytes (and a sample of four) that decodes is the form of
//  what it decodes to. Then the hostile cases by name.
static void
s_test_utf8 (void)
{
    char out[4];
    uint32_t cp;
    bool all_round = true;
    for (uint32_t v = 0; v <= 0x10FFFF; v++) {
        size_t n = utf8_encode (v, out);
        bool surrogate = v >= 0xD800 && v <= 0xDFFF;
        if (surrogate ? n != 0 : (n == 0 || utf8_decode (out, n, &cp) != n || cp != v
                                  || utf8_decode (out, n - 1, &cp) != 0 || !utf8_valid (out, n)))
            all_round = false;
    }
    CHECK (all_round);
    CHECK (utf8_encode (0x110000, out) == 0 && utf8_encode (UINT32_MAX, out) == 0);
    bool only_forms = true;
    unsigned char s[4];
    for (uint32_t k = 0; k < 1u << 24; k++) {
        s[0] = (unsigned char) (k >> 16), s[1] = (unsigned char) (k >> 8), s[2] = (unsigned char) k;
        size_t n = utf8_decode ((const char *) s, 3, &cp);
        if (n && (utf8_encode (cp, out) != n || memcmp (out, s, n) != 0))
            only_forms = false;
        if (utf8_valid ((const char *) s, 3) != (n == 3 || (n && utf8_valid ((const char *) s + n, 3 - n))))
            only_forms = false;
    }
    static const unsigned char tails[] = { 0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF };
    for (unsigned lead = 0xF0; lead <= 0xFF; lead++)
        for (unsigned second = 0; second < 256; second++)
            for (size_t t = 0; t < sizeof tails * sizeof tails; t++) {
                s[0] = (unsigned char) lead, s[1] = (unsigned char) second;
                s[2] = tails[t / sizeof tails], s[3] = tails[t % sizeof tails];
                size_t n = utf8_decode ((const char *) s, 4, &cp);
                if (n && (n != 4 || utf8_encode (cp, out) != 4 || memcmp (out, s, 4) != 0))
                    only_forms = false;
            }
    CHECK (only_forms);
    CHECK (utf8_decode ("", 0, &cp) == 0);
    CHECK (utf8_decode ("\x80", 1, &cp) == 0);                      //  stray continuation
    CHECK (utf8_decode ("\xc0\xaf", 2, &cp) == 0);                  //  overlong '/'
    CHECK (utf8_decode ("\xc1\xbf", 2, &cp) == 0);
    CHECK (utf8_decode ("\xe0\x80\xaf", 3, &cp) == 0);
    CHECK (utf8_decode ("\xf0\x80\x80\xaf", 4, &cp) == 0);
    CHECK (utf8_decode ("\xed\xa0\x80", 3, &cp) == 0);              //  surrogates
    CHECK (utf8_decode ("\xed\xbf\xbf", 3, &cp) == 0);
    CHECK (utf8_decode ("\xf4\x90\x80\x80", 4, &cp) == 0);          //  above U+10FFFF
    CHECK (utf8_decode ("\xf8\x88\x80\x80\x80", 5, &cp) == 0);      //  old five-byte form
    CHECK (utf8_decode ("\xfe", 1, &cp) == 0 && utf8_decode ("\xff", 1, &cp) == 0);
    CHECK (utf8_decode ("\xf0\x9f\x98\x80", 3, &cp) == 0);          //  cut short by size
    CHECK (utf8_decode ("\xe2\x82", 2, &cp) == 0);
    CHECK (utf8_decode ("\xe2\x82\xac!", 4, &cp) == 3 && cp == 0x20AC);
    CHECK (utf8_decode ("\xf4\x8f\xbf\xbf", 4, &cp) == 4 && cp == 0x10FFFF);
    CHECK (utf8_decode ("\0", 1, &cp) == 1 && cp == 0);
}

int
util_test (void)
{
    char hex[65];
    sha256_hex ("abc", 3, hex);
    CHECK (strcmp (hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    char bound[65], other[65];
    bind_sha256 ("python", "s1", "x = 1", 5, bound);
    sha256_hex ("python\0s1\0x = 1", 15, hex);
    CHECK (strcmp (bound, hex) == 0);
    bind_sha256 ("python", "s", "1x = 1", 6, other);        //  the separators keep them apart
    CHECK (strcmp (bound, other) != 0);
    bind_sha256 ("python", "s1", "x\0y", 3, bound);          //  the code is bytes, NUL and all
    sha256_hex ("python\0s1\0x\0y", 13, hex);
    CHECK (strcmp (bound, hex) == 0);
    bind_sha256 ("", "", "", 0, bound);
    sha256_hex ("\0\0", 2, hex);
    CHECK (strcmp (bound, hex) == 0);
    CHECK (utf8_valid ("plain", 5));
    json_t *fixed = text_display ("a\0b\xff", 4);
    CHECK (fixed && strcmp (json_string_value (fixed), "a\xef\xbf\xbd" "b\xef\xbf\xbd") == 0);
    json_decref (fixed);
    CHECK (text_is_plain ("ab", 2) && !text_is_plain ("a\0b", 3) && !text_is_plain ("\xff", 1));
    size_t blen = 0;
    char *b64 = base64_encode ("a\0\xff", 3), *bytes = b64 ? base64_decode (b64, strlen (b64), &blen) : NULL;
    CHECK (b64 && strcmp (b64, "YQD/") == 0 && bytes && blen == 3 && memcmp (bytes, "a\0\xff", 3) == 0);
    free (b64);
    free (bytes);
    CHECK (base64_decode ("!!", 2, &blen) == NULL);
    CHECK (utf8_valid ("caf\xc3\xa9", 5));
    CHECK (!utf8_valid ("\xc3", 1));              //  truncated
    CHECK (!utf8_valid ("\xc0\xaf", 2));          //  overlong '/'
    CHECK (!utf8_valid ("\xed\xa0\x80", 3));      //  surrogate
    CHECK (!utf8_valid ("\xf4\x90\x80\x80", 4));  //  above U+10FFFF
    CHECK (!utf8_valid ("\xff", 1));
    CHECK (csv_has ("ops,sre", "sre", 3) && csv_has ("ops, sre ", "sre", 3) && csv_has (" ,ops,,", "ops", 3));
    CHECK (csv_has ("a b,c", "a b", 3) && csv_has ("gateway", "gateway", 7));
    CHECK (!csv_has ("not-gateway", "gateway", 7) && !csv_has ("gateways", "gateway", 7));
    CHECK (!csv_has ("gateway", "gate", 4) && !csv_has ("ops,sre", "ops,sre", 7));
    CHECK (!csv_has ("a,,b", "", 0) && !csv_has ("", "", 0) && !csv_has (" , ", "", 0));
    CHECK (!csv_has (NULL, "ops", 3) && !csv_has ("ops", NULL, 0) && !csv_has ("", "ops", 3));
    CHECK (!csv_has ("ops", " ops", 4) && !csv_has ("Ops", "ops", 3));
    int64_t v = -1;
    CHECK (decimal_parse ("42", 18, 1, INT64_MAX, &v) == 0 && v == 42);
    CHECK (decimal_parse ("0042", 18, 1, INT64_MAX, &v) == 0 && v == 42);
    CHECK (decimal_parse ("9223372036854775807", 19, 0, INT64_MAX, &v) == 0 && v == INT64_MAX);
    v = -1;
    const char *not_numbers[] = { NULL, "", " 42", "42 ", "+42", "-42", "4 2", "0x42", "42\n",
                                  "\xd9\xa4", "1e3", "9223372036854775808", "99999999999999999999" };
    for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++)
        CHECK (decimal_parse (not_numbers[i], 20, 0, INT64_MAX, &v) == -1);
    CHECK (decimal_parse ("0", 18, 1, INT64_MAX, &v) == -1);                      //  below min
    CHECK (decimal_parse ("1000", 18, 0, 999, &v) == -1);                         //  above max
    CHECK (decimal_parse ("1234567890123", 12, 0, INT64_MAX, &v) == -1);          //  too many digits
    CHECK (v == -1);                                                              //  untouched
    char id[33];
    random_hex (16, id);
    CHECK (strlen (id) == 32);
    char stamp[32];
    time_iso8601 (0, stamp, sizeof stamp);
    CHECK (strcmp (stamp, "1970-01-01T00:00:00.000Z") == 0);
    time_iso8601 (1795862400123, stamp, sizeof stamp);
    CHECK (time_parse_iso8601 (stamp) == 1795862400123);
    CHECK (time_parse_iso8601 ("2026-11-28T12:00:00Z") == 1795867200000);
    CHECK (time_parse_iso8601 ("2026-11-28T12:00:00.5Z") == 1795867200500);
    CHECK (time_parse_iso8601 ("2026-11-28 12:00:00") == -1);
    CHECK (time_parse_iso8601 ("yesterday") == -1);
    s_test_iso8601 ();
    s_test_utf8 ();
    char self[PATH_MAX], beside[PATH_MAX + 16], tiny[8];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    CHECK (n > 0);
    self[n] = 0;
    *strrchr (self, '/') = 0;
    CHECK (program_beside ("replgate-local", beside, sizeof beside) == 0);
    CHECK (strncmp (beside, self, strlen (self)) == 0 && strcmp (beside + strlen (self), "/replgate-local") == 0);
    errno = 0;
    CHECK (program_beside ("replgate-local", tiny, sizeof tiny) == -1 && errno == ENAMETOOLONG);
    return 0;
}
