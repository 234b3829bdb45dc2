/*  policy/mask_int.h: internal to the masker (mask.c, mask_builtins.c, mask_apply.c); nothing
    else includes it. Detectors, their ranks and validators, the masker itself and the
    built-in detector table. The public contract is mask.h. */
#ifndef RG_MASK_INT_H
#define RG_MASK_INT_H
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include "policy/mask.h"
#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>

//  Ranks: when hits overlap, the merged mask is named after the lowest rank.
enum { RANK_SECRET = 0, RANK_CUSTOM = 1, RANK_SPECIFIC = 2, RANK_GENERIC = 3 };

//  A validator sees the whole match and may reject it or narrow [*start, *end).
typedef bool (check_fn) (const char *text, size_t len, const PCRE2_SIZE *ov, int rc,
                         size_t *start, size_t *end);

typedef struct {
    char *name;
    int rank;
    pcre2_code *re;             //  NULL for an exact secret
    pcre2_match_data *md;
    int group;                  //  capture group to mask; 0 = the whole match
    check_fn *check;
    char **forms;               //  exact secret: the value and its encodings
    size_t nforms;
} detector_t;

struct _mask_t {
    detector_t *dets;
    size_t ndets;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
};

//  A built-in detector (see mask_builtins.c).
typedef struct {
    const char *name;
    int rank;
    const char *pattern;
    check_fn *check;
} mask_builtin_t;

extern const mask_builtin_t mask_builtins[];
extern const size_t mask_builtin_count;

//  ASCII letters (the e-mail validator and URL-encoded secret forms share it).
static inline bool
s_alpha (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
#endif
