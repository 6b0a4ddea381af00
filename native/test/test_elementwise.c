/*
 * test_elementwise.c - attn4j_dropout_f32, attn4j_mul_row_mask_f32, attn4j_mul_f32
 * and attn4j_mask_from_f32 through the shared library.
 *
 * Dropout is checked bit for bit against the formula of attn4j.h re-implemented
 * here in the plainest way, and against hash values computed independently (in
 * Python, from the same formula), so that a misreading shared by the library and
 * this file would still show. Then the statistics: the fraction dropped, and
 * that streams and seeds give different masks.
 *
 * Runs under ATTN4J_ISA=scalar|avx2|avx512 (ctest adds it three times); sizes
 * around the vector widths (8 and 16 floats) exercise the tails.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"
#define TEST_RNG_XORSHIFT64STAR
#include "test_util.h"

/* A signalling NaN with a payload: any arithmetic on it would quiet it, so it
 * survives bit for bit only where nothing touched it. */
#define SNAN_BITS 0x7FA00001u

/* Random values with every kind of special mixed in. */
static void fill_mixed(float *x, int64_t n)
{
    static const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, FLT_TRUE_MIN, -FLT_MAX, 1.0f};
    for (int64_t k = 0; k < n; ++k) {
        const uint64_t r = rng_next();
        if ((r & 15) == 0)
            x[k] = specials[(r >> 8) % (sizeof specials / sizeof specials[0])];
        else if ((r & 15) == 1)
            x[k] = NAN;
        else
            x[k] = rng_uniform(-5.0f, 5.0f);
    }
}

/* ---- Dropout: the formula of attn4j.h ------------------------------------------------ */

static uint64_t mix(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9u;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBu;
    z ^= z >> 31;
    return z;
}

static uint64_t hash(uint64_t seed, uint64_t stream, uint64_t i)
{
    return mix(seed ^ mix(stream * 0x9E3779B97F4A7C15u + i));
}

static int keep(uint64_t seed, uint64_t stream, uint64_t i, float rate)
{
    const float u = (float)(hash(seed, stream, i) >> 40) * 0x1.0p-24f;
    return u >= rate;
}

static void dropout_reference(float *x, int64_t n, float rate, uint64_t seed, uint64_t stream)
{
    const float keep_prob = 1.0f - rate;
    for (int64_t i = 0; i < n; ++i)
        x[i] = keep(seed, stream, (uint64_t)i, rate) ? x[i] / keep_prob : 0.0f;
}

/* NaN compares as "any NaN" (a division quiets a signalling NaN either way);
 * everything else bit for bit, so +0 and -0 differ. */
static int same_value(float a, float b)
{
    return isnan(a) ? isnan(b) : to_bits(a) == to_bits(b);
}

static void test_dropout_golden(void)
{
    /* From Python: h of (seed, stream, i), as the header's example says. */
    CHECK(hash(1, 2, 3) == 0xCAB05A444B8C80AFu);
    CHECK(hash(42, 7, 0) == 0x2F097FEF21570BEEu);
    CHECK(hash(42, 7, 1) == 0x13F6B14AB6BF0BC3u);
    CHECK(hash(UINT64_MAX, UINT64_MAX, 0xFFFFFFFFFu) == 0x99F2FABE23E879B1u);

    /* seed 42, stream 7, rate 0.5: the first 16 decisions, from Python. */
    static const int kept16[16] = {0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1};
    float x[16];
    for (int i = 0; i < 16; ++i)
        x[i] = 3.0f;
    CHECK_INT_EQ(attn4j_dropout_f32(x, 16, 0.5f, 42, 7), ATTN4J_OK);
    for (int i = 0; i < 16; ++i)
        CHECK_MSG(to_bits(x[i]) == to_bits(kept16[i] ? 6.0f : 0.0f), "golden [%d] = %a", i, (double)x[i]);

    /* The comparison is u >= rate: element 3 of (1, 2) has u = 13283418 / 2^24; a
     * rate of exactly u keeps it, the next float up drops it. */
    const float u3 = (float)13283418 * 0x1.0p-24f;
    float y[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    CHECK_INT_EQ(attn4j_dropout_f32(y, 4, u3, 1, 2), ATTN4J_OK);
    CHECK_MSG(y[3] == 1.0f / (1.0f - u3), "rate = u keeps: %a", (double)y[3]);
    float z[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    CHECK_INT_EQ(attn4j_dropout_f32(z, 4, nextafterf(u3, 1.0f), 1, 2), ATTN4J_OK);
    CHECK_MSG(to_bits(z[3]) == 0, "rate just above u drops: %a", (double)z[3]);
}

static void test_dropout_exact(void)
{
    static const int64_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000, 4099};
    static const float rates[] = {1e-9f, 0.1f, 0.3f, 0.5f, 0.9f, 0x1.fffffep-1f /* largest < 1 */};
    static const uint64_t seeds[][2] = {{0, 0}, {1, 2}, {42, 7}, {UINT64_MAX, UINT64_MAX},
                                        {0x0123456789ABCDEFu, 3}, {5, UINT64_MAX / 3}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
        const int64_t n = sizes[s];
        float *x = malloc((size_t)n * sizeof *x);
        float *got = malloc((size_t)n * sizeof *got);
        float *want = malloc((size_t)n * sizeof *want);
        fill_mixed(x, n);
        for (size_t r = 0; r < sizeof rates / sizeof rates[0]; ++r) {
            for (size_t p = 0; p < sizeof seeds / sizeof seeds[0]; ++p) {
                const float rate = rates[r];
                const uint64_t seed = seeds[p][0], stream = seeds[p][1];
                memcpy(got, x, (size_t)n * sizeof *x);
                memcpy(want, x, (size_t)n * sizeof *x);
                CHECK_INT_EQ(attn4j_dropout_f32(got, n, rate, seed, stream), ATTN4J_OK);
                dropout_reference(want, n, rate, seed, stream);
                int64_t bad = 0;
                for (int64_t i = 0; i < n; ++i) {
                    if (!same_value(got[i], want[i]) && ++bad <= 3)
                        CHECK_MSG(0, "n %lld rate %a seed %llx stream %llx: [%lld] = %a, expected %a (x %a)",
                                  (long long)n, (double)rate, (unsigned long long)seed,
                                  (unsigned long long)stream, (long long)i, (double)got[i],
                                  (double)want[i], (double)x[i]);
                    /* Dropped means +0, NaN or not. */
                    if (!keep(seed, stream, (uint64_t)i, rate))
                        CHECK_MSG(to_bits(got[i]) == 0, "[%lld] dropped = %a", (long long)i, (double)got[i]);
                }
                CHECK_MSG(bad == 0, "n %lld rate %a: %lld elements differ", (long long)n, (double)rate,
                          (long long)bad);
            }
        }
        free(x);
        free(got);
        free(want);
    }
}

static void test_dropout_rate_zero(void)
{
    enum { N = 37 };
    float x[N], before[N];
    fill_mixed(before, N);
    before[5] = from_bits(SNAN_BITS);
    /* rate 0 and -0: nothing touched, not even the signalling NaN. */
    memcpy(x, before, sizeof x);
    CHECK_INT_EQ(attn4j_dropout_f32(x, N, 0.0f, 1, 2), ATTN4J_OK);
    CHECK(memcmp(x, before, sizeof x) == 0);
    CHECK_INT_EQ(attn4j_dropout_f32(x, N, -0.0f, 1, 2), ATTN4J_OK);
    CHECK(memcmp(x, before, sizeof x) == 0);
    /* n == 0: a no-op, with or without a buffer. */
    CHECK_INT_EQ(attn4j_dropout_f32(x, 0, 0.5f, 1, 2), ATTN4J_OK);
    CHECK(memcmp(x, before, sizeof x) == 0);
    CHECK_INT_EQ(attn4j_dropout_f32(NULL, 0, 0.5f, 1, 2), ATTN4J_OK);
}

/*
 * n = 10^6, rate 0.3: the number dropped is binomial with p = P(u < 0.3f) =
 * ceil(0.3f * 2^24) / 2^24; it must lie within 5 standard deviations
 * sqrt(n p (1 - p)) of n p. Every kept value is exactly 1 / 0.7f (x = 1).
 */
static void test_dropout_statistics(void)
{
    enum { N = 1000000 };
    const float rate = 0.3f;
    const double p = ceil((double)rate * 0x1.0p24) * 0x1.0p-24;
    const double mean = N * p, sd = sqrt(N * p * (1.0 - p));
    const float kept_value = 1.0f / (1.0f - rate);
    static const uint64_t seeds[][2] = {{0, 0}, {1, 0}, {0, 1}, {0xDEADBEEFu, 12345}};
    float *x = malloc(N * sizeof *x);
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; ++s) {
        for (int i = 0; i < N; ++i)
            x[i] = 1.0f;
        CHECK_INT_EQ(attn4j_dropout_f32(x, N, rate, seeds[s][0], seeds[s][1]), ATTN4J_OK);
        int64_t dropped = 0, other = 0;
        for (int i = 0; i < N; ++i) {
            if (to_bits(x[i]) == 0)
                ++dropped;
            else if (to_bits(x[i]) != to_bits(kept_value))
                ++other;
        }
        CHECK_MSG(other == 0, "%lld values neither +0 nor 1/0.7f", (long long)other);
        CHECK_MSG(fabs((double)dropped - mean) <= 5.0 * sd,
                  "seed %llu stream %llu: %lld of %d dropped, expected %.0f +- %.0f (5 sd)",
                  (unsigned long long)seeds[s][0], (unsigned long long)seeds[s][1],
                  (long long)dropped, N, mean, 5.0 * sd);
    }
    free(x);
}

/* Masks of n elements (x = 1, so kept = non-zero) for two (seed, stream) pairs:
 * how many positions disagree. */
static int64_t mask_difference(int64_t n, float rate, uint64_t seed1, uint64_t stream1,
                               uint64_t seed2, uint64_t stream2)
{
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    for (int64_t i = 0; i < n; ++i)
        a[i] = b[i] = 1.0f;
    CHECK_INT_EQ(attn4j_dropout_f32(a, n, rate, seed1, stream1), ATTN4J_OK);
    CHECK_INT_EQ(attn4j_dropout_f32(b, n, rate, seed2, stream2), ATTN4J_OK);
    int64_t diff = 0;
    for (int64_t i = 0; i < n; ++i)
        diff += (a[i] == 0.0f) != (b[i] == 0.0f);
    free(a);
    free(b);
    return diff;
}

static void test_dropout_streams(void)
{
    /* Independent masks of rate 0.3 disagree at 2 p (1 - p) = 42% of positions
     * (sd 0.5% for n = 10^4); identical ones nowhere. */
    const int64_t n = 10000;
    CHECK_INT_EQ(mask_difference(n, 0.3f, 9, 4, 9, 4), 0);
    CHECK_INT_EQ(mask_difference(n, 0.3f, 0, 0, 0, 0), 0);
    static const uint64_t pairs[][4] = {
        {9, 4, 9, 5}, {9, 0, 9, 1}, {0, 0, 0, 1}, {9, 4, 10, 4}, {0, 0, 1, 0}, {1, 0, 0, 1},
        {7, UINT64_MAX, 7, 0}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; ++p) {
        const int64_t diff = mask_difference(n, 0.3f, pairs[p][0], pairs[p][1], pairs[p][2], pairs[p][3]);
        CHECK_MSG(diff > n * 38 / 100 && diff < n * 46 / 100,
                  "(seed %llu, stream %llu) vs (seed %llu, stream %llu): masks differ at %lld of %lld",
                  (unsigned long long)pairs[p][0], (unsigned long long)pairs[p][1],
                  (unsigned long long)pairs[p][2], (unsigned long long)pairs[p][3], (long long)diff,
                  (long long)n);
    }
}

static void test_dropout_invalid(void)
{
    enum { N = 9 };
    float x[N], before[N];
    fill_mixed(before, N);
    const float bad_rates[] = {1.0f, 1.5f, -0.1f, -FLT_TRUE_MIN, NAN, -NAN, INFINITY, -INFINITY};
    for (size_t r = 0; r < sizeof bad_rates / sizeof bad_rates[0]; ++r) {
        memcpy(x, before, sizeof x);
        CHECK_MSG(attn4j_dropout_f32(x, N, bad_rates[r], 1, 2) == ATTN4J_EINVAL, "rate %g accepted",
                  (double)bad_rates[r]);
        CHECK_MSG(memcmp(x, before, sizeof x) == 0, "rate %g: x modified", (double)bad_rates[r]);
        /* Also with n == 0: the rate is checked first. */
        CHECK_MSG(attn4j_dropout_f32(x, 0, bad_rates[r], 1, 2) == ATTN4J_EINVAL, "rate %g, n 0 accepted",
                  (double)bad_rates[r]);
    }
    memcpy(x, before, sizeof x);
    CHECK_INT_EQ(attn4j_dropout_f32(x, -1, 0.5f, 1, 2), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_dropout_f32(x, INT64_MIN, 0.5f, 1, 2), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_dropout_f32(x, INT64_MAX, 0.5f, 1, 2), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_dropout_f32(x, INT64_MAX / 2, 0.5f, 1, 2), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_dropout_f32(NULL, N, 0.5f, 1, 2), ATTN4J_EINVAL);
    CHECK(memcmp(x, before, sizeof x) == 0);
}

/* ---- mul_row_mask ----------------------------------------------------------------------- */

static void test_row_mask(void)
{
    static const int64_t rows_list[] = {1, 2, 5, 17};
    static const int64_t cols_list[] = {1, 3, 7, 8, 9, 15, 16, 17, 33, 100};
    static const uint8_t keep_bytes[] = {1, 2, 128, 255};
    for (size_t a = 0; a < sizeof rows_list / sizeof rows_list[0]; ++a) {
        for (size_t b = 0; b < sizeof cols_list / sizeof cols_list[0]; ++b) {
            const int64_t rows = rows_list[a], cols = cols_list[b], n = rows * cols;
            float *x = malloc((size_t)n * sizeof *x), *before = malloc((size_t)n * sizeof *x);
            uint8_t *mask = malloc((size_t)rows);
            fill_mixed(before, n);
            before[n / 2] = from_bits(SNAN_BITS);
            for (int64_t r = 0; r < rows; ++r)
                mask[r] = (rng_next() >> 33) % 3 == 0 ? 0 : keep_bytes[(rng_next() >> 40) & 3];
            mask[rows - 1] = 0; /* at least one zeroed row */
            memcpy(x, before, (size_t)n * sizeof *x);
            CHECK_INT_EQ(attn4j_mul_row_mask_f32(x, rows, cols, mask), ATTN4J_OK);
            for (int64_t r = 0; r < rows; ++r) {
                const float *xr = x + r * cols, *br = before + r * cols;
                if (mask[r] != 0) {
                    CHECK_MSG(memcmp(xr, br, (size_t)cols * sizeof *xr) == 0,
                              "rows %lld cols %lld: kept row %lld modified", (long long)rows,
                              (long long)cols, (long long)r);
                    continue;
                }
                for (int64_t c = 0; c < cols; ++c) {
                    /* x * 0: NaN for NaN and +-inf, a zero of x's sign otherwise. */
                    const float v = br[c];
                    const int ok = isnan(v) || isinf(v) ? isnan(xr[c])
                                                        : to_bits(xr[c]) == (signbit(v) ? 0x80000000u : 0u);
                    CHECK_MSG(ok, "rows %lld cols %lld: [%lld,%lld] = %a, x was %a", (long long)rows,
                              (long long)cols, (long long)r, (long long)c, (double)xr[c], (double)v);
                }
            }
            free(x);
            free(before);
            free(mask);
        }
    }
}

static void test_row_mask_invalid(void)
{
    enum { R = 3, C = 4 };
    float x[R * C], before[R * C];
    uint8_t mask[R] = {0, 0, 0};
    fill_mixed(before, R * C);
    memcpy(x, before, sizeof x);
    CHECK_INT_EQ(attn4j_mul_row_mask_f32(NULL, R, C, mask), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_row_mask_f32(x, R, C, NULL), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_row_mask_f32(x, 0, C, mask), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_row_mask_f32(x, -1, C, mask), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_row_mask_f32(x, R, 0, mask), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_row_mask_f32(x, R, INT64_MIN, mask), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_row_mask_f32(x, INT64_C(1) << 32, INT64_C(1) << 31, mask), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_row_mask_f32(x, 1, INT64_MAX, mask), ATTN4J_EINVAL);
    CHECK(memcmp(x, before, sizeof x) == 0);
}

/* ---- mul ---------------------------------------------------------------------------------- */

static void test_mul(void)
{
    static const int64_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 100, 1000, 4099};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
        const int64_t n = sizes[s];
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        float *got = malloc((size_t)n * sizeof *got);
        fill_mixed(x, n);
        fill_mixed(y, n);
        memcpy(got, x, (size_t)n * sizeof *x);
        CHECK_INT_EQ(attn4j_mul_f32(got, y, n), ATTN4J_OK);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; ++i) {
            /* IEEE float32: 0 * inf = NaN, signed zeros, NaN propagates. */
            const float want = x[i] * y[i];
            if (!same_value(got[i], want) && ++bad <= 3)
                CHECK_MSG(0, "mul n %lld: [%lld] %a * %a = %a, expected %a", (long long)n, (long long)i,
                          (double)x[i], (double)y[i], (double)got[i], (double)want);
        }
        CHECK_MSG(bad == 0, "mul n %lld: %lld wrong", (long long)n, (long long)bad);

        /* y is x: squares. */
        memcpy(got, x, (size_t)n * sizeof *x);
        CHECK_INT_EQ(attn4j_mul_f32(got, got, n), ATTN4J_OK);
        for (int64_t i = 0; i < n; ++i)
            CHECK_MSG(same_value(got[i], x[i] * x[i]), "square n %lld: [%lld] %a -> %a", (long long)n,
                      (long long)i, (double)x[i], (double)got[i]);
        free(x);
        free(y);
        free(got);
    }

    /* Exact cases. */
    float a[6] = {2.0f, -0.0f, 0.0f, INFINITY, 3.0f, FLT_MAX};
    const float b[6] = {0.5f, 5.0f, -1.0f, 0.0f, NAN, 2.0f};
    CHECK_INT_EQ(attn4j_mul_f32(a, b, 6), ATTN4J_OK);
    CHECK(to_bits(a[0]) == to_bits(1.0f));
    CHECK(to_bits(a[1]) == 0x80000000u);
    CHECK(to_bits(a[2]) == 0x80000000u);
    CHECK(isnan(a[3]));
    CHECK(isnan(a[4]));
    CHECK(a[5] == INFINITY);
}

static void test_mul_invalid(void)
{
    enum { N = 5 };
    float x[N], before[N], y[N] = {1, 2, 3, 4, 5};
    fill_mixed(before, N);
    memcpy(x, before, sizeof x);
    CHECK_INT_EQ(attn4j_mul_f32(NULL, y, N), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_f32(x, NULL, N), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_f32(x, y, -1), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_f32(x, y, INT64_MIN), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_f32(x, y, INT64_MAX), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mul_f32(x, y, INT64_MAX / 2), ATTN4J_EINVAL);
    CHECK(memcmp(x, before, sizeof x) == 0);
    /* n == 0: a no-op, with or without buffers. */
    CHECK_INT_EQ(attn4j_mul_f32(x, y, 0), ATTN4J_OK);
    CHECK_INT_EQ(attn4j_mul_f32(NULL, NULL, 0), ATTN4J_OK);
    CHECK(memcmp(x, before, sizeof x) == 0);
}

/* ---- mask_from ------------------------------------------------------------------------------ */

/* numpy: m != 0 and m > 0.5 on float32, NaN compares unordered. */
static void test_mask_from_values(void)
{
    enum { N = 19 };
    const float m[N] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 0x1.000002p-1f /* next above 0.5 */,
                        0x1.fffffep-2f /* next below 0.5 */, NAN, -NAN, INFINITY, -INFINITY,
                        FLT_TRUE_MIN, -FLT_TRUE_MIN, 2.0f, 0.25f, FLT_MAX, -FLT_MAX, 0.75f, 1e-30f};
    const uint8_t nonzero[N] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const uint8_t gt_half[N] = {0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0};
    uint8_t out[N];
    memset(out, 0xAA, sizeof out);
    CHECK_INT_EQ(attn4j_mask_from_f32(m, out, N, ATTN4J_MASKCAST_NONZERO), ATTN4J_OK);
    for (int i = 0; i < N; ++i)
        CHECK_MSG(out[i] == nonzero[i], "NONZERO(%a) = %d", (double)m[i], out[i]);
    memset(out, 0xAA, sizeof out);
    CHECK_INT_EQ(attn4j_mask_from_f32(m, out, N, ATTN4J_MASKCAST_GT_HALF), ATTN4J_OK);
    for (int i = 0; i < N; ++i)
        CHECK_MSG(out[i] == gt_half[i], "GT_HALF(%a) = %d", (double)m[i], out[i]);
}

static void test_mask_from_sizes(void)
{
    static const int64_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 4099};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; ++s) {
        const int64_t n = sizes[s];
        float *m = malloc((size_t)n * sizeof *m);
        uint8_t *out = malloc((size_t)n + 1);
        for (int64_t i = 0; i < n; ++i) {
            const uint64_t r = rng_next();
            /* Masks as Keras sees them: mostly 0 and 1, some in between and odd values. */
            m[i] = (r & 3) == 0 ? 0.0f : (r & 3) == 1 ? 1.0f : (r & 15) == 2 ? NAN : rng_uniform(-1.0f, 2.0f);
        }
        for (int32_t mode = 0; mode <= 1; ++mode) {
            out[n] = 0x5C; /* a guard byte that must survive */
            CHECK_INT_EQ(attn4j_mask_from_f32(m, out, n, mode), ATTN4J_OK);
            int64_t bad = 0;
            for (int64_t i = 0; i < n; ++i) {
                const uint8_t want = mode == ATTN4J_MASKCAST_NONZERO ? (uint8_t)(m[i] != 0.0f) : (uint8_t)(m[i] > 0.5f);
                bad += out[i] != want;
            }
            CHECK_MSG(bad == 0 && out[n] == 0x5C, "mask_from n %lld mode %d: %lld wrong, guard %#x",
                      (long long)n, mode, (long long)bad, out[n]);
        }
        free(m);
        free(out);
    }
}

static void test_mask_from_invalid(void)
{
    enum { N = 4 };
    const float m[N] = {0.0f, 1.0f, 0.7f, NAN};
    uint8_t out[N] = {7, 7, 7, 7};
    CHECK_INT_EQ(attn4j_mask_from_f32(NULL, out, N, ATTN4J_MASKCAST_NONZERO), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mask_from_f32(m, NULL, N, ATTN4J_MASKCAST_NONZERO), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mask_from_f32(m, out, -1, ATTN4J_MASKCAST_NONZERO), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mask_from_f32(m, out, INT64_MAX, ATTN4J_MASKCAST_GT_HALF), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mask_from_f32(m, out, N, 2), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_mask_from_f32(m, out, N, -1), ATTN4J_EINVAL);
    /* The mode is checked also when there is nothing to convert. */
    CHECK_INT_EQ(attn4j_mask_from_f32(m, out, 0, 9), ATTN4J_EINVAL);
    for (int i = 0; i < N; ++i)
        CHECK_MSG(out[i] == 7, "out[%d] modified: %d", i, out[i]);
    CHECK_INT_EQ(attn4j_mask_from_f32(NULL, NULL, 0, ATTN4J_MASKCAST_GT_HALF), ATTN4J_OK);
}

int main(void)
{
    rng_seed(0x0DDB1A5E5BAD5EEDu);
    if (test_should_skip("test_elementwise"))
        return 77;
    test_dropout_golden();
    test_dropout_exact();
    test_dropout_rate_zero();
    test_dropout_statistics();
    test_dropout_streams();
    test_dropout_invalid();
    test_row_mask();
    test_row_mask_invalid();
    test_mul();
    test_mul_invalid();
    test_mask_from_values();
    test_mask_from_sizes();
    test_mask_from_invalid();
    return test_finish("test_elementwise");
}
