/*  common/egress_check.h: the shape of a run's egress record as a worker reports it in its
    `result` (`egress`, `egress_totals`; docs/worker-protocol.md). Pure checks, shared by the
    reader of worker frames (common/proto.c) and anything else that must trust an entry. */
#ifndef RG_COMMON_EGRESS_H
#define RG_COMMON_EGRESS_H
#include <jansson.h>
#include <stddef.h>

#define EGRESS_MAX_ENTRIES  1000    //  entries past this are counted in totals.dropped
#define EGRESS_MAX_HOST     255
#define EGRESS_MAX_ADDRESS  64
#define EGRESS_MAX_METHOD   16
#define EGRESS_MAX_REASON   200

//  NULL if `egress` is an array of at most EGRESS_MAX_ENTRIES entries, each an object with
//  exactly host (0-255 bytes of printable ASCII), port (integer 0-65535), method (1-16 of
//  A-Z), bytes_out, bytes_in (integers >= 0), ms (a number >= 0), outcome ("allowed" or
//  "denied"), and optionally address (1-64 bytes of printable ASCII) and, only when denied,
//  reason (at most 200 bytes, no control characters). Else the PROTO_E_* code that fits,
//  and `why` (size bytes) says which entry and field. Never asserts on input.
const char *egress_check_entries (json_t *egress, char *why, size_t size);

//  The same for `egress_totals`: an object with exactly connections, denied, bytes_out,
//  bytes_in, dropped, each an integer >= 0.
const char *egress_check_totals (json_t *totals, char *why, size_t size);

int egress_check_test (void);
#endif
