/*  store/store_prune.c: retention: blanks the bodies of old finished requests in batches of
    their own transactions, recording what it removed as `pruned` events. The broker runs it
    (the `prune` op), one batch per pass of its loop; it is the database's only writer. */
#include "store/store_int.h"
#include "common/util.h"
#include <stdlib.h>
#include <assert.h>
#include <stdio.h>

static const char *s_bodies[] = { "code", "stdout", "stderr", "value", "traceback" };

//  Up to STORE_PRUNE_BATCH prunable requests as [{id, <body>_sha256...}], hashed from what is
//  there now. Collected first, so the UPDATEs never run under the open SELECT.
static json_t *
s_prune_pick (store_t *self, const char *before)
{
    binder_t b = { store_stmt (self, ST_PRUNE_PICK), SQLITE_OK };
    store_bind_str (&b, 1, before);
    store_bind_int (&b, 2, STORE_PRUNE_BATCH);
    json_t *rows = store_bound (self, &b, "prune") ? NULL : store_rows (self, b.st, "picking requests");
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        for (size_t k = 0; k < COUNT (s_bodies); k++) {
            json_t *text = json_object_get (row, s_bodies[k]);
            char key[64], sha[65];
            snprintf (key, sizeof key, "%s_base64", s_bodies[k]);
            json_t *b64 = json_object_get (row, key);
            size_t n = 0;           //  a body kept as bytes hashes as those bytes
            char *bytes = json_is_string (b64) ? base64_decode (json_string_value (b64),
                                                                json_string_length (b64), &n) : NULL;
            if (bytes)
                sha256_hex (bytes, n, sha);
            else if (json_is_string (text))
                sha256_hex (json_string_value (text), json_string_length (text), sha);
            free (bytes);
            json_object_del (row, key);
            snprintf (key, sizeof key, "%s_sha256", s_bodies[k]);
            json_object_set_new (row, key, json_is_string (text) ? json_string (sha)
                                                                 : json_null ());
            json_object_del (row, s_bodies[k]);
        }
    return rows;
}

//  Blanks one request and appends its `pruned` event; row is {id, <body>_sha256...}.
static int
s_prune_one (store_t *self, json_t *row, const char *before, const char *actor, const char *at)
{
    int64_t id = json_integer_value (json_object_get (row, "id"));
    binder_t b = { store_stmt (self, ST_PRUNE_SET), SQLITE_OK };
    store_bind_int (&b, 1, id);
    store_bind_str (&b, 2, at);
    if (store_bound (self, &b, "prune") || store_run (self, b.st, "pruning a request"))
        return -1;
    json_object_del (row, "id");
    json_object_set_new (row, "before", json_string (before));
    return store_append (self, id, "pruned", actor, row, at);
}

//  One batch in one transaction; *n = requests pruned in it.
static int
s_prune_batch (store_t *self, const char *before, const char *actor, int64_t *n)
{
    *n = 0;
    if (store_begin (self))
        return -1;
    char at[32];
    store_now (at);
    json_t *rows = s_prune_pick (self, before);
    int rc = rows ? 0 : -1;
    size_t i;
    json_t *row;
    json_array_foreach (rows, i, row)
        if (rc == 0)
            rc = s_prune_one (self, row, before, actor, at);
    *n = rc == 0 ? (int64_t) json_array_size (rows) : 0;
    json_decref (rows);
    return store_end (self, rc, "prune");
}

int
store_prune_batch (store_t *self, const char *before, const char *actor, int64_t *count)
{
    assert (self && before && actor && count);
    *count = 0;
    if (store_writable (self, "prune"))
        return -1;
    return s_prune_batch (self, before, actor, count);
}

int
store_prune (store_t *self, const char *before, const char *actor, int64_t *count)
{
    assert (self && before && actor && count);
    *count = 0;
    int64_t n = 0;
    int rc = 0;
    do {
        rc = store_prune_batch (self, before, actor, &n);
        *count += n;
    } while (rc == 0 && n == STORE_PRUNE_BATCH);
    return rc;
}
