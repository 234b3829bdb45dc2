/*  common/preflight.c: the start-up check that the broker's storage can be written (see
    preflight.h). Only system calls, no SQLite and no logging: the caller logs the one line.

    Why these checks and not a SQLite write. SQLite opens a database it may not write
    read-only and says nothing until the first write fails, so the checks ask the kernel the
    same question SQLite's writes will: open(O_RDWR) of each file that exists answers EPERM
    for an immutable or append-only file and EROFS on a read-only mount. Those are the cases
    that made a started broker refuse every request, grow the WAL without bound (the
    checkpoint cannot write an immutable database) or die of SIGBUS (an immutable -shm).
    The directory must take new files, since SQLite creates the -wal and -shm there; the
    probe file proves that and, written and fsynced, that the disk takes data.
    A write through SQLite would prove little more and cost more: BEGIN IMMEDIATE then
    ROLLBACK writes nothing to disk; the only harmless committed write is rewriting a pragma
    such as user_version to its own value, which on a database that does not exist yet
    would create it with SQLite's default page size before the store picks its own; and
    anything in the events table would be junk in a record that must only hold what
    happened. What no check at start can promise is that the disk stays writable: a write
    failing later is the run time's business. */
#define _GNU_SOURCE                             //  mkostemp
#include "common/preflight.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

//  What the probe writes: room for the -shm SQLite maps (32 KiB) and the first WAL frames
//  of a request (1 KiB pages, a few per transition). With less free space than this the
//  first requests may already fail to be recorded; with more, they may fail later.
#define PROBE_BYTES (64 * 1024)

//  What the operator can do about errnum, for the end of the message.
static const char *
s_hint (int errnum)
{
    switch (errnum) {
        case EPERM:  return "is it immutable or append-only? check with lsattr, clear with chattr -i -a";
        case EROFS:  return "the file system is mounted read-only: remount it read-write";
        case EACCES: return "check the owner and mode of the file and its directory";
        case ENOSPC:
        case EDQUOT: return "the file system is full: free some space";
        default:     return "fix the storage (lsattr/chattr, mount options, free space)";
    }
}

//  The file SQLite will really open (it follows symbolic links, and makes -wal and -shm
//  next to the target) into real, and its directory into dir; both PATH_MAX bytes.
static int
s_resolve (const char *db_path, char *real, char *dir, char *err, size_t size)
{
    struct stat st;
    char copy[PATH_MAX];
    if (snprintf (copy, sizeof copy, "%s", db_path) >= (int) sizeof copy) {
        snprintf (err, size, "database path %s is too long", db_path);
        return -1;
    }
    if (stat (db_path, &st) == 0) {
        if (!S_ISREG (st.st_mode)) {
            snprintf (err, size, "database %s is not a regular file", db_path);
            return -1;
        }
        if (!realpath (db_path, real)) {
            snprintf (err, size, "cannot resolve database path %s (%s)", db_path, strerror (errno));
            return -1;
        }
    }
    else if (errno == ENOENT) {             //  a first start: SQLite will create the file
        char parent[PATH_MAX];
        if (!realpath (dirname (copy), parent)) {
            snprintf (err, size, "database directory of %s is not usable (%s): create it, then "
                      "start again", db_path, strerror (errno));
            return -1;
        }
        snprintf (copy, sizeof copy, "%s", db_path);        //  dirname wrote into it
        if (snprintf (real, PATH_MAX, "%s/%s", parent, basename (copy)) >= PATH_MAX) {
            snprintf (err, size, "database path %s is too long", db_path);
            return -1;
        }
    }
    else {
        snprintf (err, size, "cannot read database %s (%s): %s, then start again", db_path,
                  strerror (errno), s_hint (errno));
        return -1;
    }
    snprintf (copy, sizeof copy, "%s", real);
    snprintf (dir, PATH_MAX, "%s", dirname (copy));
    if (stat (dir, &st) != 0) {
        snprintf (err, size, "cannot read database directory %s (%s)", dir, strerror (errno));
        return -1;
    }
    if (!S_ISDIR (st.st_mode)) {                //  realpath gave it, so only a race gets here
        snprintf (err, size, "database directory %s is not a directory", dir);
        return -1;
    }
    return 0;
}

//  A file SQLite writes, if it exists, must open read-write. One that does not exist yet is
//  made by SQLite in the directory, which the probe checks.
static int
s_check_file (const char *path, char *err, size_t size)
{
    int fd = open (path, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd == -1 && errno == ENOENT)
        return 0;
    if (fd == -1) {
        int e = errno;
        snprintf (err, size, "database %s is not writable (%s): the broker could not record "
                  "a single request; %s, then start again", path, strerror (e), s_hint (e));
        return -1;
    }
    if (close (fd) != 0) {
        snprintf (err, size, "database %s: close failed (%s)", path, strerror (errno));
        return -1;
    }
    return 0;
}

//  Writes PROBE_BYTES to fd and makes them durable; 0, or -1 with errno set.
static int
s_fill (int fd)
{
    static const char zeros[4096];
    size_t done = 0;
    while (done < PROBE_BYTES) {
        size_t want = PROBE_BYTES - done < sizeof zeros ? PROBE_BYTES - done : sizeof zeros;
        ssize_t n = write (fd, zeros, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {                       //  no progress and no error: call it full
            errno = ENOSPC;
            return -1;
        }
        done += (size_t) n;
    }
    return fsync (fd);
}

//  Creates a file beside the database, writes and fsyncs it, and removes it. Its name says
//  whose it is, should the broker be killed before the unlink.
static int
s_probe (const char *real, const char *dir, char *err, size_t size)
{
    char probe[PATH_MAX + 32];
    snprintf (probe, sizeof probe, "%s.preflight-XXXXXX", real);
    int fd = mkostemp (probe, O_CLOEXEC);
    if (fd == -1) {
        int e = errno;
        snprintf (err, size, "database directory %s is not writable (%s): SQLite creates the "
                  "-wal and -shm files there; %s, then start again", dir, strerror (e), s_hint (e));
        return -1;
    }
    int rc = s_fill (fd);
    int e = errno;
    if (close (fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0)
        snprintf (err, size, "database directory %s cannot take %d KiB (%s): the broker could "
                  "not record requests; %s, then start again", dir, PROBE_BYTES / 1024,
                  strerror (e), s_hint (e));
    if (unlink (probe) != 0 && rc == 0) {
        snprintf (err, size, "cannot remove the probe file %s (%s)", probe, strerror (errno));
        rc = -1;
    }
    return rc;
}

int
preflight_storage (const char *db_path, char *err, size_t size)
{
    char real[PATH_MAX], dir[PATH_MAX];
    if (s_resolve (db_path, real, dir, err, size) != 0)
        return -1;
    //  The database first: the most specific message wins when several files are bad.
    if (s_check_file (real, err, size) != 0)
        return -1;
    static const char *suffixes[] = { "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char path[PATH_MAX + 16];
        snprintf (path, sizeof path, "%s%s", real, suffixes[i]);
        if (s_check_file (path, err, size) != 0)
            return -1;
    }
    return s_probe (real, dir, err, size);
}
