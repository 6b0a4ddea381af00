/*
 * test_api.c - attn4j_version, attn4j_isa (the ATTN4J_ISA rule, thread-safe first
 * call) and the argument checks of attn4j_masked_softmax_f32 and
 * attn4j_masked_softmax_ex_f32.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"
#include "test_util.h"

static int isa_rank(const char *name)
{
    if (name == NULL)
        return -1;
    if (strcmp(name, "scalar") == 0)
        return 0;
    if (strcmp(name, "avx2") == 0)
        return 1;
    if (strcmp(name, "avx512") == 0)
        return 2;
    return -1;
}

/* What this CPU supports, found independently of the library. */
static int best_rank(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                       __builtin_cpu_supports("avx512dq");
    return avx512 ? 2 : avx2 ? 1 : 0;
#else
    return 0;
#endif
}

enum { N_THREADS = 4 };

static void *first_call(void *out)
{
    *(const char **)out = attn4j_isa();
    return NULL;
}

/* The first calls into the library race from several threads; all must see the
 * same answer (pthread_once in cpu.c). */
static void test_concurrent_first_call(void)
{
    pthread_t threads[N_THREADS];
    const char *seen[N_THREADS] = {0};
    for (int t = 0; t < N_THREADS; ++t)
        CHECK_INT_EQ(pthread_create(&threads[t], NULL, first_call, &seen[t]), 0);
    for (int t = 0; t < N_THREADS; ++t)
        CHECK_INT_EQ(pthread_join(threads[t], NULL), 0);
    for (int t = 1; t < N_THREADS; ++t)
        CHECK_MSG(seen[t] == seen[0], "thread %d saw %s, thread 0 saw %s", t, seen[t], seen[0]);
}

static void test_version(void)
{
    const char *v = attn4j_version();
    CHECK(v != NULL);
    CHECK_MSG(strcmp(v, ATTN4J_EXPECTED_VERSION) == 0, "version \"%s\", expected \"%s\"", v,
              ATTN4J_EXPECTED_VERSION);
    CHECK(attn4j_version() == v);
}

static void test_isa(void)
{
    const char *isa = attn4j_isa();
    const int rank = isa_rank(isa);
    const int best = best_rank();
    CHECK_MSG(rank >= 0, "attn4j_isa() = \"%s\"", isa ? isa : "(null)");
    CHECK(attn4j_isa() == isa);
    CHECK_MSG(rank <= best, "isa %s above what the CPU supports (rank %d)", isa, best);

    const char *want = getenv("ATTN4J_ISA");
    const int want_rank = isa_rank(want);
    if (want_rank >= 0) {
        /* Lowered to the request when the CPU can, never raised above it. */
        const int expected = want_rank < best ? want_rank : best;
        CHECK_MSG(rank == expected, "ATTN4J_ISA=%s on a CPU of rank %d gave %s", want, best, isa);
    } else if (getenv("ATTN4J_TEST_EXPECT_BEST") != NULL) {
        /* Unknown or empty value: ignored. */
        CHECK_MSG(rank == best, "ATTN4J_ISA=%s gave %s, expected the CPU's best (rank %d)",
                  want ? want : "(unset)", isa, best);
    }
}

enum { B = 2, TQ = 3, TV = 5, N = B * TQ * TV };

static void fill(float *x)
{
    for (int k = 0; k < N; ++k)
        x[k] = 0.25f * (float)k - 3.0f;
}

/* A call out of contract returns ATTN4J_EINVAL and leaves scores bit-identical. */
#define CHECK_EINVAL(...)                                                                      \
    do {                                                                                       \
        float before[N], scores[N];                                                            \
        fill(before);                                                                          \
        memcpy(scores, before, sizeof scores);                                                 \
        float *s = scores;                                                                     \
        (void)s;                                                                               \
        CHECK_INT_EQ(attn4j_masked_softmax_f32(__VA_ARGS__), ATTN4J_EINVAL);                   \
        CHECK_MSG(memcmp(scores, before, sizeof scores) == 0, "scores modified by: %s",       \
                  #__VA_ARGS__);                                                               \
    } while (0)

/* The same for attn4j_masked_softmax_ex_f32. */
#define CHECK_EINVAL_EX(...)                                                                   \
    do {                                                                                       \
        float before[N], scores[N];                                                            \
        fill(before);                                                                          \
        memcpy(scores, before, sizeof scores);                                                 \
        float *s = scores;                                                                     \
        (void)s;                                                                               \
        CHECK_INT_EQ(attn4j_masked_softmax_ex_f32(__VA_ARGS__), ATTN4J_EINVAL);                \
        CHECK_MSG(memcmp(scores, before, sizeof scores) == 0, "scores modified by: %s",       \
                  #__VA_ARGS__);                                                               \
    } while (0)

static void test_invalid_arguments(void)
{
    uint8_t mask[N];
    memset(mask, 1, sizeof mask);
    const int32_t SUB = ATTN4J_MASK_SUBTRACT;

    CHECK_EINVAL(NULL, B, TQ, TV, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, 0, TQ, TV, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, -1, TQ, TV, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, B, 0, TV, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, B, -3, TV, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, B, TQ, 0, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, B, TQ, INT64_MIN, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, mask, -1, TV, 1, 0, SUB);
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, mask, TQ * TV, -TV, 1, 0, SUB);
    /* Strides are checked also without a mask: the contract does not depend on it. */
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, NULL, -1, 0, 1, 0, SUB);
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, mask, TQ * TV, TV, 0, 0, SUB);
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, mask, TQ * TV, TV, -2, 0, SUB);
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, NULL, 0, 0, 0, 0, SUB);
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, 0, -1);
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, 0, 3);
    CHECK_EINVAL(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, 1, 77);
    /* Sizes no address space holds: refused instead of overflowing offsets. */
    CHECK_EINVAL(s, INT64_C(1) << 22, INT64_C(1) << 22, INT64_C(1) << 22, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, 1, 1, INT64_MAX, 1.0f, NULL, 0, 0, 1, 0, SUB);
    CHECK_EINVAL(s, INT64_MAX, 1, 1, 1.0f, NULL, 0, 0, 1, 0, SUB);

    /* _ex: the checks above, and its own arguments. */
    uint8_t rows[B * TQ], cols[B * TV];
    memset(rows, 1, sizeof rows);
    memset(cols, 1, sizeof cols);
    CHECK_EINVAL_EX(NULL, B, TQ, TV, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, 0, SUB);
    CHECK_EINVAL_EX(s, 0, TQ, TV, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, -1, TV, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, TQ, 0, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, mask, -1, TV, 1, NULL, NULL, 1, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, mask, TQ * TV, -1, 1, NULL, NULL, 1, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, mask, TQ * TV, TV, 0, NULL, NULL, 1, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, rows, cols, 0, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, rows, cols, -1, 0, 0, SUB);
    /* pad_batch_div is checked also without padding masks. */
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, NULL, NULL, 0, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, NULL, NULL, INT64_MIN, 0, 0, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, rows, cols, 1, 1, -1, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, INT64_MIN, SUB);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, 0, 3);
    CHECK_EINVAL_EX(s, B, TQ, TV, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, 0, -1);
    CHECK_EINVAL_EX(s, INT64_C(1) << 22, INT64_C(1) << 22, INT64_C(1) << 22, 1.0f, NULL, 0, 0, 1,
                    NULL, NULL, 1, 0, 0, SUB);
    CHECK_EINVAL_EX(s, 1, 1, INT64_MAX, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, 0, SUB);

    /* In contract, with extreme values that must not overflow anything: strides
     * and divisors of masks that are NULL, the largest window. */
    {
        float sc[N];
        fill(sc);
        CHECK_INT_EQ(attn4j_masked_softmax_ex_f32(sc, B, TQ, TV, 1.0f, NULL, INT64_MAX, INT64_MAX,
                                                  INT64_MAX, NULL, NULL, INT64_MAX, 1, INT64_MAX,
                                                  ATTN4J_MASK_REPLACE_ZERO),
                     ATTN4J_OK);
        CHECK_MSG(sc[0] == 1.0f, "causal row 0 keeps only column 0: %g", sc[0]);
        fill(sc);
        CHECK_INT_EQ(attn4j_masked_softmax_ex_f32(sc, B, TQ, TV, 1.0f, mask, TQ * TV, TV, 1, rows,
                                                  cols, INT64_MAX, 0, 1, ATTN4J_MASK_SUBTRACT),
                     ATTN4J_OK);
        CHECK_MSG(sc[0] == 1.0f && sc[TV + 1] == 1.0f, "window 1 keeps only the diagonal: %g %g",
                  sc[0], sc[TV + 1]);
    }

    /* In contract: OK, and something happened. */
    float scores[N];
    fill(scores);
    CHECK_INT_EQ(attn4j_masked_softmax_f32(scores, B, TQ, TV, 1.0f, mask, TQ * TV, TV, 1, 1,
                                           ATTN4J_MASK_REPLACE),
                 ATTN4J_OK);
    CHECK_MSG(scores[0] == 1.0f, "causal row 0 keeps only column 0: %g", scores[0]);
}

int main(void)
{
    test_concurrent_first_call(); /* must be the first use of the library */
    if (test_should_skip("test_api"))
        return 77;
    test_version();
    test_isa();
    test_invalid_arguments();
    return test_finish("test_api");
}
