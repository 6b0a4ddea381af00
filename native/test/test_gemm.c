/*
 * test_gemm.c - attn4j_small_gemm_f32 through the shared library, against two
 * references written here from the contract in attn4j.h:
 *  - the exact one: per chunk of CHUNK consecutive i, the chain
 *    a = fmaf(x[r, i], w[i, j], a) from +0 in i order; t = the first chunk's a,
 *    then t = t + a for each later chunk in order; then t + bias[j]. Every
 *    instruction set must match it bit for bit (NaN: any NaN);
 *  - an independent one in double, which the result must match within the
 *    float32 error bound of that evaluation, (min(k, C) + ceil(k / C) - 1) 2^-24
 *    sum_i |x[r, i] w[i, j]| (times 1.01 for the second-order terms), plus half
 *    an ulp of |y| for the bias add.
 * The second catches a misreading of the contract shared by the library and the
 * first. test_accuracy measures the error on random data (m = 1..8, k = 512 and
 * 1536, n = 512) against the double reference and bounds it.
 *
 * Covered: k and n of 1, around the vector widths (7, 15, 16, 17, 63, 64, 65) and
 * the decode sizes (512, 1536), every m in 1..8 (so every row tile and column
 * tail of both vector paths), bias NULL and not, operands 4 bytes off 64-byte
 * alignment, guard floats around y, subnormal products, NaN / inf / -0 inputs,
 * and every argument check. Rows do not depend on m: the references are computed
 * once for 8 rows and the call with m rows must give their first m.
 * Runs under ATTN4J_ISA=scalar|avx2|avx512.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"
#include "test_util.h"

#define MAX_ROWS 8
#define CHUNK 32 /* the C of the contract in attn4j.h */
#define GUARD 16
#define SENTINEL (-7.0f)

/* One problem: x (8, k), w (k, n), bias (n), each at `shift` floats past a
 * 64-byte boundary, and the references for 8 rows. */
struct problem {
    int64_t k, n;
    float *x, *w, *bias;
    float *exact;       /* (8, n): the chunked fmaf chains, no bias */
    double *ref, *abs;  /* (8, n): sum x w and sum |x w| in double */
    void *raw[3];
};

static float *alloc_shifted(void **raw, int64_t count, int shift)
{
    *raw = aligned_alloc(64, (size_t)((count + shift + 15) / 16 * 16) * sizeof(float) + 64);
    return (float *)*raw + shift;
}

static void references(struct problem *p)
{
    const int64_t k = p->k, n = p->n;
    p->exact = malloc(sizeof(float) * (size_t)(MAX_ROWS * n));
    p->ref = malloc(sizeof(double) * (size_t)(MAX_ROWS * n));
    p->abs = malloc(sizeof(double) * (size_t)(MAX_ROWS * n));
    for (int64_t r = 0; r < MAX_ROWS; ++r) {
        for (int64_t j = 0; j < n; ++j) {
            float a = 0.0f, total = 0.0f;
            double s = 0.0, t = 0.0;
            for (int64_t i = 0; i < k; ++i) {
                const float xv = p->x[r * k + i], wv = p->w[i * n + j];
                if (i % CHUNK == 0)
                    a = 0.0f;
                a = fmaf(xv, wv, a);
                if (i % CHUNK == CHUNK - 1 || i == k - 1)
                    total = i < CHUNK ? a : total + a;
                s += (double)xv * wv;
                t += fabs((double)xv * wv);
            }
            p->exact[r * n + j] = total;
            p->ref[r * n + j] = s;
            p->abs[r * n + j] = t;
        }
    }
}

static void make(struct problem *p, int64_t k, int64_t n, float scale, int shift)
{
    p->k = k;
    p->n = n;
    p->x = alloc_shifted(&p->raw[0], MAX_ROWS * k, shift);
    p->w = alloc_shifted(&p->raw[1], k * n, shift);
    p->bias = alloc_shifted(&p->raw[2], n, shift);
    fill_uniform(p->x, MAX_ROWS * k, -scale, scale);
    fill_uniform(p->w, k * n, -1.0f, 1.0f);
    fill_uniform(p->bias, n, -1.0f, 1.0f);
    references(p);
}

static void unmake(struct problem *p)
{
    for (int q = 0; q < 3; ++q)
        free(p->raw[q]);
    free(p->exact);
    free(p->ref);
    free(p->abs);
}

static int same(float a, float b)
{
    return (isnan(a) && isnan(b)) || to_bits(a) == to_bits(b);
}

/* Calls with m rows (bias or not) into a guarded y and checks it. */
static void check_call(const struct problem *p, int64_t m, int with_bias, int shift, const char *what)
{
    const int64_t k = p->k, n = p->n;
    void *raw;
    float *buf = alloc_shifted(&raw, m * n + 2 * GUARD, shift);
    for (int64_t q = 0; q < m * n + 2 * GUARD; ++q)
        buf[q] = SENTINEL;
    float *y = buf + GUARD;
    const float *bias = with_bias ? p->bias : NULL;
    const int rc = attn4j_small_gemm_f32(p->x, m, k, p->w, n, bias, y);
    CHECK_MSG(rc == ATTN4J_OK, "%s: m %lld k %lld n %lld: rc %d", what, (long long)m, (long long)k,
              (long long)n, rc);
    int64_t reported = 0;
    for (int64_t r = 0; r < m; ++r) {
        for (int64_t j = 0; j < n; ++j) {
            const float got = y[r * n + j];
            const float a = p->exact[r * n + j];
            const float want = bias != NULL ? a + bias[j] : a;
            const double ref = p->ref[r * n + j] + (bias != NULL ? (double)bias[j] : 0.0);
            /* + one subnormal half-ulp per rounding, where the relative bound fails */
            const int64_t chunks = (k + CHUNK - 1) / CHUNK;
            const int64_t depth = (k < CHUNK ? k : CHUNK) + chunks - 1; /* roundings a product goes through */
            const double tol = 1.01 * (double)depth * 0x1.0p-24 * p->abs[r * n + j] +
                               (bias != NULL ? 0x1.0p-24 * fabs(ref) : 0.0) + (double)(k + chunks + 1) * 0x1.0p-150;
            const int ok_exact = same(got, want);
            const int ok_ref = isnan(ref)   ? isnan(got)
                               : isinf(ref) ? (double)got == ref
                                            : fabs((double)got - ref) <= tol;
            if (!ok_exact || !ok_ref) {
                if (++reported <= 3)
                    fprintf(stderr, "%s: m %lld k %lld n %lld bias %d: y[%lld, %lld] = %.9g, chunked chain %.9g, "
                            "double %.12g (tol %.3g)\n",
                            what, (long long)m, (long long)k, (long long)n, with_bias, (long long)r,
                            (long long)j, got, want, ref, tol);
            }
        }
    }
    CHECK_MSG(reported == 0, "%s: m %lld k %lld n %lld bias %d: %lld elements wrong", what, (long long)m,
              (long long)k, (long long)n, with_bias, (long long)reported);
    for (int64_t q = 0; q < GUARD; ++q) {
        CHECK_MSG(buf[q] == SENTINEL, "%s: m %lld k %lld n %lld: wrote before y", what, (long long)m,
                  (long long)k, (long long)n);
        CHECK_MSG(buf[GUARD + m * n + q] == SENTINEL, "%s: m %lld k %lld n %lld: wrote past y", what,
                  (long long)m, (long long)k, (long long)n);
    }
    free(raw);
}

static void test_sizes(void)
{
    static const int64_t sizes[] = {1, 7, 15, 16, 17, 63, 64, 65, 512, 1536};
    const int count = (int)(sizeof sizes / sizeof sizes[0]);
    for (int a = 0; a < count; ++a) {
        for (int b = 0; b < count; ++b) {
            const int shift = (a + b) % 3 == 0; /* some operands off alignment */
            struct problem p;
            make(&p, sizes[a], sizes[b], 2.0f, shift);
            for (int64_t m = 1; m <= MAX_ROWS; ++m)
                for (int with_bias = 0; with_bias <= 1; ++with_bias)
                    check_call(&p, m, with_bias, (int)((m + with_bias) % 2), "sizes");
            unmake(&p);
        }
    }
}

/* Products and sums in the subnormal range: no flush to zero on any path. */
static void test_subnormal(void)
{
    struct problem p;
    p.k = 33;
    p.n = 40;
    p.x = alloc_shifted(&p.raw[0], MAX_ROWS * p.k, 0);
    p.w = alloc_shifted(&p.raw[1], p.k * p.n, 0);
    p.bias = alloc_shifted(&p.raw[2], p.n, 0);
    fill_uniform(p.x, MAX_ROWS * p.k, -0x1.0p-70f, 0x1.0p-70f);
    fill_uniform(p.w, p.k * p.n, -0x1.0p-60f, 0x1.0p-60f);
    for (int64_t j = 0; j < p.n; ++j)
        p.bias[j] = j % 2 ? 0x1.0p-140f : -0x1.0p-147f;
    references(&p);
    for (int64_t m = 1; m <= MAX_ROWS; ++m) {
        check_call(&p, m, 0, 0, "subnormal");
        check_call(&p, m, 1, 1, "subnormal");
    }
    int nonzero = 0;
    for (int64_t q = 0; q < MAX_ROWS * p.n; ++q)
        nonzero |= p.exact[q] != 0.0f && fabsf(p.exact[q]) < 0x1.0p-126f;
    CHECK_MSG(nonzero, "the subnormal case has no subnormal results");
    unmake(&p);
}

/* NaN, inf and signed zeros propagate through the chunked sums as IEEE says. */
static void test_special(void)
{
    for (int64_t n = 17; n <= 150; n += 133) {
        struct problem p;
        p.k = 40; /* two chunks */
        p.n = n;
        p.x = alloc_shifted(&p.raw[0], MAX_ROWS * p.k, 0);
        p.w = alloc_shifted(&p.raw[1], p.k * p.n, 0);
        p.bias = alloc_shifted(&p.raw[2], p.n, 0);
        fill_uniform(p.x, MAX_ROWS * p.k, -1.0f, 1.0f);
        fill_uniform(p.w, p.k * p.n, -1.0f, 1.0f);
        fill_uniform(p.bias, p.n, -1.0f, 1.0f);
        p.x[1 * p.k + 5] = NAN;      /* row 1: NaN */
        p.w[3 * p.n + 4] = NAN;      /* column 4: NaN */
        p.w[7 * p.n + 9] = INFINITY; /* column 9: inf, NaN in row 2 (x = 0) and row 3 (x = -inf) */
        p.x[2 * p.k + 7] = 0.0f;
        p.x[3 * p.k + 7] = -INFINITY;
        p.x[3 * p.k + 8] = INFINITY; /* row 3: +inf and -inf terms elsewhere: NaN */
        for (int64_t i = 0; i < p.k; ++i) {
            p.x[4 * p.k + i] = -0.0f; /* row 4: every product in column 0 is -0, and +0 + -0 is +0 */
            p.w[i * p.n] = fabsf(p.w[i * p.n]);
        }
        for (int64_t i = 0; i < p.k; ++i) { /* row 5, column 1: every product rounds to -0 in both chunks */
            p.x[5 * p.k + i] = 0x1.0p-80f;
            p.w[i * p.n + 1] = -0x1.0p-80f;
        }
        p.bias[11] = -INFINITY;
        references(&p);
        for (int64_t m = 1; m <= MAX_ROWS; ++m) {
            check_call(&p, m, 0, 0, "special");
            check_call(&p, m, 1, 0, "special");
        }
        CHECK(isnan(p.exact[1 * p.n + 0]) && isnan(p.exact[0 * p.n + 4]) && isnan(p.exact[2 * p.n + 9]));
        CHECK(to_bits(p.exact[4 * p.n + 0]) == 0u);
        CHECK(to_bits(p.exact[5 * p.n + 1]) == 0x80000000u); /* -0: the first chunk sum is the total */
        unmake(&p);
    }
}

/* The error on random data: x, w uniform in [-1, 1], the decode sizes; max over
 * the elements of |y - exact| / max(1, |exact|), exact the double reference. */
static void test_accuracy(void)
{
    /* Measured 3.29e-6 and 5.63e-6 (a single fmaf chain: 9.96e-6 and 3.64e-5). */
    static const int64_t ks[] = {512, 1536};
    static const double bounds[] = {5e-6, 1e-5};
    for (int q = 0; q < 2; ++q) {
        const int64_t k = ks[q], n = 512;
        const double bound = bounds[q];
        double worst = 0.0;
        for (int64_t m = 1; m <= MAX_ROWS; ++m) {
            struct problem p;
            make(&p, k, n, 1.0f, 0);
            float *y = malloc(sizeof(float) * (size_t)(m * n));
            CHECK_INT_EQ(attn4j_small_gemm_f32(p.x, m, k, p.w, n, NULL, y), ATTN4J_OK);
            for (int64_t e = 0; e < m * n; ++e) {
                const double err = fabs((double)y[e] - p.ref[e]) / fmax(1.0, fabs(p.ref[e]));
                worst = err > worst ? err : worst;
            }
            free(y);
            unmake(&p);
        }
        printf("test_gemm: accuracy k %lld n %lld m 1..8: max |y - exact| / max(1, |exact|) = %.3g (bound %.3g)\n",
               (long long)k, (long long)n, worst, bound);
        CHECK_MSG(worst <= bound, "accuracy k %lld: %.3g > %.3g", (long long)k, worst, bound);
    }
}

static void test_args(void)
{
    float x[16], w[64], b[8], y[64];
    for (int q = 0; q < 16; ++q)
        x[q] = 1.0f;
    for (int q = 0; q < 64; ++q)
        w[q] = 1.0f;
    for (int q = 0; q < 8; ++q)
        b[q] = 1.0f;
    for (int q = 0; q < 64; ++q)
        y[q] = SENTINEL;
    CHECK_INT_EQ(attn4j_small_gemm_f32(NULL, 1, 2, w, 2, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 1, 2, NULL, 2, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 1, 2, w, 2, NULL, NULL), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 0, 2, w, 2, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, -1, 2, w, 2, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 9, 1, w, 1, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 1, 0, w, 2, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 1, 2, w, 0, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 1, -2, w, 2, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 1, 2, w, -2, NULL, y), ATTN4J_EINVAL);
    /* Sizes past PTRDIFF_MAX bytes (never dereferenced). */
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 1, INT64_C(1) << 31, w, INT64_C(1) << 31, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 8, INT64_MAX / 16, w, 1, NULL, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 8, 1, w, INT64_MAX / 16, NULL, y), ATTN4J_EINVAL);
    /* y overlapping an input. */
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 2, 2, w, 2, NULL, x + 3), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 2, 4, w, 4, NULL, w + 15), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 2, 4, w, 4, y + 7, y), ATTN4J_EINVAL);
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 2, 4, w, 4, b, b), ATTN4J_EINVAL);
    for (int q = 0; q < 64; ++q)
        CHECK_MSG(y[q] == SENTINEL, "y[%d] written by a rejected call", q);
    /* Touching but not overlapping is fine. */
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 2, 4, w, 4, y + 8, y), ATTN4J_OK);
    CHECK(y[0] == 4.0f + SENTINEL && y[7] == 4.0f + SENTINEL && y[8] == SENTINEL);
    /* bias NULL is not checked for overlap. */
    CHECK_INT_EQ(attn4j_small_gemm_f32(x, 8, 2, w, 8, NULL, y), ATTN4J_OK);
    CHECK(y[63] == 2.0f);
}

int main(void)
{
    if (test_should_skip("test_gemm"))
        return 77;
    rng_seed(0x6e6d6d);
    test_args();
    test_special();
    test_subnormal();
    test_sizes();
    test_accuracy();
    return test_finish("test_gemm");
}
