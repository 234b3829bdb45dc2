/*  client/lazy.c: czmq for `replgate`, loaded by the first call that needs it. The CLI does
    not link it: with libzmq and what they link in turn (libstdc++, Kerberos, systemd, PGM,
    ...) they were 24 of its 32 shared libraries and most of its start-up time, and only the
    commands that make keys (keygen, up: common/keys.c) call czmq. The commands that reach
    the broker need neither: common/zmtp.c speaks ZeroMQ's wire protocol itself. Each
    function those objects call is defined here under its own name, with the type its
    header declares (the compiler checks), and hands over to the library's own, which dlsym
    finds on the first call. A function missing here is an undefined reference when
    bin/replgate links, never a failure at run time. */
#include <czmq.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

//  The soname of the Debian package libczmq4 that the Makefile builds against.
#define CZMQ_SO "libczmq.so.4"

//  A library that cannot be loaded ends the command, as it would have ended at start if it
//  were linked: a forwarded call has no way to fail that its caller would expect.
static void *
s_resolve (const char *library, const char *name)
{
    void *handle = dlopen (library, RTLD_LAZY | RTLD_LOCAL);
    void *fn = handle ? dlsym (handle, name) : NULL;
    if (!fn) {
        fprintf (stderr, "replgate: %s\n", dlerror ());
        exit (127);
    }
    return fn;
}

#define FORWARD(library, type, name, params, args) \
    type name params { \
        static __typeof__ (name) *real; \
        if (!real) \
            real = (__typeof__ (name) *) s_resolve (library, #name); \
        return real args; \
    }
#define FORWARD_VOID(library, name, params, args) \
    void name params { \
        static __typeof__ (name) *real; \
        if (!real) \
            real = (__typeof__ (name) *) s_resolve (library, #name); \
        real args; \
    }

//  common/keys.c (keygen and up make keys with czmq; the rest it links is not called here)
FORWARD (CZMQ_SO, zcert_t *, zcert_new, (void), ())
FORWARD_VOID (CZMQ_SO, zcert_destroy, (zcert_t **self_p), (self_p))
FORWARD (CZMQ_SO, zcert_t *, zcert_load, (const char *filename), (filename))
FORWARD (CZMQ_SO, const char *, zcert_secret_txt, (zcert_t *self), (self))
FORWARD (CZMQ_SO, int, zcert_save, (zcert_t *self, const char *filename), (self, filename))
FORWARD (CZMQ_SO, int, zcert_save_public, (zcert_t *self, const char *filename),
         (self, filename))
FORWARD (CZMQ_SO, bool, zsys_file_exists, (const char *filename), (filename))

//  A variadic call cannot be handed on as such: the value is formatted here.
void
zcert_set_meta (zcert_t *self, const char *name, const char *format, ...)
{
    static __typeof__ (zcert_set_meta) *real;
    if (!real)
        real = (__typeof__ (zcert_set_meta) *) s_resolve (CZMQ_SO, "zcert_set_meta");
    va_list args, again;
    va_start (args, format);
    va_copy (again, args);
    int size = vsnprintf (NULL, 0, format, args);
    char *value = size >= 0 ? (char *) malloc ((size_t) size + 1) : NULL;
    if (value) {
        vsnprintf (value, (size_t) size + 1, format, again);
        real (self, name, "%s", value);
    }
    free (value);
    va_end (again);
    va_end (args);
}
