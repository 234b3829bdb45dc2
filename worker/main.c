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
#include "common/util.h"
#include <czmq.h>
#include <sodium.h>
#include <sys/socket.h>

//  --------------------------------------------------------------------------
//  Keys: our certificate with its secret half, and the broker's public key.

static bool
s_all_zero (const byte *key)
{
    byte any = 0;
    for (int i = 0; i < 32; i++)
        any |= key [i];
    return any == 0;
}

static zcert_t *
s_load_keys (const options_t *args, char server_key [41])
{
    //  zcert_load() adds "_secret" itself; accept either file name.
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s", args->key);
    size_t len = strlen (path);
    if (len > 7 && strcmp (path + len - 7, "_secret") == 0)
        path [len - 7] = 0;
    zcert_t *cert = zcert_load (path);
    if (!cert || s_all_zero (zcert_secret_key (cert))) {
        fprintf (stderr, "replgate-worker: --key %s: %s\n", args->key,
                 cert ? "no secret key (expected FILE_secret next to it)"
                      : "cannot read a czmq certificate");
        zcert_destroy (&cert);
        return NULL;
    }
    zcert_t *server = zcert_load (args->server_key);
    if (!server) {
        fprintf (stderr, "replgate-worker: --server-key %s: cannot read a czmq certificate\n",
                 args->server_key);
        zcert_destroy (&cert);
        return NULL;
    }
    snprintf (server_key, 41, "%s", zcert_public_txt (server));
    zcert_destroy (&server);
    return cert;
}

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
    char server_key [41];
    zcert_t *cert = s_load_keys (&args, server_key);
    if (!cert)
        return 2;
    //  A range of sandbox uids of our own, held for our life (the back keeps the lock; the
    //  front closes every descriptor but its socketpair).
    int uid_lock = -1;
    if (args.spawn.sandbox && !args.uid_base_given && geteuid () == 0) {
        unsigned base;
        size_t size = (size_t) (spawn_front_uid (&args.spawn) - args.spawn.uid_base) + 1;
        if (uidlock_claim (UIDLOCK_DIR, size, &base, &uid_lock) != 0) {
            zcert_destroy (&cert);
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
        zcert_destroy (&cert);
        return 1;
    }
    pid_t back = getpid ();
    pid_t front = fork ();
    if (front < 0) {
        log_error ("fork: %s", strerror (errno));
        zcert_destroy (&cert);
        return 1;
    }
    if (front == 0) {
        close (sv [0]);
        rc = front_run (&args, cert, server_key, sv [1], back);
        zcert_destroy (&cert);
        return rc;
    }
    close (sv [1]);
    zcert_destroy (&cert);      //  the back never speaks CURVE
    return back_run (&args, sv [0], front);
}
