/*  broker/broker.h: the broker's shared state, owned by broker/main.c and handed by pointer
    to the modules that work on it (see the layers in README.md's Layout). One thread, one loop:
    nothing here is locked. */
#ifndef RG_BROKER_H
#define RG_BROKER_H
#include <czmq.h>
#include <jansson.h>
#include <stdbool.h>
#include "store/checkpointer.h"
#include "common/version.h"
#include "store/store.h"

#define BROKER_VERSION       REPLGATE_VERSION
#define RUN_GRACE_MS         2000   //  past a run's own limit, the broker ends it itself
#define AWAIT_DEFAULT_MS     30000

typedef struct _dispatch_t dispatch_t;
typedef struct _notify_t notify_t;
typedef struct _approvals_t approvals_t;
typedef struct _policy_t policy_t;
typedef struct _mask_t mask_t;
typedef struct _outbox_t outbox_t;
typedef struct _trust_t trust_t;
typedef struct _refusals_t refusals_t;
typedef struct _backlog_t backlog_t;
typedef struct _prune_t prune_t;
typedef struct _stream_t stream_t;
typedef struct _fleet_t fleet_t;
typedef struct _pass_t pass_t;

typedef struct {
    char *dir;                  //  state directory (keys, database)
    char *client_ep;            //  where agents, approvers and admins connect
    char *worker_ep;            //  where workers connect
    char *db_path;
    char *policy_path;          //  the policy file (default DIR/policy.json)
    bool sync_full;             //  fsync every commit (power-loss durable) instead of WAL NORMAL
    int timeout_ms;             //  default per-snippet wall-clock limit sent to workers
    int max_timeout_ms;         //  the most a submit may ask where its rule sets no timeout_ms
    int output_bytes;           //  default per-stream output cap sent to workers
    int placement_wait_ms;      //  how long queued requests wait for a worker with their labels
} broker_config_t;

typedef struct {
    broker_config_t cfg;
    zactor_t *auth;             //  zauth: CURVE over DIR/keys/trusted, started before any bind
    zsock_t *clients;           //  ROUTER
    zsock_t *workers;           //  ROUTER
    store_t *store;             //  the only writer of the database
    checkpointer_t *checkpointer;   //  copies its WAL back, off the loop
    dispatch_t *dispatch;       //  workers, the queue, sticky sessions
    notify_t *notify;           //  long polls (await, submit wait_ms) and subscribers
    approvals_t *approvals;     //  requests parked for approval: expiry and bound hashes
    policy_t *policy;           //  the policy in force (replaced whole on SIGHUP)
    mask_t *mask;               //  built-in detectors plus the policy's masks
    outbox_t *outbox;           //  replies a connection could not take yet
    trust_t *trust;             //  keys trusted now: checked on every message of open connections
    refusals_t *refusals;       //  refused messages, counted per connection until recorded
    backlog_t *backlog;         //  writes the database refused, kept in order until it takes them
    prune_t *prune;             //  the retention run under way, if any
    stream_t *stream;           //  submitters that want their output as it comes
    fleet_t *fleet;             //  workers that left, draining, requests no worker can take
    pass_t *pass;               //  the pass over the client socket under way: its replies wait
} broker_t;

//  The caller of a client operation, read from the authenticated connection.
typedef struct {
    zframe_t *routing;          //  ROUTER identity of the connection (not owned)
    const char *principal;      //  cert `name`
    const char *role;           //  cert `role`
    const char *groups;         //  cert `groups`, comma-separated, or NULL
    const char *pubkey;         //  the CURVE public key (z85) the connection authenticated with
    json_t *rid;                //  echoed in the reply (not owned)
    size_t size;                //  bytes of the request frame
} caller_t;

//  Sends one reply frame (a JSON string the function takes and frees) to a client connection.
//  Never blocks; a client that is gone or too slow loses the reply (logged), nothing else.
void broker_send_client (broker_t *self, zframe_t *routing, char *text);

//  Refuses a client request: the error reply, and the refusal counted toward its
//  connection's next aggregated `rejected` event (code and size only), so that probing
//  (forbidden, not_found, bad_state) leaves a trace like garbage does.
void broker_refuse (broker_t *self, caller_t *c, const char *code, const char *message);

#endif
