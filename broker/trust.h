/*  broker/trust.h: the public keys the broker trusts right now, for connections that are
    already open. zauth checks DIR/keys/trusted only when a connection is made; this set is
    checked on every message, so a key revoked (by `revoke`, or its cert deleted or moved
    out of trusted/ by hand) stops speaking within a second on connections it already has. */
#ifndef RG_TRUST_H
#define RG_TRUST_H
#include "broker/broker.h"

//  Loads the certs of `dir` (DIR/keys/trusted): every regular file not ending in _secret,
//  as zauth reads it. NULL (logged) if the directory cannot be read.
trust_t *trust_new (const char *dir);
void trust_destroy (trust_t **self_p);

//  True if `key` (z85, as zframe_meta (frame, "User-Id") gives it) is trusted. The common
//  case is one hash lookup; on a miss the directory is looked at again if it changed since
//  the last scan (a key trusted a moment ago must not be refused while zauth admits it).
bool trust_check (broker_t *broker, const char *key);

//  Rescans the directory at most once a second, and only reloads when a file in it changed;
//  each key gone since records a `revoked` event with actor "broker".
void trust_tick (broker_t *broker);

//  Stops trusting `key` at once (the `revoke` op already moved its cert away and records
//  the event itself). False if it was not trusted.
bool trust_forget (trust_t *self, const char *key);

//  The `revoke` op (admin keys only): moves DIR/keys/trusted/NAME.cert to DIR/keys/revoked/,
//  stops trusting its key at once and records a `revoked` event with the admin as actor.
void trust_revoke (broker_t *broker, caller_t *c, json_t *msg);

int trust_test (void);
#endif
