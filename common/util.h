/*  common/util.h: small shared helpers: logging, clocks, ISO-8601 times, decimal numbers,
    group lists, hashing, UTF-8, base64, random ids.
    Nothing here allocates unless its comment says the caller owns the result. */
#ifndef RG_UTIL_H
#define RG_UTIL_H
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Logging to stderr, prefixed with the program name set once at start.
void log_set_name (const char *name);
void log_info (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_warn (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

//  A complaint that can come in floods (garbage on a socket, replies to a peer that stopped
//  reading) is logged at most once a second: lograte_ok says whether this one may be, and
//  first logs how many were swallowed since the last (`what` names them).
typedef struct { int64_t at; int64_t swallowed; } lograte_t;
bool lograte_ok (lograte_t *self, const char *what);

//  Set once SIGINT or SIGTERM came, after stop_signals_catch: a program's loop ends on it.
extern volatile sig_atomic_t stop_signalled;
//  Catches SIGINT and SIGTERM into stop_signalled, without SA_RESTART (a blocking poll
//  returns EINTR), unless ZSYS_SIGHANDLER=false asks that they kill at once, as czmq does
//  for the broker. 0, or -1 (logged).
int stop_signals_catch (void);

//  Monotonic milliseconds (for deadlines) and wall-clock milliseconds since the epoch.
int64_t clock_mono_ms (void);
double clock_mono_us (void);
int64_t clock_wall_ms (void);
//  Formats wall-clock ms as "2026-11-28T12:00:00.123Z" into buf (at least 32 bytes).
void time_iso8601 (int64_t wall_ms, char *buf, size_t size);

//  Parses what time_iso8601 writes back to wall ms: exactly "YYYY-MM-DDTHH:MM:SS", an optional
//  fraction of one or more digits (milliseconds are its first three), then "Z". -1 for NULL,
//  any other shape, a date or time that does not exist (2026-02-30, 24:00, :60) or one before
//  1970. The one ISO-8601 reader of the project.
int64_t time_parse_iso8601 (const char *text);

//  text as a plain decimal number: 1 to max_digits ASCII digits and nothing else (no sign,
//  no spaces, which strtoll alone would take), whose value lies in [min, max]. 0 with *out
//  set, or -1 (NULL, empty, anything else, out of range).
int decimal_parse (const char *text, size_t max_digits, int64_t min, int64_t max, int64_t *out);

//  sha256 of data as 64 lower-case hex characters plus NUL into out[65].
void sha256_hex (const void *data, size_t size, char out[65]);
//  What an approval is bound to: sha256_hex (lang || 0x00 || session || 0x00 || code), see
//  store/store.h. The store records it at submission; the broker checks the stored bytes
//  still hash to it before anything runs.
void bind_sha256 (const char *lang, const char *session, const char *code, size_t code_len,
                  char out[65]);
//  n random bytes written as 2n hex characters plus NUL into out (size >= 2n+1).
void random_hex (size_t n, char *out);

//  The path of program `name` in the directory of this process's own binary, into out
//  (size bytes), so that each program finds its siblings wherever bin/ was put: 0, or -1
//  with errno set (ENAMETOOLONG where out is too small).
int program_beside (const char *name, char *out, size_t size);

//  True if the comma-separated list (a key's groups, "ops, sre") holds item[0..len): items
//  are compared whole, spaces around them do not count, and an empty item matches nothing.
//  The one group matcher: the policy, approvals and the broker's gateway checks use it.
bool csv_has (const char *list, const char *item, size_t len);

//  True if data[0..size) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool utf8_valid (const char *data, size_t size);

//  The one UTF-8 decoder: the length (1 to 4) of the well-formed sequence at data[0..size)
//  and its code point in *cp; 0 if there is none there (size 0, a stray continuation byte,
//  an overlong form, a surrogate, above U+10FFFF, or a sequence cut short by size).
size_t utf8_decode (const char *data, size_t size, uint32_t *cp);

//  Writes cp as UTF-8 into out and returns its length (1 to 4); 0 for a surrogate or above
//  U+10FFFF, which have no UTF-8 form.
size_t utf8_encode (uint32_t cp, char out [4]);

//  Writes src as valid UTF-8 into dst (at most cap bytes, cut at a character boundary) and
//  returns the length written. An incomplete sequence at the end is dropped when `cut_tail`
//  (the input was itself cut) and replaced otherwise. *lost is set if anything did not fit.
size_t utf8_repair (const char *src, size_t len, char *dst, size_t cap, bool cut_tail, bool *lost);

//  A new JSON string showing src to a person: valid UTF-8 in which every NUL and every byte
//  that is not part of valid UTF-8 is U+FFFD. NULL only when out of memory.
json_t *text_display (const char *src, size_t len);

//  True if src is valid UTF-8 with no NUL: text the record stores as TEXT. Anything else a
//  snippet printed is stored byte for byte as a BLOB.
bool text_is_plain (const char *src, size_t len);

//  Standard base64 (with padding), NUL-terminated; the caller frees. NULL when out of memory.
char *base64_encode (const char *src, size_t len);
//  The bytes of standard base64 (a NUL follows them, not counted in *out_len); the caller
//  frees. NULL for anything that is not base64, or out of memory.
char *base64_decode (const char *src, size_t len, size_t *out_len);

int util_test (void);
#endif
