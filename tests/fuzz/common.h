/*  tests/fuzz/common.h: what every libFuzzer target here shares. Each links common/util.c,
    which holds the counters of the modules' self-tests (CHECK) that come along. */
#ifndef RG_FUZZ_COMMON_H
#define RG_FUZZ_COMMON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#endif
