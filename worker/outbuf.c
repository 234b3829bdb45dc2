/*  worker/outbuf.c: capped capture of one output pipe and UTF-8 repair of what was kept. */
#include "worker/outbuf.h"
#include "common/util.h"
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READS_PER_DRAIN 16
#define MIN_GROW (64 * 1024)
#define DISCARD_BYTES (256 * 1024)

struct _outbuf_t {
    char *data;
    size_t len;                 //  kept bytes, <= cap
    size_t alloc;
    size_t cap;
    size_t total;               //  bytes seen since reset
};

//  Overflow lands here; it is never read, so one buffer serves every stream.
static char s_discard [DISCARD_BYTES];

outbuf_t *
outbuf_new (void)
{
    outbuf_t *self = calloc (1, sizeof *self);
    if (!self)
        log_error ("outbuf: out of memory");
    return self;
}

void
outbuf_destroy (outbuf_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free ((*self_p)->data);
        free (*self_p);
        *self_p = NULL;
    }
}

void
outbuf_reset (outbuf_t *self, size_t cap)
{
    self->len = 0;
    self->total = 0;
    self->cap = cap;
}

size_t
outbuf_total (outbuf_t *self)
{
    return self->total;
}

//  Where the next read goes: free room below the cap, growing the buffer if needed.
static char *
s_room (outbuf_t *self, size_t *room)
{
    if (self->len < self->cap && self->len == self->alloc) {
        size_t want = self->alloc * 2 > self->len + MIN_GROW ? self->alloc * 2
                                                              : self->len + MIN_GROW;
        if (want > self->cap)
            want = self->cap;
        char *grown = realloc (self->data, want);
        if (grown) {
            self->data = grown;
            self->alloc = want;
        }
        else
            log_error ("outbuf: out of memory growing to %zu bytes; dropping output", want);
    }
    size_t limit = self->alloc < self->cap ? self->alloc : self->cap;
    if (self->len < limit) {
        *room = limit - self->len;
        return self->data + self->len;
    }
    *room = sizeof s_discard;
    return s_discard;
}

ssize_t
outbuf_drain (outbuf_t *self, int fd)
{
    ssize_t got = 0;
    for (int i = 0; i < READS_PER_DRAIN; i++) {
        size_t room;
        char *to = s_room (self, &room);
        ssize_t n = read (fd, to, room);
        if (n > 0) {
            if (to != s_discard)
                self->len += (size_t) n;
            self->total += (size_t) n;
            got += n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return got;
        if (n < 0)
            log_error ("outbuf: read fd %d: %s", fd, strerror (errno));
        return got > 0 ? got : -1;      //  report EOF on the next call, after the data
    }
    return got;
}

//  --------------------------------------------------------------------------
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
outbuf_text (outbuf_t *self, bool *truncated)
{
    bool cut = self->total > self->len;
    *truncated = cut;
    if (utf8_valid (self->data, self->len))
        return json_stringn (self->len ? self->data : "", self->len);
    char *fixed = malloc (self->cap ? self->cap : 1);
    if (!fixed) {
        log_error ("outbuf: out of memory repairing %zu bytes", self->len);
        return NULL;
    }
    bool lost;
    size_t n = utf8_repair (self->data, self->len, fixed, self->cap, cut, &lost);
    if (lost || (cut && n < self->len))
        *truncated = true;
    json_t *text = json_stringn (fixed, n);
    free (fixed);
    return text;
}
