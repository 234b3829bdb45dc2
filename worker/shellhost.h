/*  worker/shellhost.h: the driver process of a shell session, a mode of replgate-init
    (`replgate-init --shell BASH ARG...`); see shellhost.c. */
#ifndef RG_SHELLHOST_H
#define RG_SHELLHOST_H

#include <string.h>

//  The directory a shell host makes its own under: `tmpdir` (its TMPDIR) if absolute and short
//  enough for the host's fixed-size paths, else /tmp. The worker sweeps what a killed host left
//  there, so both sides must take the same one.
static inline const char *
shellhost_tmp (const char *tmpdir)
{
    return tmpdir && *tmpdir == '/' && strlen (tmpdir) < 32 ? tmpdir : "/tmp";
}

//  Runs the session until the worker closes its command pipe; returns the exit status.
int shellhost_main (int argc, char *argv []);
#endif
