/*  worker/uidlock.h: a worker's own range of host uids for its sandboxes (see uidlock.c). */
#ifndef RG_UIDLOCK_H
#define RG_UIDLOCK_H
#include <stddef.h>

#define UIDLOCK_DIR "/run/replgate"
#define UIDLOCK_FIRST 200000u       //  the first range's base
#define UIDLOCK_STEP 1000u          //  bases are this far apart: a range never holds more
#define UIDLOCK_RANGES 1000u        //  ranges tried: up to UIDLOCK_FIRST + 1,000,000

//  Claims the first range of `size` uids (at most UIDLOCK_STEP) that no other live process
//  holds, by keeping an exclusive flock on DIR/uids-BASE.lock open (close-on-exec; the lock
//  goes when the process does, however it ends). 0 with *base and *fd set, or -1 (logged:
//  no directory, or every range held).
int uidlock_claim (const char *dir, size_t size, unsigned *base, int *fd);

int uidlock_test (void);
#endif
