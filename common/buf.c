/*  common/buf.c: the growable byte buffer (see buf.h). */
#include "common/buf.h"
#include "common/check.h"
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_ALLOC 256
//  No buffer of ours holds more (frames stop at 64 MiB, outputs at 16 MiB): a bigger request
//  is a hostile length, refused before the allocator sees it.
#define MAX_ALLOC ((size_t) 1 << 32)

int
buf_reserve (buf_t *self, size_t more)
{
    if (self->len >= MAX_ALLOC || more >= MAX_ALLOC - self->len)
        return -1;              //  len + more + 1 would pass the cap (or wrap)
    size_t need = self->len + more + 1;
    if (self->data && need <= self->alloc)
        return 0;
    size_t want = self->alloc > MIN_ALLOC ? self->alloc : MIN_ALLOC;
    while (want < need)
        want = want > MAX_ALLOC / 2 ? need : want * 2;
    char *grown = (char *) realloc (self->data, want);
    if (!grown)
        return -1;
    self->data = grown;
    self->alloc = want;
    return 0;
}

int
buf_append (buf_t *self, const void *data, size_t size)
{
    if (buf_reserve (self, size))
        return -1;
    if (size)
        memcpy (self->data + self->len, data, size);
    self->len += size;
    self->data [self->len] = 0;
    return 0;
}

int
buf_appendf (buf_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (NULL, 0, fmt, ap);
    va_end (ap);
    if (n < 0 || buf_reserve (self, (size_t) n))
        return -1;
    va_start (ap, fmt);
    vsnprintf (self->data + self->len, (size_t) n + 1, fmt, ap);
    va_end (ap);
    self->len += (size_t) n;
    return 0;
}

void
buf_consume (buf_t *self, size_t n)
{
    if (n >= self->len) {
        self->len = 0;
        return;
    }
    memmove (self->data, self->data + n, self->len - n);
    self->len -= n;
}

int
buf_read_file (buf_t *self, FILE *in)
{
    size_t n;
    do {
        if (buf_reserve (self, 64 * 1024)) {
            errno = ENOMEM;
            return -1;
        }
        n = fread (self->data + self->len, 1, self->alloc - self->len - 1, in);
        self->len += n;
        self->data [self->len] = 0;
    } while (n > 0);
    return ferror (in) ? -1 : 0;
}

char *
buf_take (buf_t *self)
{
    if (buf_reserve (self, 0))
        return NULL;
    self->data [self->len] = 0;
    char *data = self->data;
    *self = (buf_t) { 0 };
    return data;
}

void
buf_free (buf_t *self)
{
    free (self->data);
    *self = (buf_t) { 0 };
}

int
buf_test (void)
{
    buf_t b = { 0 };
    char *s = buf_take (&b);
    CHECK (s && *s == 0 && b.data == NULL && b.len == 0);
    free (s);
    CHECK (buf_append (&b, "ab", 2) == 0 && b.len == 2 && strcmp (b.data, "ab") == 0);
    CHECK (buf_append (&b, NULL, 0) == 0 && b.len == 2);
    //  Doubling: 100,000 one-byte appends, a handful of reallocations, every byte kept.
    size_t grew = 0, alloc = b.alloc;
    int failed = 0;
    for (int i = 0; i < 100000; i++) {
        failed += buf_append (&b, i % 2 ? "y" : "x", 1) != 0;
        if (b.alloc != alloc) {
            grew++;
            alloc = b.alloc;
        }
    }
    CHECK (failed == 0 && b.len == 100002 && grew <= 10 && b.alloc > b.len && b.data [b.len] == 0);
    CHECK (b.data [2] == 'x' && b.data [100001] == 'y');
    buf_consume (&b, 100000);
    CHECK (b.len == 2 && memcmp (b.data, "xy", 2) == 0);
    buf_consume (&b, 5);
    CHECK (b.len == 0);
    //  printf output is never cut, however long.
    char big [2000];
    memset (big, 'z', sizeof big - 1);
    big [sizeof big - 1] = 0;
    CHECK (buf_appendf (&b, "<%s|%d>", big, 42) == 0 && b.len == 2004);
    CHECK (b.data [0] == '<' && strcmp (b.data + 2000, "|42>") == 0);
    //  Bytes, NULs included.
    b.len = 0;
    CHECK (buf_append (&b, "a\0b", 3) == 0 && b.len == 3 && memcmp (b.data, "a\0b\0", 4) == 0);
    //  Hostile sizes fail and leave the buffer as it was.
    char *before = b.data;
    CHECK (buf_reserve (&b, SIZE_MAX) == -1 && buf_reserve (&b, SIZE_MAX - 3) == -1);
    CHECK (buf_reserve (&b, SIZE_MAX - b.len - 1) == -1);
    volatile size_t huge = SIZE_MAX - 1;        //  a length from the wire, not a constant
    CHECK (buf_append (&b, "x", huge) == -1);
    CHECK (b.data == before && b.len == 3 && memcmp (b.data, "a\0b", 3) == 0);
    //  Reserve then write in place, as a reader does.
    CHECK (buf_reserve (&b, 4096) == 0 && b.alloc >= b.len + 4097);
    memcpy (b.data + b.len, "tail", 4);
    b.len += 4;
    s = buf_take (&b);
    CHECK (s && memcmp (s, "a\0btail", 8) == 0 && b.data == NULL && b.alloc == 0);
    free (s);
    buf_free (&b);
    CHECK (b.data == NULL && b.len == 0);
    //  A file read whole, past one read's 64 KiB, NULs and all, after what was there.
    FILE *f = tmpfile ();
    CHECK (f != NULL);
    for (int i = 0; f && i < 70000; i++)
        fputc (i % 7 ? 'a' + i % 26 : 0, f);
    if (f)
        rewind (f);
    CHECK (buf_append (&b, "head", 4) == 0 && f && buf_read_file (&b, f) == 0);
    CHECK (b.len == 70004 && memcmp (b.data, "head\0b", 6) == 0 && b.data [70003] == 'a' + 69999 % 26
           && b.data [70004] == 0);
    if (f)
        fclose (f);
    buf_free (&b);
    return 0;
}
