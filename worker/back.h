/*  worker/back.h: the worker's privileged back (see front.h for the split): the pool of
    sessions, the sandboxes, the secrets, and the one event loop that polls the front's
    socketpair and every session's pipes. */
#ifndef RG_BACK_H
#define RG_BACK_H
#include "worker/options.h"
#include <sys/types.h>

//  Loads the secrets, builds the sandboxes (fail closed), then serves the front on fd (its
//  end of the socketpair, taken) until interrupted or the front goes; front is its pid,
//  reaped before returning. Returns the process's exit code.
int back_run (options_t *args, int fd, pid_t front);

#endif
