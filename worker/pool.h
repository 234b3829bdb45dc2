/*  worker/pool.h: the worker's slots. Each slot holds one session, keyed by (owner, name, lang);
    when every slot is taken, a new key evicts the least recently used idle session. */
#ifndef RG_POOL_H
#define RG_POOL_H
#include "worker/session.h"
#include <stddef.h>

typedef struct _pool_t pool_t;

pool_t *pool_new (size_t slots);
//  Destroys every session (killing its interpreter).
void pool_destroy (pool_t **self_p);

size_t pool_slots (pool_t *self);
//  The session in slot i, or NULL if the slot is free.
session_t *pool_at (pool_t *self, size_t i);
session_t *pool_find (pool_t *self, const char *owner, const char *name, const char *lang);

//  The session for (owner, name, lang), made in a free slot if there is none, and marked as just
//  used. If no slot is free the least recently used idle session is taken out and handed to
//  the caller in *evicted (report it, then destroy it). NULL if every slot is busy or the
//  session cannot be made.
session_t *pool_claim (pool_t *self, const char *owner, const char *name, const char *lang,
                       session_t **evicted);

//  An idle session unused for ttl_ms (monotonic `now`), taken out of its slot and handed to
//  the caller (report it, then destroy it), or NULL. Call again until NULL. A busy session
//  counts as used until its run ends.
session_t *pool_expire (pool_t *self, int64_t now, int64_t ttl_ms);

//  The session was just used (its run ended): its time to live starts again.
void pool_touch (pool_t *self, session_t *session);

//  Takes the session out of its slot and destroys it.
void pool_remove (pool_t *self, session_t **session_p);

#endif
