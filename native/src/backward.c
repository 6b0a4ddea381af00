/*
 * backward.c - the backward passes: attn4j_softmax_backward_f32,
 * attn4j_tanh_scores_backward_f32 and attn4j_gate_backward_f32. Argument checks,
 * the loops over rows and batches, the choice of kernel, and the scalar kernels
 * (the reference the vector kernels of backward_avx2.c / backward_avx512.c
 * follow operation by operation, and the path for CPUs without AVX2).
 *
 * Softmax: one streaming pass per row, two sweeps over it (the row dot
 * r = sum p g, then the gradient; the row is in L1 for the second). The mask is
 * the forward's (attn4j_softmax_plan_row in internal.h); under SUBTRACT it is
 * not read at all, since every logit is then a function of its score.
 *
 * Tanh scores: everything is elementwise in d except the sums over i and j, so
 * the kernel takes ATTN4J_TB_LANES consecutive d at a time, over every (i, j)
 * of a batch. The sums over j (for dq) stay in registers while i is fixed; the
 * sums over i (for dk) need one double per (j, d) across the whole loop over i.
 * They live in a stack buffer of ATTN4J_TB_ROWS rows, so when tv fits we pass
 * once; when only tq fits, the roles of q and k swap (ds read transposed); when
 * neither fits, we pass twice, once per side, paying for tanh twice rather than
 * allocating (the library allocates nothing).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

static void fill_zero(float *x, int64_t n)
{
    for (int64_t j = 0; j < n; ++j)
        x[j] = 0.0f;
}

/* ---- Softmax ---------------------------------------------------------------------- */

double attn4j_dot_f64_scalar(const float *a, const float *b, int64_t n)
{
    /* Products of two floats are exact in double; four partial sums, so the loop
     * is not bound by the latency of one add. */
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += (double)a[j] * (double)b[j];
        s1 += (double)a[j + 1] * (double)b[j + 1];
        s2 += (double)a[j + 2] * (double)b[j + 2];
        s3 += (double)a[j + 3] * (double)b[j + 3];
    }
    for (; j < n; ++j)
        s0 += (double)a[j] * (double)b[j];
    return (s0 + s1) + (s2 + s3);
}

void attn4j_softmax_grad_scalar(const float *p, float *g, int64_t n, float r, float scale, const uint8_t *m1,
                                const uint8_t *m2)
{
    if (m1 == NULL) {
        for (int64_t j = 0; j < n; ++j)
            g[j] = scale * p[j] * (g[j] - r);
        return;
    }
    for (int64_t j = 0; j < n; ++j) {
        const int keep = m1[j] != 0 && (m2 == NULL || m2[j] != 0);
        /* +0 whatever p and g hold: a masked logit is a constant. */
        g[j] = keep ? scale * p[j] * (g[j] - r) : 0.0f;
    }
}

struct softmax_backward_fns {
    attn4j_dot_f64_fn dot;
    attn4j_softmax_grad_fn grad;
};

static struct softmax_backward_fns select_softmax_backward_fns(void)
{
    struct softmax_backward_fns f = {attn4j_dot_f64_scalar, attn4j_softmax_grad_scalar};
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        f.dot = attn4j_dot_f64_avx512;
        f.grad = attn4j_softmax_grad_avx512;
        break;
    case ATTN4J_ISA_AVX2:
        f.dot = attn4j_dot_f64_avx2;
        f.grad = attn4j_softmax_grad_avx2;
        break;
#endif
    default:
        break;
    }
    return f;
}

ATTN4J_API int attn4j_softmax_backward_f32(const float *p, float *dp, int64_t batch, int64_t tq, int64_t tv,
                                           float scale, const uint8_t *mask, int64_t mask_batch_stride,
                                           int64_t mask_row_stride, int64_t mask_batch_div,
                                           const uint8_t *row_mask, const uint8_t *col_mask,
                                           int64_t pad_batch_div, int32_t causal, int64_t window,
                                           int32_t convention)
{
    const struct attn4j_softmax_masks masks = {mask, mask_batch_stride, mask_row_stride, mask_batch_div,
                                               row_mask, col_mask, pad_batch_div, causal, window};
    if (p == NULL || dp == NULL || !attn4j_softmax_args_ok(batch, tq, tv, &masks, convention))
        return ATTN4J_EINVAL;
    const size_t bytes = (size_t)(batch * tq * tv) * sizeof(float);
    if (attn4j_overlaps(p, bytes, dp, bytes))
        return ATTN4J_EINVAL;

    const struct softmax_backward_fns fn = select_softmax_backward_fns();
    if (convention == ATTN4J_MASK_SUBTRACT) {
        /* Keras's masked logit x - 1e9 has derivative 1 in x: nothing is masked. */
        for (int64_t row = 0; row < batch * tq; ++row) {
            const float *pr = p + row * tv;
            float *gr = dp + row * tv;
            const float r = (float)fn.dot(pr, gr, tv);
            fn.grad(pr, gr, tv, r, scale, NULL, NULL);
        }
        return ATTN4J_OK;
    }
    for (int64_t b = 0; b < batch; ++b) {
        const struct attn4j_softmax_batch bm = attn4j_softmax_batch_masks(&masks, tq, tv, b);
        for (int64_t i = 0; i < tq; ++i) {
            const struct attn4j_softmax_row_plan plan = attn4j_softmax_plan_row(&masks, &bm, tv, i);
            const float *pr = p + (b * tq + i) * tv;
            float *gr = dp + (b * tq + i) * tv;
            if (plan.lo >= plan.hi) {
                /* Every logit of the row is the constant: +0, p and g unread. */
                fill_zero(gr, tv);
                continue;
            }
            /* r sums over every column, masked ones too, as the formula says (their
             * p is 0 unless the kept logits are all -inf). */
            const float r = (float)fn.dot(pr, gr, tv);
            fill_zero(gr, plan.lo);
            fn.grad(pr + plan.lo, gr + plan.lo, plan.hi - plan.lo, r, scale,
                    plan.m1 == NULL ? NULL : plan.m1 + plan.lo, plan.m2 == NULL ? NULL : plan.m2 + plan.lo);
            fill_zero(gr + plan.hi, tv - plan.hi);
        }
    }
    return ATTN4J_OK;
}

/* ---- Tanh scores -------------------------------------------------------------------- */

void attn4j_tanh_backward_scalar(const float *x, int64_t nx, const float *y, int64_t ny, int64_t dim,
                                 const float *ds, int64_t ds_x, int64_t ds_y, int64_t d0, int64_t dc, float inner,
                                 float outer, const double *dx_scale, float *dx, double *sy, double *stats)
{
    for (int64_t a = 0; a < nx; ++a) {
        const float *xa = x + a * dim + d0;
        double sx[ATTN4J_TB_LANES] = {0.0};
        for (int64_t b = 0; b < ny; ++b) {
            const float s = ds[a * ds_x + b * ds_y];
            const float g = s * outer;
            const float *yb = y + b * dim + d0;
            for (int64_t l = 0; l < dc; ++l) {
                const float t = xa[l] + yb[l];
                const float u = tanhf(inner * t);
                /* 1 - u^2 without the cancellation of 1 - u*u near |u| = 1. */
                const float e = (1.0f - u) * (1.0f + u);
                const float c = g * e;
                sx[l] += c;
                if (sy != NULL)
                    sy[b * ATTN4J_TB_LANES + l] += c;
                if (stats != NULL) {
                    stats[l] += (double)c * (double)t;
                    stats[ATTN4J_TB_LANES + l] += (double)s * (double)u;
                }
            }
        }
        for (int64_t l = 0; l < dc; ++l)
            dx[a * dim + d0 + l] = (float)(dx_scale[l] * sx[l]);
    }
}

static attn4j_tanh_backward_fn select_tanh_backward_fn(void)
{
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        return attn4j_tanh_backward_avx512;
    case ATTN4J_ISA_AVX2:
        return attn4j_tanh_backward_avx2;
#endif
    default:
        return attn4j_tanh_backward_scalar;
    }
}

/* The rows of the stack buffer for the sums over the other side: 32 KiB. */
#define ATTN4J_TB_ROWS 256

/* dy[b, d0 + l] = dx_scale[l] * sy[b, l], rounded once. */
static void store_sums(float *dy, int64_t ny, int64_t dim, int64_t d0, int64_t dc, const double *dx_scale,
                       const double *sy)
{
    for (int64_t b = 0; b < ny; ++b)
        for (int64_t l = 0; l < dc; ++l)
            dy[b * dim + d0 + l] = (float)(dx_scale[l] * sy[b * ATTN4J_TB_LANES + l]);
}

ATTN4J_API int attn4j_tanh_scores_backward_f32(const float *q, const float *k, const float *ds, float *dq,
                                               float *dk, float *dw, float *dscalars, int64_t batch, int64_t tq,
                                               int64_t tv, int64_t dim, const float *weights, float inner,
                                               float outer)
{
    if (q == NULL || k == NULL || ds == NULL || dq == NULL || dk == NULL || batch < 1 || tq < 1 || tv < 1 ||
        dim < 1)
        return ATTN4J_EINVAL;
    if (!attn4j_dense_fits(batch, tq, dim) || !attn4j_dense_fits(batch, tv, dim) ||
        !attn4j_dense_fits(batch, tq, tv))
        return ATTN4J_EINVAL;
    {
        const size_t f = sizeof(float);
        const size_t nq = (size_t)(batch * tq * dim) * f, nk = (size_t)(batch * tv * dim) * f;
        const void *out[4] = {dq, dk, dw, dscalars};
        const size_t out_n[4] = {nq, nk, dw == NULL ? 0 : (size_t)dim * f, dscalars == NULL ? 0 : 2 * f};
        const void *in[4] = {q, k, ds, weights};
        const size_t in_n[4] = {nq, nk, (size_t)(batch * tq * tv) * f, weights == NULL ? 0 : (size_t)dim * f};
        for (int o = 0; o < 4; ++o) {
            for (int o2 = o + 1; o2 < 4; ++o2)
                if (attn4j_overlaps(out[o], out_n[o], out[o2], out_n[o2]))
                    return ATTN4J_EINVAL;
            for (int x = 0; x < 4; ++x)
                if (attn4j_overlaps(out[o], out_n[o], in[x], in_n[x]))
                    return ATTN4J_EINVAL;
        }
    }

    const attn4j_tanh_backward_fn fn = select_tanh_backward_fn();
    double sy[ATTN4J_TB_ROWS * ATTN4J_TB_LANES];
    double d_inner = 0.0, d_outer = 0.0;
    for (int64_t d0 = 0; d0 < dim; d0 += ATTN4J_TB_LANES) {
        const int64_t dc = dim - d0 < ATTN4J_TB_LANES ? dim - d0 : ATTN4J_TB_LANES;
        /* dq and dk are inner * w_d * (the sum of c); inner and w_d factor out. */
        double dx_scale[ATTN4J_TB_LANES] = {0.0};
        for (int64_t l = 0; l < dc; ++l)
            dx_scale[l] = (double)inner * (weights == NULL ? 1.0 : (double)weights[d0 + l]);
        /* Per lane: sum c * t (for inner) and sum s * u (for w and outer). */
        double stats[2 * ATTN4J_TB_LANES] = {0.0};
        for (int64_t b = 0; b < batch; ++b) {
            const float *qb = q + b * tq * dim, *kb = k + b * tv * dim, *dsb = ds + b * tq * tv;
            float *dqb = dq + b * tq * dim, *dkb = dk + b * tv * dim;
            if (tv <= ATTN4J_TB_ROWS) {
                memset(sy, 0, (size_t)tv * ATTN4J_TB_LANES * sizeof sy[0]);
                fn(qb, tq, kb, tv, dim, dsb, tv, 1, d0, dc, inner, outer, dx_scale, dqb, sy, stats);
                store_sums(dkb, tv, dim, d0, dc, dx_scale, sy);
            } else if (tq <= ATTN4J_TB_ROWS) {
                memset(sy, 0, (size_t)tq * ATTN4J_TB_LANES * sizeof sy[0]);
                fn(kb, tv, qb, tq, dim, dsb, 1, tv, d0, dc, inner, outer, dx_scale, dkb, sy, stats);
                store_sums(dqb, tq, dim, d0, dc, dx_scale, sy);
            } else {
                fn(qb, tq, kb, tv, dim, dsb, tv, 1, d0, dc, inner, outer, dx_scale, dqb, NULL, stats);
                fn(kb, tv, qb, tq, dim, dsb, 1, tv, d0, dc, inner, outer, dx_scale, dkb, NULL, NULL);
            }
        }
        for (int64_t l = 0; l < dc; ++l) {
            const double w = weights == NULL ? 1.0 : (double)weights[d0 + l];
            const double su = stats[ATTN4J_TB_LANES + l];
            /* dw = sum (s * outer) * u = outer * sum s * u */
            if (dw != NULL)
                dw[d0 + l] = (float)((double)outer * su);
            d_inner += w * stats[l];
            d_outer += w * su;
        }
    }
    if (dscalars != NULL) {
        dscalars[0] = (float)d_inner;
        dscalars[1] = (float)d_outer;
    }
    return ATTN4J_OK;
}

/* ---- Gate ------------------------------------------------------------------------------ */

ATTN4J_API int attn4j_gate_backward_f32(const float *a, const float *gate, float *dy, float *dz, int64_t n)
{
    if (n < 0 || n > PTRDIFF_MAX / (int64_t)sizeof(float))
        return ATTN4J_EINVAL;
    if (n == 0)
        return ATTN4J_OK;
    if (a == NULL || gate == NULL || dy == NULL || dz == NULL)
        return ATTN4J_EINVAL;
    const size_t bytes = (size_t)n * sizeof(float);
    if (attn4j_overlaps(dz, bytes, a, bytes) || attn4j_overlaps(dz, bytes, gate, bytes) ||
        attn4j_overlaps(dz, bytes, dy, bytes))
        return ATTN4J_EINVAL;
    /* Memory-bound and libm-free: a plain loop the compiler vectorises. */
    for (int64_t i = 0; i < n; ++i) {
        const float y = dy[i], g = gate[i];
        dz[i] = y * a[i] * g * (1.0f - g);
        dy[i] = y * g;
    }
    return ATTN4J_OK;
}
