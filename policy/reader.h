/*  policy/reader.h: internal to the policy engine (reader.c, load.c); nothing else includes it.
    The validating reader that load.c builds a policy with: errors with positions and typed
    getters. Getters return 0 when the key was read, 1 when it is absent (output left alone)
    and -1 after reporting an error at the key's value; every failure returns -1. */
#ifndef RG_POLICY_READER_H
#define RG_POLICY_READER_H
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include "policy/jpos.h"
#include <jansson.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

//  Where the parser is: the text (for positions), the JSON path to the node being checked
//  and a human label of the enclosing rule or section.
typedef struct {
    const char *text;
    size_t size;
    const char *file;
    char *err;
    size_t err_size;
    jpos_seg_t path[JPOS_MAX_DEPTH];
    size_t depth;
    char rule[112];                     //  "rule 3 'network'"
    char where[160];                    //  "in rule 3 'network'", "in the match of rule 3 ..."
} reader_t;

//  Fails at the current path's key (JPOS_KEY) or value; always returns -1.
int reader_fail (reader_t *ctx, jpos_what_t what, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Sets the label used in messages: the current rule, or a section of it.
void reader_where (reader_t *ctx, const char *section);

//  The JSON path of the node being checked. Pushing fails past JPOS_MAX_DEPTH.
bool reader_push_key (reader_t *ctx, const char *key);
bool reader_push_index (reader_t *ctx, size_t index);
void reader_pop (reader_t *ctx);

//  Unknown keys are errors: a typo must never silently weaken a rule.
int reader_check_keys (reader_t *ctx, json_t *obj, const char *const *allowed);

int reader_get_int (reader_t *ctx, json_t *obj, const char *key, long long min, long long max,
                    int *out);
int reader_get_str (reader_t *ctx, json_t *obj, const char *key, const char **out);

//  A string or a (non-empty unless may_be_empty) array of strings, optionally from a set.
//  *out receives a new reference to an array.
int reader_get_list (reader_t *ctx, json_t *obj, const char *key, bool may_be_empty,
                     const char *const *set, json_t **out);

//  A PCRE2 pattern compiled as policy patterns are (UTF, multiline, JIT when available).
int reader_get_pattern (reader_t *ctx, json_t *obj, const char *key, pcre2_code **out);

//  Reports a pattern error at the exact source character the error offset points to.
int reader_pattern_error (reader_t *ctx, const char *key, const char *msg, size_t decoded);
#endif
