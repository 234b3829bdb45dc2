/*  common/util.h: small shared helpers: logging, clocks, hashing, UTF-8 checks, random ids.
    Nothing here allocates unless its comment says the caller owns the result. */
#ifndef RG_UTIL_H
#define RG_UTIL_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Logging to stderr, prefixed with the program name set once at start.
void log_set_name (const char *name);
void log_info (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_warn (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void log_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

//  Monotonic milliseconds (for deadlines) and wall-clock milliseconds since the epoch.
int64_t clock_mono_ms (void);
double clock_mono_us (void);
int64_t clock_wall_ms (void);
//  Formats wall-clock ms as "2026-11-28T12:00:00.123Z" into buf (at least 32 bytes).
void time_iso8601 (int64_t wall_ms, char *buf, size_t size);

//  Parses what time_iso8601 writes (UTC, optional .mmm, trailing Z) back to wall ms; -1 if bad.
int64_t time_parse_iso8601 (const char *text);

//  sha256 of data as 64 lower-case hex characters plus NUL into out[65].
void sha256_hex (const void *data, size_t size, char out[65]);
//  n random bytes written as 2n hex characters plus NUL into out (size >= 2n+1).
void random_hex (size_t n, char *out);

//  True if data[0..size) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool utf8_valid (const char *data, size_t size);

//  A new JSON string: text with every NUL replaced by U+FFFD (what the record stores for a
//  NUL a snippet printed). NULL only when out of memory.
json_t *text_without_nul (json_t *text);

int util_test (void);
#endif
