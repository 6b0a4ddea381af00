/*
 * test_tanh_scores.c - attn4j_tanh_scores_f32 through the shared library, against
 * a double-precision reference written here from the contract in attn4j.h.
 *
 * Tolerance. The reference rounds to float where the contract's float32 steps
 * round before tanh (t = q + k, u = inner * t), so both see the same u; then it
 * takes tanh, w * tanh, the sum and outer * sum in double. What the kernel adds
 * per term: tanh within 2 ulp (<= 2.4e-7 relative) and the rounding of w * th
 * (6e-8), i.e. <= 3e-7 of |p_d|; the double sum adds nothing measurable; rounding
 * the sum to float and multiplying by outer add 1.2e-7 of the result. So
 *
 *     |got - want| <= 4.2e-7 * |outer| * sum_d |p_d|
 *
 * and the check allows 1e-6 * |outer| * sum_d |p_d|. Measured against |want|
 * this is a relative tolerance of about 1e-6 * sqrt(dim) for these inputs: the
 * terms are near +-|w_d| with random signs, so |want| grows like sqrt(dim) while
 * sum |p_d| grows like dim. Written against sum |p_d| rather than |want| it stays
 * a true bound when a sum cancels to nearly 0.
 *
 * Runs under ATTN4J_ISA=scalar|avx2|avx512 (ctest adds it three times); the
 * vector paths have two loop orders, switching above dim 256, so dims on both
 * sides of it are covered, and tv around the vector widths (8, 16).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn4j.h"
#include "test_util.h"

#define TOL 1e-6
#define ABS_TOL 1e-35

/* ---- One call and its reference ----------------------------------------------------- */

struct call {
    int64_t batch, tq, tv, dim;
    const float *q, *k, *weights;
    float inner, outer;
};

static char case_name[256];

/* The contract of attn4j.h, step by step: want[b,i,j] and the error scale
 * |outer| * sum_d |p_d| of each score. */
static void reference(const struct call *c, double *want, double *mag)
{
    for (int64_t b = 0; b < c->batch; ++b) {
        for (int64_t i = 0; i < c->tq; ++i) {
            const float *qi = c->q + (b * c->tq + i) * c->dim;
            for (int64_t j = 0; j < c->tv; ++j) {
                const float *kj = c->k + (b * c->tv + j) * c->dim;
                double sum = 0.0, abs_sum = 0.0;
                for (int64_t d = 0; d < c->dim; ++d) {
                    const float t = qi[d] + kj[d];
                    const float u = c->inner * t;
                    const double th = tanh((double)u);
                    const double p = c->weights == NULL ? th : (double)c->weights[d] * th;
                    sum += p;
                    abs_sum += fabs(p);
                }
                const int64_t o = (b * c->tq + i) * c->tv + j;
                want[o] = (double)c->outer * sum;
                mag[o] = fabs((double)c->outer) * abs_sum;
            }
        }
    }
}

/* Calls the library into `got` (which must hold batch * tq * tv floats) and
 * compares every score with the reference. */
static void run_and_compare(const struct call *c, float *got)
{
    const int64_t n = c->batch * c->tq * c->tv;
    double *want = malloc((size_t)n * sizeof *want);
    double *mag = malloc((size_t)n * sizeof *mag);
    const int rc = attn4j_tanh_scores_f32(c->q, c->k, got, c->batch, c->tq, c->tv, c->dim,
                                          c->weights, c->inner, c->outer);
    CHECK_MSG(rc == ATTN4J_OK, "%s: rc %d", case_name, rc);
    reference(c, want, mag);
    for (int64_t o = 0; o < n; ++o) {
        const long long b = (long long)(o / (c->tq * c->tv)), i = (long long)(o / c->tv % c->tq),
                        j = (long long)(o % c->tv);
        if (isnan(want[o])) {
            CHECK_MSG(isnan(got[o]), "%s: [%lld,%lld,%lld] = %.9g, expected NaN", case_name, b, i, j,
                      (double)got[o]);
        } else if (isinf(want[o])) {
            CHECK_MSG((double)got[o] == want[o], "%s: [%lld,%lld,%lld] = %.9g, expected %g",
                      case_name, b, i, j, (double)got[o], want[o]);
        } else {
            const double err = fabs((double)got[o] - want[o]);
            CHECK_MSG(err <= TOL * mag[o] + ABS_TOL,
                      "%s: [%lld,%lld,%lld] = %.9g, expected %.9g (error %.3g, allowed %.3g)",
                      case_name, b, i, j, (double)got[o], want[o], err, TOL * mag[o] + ABS_TOL);
        }
    }
    free(want);
    free(mag);
}

/* ---- The sweep ----------------------------------------------------------------------- */

static void sweep_dim(int64_t dim)
{
    /* (batch, tq, tv): tq and tv of 1, tv around 8 and 16, several key blocks. */
    static const int64_t shapes[][3] = {{1, 1, 1}, {2, 1, 17}, {1, 9, 1},  {1, 3, 8},
                                        {2, 5, 9}, {1, 17, 16}, {3, 7, 33}, {1, 2, 65}};
    static const float inners[] = {1.0f, 0.7f};
    static const float outers[] = {1.0f, 1.3f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        const int64_t batch = shapes[s][0], tq = shapes[s][1], tv = shapes[s][2];
        /* Exactly sized buffers, so AddressSanitizer sees any read past them. */
        float *q = malloc((size_t)(batch * tq * dim) * sizeof *q);
        float *k = malloc((size_t)(batch * tv * dim) * sizeof *k);
        float *w = malloc((size_t)dim * sizeof *w);
        float *got = malloc((size_t)(batch * tq * tv) * sizeof *got);
        float *got_ones = malloc((size_t)(batch * tq * tv) * sizeof *got_ones);
        fill_uniform(q, batch * tq * dim, -3.0f, 3.0f);
        fill_uniform(k, batch * tv * dim, -3.0f, 3.0f);
        fill_uniform(w, dim, -2.0f, 2.0f);
        for (int with_w = 0; with_w <= 1; ++with_w) {
            for (int a = 0; a < 2; ++a) {
                for (int o = 0; o < 2; ++o) {
                    const struct call c = {batch, tq, tv, dim, q, k, with_w ? w : NULL, inners[a], outers[o]};
                    snprintf(case_name, sizeof case_name,
                             "batch %lld tq %lld tv %lld dim %lld weights %s inner %g outer %g",
                             (long long)batch, (long long)tq, (long long)tv, (long long)dim,
                             with_w ? "yes" : "NULL", (double)inners[a], (double)outers[o]);
                    run_and_compare(&c, got);
                }
            }
        }

        /* weights == NULL skips the multiply; weights of 1 multiply exactly: the
         * same bits. */
        for (int64_t d = 0; d < dim; ++d)
            w[d] = 1.0f;
        CHECK_INT_EQ(attn4j_tanh_scores_f32(q, k, got, batch, tq, tv, dim, NULL, 0.7f, 1.3f), ATTN4J_OK);
        CHECK_INT_EQ(attn4j_tanh_scores_f32(q, k, got_ones, batch, tq, tv, dim, w, 0.7f, 1.3f), ATTN4J_OK);
        CHECK_MSG(memcmp(got, got_ones, (size_t)(batch * tq * tv) * sizeof *got) == 0,
                  "dim %lld tq %lld tv %lld: weights NULL and weights of 1 differ", (long long)dim,
                  (long long)tq, (long long)tv);

        /* Batches are independent: the last batch alone gives the same bits. */
        if (batch > 1) {
            const int64_t last = batch - 1;
            CHECK_INT_EQ(attn4j_tanh_scores_f32(q + last * tq * dim, k + last * tv * dim, got_ones, 1,
                                                tq, tv, dim, NULL, 0.7f, 1.3f),
                         ATTN4J_OK);
            CHECK_MSG(memcmp(got + last * tq * tv, got_ones, (size_t)(tq * tv) * sizeof *got) == 0,
                      "dim %lld tq %lld tv %lld: last batch alone differs", (long long)dim,
                      (long long)tq, (long long)tv);
        }
        free(q);
        free(k);
        free(w);
        free(got);
        free(got_ones);
    }
}

static void test_sweep(void)
{
    static const int64_t dims[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 33, 64, 100, 255, 256, 257, 300};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; ++d)
        sweep_dim(dims[d]);
}

/* Saturated terms: |q + k| >= 10, so every tanh is exactly +-1 and the score is
 * exactly outer * (sum of +-w_d), which the double sum and one rounding give. */
static void test_saturated(void)
{
    enum { TQ = 3, TV = 18, DIM = 20 };
    float q[TQ * DIM], k[TV * DIM], w[DIM], got[TQ * TV];
    for (int x = 0; x < TQ * DIM; ++x)
        q[x] = (x % 3 == 0 ? -1.0f : 1.0f) * rng_uniform(20.0f, 1000.0f);
    fill_uniform(k, TV * DIM, -9.0f, 9.0f);
    for (int d = 0; d < DIM; ++d)
        w[d] = (float)(d + 1) * 0.125f;
    CHECK_INT_EQ(attn4j_tanh_scores_f32(q, k, got, 1, TQ, TV, DIM, w, 1.0f, 1.5f), ATTN4J_OK);
    for (int i = 0; i < TQ; ++i) {
        double sum = 0.0;
        for (int d = 0; d < DIM; ++d)
            sum += q[i * DIM + d] > 0 ? w[d] : -w[d];
        const float want = 1.5f * (float)sum;
        for (int j = 0; j < TV; ++j)
            CHECK_MSG(got[i * TV + j] == want, "saturated [%d,%d] = %a, expected %a", i, j,
                      (double)got[i * TV + j], (double)want);
    }
}

/* ---- NaN and infinities ---------------------------------------------------------------- */

static int all_nan(const float *x, int64_t n, int64_t stride)
{
    for (int64_t k = 0; k < n; ++k)
        if (!isnan(x[k * stride]))
            return 0;
    return 1;
}

static int count_nan(const float *x, int64_t n)
{
    int c = 0;
    for (int64_t k = 0; k < n; ++k)
        c += isnan(x[k]) != 0;
    return c;
}

/*
 * Special values placed in q, k, weights, inner and outer; every case is compared
 * with the reference (which follows IEEE the same way), and the NaN pattern the
 * contract promises is checked explicitly. Both loop orders: dim 20 and 280.
 */
static void test_special_values(void)
{
    static const int64_t dims[] = {20, 280};
    for (size_t dd = 0; dd < sizeof dims / sizeof dims[0]; ++dd) {
        const int64_t batch = 2, tq = 4, tv = 19, dim = dims[dd];
        const int64_t nq = batch * tq * dim, nk = batch * tv * dim, ns = batch * tq * tv;
        float *q = malloc((size_t)nq * sizeof *q);
        float *k = malloc((size_t)nk * sizeof *k);
        float *w = malloc((size_t)dim * sizeof *w);
        float *got = malloc((size_t)ns * sizeof *got);
        struct call c = {batch, tq, tv, dim, q, k, NULL, 1.0f, 1.0f};
        const int64_t d0 = dim - 3;

#define RESET()                                                                                \
    do {                                                                                       \
        fill_uniform(q, nq, -3.0f, 3.0f);                                                      \
        fill_uniform(k, nk, -3.0f, 3.0f);                                                      \
        fill_uniform(w, dim, -2.0f, 2.0f);                                                     \
        c.weights = NULL;                                                                      \
        c.inner = 1.0f;                                                                        \
        c.outer = 1.0f;                                                                        \
    } while (0)

        /* NaN in q[1, 2, d0]: row 2 of batch 1 is NaN, nothing else. */
        RESET();
        q[(1 * tq + 2) * dim + d0] = NAN;
        snprintf(case_name, sizeof case_name, "dim %lld NaN in q", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(all_nan(got + (1 * tq + 2) * tv, tv, 1) && count_nan(got, ns) == tv, "%s", case_name);

        /* NaN in k[0, 5, d0]: column 5 of batch 0 is NaN, nothing else. */
        RESET();
        k[(0 * tv + 5) * dim + d0] = NAN;
        snprintf(case_name, sizeof case_name, "dim %lld NaN in k", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(all_nan(got + 5, tq, tv) && count_nan(got, ns) == tq, "%s", case_name);

        /* +inf in q, -inf in k at the same d: NaN only where both meet (t = inf - inf);
         * elsewhere tanh(+-inf) = +-1 and the score is finite. */
        RESET();
        q[(0 * tq + 1) * dim + d0] = INFINITY;
        k[(0 * tv + 7) * dim + d0] = -INFINITY;
        snprintf(case_name, sizeof case_name, "dim %lld +inf in q, -inf in k", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(isnan(got[1 * tv + 7]) && count_nan(got, ns) == 1, "%s", case_name);
        CHECK_MSG(isfinite(got[1 * tv + 6]) && isfinite(got[2 * tv + 7]), "%s", case_name);

        /* inner = 0 and an infinite q: 0 * inf is NaN, the row of that q. */
        RESET();
        q[(1 * tq + 0) * dim + d0] = -INFINITY;
        c.inner = 0.0f;
        snprintf(case_name, sizeof case_name, "dim %lld inner 0, -inf in q", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(all_nan(got + (1 * tq + 0) * tv, tv, 1) && count_nan(got, ns) == tv, "%s", case_name);

        /* inner = +inf: every u is +-inf (tanh +-1), finite scores. */
        RESET();
        c.inner = INFINITY;
        snprintf(case_name, sizeof case_name, "dim %lld inner inf", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(count_nan(got, ns) == 0, "%s", case_name);

        /* A NaN weight: everything NaN. */
        RESET();
        w[d0] = NAN;
        c.weights = w;
        snprintf(case_name, sizeof case_name, "dim %lld NaN weight", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(count_nan(got, ns) == ns, "%s", case_name);

        /* An infinite weight: +-inf scores (the reference says which sign). */
        RESET();
        w[d0] = INFINITY;
        c.weights = w;
        snprintf(case_name, sizeof case_name, "dim %lld inf weight", (long long)dim);
        run_and_compare(&c, got);

        /* A NaN inner: everything NaN. */
        RESET();
        c.inner = NAN;
        snprintf(case_name, sizeof case_name, "dim %lld inner NaN", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(count_nan(got, ns) == ns, "%s", case_name);

        /* outer NaN: all NaN; outer inf: all +-inf. */
        RESET();
        c.outer = NAN;
        snprintf(case_name, sizeof case_name, "dim %lld outer NaN", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(count_nan(got, ns) == ns, "%s", case_name);
        RESET();
        c.outer = -INFINITY;
        snprintf(case_name, sizeof case_name, "dim %lld outer -inf", (long long)dim);
        run_and_compare(&c, got);

        /* Huge finite inputs: saturate, no overflow inside tanh. */
        RESET();
        q[0] = FLT_MAX;
        k[0] = -FLT_MAX / 2;
        q[dim] = -FLT_MAX;
        snprintf(case_name, sizeof case_name, "dim %lld huge inputs", (long long)dim);
        run_and_compare(&c, got);
        CHECK_MSG(count_nan(got, ns) == 0, "%s", case_name);
#undef RESET
        free(q);
        free(k);
        free(w);
        free(got);
    }
}

/* ---- Argument checks --------------------------------------------------------------------- */

enum { B = 2, TQ = 3, TV = 5, DIM = 4, NS = B * TQ * TV };

static void fill_sentinel(float *x)
{
    for (int k = 0; k < NS; ++k)
        x[k] = -7.0f + 0.5f * (float)k;
}

/* A call out of contract returns ATTN4J_EINVAL and leaves scores bit-identical. */
#define CHECK_EINVAL(...)                                                                      \
    do {                                                                                       \
        float before[NS], scores[NS];                                                          \
        fill_sentinel(before);                                                                 \
        memcpy(scores, before, sizeof scores);                                                 \
        float *s = scores;                                                                     \
        (void)s;                                                                               \
        CHECK_INT_EQ(attn4j_tanh_scores_f32(__VA_ARGS__), ATTN4J_EINVAL);                      \
        CHECK_MSG(memcmp(scores, before, sizeof scores) == 0, "scores modified by: %s",       \
                  #__VA_ARGS__);                                                               \
    } while (0)

static void test_invalid_arguments(void)
{
    float q[B * TQ * DIM], k[B * TV * DIM], w[DIM];
    fill_uniform(q, B * TQ * DIM, -1.0f, 1.0f);
    fill_uniform(k, B * TV * DIM, -1.0f, 1.0f);
    fill_uniform(w, DIM, -1.0f, 1.0f);
    const int64_t big = INT64_C(1) << 31;

    CHECK_EINVAL(NULL, k, s, B, TQ, TV, DIM, w, 1.0f, 1.0f);
    CHECK_EINVAL(q, NULL, s, B, TQ, TV, DIM, w, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, NULL, B, TQ, TV, DIM, w, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, 0, TQ, TV, DIM, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, -1, TQ, TV, DIM, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, B, 0, TV, DIM, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, B, INT64_MIN, TV, DIM, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, B, TQ, 0, DIM, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, B, TQ, -5, DIM, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, B, TQ, TV, 0, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, B, TQ, TV, -4, NULL, 1.0f, 1.0f);
    /* Each tensor too large on its own (the other two would fit): q, k, scores. */
    CHECK_EINVAL(q, k, s, 1, big, 1, big, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, 1, 1, big, big, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, 1, big, big, 1, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, big, big, 1, 1, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, INT64_MAX, 1, 1, 1, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, 1, 1, 1, INT64_MAX, NULL, 1.0f, 1.0f);
    CHECK_EINVAL(q, k, s, 1, INT64_MAX, INT64_MAX, INT64_MAX, NULL, 1.0f, 1.0f);

    /* In contract: OK, every score written. */
    float scores[NS];
    fill_sentinel(scores);
    CHECK_INT_EQ(attn4j_tanh_scores_f32(q, k, scores, B, TQ, TV, DIM, NULL, 1.0f, 1.0f), ATTN4J_OK);
    for (int x = 0; x < NS; ++x)
        CHECK_MSG(fabsf(scores[x]) <= (float)DIM, "scores[%d] = %g", x, (double)scores[x]);
}

int main(void)
{
    rng_seed(0x243F6A8885A308D3u);
    if (test_should_skip("test_tanh_scores"))
        return 77;
    test_invalid_arguments();
    test_saturated();
    test_special_values();
    test_sweep();
    return test_finish("test_tanh_scores");
}
