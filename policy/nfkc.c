/*  policy/nfkc.c: the NFKC form of a snippet. Python reads identifiers in NFKC (`import ｓocket`
    imports socket, `shutil.ｒmtree` is shutil.rmtree), so a rule that sees only the bytes as
    written is stepped around with full-width letters, ligatures or mathematical alphabets.
    The Unicode tables are libunistring's, never ours. */
#include "policy/nfkc.h"
#include "common/util.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uninorm.h>

static bool
s_is_ascii (const char *code, size_t len)
{
    unsigned char any = 0;
    for (size_t i = 0; i < len; i++)    //  no early exit: the compiler vectorises the OR
        any |= (unsigned char) code[i];
    return any < 0x80;
}

int
nfkc_fold (const char *code, size_t len, char **folded, size_t *folded_len)
{
    *folded = NULL;
    *folded_len = 0;
    //  NFKC maps every ASCII character to itself, so ASCII code (nearly all code) costs one
    //  pass over its bytes here: no allocation, no table look-up, no second match.
    if (!code || s_is_ascii (code, len))
        return 0;
    char *valid = NULL;
    const char *from = code;
    size_t from_len = len;
    if (!utf8_valid (code, len)) {      //  the broker refuses such code; `explain` may not
        if (len > SIZE_MAX / 3 || !(valid = malloc (len * 3)))
            return -1;
        bool lost;
        from_len = utf8_repair (code, len, valid, len * 3, false, &lost);
        from = valid;
    }
    size_t n = 0;
    uint8_t *out = u8_normalize (UNINORM_NFKC, (const uint8_t *) from, from_len, NULL, &n);
    free (valid);
    if (!out)
        return -1;
    if (n == len && memcmp (out, code, len) == 0) {
        free (out);                     //  already NFKC (most non-ASCII text): nothing new
        return 0;
    }
    *folded = (char *) out;
    *folded_len = n;
    return 0;
}
