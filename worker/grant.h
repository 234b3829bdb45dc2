/*  worker/grant.h: a run's network grant as the worker's own processes pass it around (front
    to back over the wire, back to the run's proxy on its command line): plain text, one
    item per line, "allow HOST:PORT" (1 to GRANT_MAX_ALLOW of them) then "method NAME" (0 to
    GRANT_MAX_METHODS; none means every method). The broker's policy checked what a grant
    means; here each item is only checked to be a short printable word, so that nothing
    the front could forge becomes anything else on the way (a space, a newline, a NUL). */
#ifndef RG_WORKER_GRANT_H
#define RG_WORKER_GRANT_H
#include "common/buf.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define GRANT_MAX_ALLOW 64
#define GRANT_MAX_METHODS 16
#define GRANT_MAX_ITEM 300          //  a 253-byte name, "*.", ":65535" and brackets fit
#define GRANT_MAX (GRANT_MAX_ALLOW + GRANT_MAX_METHODS) * (GRANT_MAX_ITEM + 8)

//  The run's `network` object ({"allow": [...], "methods": [...]}) as grant text, appended
//  to out. 0, or -1 with *why (static text) when it is not a grant.
int grant_from_json (json_t *network, buf_t *out, const char **why);

//  True if text (len bytes, no NUL among them) is well-formed grant text with at least one
//  allow line.
bool grant_valid (const char *text, size_t len);

//  Splits well-formed grant text in place (its newlines become NULs) into its items:
//  allow[] and methods[] point into text. Returns 0, or -1 if it is not well-formed.
int grant_split (char *text, const char **allow, size_t *allow_count, const char **methods,
                 size_t *method_count);

int grant_test (void);
#endif
