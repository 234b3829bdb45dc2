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

const char *
outbuf_kept (outbuf_t *self, size_t *len)
{
    *len = self->len;
    return self->data ? self->data : "";
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

//  Bytes at the end that start a character the cap cut off: 0 to 3.
static size_t
s_split_tail (const char *data, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char) data [len - back];
        if ((c & 0xC0) == 0x80)
            continue;           //  a continuation byte: look further back
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

json_t *
outbuf_text (outbuf_t *self, bool *truncated, char **base64)
{
    *truncated = self->total > self->len;
    *base64 = NULL;
    size_t keep = *truncated ? self->len - s_split_tail (self->data, self->len) : self->len;
    if (text_is_plain (self->len ? self->data : "", keep))
        return json_stringn (self->len ? self->data : "", keep);
    //  Binary output (NUL, bytes that are not UTF-8) travels byte for byte.
    *base64 = base64_encode (self->len ? self->data : "", self->len);
    if (!*base64)
        log_error ("outbuf: out of memory encoding %zu bytes", self->len);
    return NULL;
}
