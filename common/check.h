/*  common/check.h: the assertion macro of the in-module self-tests.
    Every x_test() uses CHECK; tests/selftest.c counts passes and failures and prints the
    `tests: N passed, N failed` line. A CHECK that fails prints its file, line and expression. */
#ifndef RG_CHECK_H
#define RG_CHECK_H
#include <stdio.h>

extern int check_passed;
extern int check_failed;

#define CHECK(cond) do { \
        if (cond) check_passed++; \
        else { check_failed++; \
               fprintf (stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

#endif
