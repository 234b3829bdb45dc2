/*  store/checkpointer.h: copies a WAL database's committed frames back into the main file
    from a thread of its own, on its own connection. The broker's writes never wait for it:
    in WAL mode a checkpoint runs beside the writer, and a checkpoint's copying and fsync
    (tens of milliseconds under load) would otherwise stall every request once a second.
    The writer's connection turns automatic checkpoints off (STORE_MANUAL_CHECKPOINT), and
    after each of ours (checkpointer_count moved) runs a short one itself (store_checkpoint):
    only the frames it wrote in the meantime are left, and once a checkpoint has caught up
    with the writer, the writer's next commit starts the WAL over. Without that step, under
    steady writes the WAL would never restart and would grow without end. */
#ifndef RG_CHECKPOINTER_H
#define RG_CHECKPOINTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _checkpointer_t checkpointer_t;

//  Opens path and checkpoints it (PASSIVE) every interval_ms until destroyed. NULL if the
//  database cannot be opened or the thread cannot start (logged).
checkpointer_t *checkpointer_new (const char *path, int interval_ms);
//  Stops the thread after one last checkpoint, closes the connection, NULLs *self_p.
void checkpointer_destroy (checkpointer_t **self_p);
//  Checkpoints done so far (each ran to completion or found nothing to copy).
int64_t checkpointer_count (checkpointer_t *self);
//  True while the last checkpoint failed (not merely busy), with SQLite's words in why: the
//  main file cannot be written, and every commit from now on grows the WAL.
bool checkpointer_failing (checkpointer_t *self, char *why, size_t size);

//  In checkpointer_test.c, run by store_test.
int checkpointer_test (const char *dir);
#endif
