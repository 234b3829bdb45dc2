/*  worker/secrets.h: named secrets a worker holds in its own configuration. Snippets get them
    as environment variables; their values are masked in every result before it leaves the
    worker, so neither the broker, the database nor the agent ever sees them. */
#ifndef RG_SECRETS_H
#define RG_SECRETS_H
#include "policy/mask.h"
#include <jansson.h>

typedef struct _secrets_t secrets_t;

//  Reads a JSON object {"NAME": "value", ...} (NAME: [A-Z_][A-Z0-9_]{0,63}, value non-empty).
//  NULL on error with the reason in err. path NULL gives an empty set.
secrets_t *secrets_load (const char *path, char *err, size_t err_size);
secrets_t *secrets_parse (const char *text, char *err, size_t err_size);
void secrets_destroy (secrets_t **self_p);

//  "NAME=value" strings, NULL-terminated, owned by the set (for the interpreter's environment).
char *const *secrets_env (secrets_t *self);

//  Masks the set's values, and their encoded forms, as [MASKED:NAME] in every text field of a
//  result (redact_foreach's list, the error's type name too); returns how many. Nothing
//  else: the broker's detectors run over the result afterwards, once.
int secrets_redact (secrets_t *self, json_t *result);

//  The masker of the set's values (streamed output is masked with it as it comes).
mask_t *secrets_mask (secrets_t *self);

int secrets_test (void);
#endif
