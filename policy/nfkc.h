/*  policy/nfkc.h: internal to the policy engine (policy.c, policy_test.c); nothing else
    includes it. The NFKC form of a snippet: the second spelling of the code that the
    policy's rules are matched against (see "COMPATIBILITY CHARACTERS" in policy.h). */
#ifndef RG_POLICY_NFKC_H
#define RG_POLICY_NFKC_H
#include <stddef.h>

//  The NFKC normalisation of code[0..len). Returns 0 with *folded NULL when there is nothing
//  new to match (pure ASCII, or code already in NFKC), 0 with *folded (the caller frees) and
//  *folded_len when the form differs, -1 when out of memory. Bytes that are not valid UTF-8
//  are folded as U+FFFD, so the valid text around them is still normalised.
int nfkc_fold (const char *code, size_t len, char **folded, size_t *folded_len);
#endif
