/*
 * test_util.h - the whole test "framework": CHECK macros that print file:line and
 * the values and count failures, and the per-ISA skip rule.
 *
 * Exit codes (ctest): 0 pass, 1 fail, 77 skip (SKIP_RETURN_CODE).
 */
#ifndef ATTN4J_TEST_UTIL_H
#define ATTN4J_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"

static long test_checks;
static long test_failures;

/* Print the first failures in full; after that only count them. */
#define TEST_MAX_PRINTED 25

#define CHECK_MSG(cond, ...)                                                                   \
    do {                                                                                       \
        ++test_checks;                                                                         \
        if (!(cond)) {                                                                         \
            if (++test_failures <= TEST_MAX_PRINTED) {                                         \
                fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);              \
                fprintf(stderr, __VA_ARGS__);                                                  \
                fputc('\n', stderr);                                                           \
            }                                                                                  \
        }                                                                                      \
    } while (0)

#define CHECK(cond) CHECK_MSG(cond, "%s", "")
#define CHECK_INT_EQ(a, b)                                                                     \
    CHECK_MSG((long long)(a) == (long long)(b), "%s = %lld, %s = %lld", #a, (long long)(a), #b, \
              (long long)(b))

/*
 * The ISA this run is meant to test is ATTN4J_ISA. The library lowers it to what
 * the CPU supports, so if attn4j_isa() answers something else the requested
 * path cannot run here: skip. (An unknown value is ignored by the library, and
 * so here.) Returns 1 when the caller should exit 77.
 */
static int test_should_skip(const char *test_name)
{
    const char *want = getenv("ATTN4J_ISA");
    const char *have = attn4j_isa();
    const int known = want != NULL && (strcmp(want, "scalar") == 0 || strcmp(want, "avx2") == 0 ||
                                       strcmp(want, "avx512") == 0);
    if (known && strcmp(want, have) != 0) {
        printf("%s: SKIP: ATTN4J_ISA=%s requested, this CPU runs %s\n", test_name, want, have);
        return 1;
    }
    printf("%s: isa %s, library %s\n", test_name, have, attn4j_version());
    return 0;
}

static int test_finish(const char *test_name)
{
    if (test_failures > 0) {
        fprintf(stderr, "%s: %ld of %ld checks FAILED\n", test_name, test_failures, test_checks);
        return 1;
    }
    printf("%s: all %ld checks passed\n", test_name, test_checks);
    return 0;
}

#endif /* ATTN4J_TEST_UTIL_H */
