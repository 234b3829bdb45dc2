/*  broker/stream.c: output streamed to the submitter while its run goes (`submit` with
    "stream": true). The worker sends what the snippet printed as `output` chunks (its own
    secrets masked already); each is masked here by the policy's masks like the stored
    output, holding back what the next chunk could still turn into a secret (policy/
    mask_stream.c), and pushed to the submitting connection as {"op": "output", "id",
    "stream", "seq", "data"}, seq counting this request's frames from 0.

    Frames are a courtesy, not the record: the final result carries everything. So a push
    never waits and never queues: a connection whose pipe is full, or that is gone, loses
    the frame, and the gap in seq says so. The result is answered after the last frame. */
#include "broker/stream.h"
#include "broker/notify.h"
#include "common/proto.h"
#include "common/util.h"
#include "policy/mask_stream.h"

#define STREAM_HOLD_MAX (64 * 1024)     //  bytes held back per stream waiting for a match

typedef struct {
    zframe_t *routing;
    int64_t seq;
    mask_stream_t *out[2];              //  stdout, stderr; made at the first chunk
} s_entry_t;

struct _stream_t {
    zhashx_t *by_id;                    //  request id as text -> s_entry_t
};

static void
s_entry_destroy (void **item)
{
    s_entry_t *e = (s_entry_t *) *item;
    if (e) {
        zframe_destroy (&e->routing);
        mask_stream_destroy (&e->out[0]);
        mask_stream_destroy (&e->out[1]);
        free (e);
        *item = NULL;
    }
}

stream_t *
stream_new (void)
{
    stream_t *self = (stream_t *) zmalloc (sizeof (stream_t));
    self->by_id = zhashx_new ();
    zhashx_set_destructor (self->by_id, s_entry_destroy);
    return self;
}

void
stream_destroy (stream_t **self_p)
{
    if (*self_p) {
        zhashx_destroy (&(*self_p)->by_id);
        free (*self_p);
        *self_p = NULL;
    }
}

static s_entry_t *
s_entry (broker_t *broker, int64_t id)
{
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    return (s_entry_t *) zhashx_lookup (broker->stream->by_id, key);
}

void
stream_open (broker_t *broker, int64_t id, zframe_t *routing)
{
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    s_entry_t *e = (s_entry_t *) zmalloc (sizeof (s_entry_t));
    e->routing = zframe_dup (routing);
    zhashx_update (broker->stream->by_id, key, e);
}

bool
stream_wanted (broker_t *broker, int64_t id)
{
    return s_entry (broker, id) != NULL;
}

//  Masks and pushes one stream's bytes (last: everything it held back too).
static void
s_push (broker_t *broker, int64_t id, s_entry_t *e, int which, const char *data, size_t size,
        bool last)
{
    if (!e->out[which] && !(e->out[which] = mask_stream_new (STREAM_HOLD_MAX)))
        return;
    size_t n = 0;
    char *out = mask_stream_feed (e->out[which], broker->mask, data, size, last, &n);
    if (out && n) {
        json_t *frame = proto_output (id, which ? "stderr" : "stdout", e->seq++, out, n);
        char *text = frame ? json_dumps (frame, JSON_COMPACT) : NULL;
        if (text)
            notify_push (broker, e->routing, text);     //  a full pipe or gone peer loses it
        free (text);
        json_decref (frame);
    }
    free (out);
}

void
stream_chunk (broker_t *broker, int64_t id, json_t *output)
{
    s_entry_t *e = s_entry (broker, id);
    if (!e)
        return;
    int which = strcmp (json_string_value (json_object_get (output, "stream")), "stderr") == 0;
    json_t *text = json_object_get (output, "data");
    json_t *b64 = json_object_get (output, "data_base64");
    if (json_is_string (text))
        s_push (broker, id, e, which, json_string_value (text), json_string_length (text), false);
    else if (json_is_string (b64)) {
        size_t n = 0;
        char *bytes = base64_decode (json_string_value (b64), json_string_length (b64), &n);
        if (bytes)
            s_push (broker, id, e, which, bytes, n, false);
        free (bytes);
    }
}

void
stream_end (broker_t *broker, int64_t id)
{
    s_entry_t *e = s_entry (broker, id);
    if (!e)
        return;
    for (int which = 0; which < 2; which++)
        if (e->out[which])
            s_push (broker, id, e, which, NULL, 0, true);
    char key[24];
    snprintf (key, sizeof key, "%lld", (long long) id);
    zhashx_delete (broker->stream->by_id, key);
}
