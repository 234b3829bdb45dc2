/*  common/check.h: the assertion macro of the in-module self-tests.
    Every x_test() uses CHECK; tests/selftest.c counts passes and failures and prints the
    `tests: N passed, N failed` line. A CHECK that fails prints its file, line and expression. */
#ifndef RG_CHECK_H
#define RG_CHECK_H
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern int check_passed;
extern int check_failed;

#define CHECK(cond) do { \
        if (cond) check_passed++; \
        else { check_failed++; \
               fprintf (stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

//  Removes a self-test's scratch directory and everything in it (a database and its -wal and
//  -shm, a keys tree...), following no link: 0, or -1 if anything stayed.
static inline int
check_remove_dir (const char *dir)
{
    DIR *d = opendir (dir);
    struct dirent *e;
    char path[1024];
    while (d && (e = readdir (d)))
        if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0) {
            if (snprintf (path, sizeof path, "%s/%s", dir, e->d_name) >= (int) sizeof path)
                continue;               //  the rmdir below then fails, and says so
            if (e->d_type == DT_DIR)
                check_remove_dir (path);
            else
                unlink (path);
        }
    if (d)
        closedir (d);
    return rmdir (dir);
}

#endif
