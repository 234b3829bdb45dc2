/*  worker/proxy_resolve.c: a small pool of getaddrinfo threads (see proxy_resolve.h).

    Why threads rather than getaddrinfo_a: getaddrinfo_a also runs getaddrinfo in threads
    (glibc's), but reports through signals or its own thread callbacks; a pipe carrying a job
    pointer per answer fits the proxy's poll loop directly and keeps every answer's
    ownership plain. The pool is fixed (RESOLVERS threads) so a flood of lookups queues
    instead of making threads without end. The resolver is never torn down: a thread can be
    inside getaddrinfo for seconds, and the proxy process ends with _exit. */
#define _GNU_SOURCE
#include "worker/proxy_resolve.h"
#include "common/util.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESOLVERS 4

struct _proxy_resolver_t {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    proxy_job_t *head, *tail;       //  questions not yet taken by a thread
    int threads;
    int rd, wr;                     //  answers: one proxy_job_t pointer per write
};

proxy_resolver_t *
proxy_resolver_new (void)
{
    proxy_resolver_t *self = calloc (1, sizeof *self);
    int fds [2];
    if (!self || pipe2 (fds, O_CLOEXEC) != 0) {
        log_error ("proxy: resolver: %s", strerror (errno));
        free (self);
        return NULL;
    }
    //  Only the reading end is non-blocking: a thread waits for room, the loop never does.
    if (fcntl (fds [0], F_SETFL, O_NONBLOCK) != 0) {
        log_error ("proxy: resolver: %s", strerror (errno));
        close (fds [0]);
        close (fds [1]);
        free (self);
        return NULL;
    }
    self->rd = fds [0];
    self->wr = fds [1];
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->wake, NULL);
    return self;
}

int
proxy_resolver_fd (proxy_resolver_t *self)
{
    return self->rd;
}

static void *
s_thread (void *arg)
{
    proxy_resolver_t *self = arg;
    for (;;) {
        pthread_mutex_lock (&self->lock);
        while (!self->head)
            pthread_cond_wait (&self->wake, &self->lock);
        proxy_job_t *job = self->head;
        self->head = job->next;
        if (!self->head)
            self->tail = NULL;
        pthread_mutex_unlock (&self->lock);
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        job->rc = getaddrinfo (job->host, NULL, &hints, &job->res);
        //  A pointer is far below PIPE_BUF: the write is whole or fails.
        while (write (self->wr, &job, sizeof job) < 0 && errno == EINTR)
            ;
    }
    return NULL;
}

int
proxy_resolver_ask (proxy_resolver_t *self, int slot, uint32_t serial, const char *host)
{
    proxy_job_t *job = calloc (1, sizeof *job);
    if (!job)
        return -1;
    job->slot = slot;
    job->serial = serial;
    snprintf (job->host, sizeof job->host, "%s", host);
    pthread_mutex_lock (&self->lock);
    if (self->threads < RESOLVERS) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init (&attr);
        pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create (&tid, &attr, s_thread, self) == 0)
            self->threads++;
        pthread_attr_destroy (&attr);
    }
    if (self->threads == 0) {
        pthread_mutex_unlock (&self->lock);
        free (job);
        return -1;
    }
    if (self->tail)
        self->tail->next = job;
    else
        self->head = job;
    self->tail = job;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    return 0;
}

proxy_job_t *
proxy_resolver_take (proxy_resolver_t *self)
{
    proxy_job_t *job = NULL;
    ssize_t n = read (self->rd, &job, sizeof job);
    return n == (ssize_t) sizeof job ? job : NULL;
}

void
proxy_job_free (proxy_job_t **job_p)
{
    if (*job_p) {
        if ((*job_p)->rc == 0 && (*job_p)->res)
            freeaddrinfo ((*job_p)->res);
        free (*job_p);
        *job_p = NULL;
    }
}
