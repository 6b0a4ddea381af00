/*
 * test_util.h - the whole test "framework": CHECK macros that print file:line and
 * the values and count failures, the per-ISA skip rule, deterministic random
 * numbers and float bit helpers.
 *
 * Exit codes (ctest): 0 pass, 1 fail, 77 skip (SKIP_RETURN_CODE).
 */
#ifndef ATTN4J_TEST_UTIL_H
#define ATTN4J_TEST_UTIL_H

#include <stdint.h>
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

/* ---- Deterministic random numbers ------------------------------------------------------
 *
 * splitmix64; a test that defines TEST_RNG_XORSHIFT64STAR before including this
 * header gets xorshift64* instead (its state must not be 0). Each test sets its
 * own starting state with rng_seed() at the start of main.
 */

static uint64_t rng_state;

static inline void rng_seed(uint64_t seed)
{
    rng_state = seed;
}

static inline uint64_t rng_next(void)
{
#ifdef TEST_RNG_XORSHIFT64STAR
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
#else
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
#endif
}

/* lo + (hi - lo) u, u from the top 24 bits of rng_next() (a multiple of 2^-24 in [0, 1)). */
static inline float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next() >> 40) * 0x1.0p-24);
}

/* 0 .. n - 1. */
static inline int64_t rng_int(int64_t n)
{
    return (int64_t)(rng_next() % (uint64_t)n);
}

static inline void fill_uniform(float *x, int64_t n, float lo, float hi)
{
    for (int64_t k = 0; k < n; ++k)
        x[k] = rng_uniform(lo, hi);
}

/* ---- Float bits ------------------------------------------------------------------------ */

static inline float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Floats mapped to integers in order, so that a difference counts ulps. */
static inline int64_t ordered(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}

static inline int64_t ulp_distance(float a, float b)
{
    const int64_t d = ordered(a) - ordered(b);
    return d < 0 ? -d : d;
}

#endif /* ATTN4J_TEST_UTIL_H */
