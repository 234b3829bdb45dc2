/*  policy/mask.h: secret masking of snippet outputs before they are stored or returned.

    A mask_t holds detectors: built-in ones (cloud and API keys, private key blocks, JWTs,
    passwords in key=value, environment dumps, command lines, prose and URLs, Luhn-checked
    card numbers, e-mail addresses), custom PCRE2
    patterns (from the policy's "masks") and exact secret values (from a worker's configuration).
    mask_apply() replaces every hit with "[MASKED:name]".

    Semantics worth knowing:
    - Patterns match bytes (no UTF mode), so binary or invalid UTF-8 output is fine. If a custom
      pattern has a named group (?<secret>...), only that group is masked (as the built-ins do for
      "password=VALUE": the key stays readable); otherwise the whole match is.
    - Overlapping hits are merged into one mask so no fragment of either survives. The merged mask
      takes the name of the most specific detector: exact secret, then custom pattern, then
      specific built-ins (aws, github, slack, private key, jwt), then generic ones.
    - Exact secrets are also masked in their encoded forms, each as it appears inside a larger
      string: URL-encoded (either hex case, '/' kept or not, space as %20 or '+'), JSON-escaped
      (json.dumps with and without ensure_ascii, \u escapes in either case, surrogate pairs),
      Python repr() / ascii() of the str and repr() of its UTF-8 bytes (\\, \', \xNN,
      \uNNNN, \UNNNNNNNN), bash printf %q / ${v@Q} (backslashes, $'...' with octal bytes,
      '\'' and '"'"' inside single quotes) and base64 (standard and url-safe, at every byte
      alignment, so inside a larger base64 blob too). This guards against accidental leaks;
      a snippet that re-encodes a secret on purpose (reversed, split, xor) gets it out.
    - Masks already in the text ("[MASKED:name]", name as mask_name_valid) are left as they
      are by patterns, built-in or custom: masking masked text changes nothing, and a worker's
      "password=[MASKED:DB_PASSWORD]" keeps its "]". A pattern hit around such a mask is
      still masked on either side of it. Exact secrets are masked wherever they are.
    - Every pattern runs under PCRE2 match limits. If a pattern exceeds them, that detector
      falls back to matching line by line for the rest of the buffer, and a line that still
      exceeds them is masked from the failing point to its end: over budget fails closed.
    - A mask_t is not thread-safe (it owns match data and a JIT stack); use one per thread. */
#ifndef RG_MASK_H
#define RG_MASK_H
#include <stdbool.h>
#include <stddef.h>

typedef struct _mask_t mask_t;

//  A masker with every built-in detector. Returns NULL only when out of memory.
mask_t *mask_new (void);

//  A masker without built-in detectors: it masks only the secrets and patterns added to it
//  (a worker's, whose output the broker's built-ins mask afterwards). NULL when out of memory.
mask_t *mask_new_empty (void);

//  Destroys the masker and NULLs the caller's pointer. Safe on NULL.
void mask_destroy (mask_t **self_p);

//  Adds a custom detector. name must match [A-Za-z0-9_.-]{1,64}. Returns 0, or -1 with the
//  reason in err (pcre2's message and the offset in the pattern for a bad pattern).
int mask_add_pattern (mask_t *self, const char *name, const char *pattern, char *err,
                      size_t err_size);

//  Adds an exact secret value (any bytes but NUL, length >= 1) masked as [MASKED:name].
//  Returns 0, or -1 for a bad name or empty value.
int mask_add_secret (mask_t *self, const char *name, const char *value);

//  Masks text[0..len) into a new NUL-terminated buffer that the caller frees. Sets *out_len
//  (bytes, without the NUL) and *count (number of masks written) when they are not NULL.
//  Returns NULL only when out of memory.
char *mask_apply (mask_t *self, const char *text, size_t len, size_t *out_len, int *count);

//  As mask_apply, for a text an output limit cut short: an exact secret the cut went through
//  is masked too (the longest start of any of its forms that the text ends with).
char *mask_apply_cut (mask_t *self, const char *text, size_t len, size_t *out_len, int *count);

//  Masks text[from..upto) into a new buffer as mask_apply does, text[0..from) and
//  text[upto..len) being context: what lookbehinds and validators see before it (output a
//  stream already released) and what lookaheads and word boundaries see after it (output held
//  back), but not part of the output. Without what follows, the end of the output would look
//  like the end of the text (`a@b.co` followed by `m` is no address ending in `.co`). NULL
//  when out of memory.
char *mask_apply_after (mask_t *self, const char *text, size_t len, size_t from, size_t upto,
                        size_t *out_len);

//  For output that more bytes will follow (a stream): the length of the start of text that
//  can be masked and released now, from..len (text[0..from) was released already and is
//  context). What a detector could still match once more bytes come (a pattern's partial
//  match at the end, the start of a secret's form the text ends with), and any complete hit
//  that reaches into it, stays after the point.
size_t mask_release_point (mask_t *self, const char *text, size_t len, size_t from);

//  Compiles pattern exactly as mask_add_pattern would, to validate policy files. Returns 0, or
//  -1 with pcre2's message in err and the failing offset (bytes into pattern) in *erroffset.
int mask_check_pattern (const char *pattern, size_t *erroffset, char *err, size_t err_size);

//  True if name is acceptable as a mask name ([A-Za-z0-9_.-]{1,64}).
bool mask_name_valid (const char *name);

int mask_test (void);
#endif
