/*  worker/main.c: replgate-worker: parses the command line, loads the CURVE keys, and splits
    into the privileged back (back.h: sessions, sandboxes, secrets) and the unprivileged
    front (front.h: the broker link and its JSON), joined by a SOCK_SEQPACKET socketpair.
    The process started stays the back, so signalling it (or its death) ends the worker. */
#define _GNU_SOURCE
#include "worker/back.h"
#include "worker/egress.h"
#include "worker/front.h"
#include "worker/options.h"
#include "worker/uidlock.h"
#include "common/certfile.h"
#include "common/util.h"
#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

int
main (int argc, char *argv [])
{
    //  A granted run's proxy (egress.h): started by the back, never by hand.
    if (argc >= 2 && strcmp (argv [1], "--egress-proxy") == 0) {
        log_set_name ("replgate-proxy");
        return egress_proxy_main (argc - 2, argv + 2);
    }
    log_set_name ("replgate-worker");
    options_t args;
    int rc = options_parse (argc, argv, &args);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (sodium_init () < 0) {
        log_error ("sodium_init failed");
        return 1;
    }
    //  Our pair (--key names the cert or its _secret file) and the broker's public key.
    zmtp_keys_t keys;
    char err [1200];
    if (certfile_load (args.key, args.server_key, &keys, err, sizeof err) != 0) {
        fprintf (stderr, "replgate-worker: %s\n", err);     //  it names the file
        return 2;
    }
    //  A range of sandbox uids of our own, held for our life (the back keeps the lock; the
    //  front closes every descriptor but its socketpair).
    int uid_lock = -1;
    if (args.spawn.sandbox && !args.uid_base_given && geteuid () == 0) {
        unsigned base;
        size_t size = (size_t) (spawn_front_uid (&args.spawn) - args.spawn.uid_base) + 1;
        if (uidlock_claim (UIDLOCK_DIR, size, &base, &uid_lock) != 0) {
            sodium_memzero (&keys, sizeof keys);
            return 1;
        }
        args.spawn.uid_base = base;
        log_info ("sandbox uids %u to %u (lock %s/uids-%u.lock)", base, base + (unsigned) size - 1,
                  UIDLOCK_DIR, base);
    }
    //  Before any secret is read and before any thread exists: the front gets neither.
    int sv [2];
    if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        log_error ("socketpair: %s", strerror (errno));
        sodium_memzero (&keys, sizeof keys);
        return 1;
    }
    pid_t back = getpid ();
    pid_t front = fork ();
    if (front < 0) {
        log_error ("fork: %s", strerror (errno));
        sodium_memzero (&keys, sizeof keys);
        return 1;
    }
    if (front == 0) {
        close (sv [0]);
        rc = front_run (&args, &keys, sv [1], back);
        sodium_memzero (&keys, sizeof keys);
        return rc;
    }
    close (sv [1]);
    sodium_memzero (&keys, sizeof keys);        //  the back never speaks CURVE
    return back_run (&args, sv [0], front);
}
