/*  common/preflight.h: the broker's start-up check that its storage can be written. SQLite
    opens a database it cannot write read-only without a word, so a broker on an immutable
    file, an immutable -shm, a read-only mount or a full disk used to start and then refuse
    every request, grow its WAL without bound, or die of SIGBUS. This check refuses the start
    instead, naming the file and the reason. */
#ifndef RG_PREFLIGHT_H
#define RG_PREFLIGHT_H
#include <stddef.h>

//  Checks that the database at db_path (which need not exist yet) and the files SQLite keeps
//  beside it can be written: the database, -wal, -shm and -journal files that exist open
//  read-write, and the directory takes a new file, written and fsynced (then removed).
//  Returns 0, or -1 with one line for the operator in err. Call it before the process opens
//  the database: it opens and closes those files, and a close drops every POSIX lock the
//  process holds on a file, SQLite's included.
int preflight_storage (const char *db_path, char *err, size_t size);

#endif
