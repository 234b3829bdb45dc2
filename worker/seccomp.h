/*  worker/seccomp.h: the system call filter of every sandboxed session, built once with
    libseccomp in the worker and installed in each child just before it execs (see the table
    in seccomp.c for what is refused and why). */
#ifndef RG_SECCOMP_H
#define RG_SECCOMP_H

typedef struct _scfilter_t scfilter_t;

//  Builds the filter and compiles it to a BPF program held in memory. NULL (logged) if
//  libseccomp cannot build it: the worker then refuses to run sandboxed.
scfilter_t *scfilter_new (void);
void scfilter_destroy (scfilter_t **self_p);

//  Number of BPF instructions (for logs and tests).
int scfilter_size (scfilter_t *self);

//  Installs the filter on the calling thread. Async-signal-safe (one prctl), so a child of
//  the multithreaded worker may call it between fork and exec. Needs no_new_privs set.
//  0 or -1 with errno.
int scfilter_install (const scfilter_t *self);

int scfilter_test (void);
#endif
