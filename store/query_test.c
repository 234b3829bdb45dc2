/*  store/query_test.c: query_test, run by store_test: filters select exactly their rows,
    and a callback can stop a walk. */
#include "store/query.h"
#include "store/store.h"
#include "common/check.h"
#include <stdio.h>
#include <unistd.h>

static int
s_test_count (json_t *row, void *arg)
{
    int64_t *n = (int64_t *) arg;
    (*n)++;
    return *n == 100 ? 7 : 0;           //  a walk stops when fn says so
}

static int64_t
s_test_walk (store_t *store, bool events, const char *key, const char *value)
{
    json_t *filters = key ? json_pack ("{s:s}", key, value) : NULL;
    int64_t n = 0;
    int rc = events ? store_each_event (store, filters, s_test_count, &n)
                    : store_each (store, filters, s_test_count, &n);
    json_decref (filters);
    return rc == 0 ? n : rc == 7 ? -7 : -1;
}

int
query_test (const char *dir)
{
    char path[256];
    snprintf (path, sizeof path, "%s/query.db", dir);
    store_t *store = store_new (path, 0);
    CHECK (store);
    for (int i = 0; store && i < 120; i++) {
        json_t *req = json_pack ("{s:s, s:s, s:s, s:s, s:s}", "principal", i % 3 ? "ann" : "ben",
                                 "role", "agent", "session", i % 2 ? "odd" : "even",
                                 "lang", "python", "code", "1");
        int64_t id;
        bool duplicate;
        CHECK (store_submit (store, req, &id, &duplicate) == 0);
        json_decref (req);
    }
    CHECK (store_event (store, 0, "note", "ann", NULL) == 0);
    CHECK (s_test_walk (store, false, NULL, NULL) == -7);
    CHECK (s_test_walk (store, false, "principal", "ben") == 40);
    CHECK (s_test_walk (store, false, "session", "odd") == 60);
    CHECK (s_test_walk (store, false, "state", "queued") == 0);
    CHECK (s_test_walk (store, false, "until", "2000-01-01") == 0);
    CHECK (s_test_walk (store, false, "sessoin", "odd") == -1);
    CHECK (s_test_walk (store, true, "principal", "ben") == 40);
    CHECK (s_test_walk (store, true, "since", "2000-01-01") == -7);
    store_destroy (&store);
    unlink (path);
    return 0;
}
