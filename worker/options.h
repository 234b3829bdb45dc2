/*  worker/options.h: the worker's command line: what it serves, where, and the defaults and
    maxima of every limit a run may ask for. Parsed once, before the worker splits into its
    front and back (front.h), so both hold the same copy. */
#ifndef RG_OPTIONS_H
#define RG_OPTIONS_H
#include "worker/session.h"
#include "worker/spawn.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define OPTIONS_MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define OPTIONS_MAX_OUTPUT (256LL << 20)
#define OPTIONS_MAX_NAME 256
//  A run with a network grant: the connections and bytes its proxy carries unless its
//  rule's limits say otherwise (egress_connections, egress_bytes), and their ceilings.
#define OPTIONS_EGRESS_CONNECTIONS 256
#define OPTIONS_EGRESS_BYTES (1LL << 30)
#define OPTIONS_MAX_EGRESS_CONNECTIONS 100000
#define OPTIONS_MAX_EGRESS_BYTES (1LL << 40)

typedef struct {
    const char *broker;
    const char *key;
    const char *server_key;
    char name [OPTIONS_MAX_NAME];
    size_t slots;
    int64_t timeout_ms;
    size_t output_bytes;
    spawn_config_t spawn;       //  sandbox switches, defaults for memory, pids, tmp
    int64_t max_memory_mb;      //  the most a run may ask for
    int64_t max_pids;
    int64_t max_tmp_mb;
    int64_t max_cpu_milli;      //  thousandths of a CPU
    const char *secrets_path;   //  --secrets FILE, or NULL
    int64_t idle_ttl_ms;        //  an idle session unused this long leaves its slot
    bool uid_base_given;        //  --uid-base: else the worker claims a free range (uidlock.h)
    const char *labels;         //  --labels a,b: what placement rules may ask for, or NULL
    int64_t offer_memory_mb;    //  --offer-memory-mb: the memory it offers the broker's placement
    bool exit_when_drained;     //  --exit-when-drained: leave once a drain emptied it
} options_t;

//  The --labels as a JSON array (the caller owns it), or NULL if none were given.
json_t *options_labels (const options_t *args);

//  0 to run, 1 after --help, -1 on a usage error (already reported).
int options_parse (int argc, char *argv [], options_t *args);

//  The limits a run gets when it names none.
void options_default_limits (const options_t *args, session_limits_t *limits);
//  True if every limit lies within what the command line allows (a run's limits, as the
//  back receives them from the front).
bool options_limits_ok (const options_t *args, const session_limits_t *limits);

#endif
