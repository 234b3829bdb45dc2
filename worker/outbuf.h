/*  worker/outbuf.h: capture of one output stream of a session (stdout or stderr) with a byte cap,
    and its conversion to the valid, character-boundary-cut UTF-8 the protocol promises.
    Past the cap the stream is still read (so the interpreter never blocks on a full pipe) and
    counted, but the bytes are dropped. The buffer is kept between snippets. */
#ifndef RG_OUTBUF_H
#define RG_OUTBUF_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct _outbuf_t outbuf_t;

outbuf_t *outbuf_new (void);
void outbuf_destroy (outbuf_t **self_p);

//  Empties the buffer and sets the cap for the next snippet.
void outbuf_reset (outbuf_t *self, size_t cap);

//  Reads what the non-blocking fd holds now (a bounded number of reads). Returns the number
//  of bytes read (kept or dropped), 0 if the pipe is empty, -1 at end of file or on an error.
ssize_t outbuf_drain (outbuf_t *self, int fd);

//  Bytes seen since the last reset, kept or not.
size_t outbuf_total (outbuf_t *self);

//  The kept bytes as a JSON string: invalid UTF-8 becomes U+FFFD and the text is cut at a
//  character boundary so it stays within the cap. Sets *truncated when anything was lost.
//  The caller owns the result (NULL only if out of memory).
json_t *outbuf_text (outbuf_t *self, bool *truncated);

//  Writes src as valid UTF-8 into dst (at most cap bytes, cut at a character boundary) and
//  returns the length written. An incomplete sequence at the end is dropped when `cut_tail`
//  (the input was itself cut) and replaced otherwise. *lost is set if anything did not fit.
size_t utf8_repair (const char *src, size_t len, char *dst, size_t cap, bool cut_tail, bool *lost);

#endif
