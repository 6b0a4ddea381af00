/*
 * test_backward.c - attn4j_softmax_backward_f32, attn4j_tanh_scores_backward_f32
 * and attn4j_gate_backward_f32 through the shared library, against double
 * references written here from the contracts in attn4j.h and against central
 * finite differences of double restatements of the forward passes.
 *
 * Tolerances.
 *  - Softmax, formula: the test feeds both the kernel and the reference the same
 *    P (from attn4j_masked_softmax_ex_f32), so the kernel's error is its own
 *    float32 arithmetic: r rounded to float (6e-8 |r|), g - r, scale * p and the
 *    product (6e-8 each): |got - want| <= 2.4e-7 |scale p| (|g| + |r|). Checked
 *    to 1e-6 of that, plus 1e-44 (subnormal results, ~7 ulps there).
 *  - Softmax, finite differences: the kernel uses the float32 P (within 4e-7 of
 *    the exact softmax), the difference quotient in double is good to ~1e-9:
 *    1e-3 relative, plus the float32 allowance above for entries that cancel.
 *  - Tanh, formula: the reference takes the float32 t = q + k and inner * t of
 *    the forward and everything after them in double. Per term the kernel adds
 *    the tanh error (<= 2 ulp, 1.2e-7 absolute for |u| < 1) which (1 - u)(1 + u)
 *    doubles, plus roundings of ~1.2e-7 relative: |dc| <= 5e-7 |g|. Each output
 *    is checked to 1e-6 of the sum of |term factors| (e.g. sum_j |g w inner| for
 *    dq), plus 1e-6 of |want| for the final rounding.
 *  - Tanh, finite differences: double restatement without any float rounding,
 *    step 1e-5: 1e-3 relative plus 1e-5 of the sum of |terms| for sums that
 *    cancel.
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
#include "test_util.h"
#include "test_softmax_util.h"

static char case_name[512];

static int is_pos_zero(float x)
{
    const float zero = 0.0f;
    return memcmp(&x, &zero, sizeof x) == 0;
}

/* =========================== Softmax backward ====================================== */

/* keep' of the backward: everything under SUBTRACT. */
static int sm_kept_grad(const struct sm_call *c, int64_t b, int64_t i, int64_t j)
{
    return c->convention == ATTN4J_MASK_SUBTRACT || sm_kept(c, b, i, j);
}

static int sm_forward(const struct sm_call *c, float *scores)
{
    return attn4j_masked_softmax_ex_f32(scores, c->batch, c->tq, c->tv, c->scale, c->mask, c->mask_batch_stride,
                                        c->mask_row_stride, c->mask_batch_div, c->row_mask, c->col_mask,
                                        c->pad_batch_div, c->causal, c->window, c->convention);
}

static int sm_backward(const struct sm_call *c, const float *p, float *dp)
{
    return attn4j_softmax_backward_f32(p, dp, c->batch, c->tq, c->tv, c->scale, c->mask, c->mask_batch_stride,
                                       c->mask_row_stride, c->mask_batch_div, c->row_mask, c->col_mask,
                                       c->pad_batch_div, c->causal, c->window, c->convention);
}

/* Runs the backward on a copy of g and checks it against the contract's formula
 * with r in double. */
static void sm_check_formula(const struct sm_call *c, const float *p, const float *g)
{
    const int64_t tv = c->tv, rows = c->batch * c->tq;
    float *got = malloc((size_t)(rows * tv) * sizeof *got);
    memcpy(got, g, (size_t)(rows * tv) * sizeof *got);
    const int rc = sm_backward(c, p, got);
    CHECK_MSG(rc == ATTN4J_OK, "%s: rc %d", case_name, rc);
    for (int64_t row = 0; row < rows; ++row) {
        const int64_t b = row / c->tq, i = row % c->tq;
        const float *pr = p + row * tv, *gr = g + row * tv, *out = got + row * tv;
        double r = 0.0;
        for (int64_t j = 0; j < tv; ++j)
            r += (double)pr[j] * (double)gr[j];
        for (int64_t j = 0; j < tv; ++j) {
            if (!sm_kept_grad(c, b, i, j)) {
                CHECK_MSG(is_pos_zero(out[j]), "%s: [%lld,%lld,%lld] masked = %a, expected +0", case_name,
                          (long long)b, (long long)i, (long long)j, (double)out[j]);
                continue;
            }
            const double sp = (double)c->scale * pr[j];
            const double want = sp * ((double)gr[j] - r);
            if (!isfinite(want)) {
                CHECK_MSG(isnan(want) ? isnan(out[j]) : (double)out[j] == want,
                          "%s: [%lld,%lld,%lld] = %.9g, expected %.9g", case_name, (long long)b, (long long)i,
                          (long long)j, (double)out[j], want);
                continue;
            }
            const double tol = 1e-6 * fabs(sp) * (fabs((double)gr[j]) + fabs(r)) + 1e-44;
            CHECK_MSG(fabs((double)out[j] - want) <= tol, "%s: [%lld,%lld,%lld] = %.9g, expected %.9g (tol %.3g)",
                      case_name, (long long)b, (long long)i, (long long)j, (double)out[j], want, tol);
        }
    }
    free(got);
}

/* sm_make_mask, with strides that are valid but not 0 when there is no mask. */
static uint8_t *make_mask(struct sm_call *c, enum mask_layout layout)
{
    uint8_t *m = sm_make_mask(c, layout);
    if (layout == MASK_NONE) {
        /* Anything >= 0 is valid without a mask. */
        c->mask_batch_stride = 7;
        c->mask_row_stride = 3;
    }
    return m;
}

static void sm_case(int64_t batch, int64_t tq, int64_t tv, int32_t conv, enum mask_layout layout, int pads)
{
    static const float scales[] = {1.0f, 0.125f, 0.35355339f, -0.75f};
    static const int64_t windows[] = {0, 0, 1, 2, 3, INT64_MAX};
    const int64_t n = batch * tq * tv;
    const uint64_t r = rng_next() >> 8;
    struct sm_call c = {.batch = batch, .tq = tq, .tv = tv, .scale = scales[r % 4],
                        .causal = (int32_t)((r >> 2) & 1), .window = windows[(r >> 3) % 6], .convention = conv};
    uint8_t *mask = make_mask(&c, layout);
    c.pad_batch_div = 1 + (int64_t)((r >> 8) % 4);
    uint8_t *rows = (pads & 1) ? make_pad(batch, c.pad_batch_div, tq, (r >> 12) % 4 == 0) : NULL;
    uint8_t *cols = (pads & 2) ? make_pad(batch, c.pad_batch_div, tv, (r >> 14) % 4 == 0) : NULL;
    c.row_mask = rows;
    c.col_mask = cols;
    const float range = (r >> 16) % 4 == 0 ? 90.0f : 8.0f;
    float *p = malloc((size_t)n * sizeof *p);
    float *g = malloc((size_t)n * sizeof *g);
    fill_uniform(p, n, -range, range);
    fill_uniform(g, n, -2.0f, 2.0f);
    CHECK_INT_EQ(sm_forward(&c, p), ATTN4J_OK);
    snprintf(case_name, sizeof case_name,
             "softmax batch %lld tq %lld tv %lld mask %s div %lld rows %s cols %s pad div %lld causal %d window %lld "
             "%s scale %g range %g",
             (long long)batch, (long long)tq, (long long)tv, layout_names[layout], (long long)c.mask_batch_div,
             rows ? "yes" : "no", cols ? "yes" : "no", (long long)c.pad_batch_div, c.causal, (long long)c.window,
             conv_names[conv], (double)c.scale, (double)range);
    sm_check_formula(&c, p, g);
    free(mask);
    free(rows);
    free(cols);
    free(p);
    free(g);
}

static void test_softmax_sweep(void)
{
    static const int64_t tvs[] = {1, 7, 8, 9, 15, 16, 17, 33, 100};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t];
        const int64_t batch = tv <= 33 ? 6 : 3;
        const int64_t tqs[] = {tv > 1 ? (tv + 1) / 2 : 1, tv, tv + 3};
        for (int q = 0; q < 3; ++q)
            for (int32_t conv = 0; conv <= 2; ++conv)
                for (int layout = 0; layout < MASK_LAYOUTS; ++layout)
                    for (int pads = 0; pads < 4; ++pads)
                        sm_case(batch, tqs[q], tv, conv, (enum mask_layout)layout, pads);
    }
    /* Long rows: the double row dot over thousands of terms. */
    for (int32_t conv = 0; conv <= 2; ++conv) {
        sm_case(2, 3, 1000, conv, MASK_BATCH_TQ_TV, 3);
        sm_case(1, 2, 4099, conv, MASK_NONE, 0);
    }
}

/*
 * Fully masked rows, by each mask source: REPLACE / REPLACE_ZERO give exactly +0
 * at every column, also where p or g is NaN or inf; SUBTRACT gives the unmasked
 * formula (checked by sm_check_formula, which keeps every column for it).
 */
static void test_softmax_fully_masked(void)
{
    static const int64_t tvs[] = {1, 7, 8, 9, 15, 16, 17, 33, 100};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = 3, batch = 2, n = batch * tq * tv;
        uint8_t *mask = malloc((size_t)(tq * tv));
        memset(mask, 1, (size_t)(tq * tv));
        memset(mask + 0 * tv, 0, (size_t)tv); /* row 0 by the attention mask */
        uint8_t rows[3 * 2] = {1, 0, 1, 1, 1, 1}; /* row 1 of batch 0 by the row padding */
        uint8_t *cols = malloc((size_t)(2 * tv));
        memset(cols, 1, (size_t)(2 * tv));
        memset(cols + tv, 0, (size_t)tv); /* every row of batch 1 by the column padding */
        for (int32_t conv = 0; conv <= 2; ++conv) {
            struct sm_call c = {.batch = batch, .tq = tq, .tv = tv, .scale = 0.5f, .mask = mask,
                                .mask_batch_stride = 0, .mask_row_stride = tv, .mask_batch_div = 1,
                                .row_mask = rows, .col_mask = cols, .pad_batch_div = 1, .convention = conv};
            float *p = malloc((size_t)n * sizeof *p);
            float *g = malloc((size_t)n * sizeof *g);
            fill_uniform(p, n, -20.0f, 20.0f);
            fill_uniform(g, n, -1.0f, 1.0f);
            CHECK_INT_EQ(sm_forward(&c, p), ATTN4J_OK);
            snprintf(case_name, sizeof case_name, "fully masked tv %lld %s", (long long)tv, conv_names[conv]);
            sm_check_formula(&c, p, g);
            if (conv != ATTN4J_MASK_SUBTRACT) {
                /* NaN and inf in the masked rows' p and g change nothing. */
                g[0] = NAN;
                g[tv + tv / 2] = INFINITY;
                p[tv - 1] = NAN;
                g[3 * tv + 1 % tv] = -INFINITY;
                float *got = malloc((size_t)n * sizeof *got);
                memcpy(got, g, (size_t)n * sizeof *got);
                CHECK_INT_EQ(sm_backward(&c, p, got), ATTN4J_OK);
                for (int64_t k = 0; k < n; ++k) {
                    const int64_t b = k / (tq * tv), i = (k / tv) % tq;
                    if (b == 1 || i < 2)
                        CHECK_MSG(is_pos_zero(got[k]), "%s: [%lld] = %a, expected +0", case_name, (long long)k,
                                  (double)got[k]);
                }
                free(got);
            }
            free(p);
            free(g);
        }
        free(mask);
        free(cols);
    }
    /* A window that leaves rows past tv + window - 1 empty, and causal + window. */
    for (int32_t conv = 0; conv <= 2; ++conv) {
        const int64_t tv = 9, tq = 17, n = tq * tv;
        struct sm_call c = {.batch = 1, .tq = tq, .tv = tv, .scale = 1.0f, .mask_batch_div = 1, .pad_batch_div = 1,
                            .window = 3, .convention = conv};
        float *p = malloc((size_t)n * sizeof *p);
        float *g = malloc((size_t)n * sizeof *g);
        for (int causal = 0; causal <= 1; ++causal) {
            c.causal = causal;
            fill_uniform(p, n, -4.0f, 4.0f);
            fill_uniform(g, n, -1.0f, 1.0f);
            CHECK_INT_EQ(sm_forward(&c, p), ATTN4J_OK);
            snprintf(case_name, sizeof case_name, "window rows past tv causal %d %s", causal, conv_names[conv]);
            sm_check_formula(&c, p, g);
        }
        free(p);
        free(g);
    }
}

/* A NaN or inf in g at a kept column makes r, so every kept column of the row,
 * NaN (inf - inf or 0 * inf); masked columns of REPLACE / REPLACE_ZERO stay +0. */
static void test_softmax_special(void)
{
    static const int64_t tvs[] = {5, 8, 16, 17, 33};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t tv = tvs[t], tq = 2, n = tq * tv;
        uint8_t *mask = malloc((size_t)n);
        memset(mask, 1, (size_t)n);
        mask[tv - 1] = 0;
        for (int32_t conv = 0; conv <= 2; ++conv) {
            struct sm_call c = {.batch = 1, .tq = tq, .tv = tv, .scale = 1.0f, .mask = mask,
                                .mask_row_stride = tv, .mask_batch_div = 1, .pad_batch_div = 1, .convention = conv};
            float *p = malloc((size_t)n * sizeof *p);
            float *g = malloc((size_t)n * sizeof *g);
            fill_uniform(p, n, -4.0f, 4.0f);
            fill_uniform(g, n, -1.0f, 1.0f);
            CHECK_INT_EQ(sm_forward(&c, p), ATTN4J_OK);
            g[1] = NAN;
            g[tv + 2] = INFINITY;
            snprintf(case_name, sizeof case_name, "special tv %lld %s", (long long)tv, conv_names[conv]);
            sm_check_formula(&c, p, g);
            free(p);
            free(g);
        }
        free(mask);
    }
}

/*
 * dL/ds by central differences of L(s) = sum G * softmax(s) in double, the
 * masking restated in double: SUBTRACT's masked logit x - 1e9 is kept as the
 * pair (x, masked) so that a row's differences stay exact; REPLACE's constants
 * do not depend on s, so their difference quotient is exactly 0, as the kernel's
 * +0. No row is fully masked under SUBTRACT: there Keras's float32 logits make P
 * uniform (x - 1e9 rounds to -1e9 for every small x), the gradient the kernel
 * gives is the contract's at that P, and the double restatement has another P.
 */
static double sm_row_loss(const struct sm_call *c, int64_t b, int64_t i, const double *s, const float *g)
{
    const int64_t tv = c->tv;
    double *x = malloc((size_t)tv * sizeof *x);
    int *masked = malloc((size_t)tv * sizeof *masked);
    int64_t jm = 0;
    for (int64_t j = 0; j < tv; ++j) {
        masked[j] = !sm_kept(c, b, i, j);
        x[j] = (double)c->scale * s[j];
        if (masked[j] && c->convention != ATTN4J_MASK_SUBTRACT)
            x[j] = c->convention == ATTN4J_MASK_REPLACE ? -0.7 * (double)FLT_MAX : -1e9;
    }
    /* Under SUBTRACT a kept logit beats any masked one; compare within a class. */
    const int sub = c->convention == ATTN4J_MASK_SUBTRACT;
    for (int64_t j = 1; j < tv; ++j) {
        const int mj = sub && masked[j], mm = sub && masked[jm];
        if (mj < mm || (mj == mm && x[j] > x[jm]))
            jm = j;
    }
    double sum = 0.0, acc = 0.0;
    for (int64_t j = 0; j < tv; ++j) {
        const double d = (x[j] - x[jm]) - (sub ? 1e9 * (masked[j] - masked[jm]) : 0.0);
        sum += exp(d);
    }
    for (int64_t j = 0; j < tv; ++j) {
        const double d = (x[j] - x[jm]) - (sub ? 1e9 * (masked[j] - masked[jm]) : 0.0);
        double pj = exp(d) / sum;
        if (c->convention == ATTN4J_MASK_REPLACE_ZERO && masked[j])
            pj = 0.0;
        acc += (double)g[j] * pj;
    }
    free(x);
    free(masked);
    return acc;
}

static void test_softmax_finite_differences(void)
{
    static const int64_t tvs[] = {5, 17};
    for (size_t t = 0; t < sizeof tvs / sizeof tvs[0]; ++t) {
        const int64_t batch = 2, tq = 4, tv = tvs[t], n = batch * tq * tv;
        for (int32_t conv = 0; conv <= 2; ++conv) {
            for (int variant = 0; variant < 3; ++variant) {
                /* variant 0: attention mask; 1: causal + column padding; 2: window + rows. */
                uint8_t *mask = malloc((size_t)(tq * tv));
                for (int64_t k = 0; k < tq * tv; ++k)
                    mask[k] = rng_mask_byte();
                for (int64_t i = 0; i < tq; ++i)
                    mask[i * tv] = 1; /* column 0 kept in every row */
                uint8_t cols[2 * 17], rows[2 * 4] = {1, 1, 1, 1, 1, 0, 1, 1};
                for (int64_t k = 0; k < 2 * tv; ++k)
                    cols[k] = k % tv == 0 ? 1 : rng_mask_byte();
                struct sm_call c = {.batch = batch, .tq = tq, .tv = tv, .scale = 0.7f, .mask_batch_div = 1,
                                    .pad_batch_div = 1, .convention = conv};
                if (variant == 0) {
                    c.mask = mask;
                    c.mask_row_stride = tv;
                } else if (variant == 1) {
                    c.causal = 1;
                    c.col_mask = cols;
                } else {
                    c.window = 2;
                    /* A fully masked row, except under SUBTRACT (see above). */
                    c.row_mask = conv == ATTN4J_MASK_SUBTRACT ? NULL : rows;
                }
                float *s = malloc((size_t)n * sizeof *s);
                float *p = malloc((size_t)n * sizeof *p);
                float *g = malloc((size_t)n * sizeof *g);
                fill_uniform(s, n, -3.0f, 3.0f);
                fill_uniform(g, n, -1.0f, 1.0f);
                memcpy(p, s, (size_t)n * sizeof *p);
                CHECK_INT_EQ(sm_forward(&c, p), ATTN4J_OK);
                float *got = malloc((size_t)n * sizeof *got);
                memcpy(got, g, (size_t)n * sizeof *got);
                CHECK_INT_EQ(sm_backward(&c, p, got), ATTN4J_OK);
                snprintf(case_name, sizeof case_name, "softmax finite differences tv %lld %s variant %d",
                         (long long)tv, conv_names[conv], variant);
                double *sd = malloc((size_t)tv * sizeof *sd);
                for (int64_t row = 0; row < batch * tq; ++row) {
                    const int64_t b = row / tq, i = row % tq;
                    const float *gr = g + row * tv, *pr = p + row * tv;
                    double r = 0.0;
                    for (int64_t j = 0; j < tv; ++j)
                        r += (double)pr[j] * gr[j];
                    for (int64_t j = 0; j < tv; ++j) {
                        for (int64_t jj = 0; jj < tv; ++jj)
                            sd[jj] = s[row * tv + jj];
                        const double h = 1e-5;
                        sd[j] = (double)s[row * tv + j] + h;
                        const double lp = sm_row_loss(&c, b, i, sd, gr);
                        sd[j] = (double)s[row * tv + j] - h;
                        const double lm = sm_row_loss(&c, b, i, sd, gr);
                        const double fd = (lp - lm) / (2.0 * h);
                        const double k = got[row * tv + j];
                        const double tol = 1e-3 * fabs(fd) +
                                           1e-6 * fabs((double)c.scale * pr[j]) * (fabs((double)gr[j]) + fabs(r)) +
                                           1e-12;
                        CHECK_MSG(fabs(k - fd) <= tol, "%s: [%lld,%lld,%lld] kernel %.9g, finite differences %.9g",
                                  case_name, (long long)b, (long long)i, (long long)j, k, fd);
                    }
                }
                free(sd);
                free(s);
                free(p);
                free(g);
                free(got);
                free(mask);
            }
        }
    }
}

/* ============================ Tanh scores backward =================================== */

struct tb_call {
    int64_t batch, tq, tv, dim;
    const float *q, *k, *ds, *weights;
    float inner, outer;
};

struct tb_out {
    float *dq, *dk, *dw, *dscalars;
};

static int tb_run(const struct tb_call *c, const struct tb_out *o)
{
    return attn4j_tanh_scores_backward_f32(c->q, c->k, c->ds, o->dq, o->dk, o->dw, o->dscalars, c->batch, c->tq,
                                           c->tv, c->dim, c->weights, c->inner, c->outer);
}

/* The contract's formulas in double after the forward's float32 t and inner * t;
 * mag_* the matching sums of |factors| for the tolerance. */
struct tb_ref {
    double *dq, *dk, *dw, *mag_q, *mag_k, *mag_w;
    double d_inner, d_outer, mag_inner, mag_outer;
};

static void tb_reference(const struct tb_call *c, struct tb_ref *r)
{
    const int64_t B = c->batch, tq = c->tq, tv = c->tv, D = c->dim;
    r->dq = calloc((size_t)(B * tq * D), sizeof(double));
    r->mag_q = calloc((size_t)(B * tq * D), sizeof(double));
    r->dk = calloc((size_t)(B * tv * D), sizeof(double));
    r->mag_k = calloc((size_t)(B * tv * D), sizeof(double));
    r->dw = calloc((size_t)D, sizeof(double));
    r->mag_w = calloc((size_t)D, sizeof(double));
    r->d_inner = r->d_outer = r->mag_inner = r->mag_outer = 0.0;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < tq; ++i)
            for (int64_t j = 0; j < tv; ++j) {
                const double s = c->ds[(b * tq + i) * tv + j];
                const double g = s * c->outer;
                for (int64_t d = 0; d < D; ++d) {
                    const float t = c->q[(b * tq + i) * D + d] + c->k[(b * tv + j) * D + d];
                    const float x = c->inner * t;
                    const double u = tanh((double)x);
                    const double w = c->weights == NULL ? 1.0 : c->weights[d];
                    const double term = g * w * (1.0 - u * u);
                    const double m = fabs(g * w * c->inner);
                    r->dq[(b * tq + i) * D + d] += term * c->inner;
                    r->mag_q[(b * tq + i) * D + d] += m;
                    r->dk[(b * tv + j) * D + d] += term * c->inner;
                    r->mag_k[(b * tv + j) * D + d] += m;
                    r->dw[d] += g * u;
                    r->mag_w[d] += fabs(g);
                    r->d_inner += term * t;
                    r->mag_inner += fabs(g * w * t);
                    r->d_outer += s * w * u;
                    r->mag_outer += fabs(s * w);
                }
            }
}

static void tb_free_ref(struct tb_ref *r)
{
    free(r->dq);
    free(r->dk);
    free(r->dw);
    free(r->mag_q);
    free(r->mag_k);
    free(r->mag_w);
}

static void tb_check(const char *what, int64_t idx, float got, double want, double mag)
{
    const double tol = 1e-6 * mag + 1e-6 * fabs(want) + 1e-30;
    CHECK_MSG(fabs((double)got - want) <= tol, "%s: %s[%lld] = %.9g, expected %.9g (tol %.3g)", case_name, what,
              (long long)idx, (double)got, want, tol);
}

static void tb_case(int64_t batch, int64_t tq, int64_t tv, int64_t dim, int with_weights, float inner, float outer)
{
    const int64_t nq = batch * tq * dim, nk = batch * tv * dim, ns = batch * tq * tv;
    float *q = malloc((size_t)nq * sizeof *q), *k = malloc((size_t)nk * sizeof *k);
    float *ds = malloc((size_t)ns * sizeof *ds), *w = malloc((size_t)dim * sizeof *w);
    fill_uniform(q, nq, -1.5f, 1.5f);
    fill_uniform(k, nk, -1.5f, 1.5f);
    fill_uniform(ds, ns, -1.0f, 1.0f);
    fill_uniform(w, dim, -1.0f, 1.0f);
    /* Some saturated terms (|u| rounds to 1): 1 - u^2 is then 0 in float. */
    if (nq > 2)
        q[nq / 2] = 12.0f;
    const struct tb_call c = {batch, tq, tv, dim, q, k, ds, with_weights ? w : NULL, inner, outer};
    snprintf(case_name, sizeof case_name, "tanh batch %lld tq %lld tv %lld dim %lld weights %d inner %g outer %g",
             (long long)batch, (long long)tq, (long long)tv, (long long)dim, with_weights, (double)inner,
             (double)outer);
    struct tb_ref r;
    tb_reference(&c, &r);

    float *dq = malloc((size_t)nq * sizeof *dq), *dk = malloc((size_t)nk * sizeof *dk);
    float *dw = malloc((size_t)dim * sizeof *dw), dsc[2];
    struct tb_out o = {dq, dk, dw, dsc};
    CHECK_INT_EQ(tb_run(&c, &o), ATTN4J_OK);
    for (int64_t x = 0; x < nq; ++x)
        tb_check("dq", x, dq[x], r.dq[x], r.mag_q[x]);
    for (int64_t x = 0; x < nk; ++x)
        tb_check("dk", x, dk[x], r.dk[x], r.mag_k[x]);
    for (int64_t d = 0; d < dim; ++d)
        tb_check("dw", d, dw[d], r.dw[d], r.mag_w[d]);
    tb_check("dinner", 0, dsc[0], r.d_inner, r.mag_inner);
    tb_check("douter", 0, dsc[1], r.d_outer, r.mag_outer);

    /* dw and dscalars NULL: dq and dk the same bits. */
    float *dq2 = malloc((size_t)nq * sizeof *dq2), *dk2 = malloc((size_t)nk * sizeof *dk2);
    struct tb_out o2 = {dq2, dk2, NULL, NULL};
    CHECK_INT_EQ(tb_run(&c, &o2), ATTN4J_OK);
    CHECK_MSG(memcmp(dq, dq2, (size_t)nq * sizeof *dq) == 0 && memcmp(dk, dk2, (size_t)nk * sizeof *dk) == 0,
              "%s: dq / dk differ without dw and dscalars", case_name);
    float *dw3 = malloc((size_t)dim * sizeof *dw3);
    struct tb_out o3 = {dq2, dk2, dw3, NULL};
    CHECK_INT_EQ(tb_run(&c, &o3), ATTN4J_OK);
    CHECK_MSG(memcmp(dw, dw3, (size_t)dim * sizeof *dw) == 0, "%s: dw differs without dscalars", case_name);
    float dsc4[2];
    struct tb_out o4 = {dq2, dk2, NULL, dsc4};
    CHECK_INT_EQ(tb_run(&c, &o4), ATTN4J_OK);
    CHECK_MSG(memcmp(dsc, dsc4, sizeof dsc) == 0, "%s: dscalars differ without dw", case_name);

    tb_free_ref(&r);
    free(q);
    free(k);
    free(ds);
    free(w);
    free(dq);
    free(dk);
    free(dw);
    free(dq2);
    free(dk2);
    free(dw3);
}

static void test_tanh_sweep(void)
{
    static const int64_t dims[] = {1, 7, 8, 9, 15, 16, 17, 33};
    static const int64_t sizes[][3] = {{1, 1, 1}, {2, 3, 5}, {3, 17, 9}, {1, 8, 16}};
    static const float inners[] = {1.0f, 0.37f, -2.5f};
    static const float outers[] = {1.0f, 0.8f, -1.3f};
    int n = 0;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; ++d)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; ++s)
            for (int with_weights = 0; with_weights <= 1; ++with_weights, ++n)
                tb_case(sizes[s][0], sizes[s][1], sizes[s][2], dims[d], with_weights, inners[n % 3],
                        outers[(n / 3) % 3]);
    /* The three loop plans: tv fits the stack buffer (256 rows); only tq fits (q
     * and k swap roles); neither fits (two passes). */
    tb_case(2, 300, 7, 17, 1, 0.6f, 1.1f);
    tb_case(2, 5, 300, 17, 1, 0.6f, 1.1f);
    tb_case(1, 260, 270, 3, 0, 1.0f, 0.9f);
    tb_case(1, 257, 257, 18, 1, 0.5f, -1.0f);
}

/* The forward restated in double without rounding: L = sum ds * scores. */
static double tb_loss(const double *q, const double *k, const double *w, double inner, double outer, const float *ds,
                      int64_t batch, int64_t tq, int64_t tv, int64_t dim)
{
    double L = 0.0;
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < tq; ++i)
            for (int64_t j = 0; j < tv; ++j) {
                double sum = 0.0;
                for (int64_t d = 0; d < dim; ++d)
                    sum += w[d] * tanh(inner * (q[(b * tq + i) * dim + d] + k[(b * tv + j) * dim + d]));
                L += (double)ds[(b * tq + i) * tv + j] * outer * sum;
            }
    return L;
}

static void tb_fd_check(const char *what, int64_t idx, double got, double fd, double mag)
{
    const double tol = 1e-3 * fabs(fd) + 1e-5 * mag + 1e-12;
    CHECK_MSG(fabs(got - fd) <= tol, "%s: %s[%lld] kernel %.9g, finite differences %.9g", case_name, what,
              (long long)idx, got, fd);
}

static void test_tanh_finite_differences(void)
{
    static const int64_t dims[] = {5, 17};
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; ++t) {
        for (int with_weights = 0; with_weights <= 1; ++with_weights) {
            const int64_t batch = 2, tq = 3, tv = 4, dim = dims[t];
            const int64_t nq = batch * tq * dim, nk = batch * tv * dim, ns = batch * tq * tv;
            float *q = malloc((size_t)nq * sizeof *q), *k = malloc((size_t)nk * sizeof *k);
            float *ds = malloc((size_t)ns * sizeof *ds), *w = malloc((size_t)dim * sizeof *w);
            fill_uniform(q, nq, -1.0f, 1.0f);
            fill_uniform(k, nk, -1.0f, 1.0f);
            fill_uniform(ds, ns, -1.0f, 1.0f);
            fill_uniform(w, dim, -1.0f, 1.0f);
            const float inner = 0.8f, outer = -1.2f;
            const struct tb_call c = {batch, tq, tv, dim, q, k, ds, with_weights ? w : NULL, inner, outer};
            float *dq = malloc((size_t)nq * sizeof *dq), *dk = malloc((size_t)nk * sizeof *dk);
            float *dw = malloc((size_t)dim * sizeof *dw), dsc[2];
            struct tb_out o = {dq, dk, dw, dsc};
            CHECK_INT_EQ(tb_run(&c, &o), ATTN4J_OK);
            snprintf(case_name, sizeof case_name, "tanh finite differences dim %lld weights %d", (long long)dim,
                     with_weights);
            struct tb_ref r;
            tb_reference(&c, &r);

            double *qd = malloc((size_t)nq * sizeof *qd), *kd = malloc((size_t)nk * sizeof *kd);
            double *wd = malloc((size_t)dim * sizeof *wd);
            for (int64_t x = 0; x < nq; ++x)
                qd[x] = q[x];
            for (int64_t x = 0; x < nk; ++x)
                kd[x] = k[x];
            /* Without weights, dw is the gradient at w = 1. */
            for (int64_t d = 0; d < dim; ++d)
                wd[d] = with_weights ? w[d] : 1.0;
            const double h = 1e-5;
            double in_d = inner, out_d = outer;
            for (int64_t x = 0; x < nq; ++x) {
                const double saved = qd[x];
                qd[x] = saved + h;
                const double lp = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                qd[x] = saved - h;
                const double lm = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                qd[x] = saved;
                tb_fd_check("dq", x, dq[x], (lp - lm) / (2.0 * h), r.mag_q[x]);
            }
            for (int64_t x = 0; x < nk; ++x) {
                const double saved = kd[x];
                kd[x] = saved + h;
                const double lp = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                kd[x] = saved - h;
                const double lm = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                kd[x] = saved;
                tb_fd_check("dk", x, dk[x], (lp - lm) / (2.0 * h), r.mag_k[x]);
            }
            for (int64_t d = 0; d < dim; ++d) {
                const double saved = wd[d];
                wd[d] = saved + h;
                const double lp = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                wd[d] = saved - h;
                const double lm = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                wd[d] = saved;
                tb_fd_check("dw", d, dw[d], (lp - lm) / (2.0 * h), r.mag_w[d]);
            }
            {
                in_d = inner + h;
                const double lp = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                in_d = inner - h;
                const double lm = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                in_d = inner;
                tb_fd_check("dinner", 0, dsc[0], (lp - lm) / (2.0 * h), r.mag_inner);
                out_d = outer + h;
                const double lp2 = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                out_d = outer - h;
                const double lm2 = tb_loss(qd, kd, wd, in_d, out_d, ds, batch, tq, tv, dim);
                out_d = outer;
                tb_fd_check("douter", 0, dsc[1], (lp2 - lm2) / (2.0 * h), r.mag_outer);
            }
            tb_free_ref(&r);
            free(qd);
            free(kd);
            free(wd);
            free(q);
            free(k);
            free(ds);
            free(w);
            free(dq);
            free(dk);
            free(dw);
        }
    }
}

/* ================================ Gate backward ====================================== */

static void test_gate(void)
{
    /* Exact in float: dz = 3 * 2 * 0.25 * 0.75 = 1.125, da = 3 * 0.25 = 0.75. */
    {
        const float a[3] = {2.0f, -4.0f, 0.0f}, gate[3] = {0.25f, 0.5f, 1.0f};
        float dy[3] = {3.0f, 1.0f, -2.0f}, dz[3];
        CHECK_INT_EQ(attn4j_gate_backward_f32(a, gate, dy, dz, 3), ATTN4J_OK);
        CHECK_MSG(dz[0] == 1.125f && dz[1] == -1.0f && dz[2] == 0.0f, "gate dz = %g %g %g", (double)dz[0],
                  (double)dz[1], (double)dz[2]);
        CHECK_MSG(dy[0] == 0.75f && dy[1] == 0.5f && dy[2] == -2.0f, "gate dy = %g %g %g", (double)dy[0],
                  (double)dy[1], (double)dy[2]);
    }
    /* Every length around the vector widths, bit for bit against the contract's
     * float32 expression, left to right. */
    for (int64_t n = 1; n <= 35; ++n) {
        float *a = malloc((size_t)n * sizeof *a), *gate = malloc((size_t)n * sizeof *gate);
        float *dy = malloc((size_t)n * sizeof *dy), *dz = malloc((size_t)n * sizeof *dz);
        float *dy0 = malloc((size_t)n * sizeof *dy0);
        fill_uniform(a, n, -3.0f, 3.0f);
        fill_uniform(gate, n, 0.0f, 1.0f);
        fill_uniform(dy, n, -2.0f, 2.0f);
        memcpy(dy0, dy, (size_t)n * sizeof *dy);
        CHECK_INT_EQ(attn4j_gate_backward_f32(a, gate, dy, dz, n), ATTN4J_OK);
        for (int64_t i = 0; i < n; ++i) {
            const float want_dz = dy0[i] * a[i] * gate[i] * (1.0f - gate[i]);
            const float want_dy = dy0[i] * gate[i];
            CHECK_MSG(memcmp(&dz[i], &want_dz, sizeof want_dz) == 0 && memcmp(&dy[i], &want_dy, sizeof want_dy) == 0,
                      "gate n %lld [%lld]: dz %a (want %a), dy %a (want %a)", (long long)n, (long long)i,
                      (double)dz[i], (double)want_dz, (double)dy[i], (double)want_dy);
        }
        free(a);
        free(gate);
        free(dy);
        free(dz);
        free(dy0);
    }
    /* n == 0: a no-op, NULL allowed. */
    CHECK_INT_EQ(attn4j_gate_backward_f32(NULL, NULL, NULL, NULL, 0), ATTN4J_OK);
}

/* ============================== Invalid arguments ==================================== */

#define SENTINEL_BYTE 0x5A

static void test_invalid_softmax(void)
{
    enum { TQ = 3, TV = 5, N = 2 * TQ * TV };
    float p[N], dp[N], before[N];
    uint8_t mask[N];
    memset(mask, 1, sizeof mask);
    fill_uniform(p, N, 0.0f, 1.0f);
    memset(dp, SENTINEL_BYTE, sizeof dp);
    memcpy(before, dp, sizeof dp);
#define SM_BAD(label, P, DP, batch, tq, tv, mbs, mrs, mbd, pbd, window, conv)                                      \
    do {                                                                                                        \
        const int rc = attn4j_softmax_backward_f32(P, DP, batch, tq, tv, 1.0f, mask, mbs, mrs, mbd, NULL, NULL, \
                                                   pbd, 0, window, conv);                                       \
        CHECK_MSG(rc == ATTN4J_EINVAL, "softmax backward %s: rc %d", label, rc);                                \
        CHECK_MSG(memcmp(dp, before, sizeof dp) == 0, "softmax backward %s: dp touched", label);               \
    } while (0)
    SM_BAD("p NULL", NULL, dp, 2, TQ, TV, TV, 0, 1, 1, 0, 0);
    SM_BAD("dp NULL", p, NULL, 2, TQ, TV, TV, 0, 1, 1, 0, 0);
    SM_BAD("batch 0", p, dp, 0, TQ, TV, TV, 0, 1, 1, 0, 0);
    SM_BAD("tq 0", p, dp, 2, 0, TV, TV, 0, 1, 1, 0, 0);
    SM_BAD("tv 0", p, dp, 2, TQ, 0, TV, 0, 1, 1, 0, 0);
    SM_BAD("batch -1", p, dp, -1, TQ, TV, TV, 0, 1, 1, 0, 0);
    SM_BAD("mask_batch_stride -1", p, dp, 2, TQ, TV, -1, 0, 1, 1, 0, 0);
    SM_BAD("mask_row_stride -1", p, dp, 2, TQ, TV, TV, -1, 1, 1, 0, 0);
    SM_BAD("mask_batch_div 0", p, dp, 2, TQ, TV, TV, 0, 0, 1, 0, 0);
    SM_BAD("pad_batch_div 0", p, dp, 2, TQ, TV, TV, 0, 1, 0, 0, 0);
    SM_BAD("window -1", p, dp, 2, TQ, TV, TV, 0, 1, 1, -1, 0);
    SM_BAD("convention 3", p, dp, 2, TQ, TV, TV, 0, 1, 1, 0, 3);
    SM_BAD("convention -1", p, dp, 2, TQ, TV, TV, 0, 1, 1, 0, -1);
    SM_BAD("too large", p, dp, INT64_C(1) << 40, INT64_C(1) << 20, 8, 0, 0, 1, 1, 0, 0);
    SM_BAD("p is dp", dp, dp, 2, TQ, TV, TV, 0, 1, 1, 0, 0);
    SM_BAD("p overlaps dp", dp + 3, dp, 1, 1, 4, TV, 0, 1, 1, 0, 0);
    SM_BAD("dp overlaps p", dp, dp + 3, 1, 1, 4, TV, 0, 1, 1, 0, 0);
#undef SM_BAD
    /* Adjacent, not overlapping: fine. */
    float buf[8] = {0.25f, 0.25f, 0.25f, 0.25f, 1.0f, 2.0f, 3.0f, 4.0f};
    CHECK_INT_EQ(attn4j_softmax_backward_f32(buf, buf + 4, 1, 1, 4, 1.0f, NULL, 0, 0, 1, NULL, NULL, 1, 0, 0, 0),
                 ATTN4J_OK);
    CHECK_MSG(buf[4] == -0.375f && buf[7] == 0.375f, "adjacent p and dp: %g .. %g", (double)buf[4], (double)buf[7]);
}

static void test_invalid_tanh(void)
{
    enum { B = 2, TQ = 3, TV = 4, D = 5 };
    float q[B * TQ * D], k[B * TV * D], ds[B * TQ * TV], w[D];
    fill_uniform(q, B * TQ * D, -1.0f, 1.0f);
    fill_uniform(k, B * TV * D, -1.0f, 1.0f);
    fill_uniform(ds, B * TQ * TV, -1.0f, 1.0f);
    fill_uniform(w, D, -1.0f, 1.0f);
    /* One buffer holds every output, so each overlap case can be built from it. */
    enum { NQ = B * TQ * D, NK = B * TV * D, TOTAL = NQ + NK + D + 2 };
    float out[TOTAL + NQ + 1], before[TOTAL + NQ + 1];
    memset(out, SENTINEL_BYTE, sizeof out);
    memcpy(before, out, sizeof out);
    float *dq = out, *dk = out + NQ, *dw = out + NQ + NK, *dsc = out + NQ + NK + D;
#define TB_BAD(label, Q, K, DS, DQ, DK, DW, DSC, batch, tq, tv, dim, W)                                         \
    do {                                                                                                     \
        const int rc = attn4j_tanh_scores_backward_f32(Q, K, DS, DQ, DK, DW, DSC, batch, tq, tv, dim, W, 1.0f, \
                                                       1.0f);                                               \
        CHECK_MSG(rc == ATTN4J_EINVAL, "tanh backward %s: rc %d", label, rc);                                \
        CHECK_MSG(memcmp(out, before, sizeof out) == 0, "tanh backward %s: an output was written", label);   \
    } while (0)
    TB_BAD("q NULL", NULL, k, ds, dq, dk, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("k NULL", q, NULL, ds, dq, dk, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("ds NULL", q, k, NULL, dq, dk, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("dq NULL", q, k, ds, NULL, dk, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("dk NULL", q, k, ds, dq, NULL, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("batch 0", q, k, ds, dq, dk, dw, dsc, 0, TQ, TV, D, w);
    TB_BAD("tq 0", q, k, ds, dq, dk, dw, dsc, B, 0, TV, D, w);
    TB_BAD("tv 0", q, k, ds, dq, dk, dw, dsc, B, TQ, 0, D, w);
    TB_BAD("dim 0", q, k, ds, dq, dk, dw, dsc, B, TQ, TV, 0, w);
    TB_BAD("dim -3", q, k, ds, dq, dk, dw, dsc, B, TQ, TV, -3, w);
    TB_BAD("too large", q, k, ds, dq, dk, dw, dsc, INT64_C(1) << 40, INT64_C(1) << 20, 1, 8, w);
    /* Outputs overlapping each other. */
    TB_BAD("dq overlaps dk", q, k, ds, dq, dq + NQ - 1, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("dk overlaps dw", q, k, ds, dq, dk, dk + NK - 2, dsc, B, TQ, TV, D, w);
    TB_BAD("dw overlaps dscalars", q, k, ds, dq, dk, dw, dw + D - 1, B, TQ, TV, D, w);
    TB_BAD("dscalars inside dq", q, k, ds, dq, dk, dw, dq + 4, B, TQ, TV, D, w);
    TB_BAD("dq is dk", q, k, ds, dq, dq, dw, dsc, B, TQ, TV, D, w);
    /* Outputs overlapping inputs: the input lives in `out` too (any bytes). */
    float *tail = out + TOTAL; /* NQ + 1 spare floats */
    TB_BAD("dq overlaps q", tail, k, ds, tail + 1, dk, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("dk overlaps k", q, dk + 1, ds, dq, dk, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("dq overlaps ds", q, k, dq + NQ - 1, dq, dk, dw, dsc, B, TQ, TV, D, w);
    TB_BAD("dw overlaps weights", q, k, ds, dq, dk, dw, dsc, B, TQ, TV, D, dw + 2);
    TB_BAD("dscalars overlaps weights", q, k, ds, dq, dk, dw, dsc, B, TQ, TV, D, dsc - D + 1);
    TB_BAD("dk overlaps q", dk + NK - 1, k, ds, dq, dk, dw, dsc, B, TQ, TV, D, w);
#undef TB_BAD
    /* The optional outputs may be anywhere when NULL, and dw may be given
     * without weights. */
    CHECK_INT_EQ(attn4j_tanh_scores_backward_f32(q, k, ds, dq, dk, NULL, NULL, B, TQ, TV, D, NULL, 1.0f, 1.0f),
                 ATTN4J_OK);
    CHECK_INT_EQ(attn4j_tanh_scores_backward_f32(q, k, ds, dq, dk, dw, dsc, B, TQ, TV, D, NULL, 1.0f, 1.0f),
                 ATTN4J_OK);
}

static void test_invalid_gate(void)
{
    enum { N = 9 };
    float a[N], gate[N], buf[3 * N], before[3 * N];
    fill_uniform(a, N, -1.0f, 1.0f);
    fill_uniform(gate, N, 0.0f, 1.0f);
    memset(buf, SENTINEL_BYTE, sizeof buf);
    memcpy(before, buf, sizeof buf);
    float *dy = buf, *dz = buf + N;
#define GATE_BAD(label, A, G, DY, DZ, n)                                                                   \
    do {                                                                                                 \
        const int rc = attn4j_gate_backward_f32(A, G, DY, DZ, n);                                         \
        CHECK_MSG(rc == ATTN4J_EINVAL, "gate backward %s: rc %d", label, rc);                            \
        CHECK_MSG(memcmp(buf, before, sizeof buf) == 0, "gate backward %s: an output was written", label); \
    } while (0)
    GATE_BAD("n -1", a, gate, dy, dz, -1);
    GATE_BAD("a NULL", NULL, gate, dy, dz, N);
    GATE_BAD("gate NULL", a, NULL, dy, dz, N);
    GATE_BAD("dy NULL", a, gate, NULL, dz, N);
    GATE_BAD("dz NULL", a, gate, dy, NULL, N);
    GATE_BAD("too large", a, gate, dy, dz, INT64_MAX / 2);
    GATE_BAD("dz overlaps dy", a, gate, dy, dy + N - 1, N);
    GATE_BAD("dz is dy", a, gate, dy, dy, N);
    GATE_BAD("dz overlaps a", buf + 2 * N, gate, dy, buf + 2 * N - 1, N);
    GATE_BAD("dz overlaps gate", a, dz + 3, dy, dz, N);
#undef GATE_BAD
}

int main(void)
{
    rng_seed(0x6A09E667F3BCC909u);
    if (test_should_skip("test_backward"))
        return 77;
    test_softmax_sweep();
    test_softmax_fully_masked();
    test_softmax_special();
    test_softmax_finite_differences();
    test_tanh_sweep();
    test_tanh_finite_differences();
    test_gate();
    test_invalid_softmax();
    test_invalid_tanh();
    test_invalid_gate();
    return test_finish("test_backward");
}
