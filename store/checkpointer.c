/*  store/checkpointer.c: background WAL checkpoints (see checkpointer.h). */
#include "store/checkpointer.h"
#include "common/util.h"
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct _checkpointer_t {
    sqlite3 *db;
    char *path;
    int interval_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool started;               //  the thread runs (only the owner's thread reads it)
    bool stop;                  //  under lock
    int64_t count;              //  under lock
    char error[160];            //  under lock: why the last checkpoint failed, or ""
};

static void
s_checkpoint (checkpointer_t *self)
{
    int frames = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2 (self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &done);
    //  BUSY: another checkpoint (sqlite3, replgate prune) runs; the next turn catches up.
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        log_error ("checkpointer: %s: %s", self->path, sqlite3_errmsg (self->db));
    pthread_mutex_lock (&self->lock);
    self->count += rc == SQLITE_OK;
    if (rc == SQLITE_OK)
        self->error[0] = 0;
    else if (rc != SQLITE_BUSY)
        snprintf (self->error, sizeof self->error, "%s", sqlite3_errmsg (self->db));
    pthread_mutex_unlock (&self->lock);
}

static void *
s_run (void *arg)
{
    checkpointer_t *self = (checkpointer_t *) arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stop) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += self->interval_ms / 1000;
        until.tv_nsec += (long) (self->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!self->stop && pthread_cond_timedwait (&self->wake, &self->lock, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock (&self->lock);
        s_checkpoint (self);
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

checkpointer_t *
checkpointer_new (const char *path, int interval_ms)
{
    checkpointer_t *self = calloc (1, sizeof *self);
    if (!self || !(self->path = strdup (path))) {
        log_error ("checkpointer: out of memory");
        free (self);
        return NULL;
    }
    self->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    int rc = sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout (self->db, 1000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (self->db, "PRAGMA wal_autocheckpoint = 0", NULL, NULL, NULL);
    //  A connection learns the file is in WAL mode on its first read; until then a checkpoint
    //  request is a silent no-op.
    if (rc == SQLITE_OK)
        rc = sqlite3_exec (self->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        log_error ("checkpointer: cannot open %s: %s", path,
                   self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
        checkpointer_destroy (&self);
        return NULL;
    }
    if ((rc = pthread_create (&self->thread, NULL, s_run, self)) != 0) {
        log_error ("checkpointer: cannot start its thread: %s", strerror (rc));
        checkpointer_destroy (&self);
        return NULL;
    }
    self->started = true;
    return self;
}

void
checkpointer_destroy (checkpointer_t **self_p)
{
    checkpointer_t *self = *self_p;
    if (!self)
        return;
    if (self->started) {
        pthread_mutex_lock (&self->lock);
        self->stop = true;
        pthread_cond_signal (&self->wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->thread, NULL);
    }
    sqlite3_close (self->db);
    pthread_cond_destroy (&self->wake);
    pthread_mutex_destroy (&self->lock);
    free (self->path);
    free (self);
    *self_p = NULL;
}

bool
checkpointer_failing (checkpointer_t *self, char *why, size_t size)
{
    pthread_mutex_lock (&self->lock);
    bool failing = self->error[0] != 0;
    if (failing)
        snprintf (why, size, "%s", self->error);
    pthread_mutex_unlock (&self->lock);
    return failing;
}

int64_t
checkpointer_count (checkpointer_t *self)
{
    pthread_mutex_lock (&self->lock);
    int64_t count = self->count;
    pthread_mutex_unlock (&self->lock);
    return count;
}
