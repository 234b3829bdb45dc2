/*  worker/front.h: the worker's unprivileged front, in the OpenBSD privilege-separation way.

    replgate-worker is two processes. After parsing its command line and loading its CURVE
    keys it makes a SOCK_SEQPACKET socketpair and forks:

    - The back (back.h, the process started, pid kept): root, the pool of sessions, the
      sandboxes and cgroups (spawn.c), the secrets (read only after the fork, so they are
      never in the front's memory). It never reads the network and never parses JSON: it
      reads typed binary messages (wire.h) from the front, builds result frames, masks the
      secrets out of them and hands them over finished.
    - The front (this module): its own uid and gid (--uid-base + the number of sandbox boxes,
      one past the last box, so no session shares it), no groups, no capabilities in any
      set, no new privileges, not dumpable, an empty unlinked root when the broker endpoint
      is a numeric tcp:// address, and a seccomp allowlist (drop.h) that lets it make no
      thread and no process. It is one thread: its CURVE link to the broker is spoken by
      common/zmtp.c in its own loop, not by libzmq's I/O threads. It owns that link and all
      of the broker's JSON: it reads `run`, `close`, `announce`, checks a run's fields and
      limits against the command line (refusing bad ones itself with an error result), and
      sends the back typed RUN, CLOSE and STATE messages. It forwards the back's READY, RESULT and CLOSED frames as
      they are. Not run as root, it keeps its uid (logged) and everything else applies.

    Either side's death ends the other: the front has the parent-death signal (SIGKILL) and
    also stops when the socketpair closes; the back stops when the socketpair closes and
    reaps the front. A message from the front the back cannot decode, or whose fields are
    out of range, means the front is compromised or broken: the back kills it and exits
    with an error. The warm path costs one socketpair hop each way, no process per snippet. */
#ifndef RG_FRONT_H
#define RG_FRONT_H
#include "worker/options.h"
#include "common/zmtp.h"
#include <sys/types.h>

//  Runs the front on fd (its end of the socketpair) until the back goes away; parent is the
//  back's pid. keys (the worker's pair and the broker's public key) are the link's. Returns
//  the process's exit code.
int front_run (const options_t *args, const zmtp_keys_t *keys, int fd, pid_t parent);

#endif
