/*
 * test_softmax.c - attn4j_masked_softmax_f32 and attn4j_masked_softmax_ex_f32
 * through the shared library, against a double-precision reference written here
 * from the contract in attn4j.h.
 *
 * Tolerance. The reference rounds to float exactly where the contract's float32
 * operations round (scale*s, x - 1e9f, logit - max), so those steps must agree
 * bit for bit; it then takes exp, the sum and the division in double. What the
 * kernel may add on top: exp (vector exp <= 2 ulp, libm expf <= 1 ulp, i.e.
 * <= 2.4e-7 relative), rounding the sum to float (6e-8) and the division (6e-8):
 * < 4e-7 in total, so every output is checked to 1e-6 relative. Outputs in the
 * subnormal range (probabilities below 1.2e-38) have fewer bits, hence an
 * absolute floor of 1e-44 (~7 subnormal ulps). Row sums: 1e-6.
 *
 * Runs under ATTN4J_ISA=scalar|avx2|avx512 (ctest adds it three times).
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
#include "test_softmax_util.h"

#define REL_TOL 1e-6
#define ABS_TOL 1e-44
#define SUM_TOL 1e-6

/* ---- One call and its reference --------------------------------------------------- */

static char case_name[384];

static int call_library(const struct sm_call *c, float *scores)
{
    if (c->ex)
        return attn4j_masked_softmax_ex_f32(scores, c->batch, c->tq, c->tv, c->scale, c->mask,
                                            c->mask_batch_stride, c->mask_row_stride,
                                            c->mask_batch_div, c->row_mask, c->col_mask,
                                            c->pad_batch_div, c->causal, c->window, c->convention);
    return attn4j_masked_softmax_f32(scores, c->batch, c->tq, c->tv, c->scale, c->mask,
                                     c->mask_batch_stride, c->mask_row_stride, c->mask_batch_div,
                                     c->causal, c->convention);
}

/* The contract of attn4j.h, step by step. */
static void reference(const struct sm_call *c, const float *scores, double *out)
{
    /* Keras: -0.7 * np.finfo(float32).max, stored as float32. */
    const float replace_logit = (float)(-0.7 * (double)FLT_MAX);
    float *logit = malloc((size_t)c->tv * sizeof *logit);
    for (int64_t b = 0; b < c->batch; ++b) {
        for (int64_t i = 0; i < c->tq; ++i) {
            const float *s = scores + (b * c->tq + i) * c->tv;
            double *o = out + (b * c->tq + i) * c->tv;
            float mx = -INFINITY;
            for (int64_t j = 0; j < c->tv; ++j) {
                const float x = c->scale * s[j];
                float l = x;
                if (!sm_kept(c, b, i, j)) {
                    if (c->convention == ATTN4J_MASK_SUBTRACT)
                        l = x - 1e9f;
                    else if (c->convention == ATTN4J_MASK_REPLACE_ZERO)
                        l = -1e9f;
                    else
                        l = replace_logit;
                }
                logit[j] = l;
                if (l > mx)
                    mx = l;
            }
            double sum = 0.0;
            for (int64_t j = 0; j < c->tv; ++j) {
                o[j] = exp((double)(float)(logit[j] - mx));
                sum += o[j];
            }
            for (int64_t j = 0; j < c->tv; ++j) {
                o[j] /= sum;
                /* Keras: where(mask, outputs, 0), so +0 even where the row is NaN. */
                if (c->convention == ATTN4J_MASK_REPLACE_ZERO && !sm_kept(c, b, i, j))
                    o[j] = 0.0;
            }
        }
    }
    free(logit);
}

/* Runs the library on a copy of `scores` and compares with the reference. The
 * result is left in `got` for extra checks by the caller. */
static void run_and_compare(const struct sm_call *c, const float *scores, float *got, double *want)
{
    const int64_t n = c->batch * c->tq * c->tv;
    memcpy(got, scores, (size_t)n * sizeof *got);
    const int rc = call_library(c, got);
    CHECK_MSG(rc == ATTN4J_OK, "%s: rc %d", case_name, rc);
    reference(c, scores, want);

    for (int64_t r = 0; r < c->batch * c->tq; ++r) {
        const int64_t b = r / c->tq, i = r % c->tq;
        const float *g = got + r * c->tv;
        const double *w = want + r * c->tv;
        double sum_got = 0.0, sum_want = 0.0;
        int nan_row = 0;
        for (int64_t j = 0; j < c->tv; ++j) {
            /* REPLACE_ZERO: a masked position is exactly +0, in NaN rows too. */
            if (c->convention == ATTN4J_MASK_REPLACE_ZERO && !sm_kept(c, b, i, j)) {
                const float zero = 0.0f;
                CHECK_MSG(memcmp(&g[j], &zero, sizeof zero) == 0,
                          "%s: [%lld,%lld,%lld] masked = %a, expected +0", case_name,
                          (long long)b, (long long)i, (long long)j, (double)g[j]);
            }
            if (isnan(w[j])) {
                nan_row = 1;
                CHECK_MSG(isnan(g[j]), "%s: [%lld,%lld,%lld] = %.9g, expected NaN", case_name,
                          (long long)b, (long long)i, (long long)j, (double)g[j]);
                continue;
            }
            CHECK_MSG(fabs((double)g[j] - w[j]) <= REL_TOL * fabs(w[j]) + ABS_TOL,
                      "%s: [%lld,%lld,%lld] = %.9g, expected %.9g (rel err %.3g)", case_name,
                      (long long)b, (long long)i, (long long)j, (double)g[j], w[j],
                      w[j] != 0.0 ? fabs((double)g[j] - w[j]) / w[j] : (double)g[j]);
            sum_got += g[j];
            sum_want += w[j];
        }
        if (!nan_row) {
            CHECK_MSG(fabs(sum_got - sum_want) <= SUM_TOL, "%s: row [%lld,%lld] sums to %.9g, expected %.9g",
                      case_name, (long long)b, (long long)i, sum_got, sum_want);
            /* The reference itself: 1, or 0 for a fully masked REPLACE_ZERO row. */
            CHECK_MSG(fabs(sum_want - 1.0) <= 1e-12 ||
                          (c->convention == ATTN4J_MASK_REPLACE_ZERO && sum_want == 0.0),
                      "%s: reference row [%lld,%lld] sums to %.17g", case_name, (long long)b,
                      (long long)i, sum_want);
        }
    }
}

/* ---- The sweep over sizes, mask layouts, causality and conventions ------------------ */

/* sm_make_mask, and for the (b, tv) layout the whole second batch fully masked
 * too. */
static uint8_t *make_mask(struct sm_call *c, enum mask_layout layout)
{
    uint8_t *m = sm_make_mask(c, layout);
    if (layout == MASK_BATCH_TV && c->batch > 1)
        memset(m + c->mask_batch_stride, 0, (size_t)c->tv);
    return m;
}

static void sweep_case(int64_t batch, int64_t tq, int64_t tv)
{
    static const float scales[] = {1.0f, 0.125f, 0.35355339f};
    static unsigned counter;
    const int64_t n = batch * tq * tv;
    float *scores = malloc((size_t)n * sizeof *scores);
    float *got = malloc((size_t)n * sizeof *got);
    double *want = malloc((size_t)n * sizeof *want);

    for (int layout = 0; layout < MASK_LAYOUTS; ++layout) {
        for (int causal = 0; causal <= 1; ++causal) {
            for (int32_t conv = 0; conv <= 2; ++conv) {
                ++counter;
                /* Every fourth case has logits over a wide range: probabilities down
                 * to the subnormals and to 0. */
                const float range = counter % 4 == 0 ? 90.0f : 8.0f;
                fill_uniform(scores, n, -range, range);
                struct sm_call c = {.batch = batch, .tq = tq, .tv = tv,
                                    .scale = scales[counter % 3], .causal = causal,
                                    .convention = conv};
                uint8_t *mask = make_mask(&c, (enum mask_layout)layout);
                snprintf(case_name, sizeof case_name,
                         "batch %lld tq %lld tv %lld mask %s div %lld causal %d %s scale %g range %g",
                         (long long)batch, (long long)tq, (long long)tv, layout_names[layout],
                         (long long)c.mask_batch_div, causal, conv_names[conv], (double)c.scale,
                         (double)range);
                run_and_compare(&c, scores, got, want);
                free(mask);
            }
        }
    }
    free(scores);
    free(got);
    free(want);
}

static void test_sweep(void)
{
    /* Around the vector widths (8, 16, and two or three vectors) and odd sizes. */
    static const int64_t tvs[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100, 257};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t];
        const int64_t batch = tv <= 49 ? 6 : 2;
        /* tq < tv, tq == tv, tq > tv: causal rows past tv keep every column. */
        const int64_t tqs[] = {tv > 1 ? (tv + 1) / 2 : 1, tv, tv + 3};
        for (int q = 0; q < 3; ++q)
            sweep_case(batch, tqs[q], tv);
    }
    /* Long rows: the double sum over thousands of terms. */
    sweep_case(2, 3, 1000);
    sweep_case(1, 2, 4096);
    sweep_case(1, 2, 4099);
}

/* ---- Fully masked rows ----------------------------------------------------------- */

static void test_fully_masked(void)
{
    static const int64_t tvs[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 257};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = 2;
        float *scores = malloc((size_t)(tq * tv) * sizeof *scores);
        float *got = malloc((size_t)(tq * tv) * sizeof *got);
        double *want = malloc((size_t)(tq * tv) * sizeof *want);
        uint8_t *mask = calloc((size_t)(tq * tv), 1);
        struct sm_call c = {.batch = 1, .tq = tq, .tv = tv, .scale = 1.0f, .mask = mask,
                            .mask_batch_stride = 0, .mask_row_stride = tv, .mask_batch_div = 1};
        const float uniform = 1.0f / (float)tv;

        /* SUBTRACT, |x| < 32: every x - 1e9f rounds to -1e9f (float spacing 64
         * there), so the row is exactly uniform. */
        fill_uniform(scores, tq * tv, -31.0f, 31.0f);
        c.convention = ATTN4J_MASK_SUBTRACT;
        snprintf(case_name, sizeof case_name, "fully masked SUBTRACT small tv %lld", (long long)tv);
        run_and_compare(&c, scores, got, want);
        for (int64_t k = 0; k < tq * tv; ++k)
            CHECK_MSG(got[k] == uniform, "%s: [%lld] = %a, expected %a", case_name, (long long)k,
                      (double)got[k], (double)uniform);

        /* SUBTRACT, x in 40..100: x - 1e9f lands on -1e9 + 64 or + 128, so the
         * row follows those float32 roundings (the reference models them). */
        fill_uniform(scores, tq * tv, 40.0f, 100.0f);
        snprintf(case_name, sizeof case_name, "fully masked SUBTRACT large tv %lld", (long long)tv);
        run_and_compare(&c, scores, got, want);

        /* REPLACE_ZERO: all +0. */
        c.convention = ATTN4J_MASK_REPLACE_ZERO;
        snprintf(case_name, sizeof case_name, "fully masked REPLACE_ZERO tv %lld", (long long)tv);
        run_and_compare(&c, scores, got, want);
        for (int64_t k = 0; k < tq * tv; ++k)
            CHECK_MSG(got[k] == 0.0f && !signbit(got[k]), "%s: [%lld] = %a", case_name,
                      (long long)k, (double)got[k]);

        /* REPLACE: every logit is the same constant: uniform, whatever x was. */
        c.convention = ATTN4J_MASK_REPLACE;
        snprintf(case_name, sizeof case_name, "fully masked REPLACE tv %lld", (long long)tv);
        run_and_compare(&c, scores, got, want);
        for (int64_t k = 0; k < tq * tv; ++k)
            CHECK_MSG(got[k] == uniform, "%s: [%lld] = %a, expected %a", case_name, (long long)k,
                      (double)got[k], (double)uniform);

        free(scores);
        free(got);
        free(want);
        free(mask);
    }
}

/* ---- NaN and infinities --------------------------------------------------------------- */

/* A NaN row (row i of batch 0) is NaN at every column, except under REPLACE_ZERO
 * at its masked columns, which are exactly +0: Keras zeroes them with
 * where(mask, outputs, 0), which does not look at the NaN. */
static int row_nan(const struct sm_call *c, int64_t i, const float *g)
{
    for (int64_t j = 0; j < c->tv; ++j) {
        if (c->convention == ATTN4J_MASK_REPLACE_ZERO && !sm_kept(c, 0, i, j)) {
            if (g[j] != 0.0f || signbit(g[j]))
                return 0;
        } else if (!isnan(g[j])) {
            return 0;
        }
    }
    return 1;
}

static int row_finite(const float *g, int64_t tv)
{
    for (int64_t j = 0; j < tv; ++j)
        if (!isfinite(g[j]))
            return 0;
    return 1;
}

/*
 * Row 0: a special value at a kept column; row 1: at a masked column; row 2: none.
 * NaN: a kept NaN makes its row NaN (but REPLACE_ZERO's masked columns are +0); a
 * masked NaN leaks under SUBTRACT (NaN - 1e9 is NaN, as in Keras) but not under
 * REPLACE / REPLACE_ZERO, which overwrite the logit. Infinities follow IEEE the
 * same way; all of it must match the reference and nothing may crash.
 */
static void test_special_values(void)
{
    static const int64_t tvs[] = {5, 8, 16, 17, 33, 100};
    static const float specials[] = {NAN, INFINITY, -INFINITY};
    static const char *special_names[] = {"NaN", "+inf", "-inf"};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = 3, n = tq * tv;
        float *scores = malloc((size_t)n * sizeof *scores);
        float *got = malloc((size_t)n * sizeof *got);
        double *want = malloc((size_t)n * sizeof *want);
        uint8_t *mask = malloc((size_t)n);
        memset(mask, 1, (size_t)n);
        const int64_t jk = tv / 2;       /* kept column in row 0 */
        const int64_t jm = tv - 1;       /* masked column in row 1 */
        mask[1 * tv + jm] = 0;
        mask[0 * tv + (jk + 1) % tv] = 0; /* row 0 has a masked column too */
        if ((jk + 1) % tv == jk)
            mask[0 * tv + jk] = 1;
        for (size_t sp = 0; sp < sizeof specials / sizeof specials[0]; ++sp) {
            for (int32_t conv = 0; conv <= 2; ++conv) {
                fill_uniform(scores, n, -4.0f, 4.0f);
                scores[0 * tv + jk] = specials[sp];
                scores[1 * tv + jm] = specials[sp];
                struct sm_call c = {.batch = 1, .tq = tq, .tv = tv, .scale = 0.5f, .mask = mask,
                                    .mask_batch_stride = 0, .mask_row_stride = tv,
                                    .mask_batch_div = 1, .convention = conv};
                snprintf(case_name, sizeof case_name, "%s tv %lld %s", special_names[sp],
                         (long long)tv, conv_names[conv]);
                run_and_compare(&c, scores, got, want);

                if (tv == 1 || !sm_kept(&c, 0, 0, jk))
                    continue;
                const float *row0 = got, *row1 = got + tv, *row2 = got + 2 * tv;
                if (sp == 0) {
                    CHECK_MSG(row_nan(&c, 0, row0), "%s: row 0", case_name);
                    if (conv == ATTN4J_MASK_SUBTRACT)
                        CHECK_MSG(row_nan(&c, 1, row1), "%s: row 1", case_name);
                    else
                        CHECK_MSG(row_finite(row1, tv), "%s: masked NaN leaked into row 1", case_name);
                } else if (sp == 1) {
                    /* +inf - +inf = NaN. */
                    CHECK_MSG(row_nan(&c, 0, row0), "%s: row 0", case_name);
                    if (conv != ATTN4J_MASK_SUBTRACT)
                        CHECK_MSG(row_finite(row1, tv), "%s: masked +inf leaked into row 1", case_name);
                } else {
                    /* exp(-inf - max) = 0. */
                    CHECK_MSG(row_finite(row0, tv) && row0[jk] == 0.0f, "%s: row 0", case_name);
                    CHECK_MSG(row_finite(row1, tv), "%s: row 1", case_name);
                }
                CHECK_MSG(row_finite(row2, tv), "%s: row 2 touched by its neighbours", case_name);
            }
        }

        /* A row of kept -inf: -inf - -inf = NaN, like numpy. And a scale of inf or
         * NaN: no crash, whatever comes out matches the reference. */
        for (int64_t k = 0; k < n; ++k)
            scores[k] = k < tv ? -INFINITY : rng_uniform(-4.0f, 4.0f);
        struct sm_call c = {.batch = 1, .tq = tq, .tv = tv, .scale = 1.0f, .mask = NULL,
                            .mask_batch_div = 1, .convention = ATTN4J_MASK_REPLACE};
        snprintf(case_name, sizeof case_name, "all -inf tv %lld", (long long)tv);
        run_and_compare(&c, scores, got, want);
        c.scale = INFINITY;
        snprintf(case_name, sizeof case_name, "scale inf tv %lld", (long long)tv);
        run_and_compare(&c, scores, got, want);
        c.scale = NAN;
        snprintf(case_name, sizeof case_name, "scale NaN tv %lld", (long long)tv);
        run_and_compare(&c, scores, got, want);

        free(scores);
        free(got);
        free(want);
        free(mask);
    }
}

/* ---- Causal boundary -------------------------------------------------------------------- */

/* With all logits equal, causal row i is uniform over columns 0..min(i, tv-1)
 * and exactly 0 beyond (exp(-1e9 - x) underflows): checks the boundary exactly. */
static void test_causal_boundary(void)
{
    static const int64_t tvs[] = {3, 8, 16, 17, 40};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = tv + 2;
        float *scores = malloc((size_t)(tq * tv) * sizeof *scores);
        for (int32_t conv = 0; conv <= 2; ++conv) {
            for (int64_t k = 0; k < tq * tv; ++k)
                scores[k] = 0.5f;
            CHECK_INT_EQ(attn4j_masked_softmax_f32(scores, 1, tq, tv, 1.0f, NULL, 0, 0, 1, 1, conv),
                         ATTN4J_OK);
            for (int64_t i = 0; i < tq; ++i) {
                const int64_t kept_cols = i + 1 < tv ? i + 1 : tv;
                for (int64_t j = 0; j < tv; ++j) {
                    const float expect = j < kept_cols ? 1.0f / (float)kept_cols : 0.0f;
                    CHECK_MSG(scores[i * tv + j] == expect, "causal tv %lld %s [%lld,%lld] = %a, expected %a",
                              (long long)tv, conv_names[conv], (long long)i, (long long)j,
                              (double)scores[i * tv + j], (double)expect);
                }
            }
        }
        free(scores);
    }
}


/* ---- attn4j_masked_softmax_ex_f32: every mask source at once ------------------------ */

/* 1, 2, 3 around the diagonal; "large" covers every column (the range code's
 * clamping), INT64_MAX must not overflow anything. */
static const int64_t windows[] = {0, 1, 2, 3, -1 /* tq + tv */, INT64_MAX};

static void ex_case(int64_t batch, int64_t tq, int64_t tv, int64_t window, int32_t conv, int pads)
{
    static const float scales[] = {1.0f, 0.125f, 0.35355339f};
    const int64_t n = batch * tq * tv;
    float *scores = malloc((size_t)n * sizeof *scores);
    float *got = malloc((size_t)n * sizeof *got);
    double *want = malloc((size_t)n * sizeof *want);

    const uint64_t r = rng_next() >> 8;
    struct sm_call c = {.batch = batch, .tq = tq, .tv = tv, .scale = scales[r % 3],
                        .causal = (int32_t)((r >> 2) & 1), .window = window < 0 ? tq + tv : window,
                        .convention = conv, .ex = 1};
    const int layout = (int)((r >> 3) % MASK_LAYOUTS);
    uint8_t *mask = make_mask(&c, (enum mask_layout)layout);
    c.pad_batch_div = 1 + (int64_t)((r >> 8) % 4); /* 4 does not divide the batch */
    uint8_t *rows = (pads & 1) ? make_pad(batch, c.pad_batch_div, tq, (r >> 12) % 4 == 0) : NULL;
    uint8_t *cols = (pads & 2) ? make_pad(batch, c.pad_batch_div, tv, (r >> 14) % 4 == 0) : NULL;
    c.row_mask = rows;
    c.col_mask = cols;
    const float range = (r >> 16) % 4 == 0 ? 90.0f : 8.0f;
    fill_uniform(scores, n, -range, range);
    snprintf(case_name, sizeof case_name,
             "ex batch %lld tq %lld tv %lld mask %s div %lld rows %s cols %s pad div %lld causal %d "
             "window %lld %s scale %g range %g",
             (long long)batch, (long long)tq, (long long)tv, layout_names[layout],
             (long long)c.mask_batch_div, rows ? "yes" : "no", cols ? "yes" : "no",
             (long long)c.pad_batch_div, c.causal, (long long)c.window, conv_names[conv],
             (double)c.scale, (double)range);
    run_and_compare(&c, scores, got, want);
    free(mask);
    free(rows);
    free(cols);
    free(scores);
    free(got);
    free(want);
}

static void test_ex_sweep(void)
{
    static const int64_t tvs[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 100};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t];
        const int64_t batch = tv <= 49 ? 6 : 3;
        const int64_t tqs[] = {tv > 1 ? (tv + 1) / 2 : 1, tv, tv + 3};
        for (int q = 0; q < 3; ++q)
            for (size_t w = 0; w < sizeof windows / sizeof windows[0]; ++w)
                for (int32_t conv = 0; conv <= 2; ++conv)
                    for (int pads = 0; pads < 4; ++pads)
                        ex_case(batch, tqs[q], tv, windows[w], conv, pads);
    }
    /* Long rows with short windows: most of each row outside the range. */
    for (int32_t conv = 0; conv <= 2; ++conv) {
        ex_case(2, 5, 1000, 3, conv, 3);
        ex_case(1, 3, 4099, 17, conv, 2);
        ex_case(1, 4, 4099, INT64_MAX, conv, 1);
    }
}

/* The combined mask of a call, materialised as (batch, tq, tv) bytes. */
static uint8_t *materialise(const struct sm_call *c)
{
    uint8_t *m = malloc((size_t)(c->batch * c->tq * c->tv));
    for (int64_t b = 0; b < c->batch; ++b)
        for (int64_t i = 0; i < c->tq; ++i)
            for (int64_t j = 0; j < c->tv; ++j)
                m[(b * c->tq + i) * c->tv + j] = (uint8_t)sm_kept(c, b, i, j);
    return m;
}

/*
 * The library against itself: (1) attn4j_masked_softmax_f32 is
 * attn4j_masked_softmax_ex_f32 without the extra sources, bit for bit; (2) _ex
 * with all five sources against attn4j_masked_softmax_f32 given the combined mask
 * as one (batch, tq, tv) mask: the same logits, so SUBTRACT (whose passes are the
 * same) agrees bit for bit, and REPLACE / REPLACE_ZERO, whose columns outside the
 * causal / window range are summed in another order, within 2 ulp.
 */
static void test_ex_equivalence(void)
{
    static const int64_t tvs[] = {5, 8, 16, 17, 40};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = tv + 1, batch = 4, n = batch * tq * tv;
        float *scores = malloc((size_t)n * sizeof *scores);
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        fill_uniform(scores, n, -8.0f, 8.0f);
        for (int32_t conv = 0; conv <= 2; ++conv) {
            for (int causal = 0; causal <= 1; ++causal) {
                struct sm_call c = {.batch = batch, .tq = tq, .tv = tv, .scale = 0.25f,
                                    .causal = causal, .convention = conv};
                uint8_t *mask = make_mask(&c, MASK_HEADS);
                memcpy(a, scores, (size_t)n * sizeof *a);
                memcpy(b, scores, (size_t)n * sizeof *b);
                CHECK_INT_EQ(call_library(&c, a), ATTN4J_OK);
                c.ex = 1;
                c.pad_batch_div = 1;
                CHECK_INT_EQ(call_library(&c, b), ATTN4J_OK);
                CHECK_MSG(memcmp(a, b, (size_t)n * sizeof *a) == 0, "tv %lld %s causal %d: _f32 != _ex_f32",
                          (long long)tv, conv_names[conv], causal);

                uint8_t *rows = make_pad(batch, 2, tq, 0), *cols = make_pad(batch, 2, tv, 1);
                c.row_mask = rows;
                c.col_mask = cols;
                c.pad_batch_div = 2;
                c.window = 2 + causal;
                memcpy(b, scores, (size_t)n * sizeof *b);
                CHECK_INT_EQ(call_library(&c, b), ATTN4J_OK);
                uint8_t *combined = materialise(&c);
                struct sm_call d = {.batch = batch, .tq = tq, .tv = tv, .scale = 0.25f, .mask = combined,
                                 .mask_batch_stride = tq * tv, .mask_row_stride = tv,
                                 .mask_batch_div = 1, .convention = conv};
                memcpy(a, scores, (size_t)n * sizeof *a);
                CHECK_INT_EQ(call_library(&d, a), ATTN4J_OK);
                const int64_t tol = conv == ATTN4J_MASK_SUBTRACT ? 0 : 2;
                int64_t worst = 0;
                for (int64_t k = 0; k < n; ++k) {
                    const int64_t u = ulp_distance(a[k], b[k]);
                    worst = u > worst ? u : worst;
                }
                CHECK_MSG(worst <= tol, "tv %lld %s causal %d: all sources vs combined mask: %lld ulp",
                          (long long)tv, conv_names[conv], causal, (long long)worst);
                free(combined);
                free(rows);
                free(cols);
                free(mask);
            }
        }
        free(scores);
        free(a);
        free(b);
    }
}

/* With all logits equal, row i is uniform over the columns its window (and
 * causality) keep and exactly 0 elsewhere; a row they leave empty is all +0
 * (REPLACE_ZERO) or uniform over every column (SUBTRACT: all logits round to
 * -1e9; REPLACE: all are the same constant). Checks the range arithmetic exactly,
 * also for rows past tv (tq > tv). */
static void test_window_boundary(void)
{
    static const int64_t tvs[] = {3, 8, 16, 17, 40};
    static const int64_t wins[] = {1, 2, 3, 5, 100, INT64_MAX};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = tv + 4;
        float *scores = malloc((size_t)(tq * tv) * sizeof *scores);
        for (size_t w = 0; w < sizeof wins / sizeof wins[0]; ++w) {
            for (int causal = 0; causal <= 1; ++causal) {
                for (int32_t conv = 0; conv <= 2; ++conv) {
                    const int64_t window = wins[w];
                    for (int64_t k = 0; k < tq * tv; ++k)
                        scores[k] = 0.5f;
                    CHECK_INT_EQ(attn4j_masked_softmax_ex_f32(scores, 1, tq, tv, 1.0f, NULL, 0, 0, 1, NULL,
                                                              NULL, 1, causal, window, conv),
                                 ATTN4J_OK);
                    for (int64_t i = 0; i < tq; ++i) {
                        int64_t count = 0;
                        for (int64_t j = 0; j < tv; ++j)
                            count += (!causal || j <= i) && (i - j < window && j - i < window);
                        for (int64_t j = 0; j < tv; ++j) {
                            const int keep = (!causal || j <= i) && (i - j < window && j - i < window);
                            float expect;
                            if (count > 0)
                                expect = keep ? 1.0f / (float)count : 0.0f;
                            else
                                expect = conv == ATTN4J_MASK_REPLACE_ZERO ? 0.0f : 1.0f / (float)tv;
                            CHECK_MSG(scores[i * tv + j] == expect,
                                      "window %lld causal %d tv %lld %s [%lld,%lld] = %a, expected %a",
                                      (long long)window, causal, (long long)tv, conv_names[conv],
                                      (long long)i, (long long)j, (double)scores[i * tv + j],
                                      (double)expect);
                        }
                    }
                }
            }
        }
        free(scores);
    }
}

/* Rows whose row_mask byte is 0, with NaN and inf scores in them: REPLACE_ZERO
 * gives +0 and REPLACE the uniform 1/tv whatever the scores (both replace every
 * logit of the row); SUBTRACT keeps x - 1e9, so NaN and inf show through as in
 * Keras. The other rows are untouched by them. */
static void test_masked_rows_special(void)
{
    static const int64_t tvs[] = {1, 7, 8, 9, 16, 17, 33};
    static const float specials[] = {NAN, INFINITY, -INFINITY};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = 3, batch = 2, n = batch * tq * tv;
        float *scores = malloc((size_t)n * sizeof *scores);
        float *got = malloc((size_t)n * sizeof *got);
        double *want = malloc((size_t)n * sizeof *want);
        const uint8_t rows[] = {1, 0, 1}; /* one sequence shared by both batches */
        for (size_t sp = 0; sp < sizeof specials / sizeof specials[0]; ++sp) {
            for (int32_t conv = 0; conv <= 2; ++conv) {
                fill_uniform(scores, n, -4.0f, 4.0f);
                for (int64_t b = 0; b < batch; ++b)
                    scores[(b * tq + 1) * tv + tv / 2] = specials[sp];
                struct sm_call c = {.batch = batch, .tq = tq, .tv = tv, .scale = 1.0f,
                                    .mask_batch_div = 1, .row_mask = rows, .pad_batch_div = 2,
                                    .convention = conv, .ex = 1};
                snprintf(case_name, sizeof case_name, "masked row with %g tv %lld %s",
                         (double)specials[sp], (long long)tv, conv_names[conv]);
                run_and_compare(&c, scores, got, want);
                for (int64_t b = 0; b < batch; ++b) {
                    const float *row = got + (b * tq + 1) * tv;
                    for (int64_t j = 0; j < tv; ++j) {
                        if (conv == ATTN4J_MASK_REPLACE_ZERO)
                            CHECK_MSG(row[j] == 0.0f && !signbit(row[j]), "%s: [%lld] = %a", case_name,
                                      (long long)j, (double)row[j]);
                        else if (conv == ATTN4J_MASK_REPLACE)
                            CHECK_MSG(row[j] == 1.0f / (float)tv, "%s: [%lld] = %a", case_name,
                                      (long long)j, (double)row[j]);
                    }
                    CHECK_MSG(row_finite(got + b * tq * tv, tv) && row_finite(got + (b * tq + 2) * tv, tv),
                              "%s: kept rows of batch %lld not finite", case_name, (long long)b);
                }
            }
        }
        free(scores);
        free(got);
        free(want);
    }
}

/* Causal / windowed rows whose kept logits all lie below the masked constant:
 * -inf (REPLACE: the masked columns carry the row, uniform among themselves) and
 * below -1e9 (REPLACE_ZERO: e of the kept columns is 0, the row all +0). The
 * skipped masked columns must take part in the max, not only in the sum. */
static void test_kept_below_masked(void)
{
    static const int64_t tvs[] = {5, 8, 16, 17, 40};
    static const float lows[] = {-INFINITY, -3e9f, -1.5e9f};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = tv, n = tq * tv;
        float *scores = malloc((size_t)n * sizeof *scores);
        float *got = malloc((size_t)n * sizeof *got);
        double *want = malloc((size_t)n * sizeof *want);
        for (size_t l = 0; l < sizeof lows / sizeof lows[0]; ++l) {
            for (int32_t conv = 0; conv <= 2; ++conv) {
                for (int64_t k = 0; k < n; ++k)
                    scores[k] = lows[l];
                struct sm_call c = {.batch = 1, .tq = tq, .tv = tv, .scale = 1.0f, .mask_batch_div = 1,
                                    .pad_batch_div = 1, .causal = 1, .window = 3, .convention = conv, .ex = 1};
                snprintf(case_name, sizeof case_name, "kept logits %g, causal window 3, tv %lld %s",
                         (double)lows[l], (long long)tv, conv_names[conv]);
                run_and_compare(&c, scores, got, want);
                if (conv == ATTN4J_MASK_REPLACE && lows[l] == -INFINITY) {
                    /* Row tv-1 keeps 3 columns, masks tv-3: each masked one 1/(tv-3). */
                    const float *row = got + (tq - 1) * tv;
                    for (int64_t j = 0; j + 3 < tv; ++j)
                        CHECK_MSG(row[j] == 1.0f / (float)(tv - 3), "%s: [%lld] = %a", case_name,
                                  (long long)j, (double)row[j]);
                }
            }
        }
        free(scores);
        free(got);
        free(want);
    }
}

int main(void)
{
    rng_seed(0x9E3779B97F4A7C15u);
    if (test_should_skip("test_softmax"))
        return 77;
    test_sweep();
    test_fully_masked();
    test_special_values();
    test_causal_boundary();
    test_ex_sweep();
    test_ex_equivalence();
    test_window_boundary();
    test_masked_rows_special();
    test_kept_below_masked();
    return test_finish("test_softmax");
}
