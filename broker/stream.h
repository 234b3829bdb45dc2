/*  broker/stream.h: output streamed to a submitter while its run goes (see stream.c). */
#ifndef RG_STREAM_H
#define RG_STREAM_H
#include "broker/broker.h"

stream_t *stream_new (void);
void stream_destroy (stream_t **self_p);

//  The submitter of request id (connection `routing`, copied) wants its output as it comes.
void stream_open (broker_t *broker, int64_t id, zframe_t *routing);
//  True if someone wants request id's output streamed (its `run` asks the worker to).
bool stream_wanted (broker_t *broker, int64_t id);
//  A chunk the worker sent (its `output` message): masked, then pushed to the submitter.
void stream_chunk (broker_t *broker, int64_t id, json_t *output);
//  The request ended (or will never run): what was held back goes out, and the stream ends.
void stream_end (broker_t *broker, int64_t id);

#endif
