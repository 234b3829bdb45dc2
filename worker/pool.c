/*  worker/pool.c: the slot table and its least-recently-used eviction. */
#include "worker/pool.h"
#include "common/util.h"
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    session_t *session;
    uint64_t used;              //  tick of the last claim; higher is more recent
    int64_t used_ms;            //  monotonic ms of the last claim or of its run's end
} s_slot_t;

struct _pool_t {
    s_slot_t *slots;
    size_t size;
    uint64_t tick;
};

pool_t *
pool_new (size_t slots)
{
    pool_t *self = calloc (1, sizeof *self);
    if (self && !(self->slots = calloc (slots, sizeof *self->slots))) {
        free (self);
        self = NULL;
    }
    if (!self) {
        log_error ("pool: out of memory");
        return NULL;
    }
    self->size = slots;
    return self;
}

void
pool_destroy (pool_t **self_p)
{
    assert (self_p);
    pool_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->size; i++)
        session_destroy (&self->slots [i].session);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

size_t
pool_slots (pool_t *self)
{
    return self->size;
}

session_t *
pool_at (pool_t *self, size_t i)
{
    return i < self->size ? self->slots [i].session : NULL;
}

//  A session is found by all three parts of its key: the name alone would hand one
//  principal's interpreter (its variables, files and hooks) to another that names it.
static s_slot_t *
s_slot_of (pool_t *self, const char *owner, const char *name, const char *lang)
{
    for (size_t i = 0; i < self->size; i++) {
        session_t *s = self->slots [i].session;
        if (s && strcmp (session_name (s), name) == 0 && strcmp (session_lang (s), lang) == 0
        &&  strcmp (session_owner (s), owner) == 0)
            return &self->slots [i];
    }
    return NULL;
}

session_t *
pool_find (pool_t *self, const char *owner, const char *name, const char *lang)
{
    s_slot_t *slot = s_slot_of (self, owner, name, lang);
    return slot ? slot->session : NULL;
}

//  A free slot, or the least recently used idle one (emptied into *evicted).
static s_slot_t *
s_free_slot (pool_t *self, session_t **evicted)
{
    s_slot_t *lru = NULL;
    for (size_t i = 0; i < self->size; i++) {
        s_slot_t *slot = &self->slots [i];
        if (!slot->session)
            return slot;
        if (!session_busy (slot->session) && (!lru || slot->used < lru->used))
            lru = slot;
    }
    if (lru) {
        *evicted = lru->session;
        lru->session = NULL;
    }
    return lru;
}

session_t *
pool_claim (pool_t *self, const char *owner, const char *name, const char *lang,
            session_t **evicted)
{
    *evicted = NULL;
    s_slot_t *slot = s_slot_of (self, owner, name, lang);
    if (!slot) {
        session_t *session = session_new (lang, owner, name);
        if (!session)
            return NULL;
        slot = s_free_slot (self, evicted);
        if (!slot) {
            session_destroy (&session);
            return NULL;
        }
        slot->session = session;
    }
    slot->used = ++self->tick;
    slot->used_ms = clock_mono_ms ();
    return slot->session;
}

void
pool_remove (pool_t *self, session_t **session_p)
{
    for (size_t i = 0; i < self->size; i++)
        if (self->slots [i].session == *session_p)
            self->slots [i].session = NULL;
    session_destroy (session_p);
}

session_t *
pool_expire (pool_t *self, int64_t now, int64_t ttl_ms)
{
    for (size_t i = 0; i < self->size; i++) {
        s_slot_t *slot = &self->slots [i];
        if (slot->session && session_busy (slot->session))
            slot->used_ms = now;            //  a run keeps it in use until it ends
        else
        if (slot->session && now - slot->used_ms >= ttl_ms) {
            session_t *idle = slot->session;
            slot->session = NULL;
            return idle;
        }
    }
    return NULL;
}

void
pool_touch (pool_t *self, session_t *session)
{
    for (size_t i = 0; i < self->size; i++)
        if (self->slots [i].session == session)
            self->slots [i].used_ms = clock_mono_ms ();
}
