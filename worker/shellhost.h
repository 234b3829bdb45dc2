/*  worker/shellhost.h: the driver process of a shell session, a mode of replgate-init
    (`replgate-init --shell BASH ARG...`); see shellhost.c. */
#ifndef RG_SHELLHOST_H
#define RG_SHELLHOST_H

//  Runs the session until the worker closes its command pipe; returns the exit status.
int shellhost_main (int argc, char *argv []);
#endif
