/*  common/buf.h: the one growable byte buffer (Slack message text, HTTP bodies, a session's
    pipes, files read whole). A buf_t is a plain value: zero it to start, buf_free it to end.
    Its room doubles, so n appends cost O(n); every size is checked against overflow, so a
    hostile length fails with -1 instead of wrapping round to a small allocation. */
#ifndef RG_BUF_H
#define RG_BUF_H
#include <stddef.h>
#include <stdio.h>

typedef struct {
    char *data;                 //  NULL until the first byte or reserve
    size_t len;                 //  bytes held; setting it to 0 empties the buffer
    size_t alloc;               //  bytes allocated, always more than len once data is set
} buf_t;

//  Makes room for `more` bytes after len and one more for a NUL after them; the caller may
//  write them at data + len and add to len itself. 0, or -1 out of memory or if the size
//  would overflow (the buffer is unchanged).
int buf_reserve (buf_t *self, size_t more);

//  Appends size bytes and keeps a NUL after them (not counted in len). 0 or -1 (unchanged).
int buf_append (buf_t *self, const void *data, size_t size);

//  Appends printf output, the whole of it, and keeps a NUL after it. 0 or -1 (unchanged).
int buf_appendf (buf_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

//  Appends all that `in` holds, and keeps a NUL after it. 0, or -1 with errno set (what was
//  read stays).
int buf_read_file (buf_t *self, FILE *in);

//  Drops the first n bytes (all of them if n >= len): what a reader has consumed.
void buf_consume (buf_t *self, size_t n);

//  The bytes as a NUL-terminated string the caller frees ("" when empty), leaving the buffer
//  empty. NULL out of memory.
char *buf_take (buf_t *self);

//  Frees the bytes and leaves the buffer empty, ready for use again.
void buf_free (buf_t *self);

int buf_test (void);
#endif
