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
#include <czmq.h>

#define HOLD_MAX (64 * 1024)    //  bytes held back per stream waiting for a secret's end

typedef struct {
    mask_stream_t *out [2];     //  stdout, stderr
    int64_t seq;
} s_stream_t;

struct _streams_t {
    zhashx_t *by_id;            //  run id as text -> s_stream_t
};

static void
s_stream_destroy (void **item)
{
    s_stream_t *st = (s_stream_t *) *item;
    if (st) {
        mask_stream_destroy (&st->out [0]);
        mask_stream_destroy (&st->out [1]);
        free (st);
        *item = NULL;
    }
}

streams_t *
streams_new (void)
{
    streams_t *self = (streams_t *) zmalloc (sizeof (streams_t));
    self->by_id = zhashx_new ();
    zhashx_set_destructor (self->by_id, s_stream_destroy);
    return self;
}

void
streams_destroy (streams_t **self_p)
{
    if (*self_p) {
        zhashx_destroy (&(*self_p)->by_id);
        free (*self_p);
        *self_p = NULL;
    }
}

void
streams_open (streams_t *self, int64_t id)
{
    char key [24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    s_stream_t *st = (s_stream_t *) zmalloc (sizeof (s_stream_t));
    st->out [0] = mask_stream_new (HOLD_MAX);
    st->out [1] = mask_stream_new (HOLD_MAX);
    zhashx_update (self->by_id, key, st);
}

void
streams_pump (streams_t *self, session_t *s, mask_t *mask, streams_send_fn *send, void *arg,
              bool last)
{
    char key [24];
    int64_t id = session_running_id (s);
    snprintf (key, sizeof key, "%lld", (long long) id);
    s_stream_t *st = (s_stream_t *) zhashx_lookup (self->by_id, key);
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
    if (last)
        zhashx_delete (self->by_id, key);
}
