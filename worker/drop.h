/*  worker/drop.h: confines the worker's front (see front.h) before it touches the network:
    its own uid and gid, no supplementary groups, no capabilities in any set, an empty root
    directory when its endpoint needs no file system, no new privileges, not dumpable, the
    parent's death kills it, and a seccomp allowlist of what its one thread calls (no
    threads, no processes). */
#ifndef RG_DROP_H
#define RG_DROP_H
#include <stdbool.h>
#include <sys/types.h>

//  True if endpoint is tcp:// to a numeric address: connecting (and reconnecting) then reads
//  no file (no /etc/hosts, no resolver), so the front can live in an empty root.
bool drop_needs_no_files (const char *endpoint);

//  Confines the calling process, the front, forked from parent: uid and gid `uid` when run
//  as root (else a logged note: it keeps its uid, and the rest still applies), chroot into
//  an empty directory when `empty_root`. Must run before any thread exists, and none may
//  be made after. 0, or -1
//  (logged): the front must then exit.
int drop_privileges (uid_t uid, bool empty_root, pid_t parent);

int drop_test (void);
#endif
