/*  worker/streams.h: output of runs that asked for it as it comes (see streams.c). */
#ifndef RG_STREAMS_H
#define RG_STREAMS_H
#include "worker/session.h"
#include "policy/mask.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct _streams_t streams_t;

streams_t *streams_new (void);
void streams_destroy (streams_t **self_p);

//  Run `id` streams its output from now on.
void streams_open (streams_t *self, int64_t id);
//  Where the `output` messages go (takes the message).
typedef void (streams_send_fn) (void *arg, json_t **msg_p);

//  Sends what session s (running a streamed run) printed since the last call as `output`
//  messages, its secrets masked by `mask`. With `last` (the run ended: call before its
//  result is sent) what was held back goes too, and the run's stream is forgotten.
void streams_pump (streams_t *self, session_t *s, mask_t *mask, streams_send_fn *send,
                   void *arg, bool last);

#endif
