/*  policy/mask_stream.h: masking output that arrives in chunks (see mask_stream.c). */
#ifndef RG_MASK_STREAM_H
#define RG_MASK_STREAM_H
#include "policy/mask.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct _mask_stream_t mask_stream_t;

//  A stream that holds at most hold_max bytes back waiting for what follows. NULL when out
//  of memory.
mask_stream_t *mask_stream_new (size_t hold_max);
void mask_stream_destroy (mask_stream_t **self_p);

//  Takes the next chunk and returns what can be released now, masked by `mask` (the masker
//  may change between calls, as a policy reload replaces it), as a new buffer of
//  *out_len bytes (NUL-terminated; may be empty) that the caller frees. With `last`, the
//  stream ends and everything held is released. NULL when out of memory (the stream is
//  then unusable: release nothing more from it).
char *mask_stream_feed (mask_stream_t *self, mask_t *mask, const char *data, size_t len,
                        bool last, size_t *out_len);

int mask_stream_test (void);
#endif
