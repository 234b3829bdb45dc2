/*  policy/redact.h: the text fields of a snippet result and the masking of them. This is the
    one place that knows which fields of a result can carry output: the worker masks its
    named secrets and the broker its detectors over exactly this list. */
#ifndef RG_REDACT_H
#define RG_REDACT_H
#include "policy/mask.h"
#include <jansson.h>
#include <stdbool.h>

//  Called for one text field: obj[key] is a string; cut is true when the result says an
//  output limit cut it (its <field>_truncated flag). Returns the number of masks written.
typedef int (redact_fn) (json_t *obj, const char *key, bool cut, void *arg);

//  Calls fn for every string field of `result` that can carry output: stdout, stderr,
//  value, the flat error_name / error_value / traceback (and a string "error"), and name,
//  value and traceback of its "error" object. Returns the sum of what fn returned.
int redact_foreach (json_t *result, redact_fn *fn, void *arg);

//  Masks, in place, every field redact_foreach visits (a cut one with mask_apply_cut).
//  Returns the number of masks written. If masking runs out of memory a field is replaced
//  by "[MASKED:unavailable]": never stored unmasked.
int redact_result (mask_t *mask, json_t *result);

int redact_test (void);
#endif
