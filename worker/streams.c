/*  worker/streams.c: output of runs that asked for it as it comes (`run` with "stream":
    true). After each step of a streamed run's session, what it printed since is masked with
    the worker's secrets (holding back what the next bytes could turn into one: a secret
    split across two reads is masked like a whole one) and sent as {"op": "output", "id",
    "stream", "seq", "data"} before the run's result. The broker masks its own detectors
    over the chunks the same way. Streams of runs that never asked cost one lookup a step. */
#include "worker/streams.h"
#include "common/proto.h"
#include "common/util.h"
#include "policy/mask_stream.h"
#include <stdio.h>
#include <stdlib.h>

#define HOLD_MAX (64 * 1024)    //  bytes held back per stream waiting for a secret's end

//  One streamed run; a list, since a worker runs at most --slots at once.
typedef struct s_stream_s {
    struct s_stream_s *next;
    int64_t id;
    mask_stream_t *out [2];     //  stdout, stderr
    int64_t seq;
} s_stream_t;

struct _streams_t {
    s_stream_t *head;
};

static void
s_stream_destroy (s_stream_t **st_p)
{
    s_stream_t *st = *st_p;
    if (st) {
        mask_stream_destroy (&st->out [0]);
        mask_stream_destroy (&st->out [1]);
        free (st);
        *st_p = NULL;
    }
}

//  Where run id's stream is linked from, or where it would be added.
static s_stream_t **
s_find (streams_t *self, int64_t id)
{
    s_stream_t **at = &self->head;
    while (*at && (*at)->id != id)
        at = &(*at)->next;
    return at;
}

streams_t *
streams_new (void)
{
    return (streams_t *) calloc (1, sizeof (streams_t));
}

void
streams_destroy (streams_t **self_p)
{
    streams_t *self = *self_p;
    if (self) {
        while (self->head) {
            s_stream_t *st = self->head;
            self->head = st->next;
            s_stream_destroy (&st);
        }
        free (self);
        *self_p = NULL;
    }
}

void
streams_open (streams_t *self, int64_t id)
{
    s_stream_t **at = s_find (self, id), *old = *at;
    s_stream_t *st = (s_stream_t *) calloc (1, sizeof (s_stream_t));
    if (!st) {
        log_error ("streams: out of memory: run %lld is not streamed", (long long) id);
        return;
    }
    st->id = id;
    st->out [0] = mask_stream_new (HOLD_MAX);
    st->out [1] = mask_stream_new (HOLD_MAX);
    //  A run opened again starts a stream of its own, as the first was never finished.
    st->next = old ? old->next : NULL;
    *at = st;
    s_stream_destroy (&old);
}

void
streams_pump (streams_t *self, session_t *s, mask_t *mask, streams_send_fn *send, void *arg,
              bool last)
{
    int64_t id = session_running_id (s);
    s_stream_t **at = s_find (self, id), *st = *at;
    if (!st)
        return;
    for (int which = 0; which < 2; which++) {
        const char *data = NULL;
        size_t got = session_output (s, which, &data), n = 0;
        if ((!got && !last) || !st->out [which])
            continue;
        char *out = mask_stream_feed (st->out [which], mask, data, got, last, &n);
        json_t *msg = out && n ? proto_output (id, which ? "stderr" : "stdout", st->seq++, out, n)
                               : NULL;
        if (msg)
            send (arg, &msg);
        free (out);
    }
    if (last) {
        *at = st->next;
        s_stream_destroy (&st);
    }
}
