/*  policy/jpos.h: finds where a node of a JSON document sits in its source text.
    jansson reports positions only for syntax errors; the policy loader uses these pure functions
    to turn a path such as rules[2].acton into "line:col" for its semantic errors.
    Every function here is total: any input (even malformed JSON) gives -1, never a crash. */
#ifndef RG_JPOS_H
#define RG_JPOS_H
#include <stdbool.h>
#include <stddef.h>

#define JPOS_MAX_DEPTH 16

//  One step of a path: a member name of an object (key != NULL) or an index into an array.
typedef struct {
    const char *key;
    size_t index;
} jpos_seg_t;

//  What to locate at the end of the path: the member's key (objects only) or the value.
typedef enum { JPOS_VALUE = 0, JPOS_KEY = 1 } jpos_what_t;

//  Byte offset in text[0..size) of the value (or key) reached by path[0..depth). depth 0 is the
//  root value. Keys are compared after decoding JSON escapes. Returns 0 and sets *offset, or -1.
int jpos_locate (const char *text, size_t size, const jpos_seg_t *path, size_t depth,
                 jpos_what_t what, size_t *offset);

//  Line and column (both 1-based, the column counted in UTF-8 characters, as jansson does) of
//  a byte offset. Offsets past the end are clamped to the end.
void jpos_line_col (const char *text, size_t size, size_t offset, int *line, int *col);

//  Given the offset of a JSON string literal (its opening quote) and a byte offset into the
//  decoded string, sets *offset to the source byte that produced it (for pcre2 error offsets).
int jpos_string_byte (const char *text, size_t size, size_t literal, size_t decoded,
                      size_t *offset);

int jpos_test (void);
#endif
