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

//  The kept bytes (valid until the next drain or reset), *len of them.
const char *outbuf_kept (outbuf_t *self, size_t *len);

//  The kept bytes as a JSON string when they are plain text (valid UTF-8 without NUL; a
//  character the cap split is dropped). Anything else returns NULL and sets *base64 to the
//  kept bytes, byte for byte, in base64 (the caller frees it; NULL out of memory).
//  Sets *truncated when anything was not kept. The caller owns the string.
json_t *outbuf_text (outbuf_t *self, bool *truncated, char **base64);

#endif
