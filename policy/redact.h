/*  policy/redact.h: applies a masker to the text fields of a snippet result, the one place
    that knows which fields of a result can carry output. */
#ifndef RG_REDACT_H
#define RG_REDACT_H
#include "policy/mask.h"
#include <jansson.h>

//  Masks, in place, stdout, stderr and value of `result` and value and traceback of its
//  `error` object (or the flat error_value / traceback fields). Returns the number of masks
//  written. If masking runs out of memory a field is replaced by "[MASKED:unavailable]":
//  never stored unmasked.
int redact_result (mask_t *mask, json_t *result);

int redact_test (void);
#endif
