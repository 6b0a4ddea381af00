/*
 * softmax.c - attn4j_masked_softmax_ex_f32 (and attn4j_masked_softmax_f32, a thin
 * call of it): argument checks, the loop over rows, the plan of each row, the
 * choice of row kernel, and the scalar row kernel (the reference the vector
 * kernels follow operation by operation, and the path for CPUs without AVX2).
 *
 * A row kernel takes three passes over its columns:
 *   1. logit = keep ? scale*s : masked(scale*s), stored in place; track the max
 *   2. e = exp(logit - max), stored in place; sum the e
 *   3. e / sum (a true division, as numpy and Keras do), and for REPLACE_ZERO
 *      masked positions set to +0
 * The float operations of pass 1 and the subtraction logit - max are exactly the
 * float32 operations Keras performs, so they round the same. The sum is kept in
 * double: it costs little next to exp and makes the one rounding of the sum to
 * float the only error it contributes (Keras sums in float32, which is less
 * accurate, not differently defined).
 *
 * The plan of a row (attn4j_softmax_plan_row in internal.h, shared with the
 * backward in backward.c): causality and the window keep a range of columns
 * [lo, hi), a row padding byte of 0 keeps none; inside the range the attention
 * mask and the column padding mask decide per column. Under REPLACE and
 * REPLACE_ZERO every column outside the range has the same constant logit c, so
 * the kernel only passes over [lo, hi) and counts the others as n_const terms
 * exp(c - max) of the sum, and they all get one value, exp(c - max) / sum (or
 * +0). That is the arithmetic a pass over them would do (the same exp, the same
 * division; n copies of one float add up exactly in double), so only the order
 * of the double sum changes, and a causal row of REPLACE / REPLACE_ZERO costs its
 * kept part only. Under SUBTRACT a masked logit depends on the score, so the
 * kernel passes over the whole row with the range as a lane mask.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* This unit is also built by compilers without GNU attributes (scalar only). */
#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* ---- The scalar row kernel (see attn4j_softmax_row_fn in internal.h) ------------- */

static float masked_logit(float x, int32_t convention)
{
    switch (convention) {
    case ATTN4J_MASK_REPLACE_ZERO:
        return ATTN4J_REPLACE_ZERO_LOGIT;
    case ATTN4J_MASK_REPLACE:
        return ATTN4J_REPLACE_LOGIT;
    default:
        return x - ATTN4J_SUBTRACT_BIAS;
    }
}

static int kept(const uint8_t *m1, const uint8_t *m2, int64_t j, int64_t lo, int64_t hi)
{
    return j >= lo && j < hi && (m1 == NULL || m1[j] != 0) && (m2 == NULL || m2[j] != 0);
}

/* expf of a masked logit (d ~ -1e9) underflows, which costs glibc an errno write
 * and the CPU a microcode assist; below -104 the result is +0 anyway. */
static float exp_clamped(float d)
{
    return d < ATTN4J_EXP_LO ? 0.0f : expf(d);
}

float attn4j_softmax_row_scalar(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n, int64_t lo,
                                int64_t hi, int64_t n_const, float scale, int32_t convention)
{
    /* A NaN logit never wins the comparison, so mx may miss it; that does not
     * matter: its e is NaN, so the sum and the whole row are NaN either way. */
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
        const float v = scale * x[j];
        const float logit = kept(m1, m2, j, lo, hi) ? v : masked_logit(v, convention);
        x[j] = logit;
        mx = logit > mx ? logit : mx;
    }
    const float c = masked_logit(0.0f, convention); /* used only when n_const > 0 */
    if (n_const > 0)
        mx = c > mx ? c : mx;

    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        const float e = exp_clamped(x[j] - mx);
        x[j] = e;
        sum += e;
    }
    float e_c = 0.0f;
    if (n_const > 0) {
        e_c = exp_clamped(c - mx);
        sum += (double)n_const * (double)e_c;
    }

    const float s = (float)sum;
    if (convention == ATTN4J_MASK_REPLACE_ZERO) {
        /* Keras: where(mask, outputs, 0), +0 whatever the row holds (NaN too). */
        for (int64_t j = 0; j < n; ++j)
            x[j] = kept(m1, m2, j, lo, hi) ? x[j] / s : 0.0f;
        return 0.0f;
    }
    for (int64_t j = 0; j < n; ++j)
        x[j] = x[j] / s;
    return n_const > 0 ? e_c / s : 0.0f;
}

/* ---- One row ------------------------------------------------------------------------ */

static void fill(float *x, int64_t n, float v)
{
    for (int64_t j = 0; j < n; ++j)
        x[j] = v;
}

static const uint8_t *offset(const uint8_t *m, int64_t k)
{
    return m == NULL ? NULL : m + k;
}

/*
 * A REPLACE / REPLACE_ZERO row that keeps at most the columns [lo, hi), a range
 * narrower than the row (lo >= hi: none): the kernel passes over the range only
 * (m1, m2: the row's byte masks, NULL for none). Out of line, so that the loop
 * over rows stays small for the usual row that needs no plan.
 */
static NOINLINE void softmax_row_narrow(attn4j_softmax_row_fn row_fn, float *row, int64_t tv,
                                        const uint8_t *m1, const uint8_t *m2, int64_t lo, int64_t hi,
                                        float scale, int32_t convention)
{
    if (lo >= hi) {
        /* Every logit is the constant c: REPLACE_ZERO gives +0 everywhere (NaN
         * scores included), REPLACE exp(c - c) / (tv * 1) = 1 / (float)tv, as a
         * pass would compute it (exp(0) is exactly 1 on every path). */
        fill(row, tv, convention == ATTN4J_MASK_REPLACE_ZERO ? 0.0f : 1.0f / (float)tv);
        return;
    }
    const int64_t n_in = hi - lo;
    const float out = row_fn(row + lo, offset(m1, lo), offset(m2, lo), n_in, 0, n_in, tv - n_in, scale,
                             convention);
    fill(row, lo, out);
    fill(row + hi, tv - hi, out);
}

static attn4j_softmax_row_fn select_row_fn(void)
{
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        return attn4j_softmax_row_avx512;
    case ATTN4J_ISA_AVX2:
        return attn4j_softmax_row_avx2;
#endif
    default:
        return attn4j_softmax_row_scalar;
    }
}

ATTN4J_API int attn4j_masked_softmax_ex_f32(float *scores, int64_t batch, int64_t tq, int64_t tv,
                                            float scale, const uint8_t *mask,
                                            int64_t mask_batch_stride, int64_t mask_row_stride,
                                            int64_t mask_batch_div, const uint8_t *row_mask,
                                            const uint8_t *col_mask, int64_t pad_batch_div,
                                            int32_t causal, int64_t window, int32_t convention)
{
    const struct attn4j_softmax_masks masks = {mask, mask_batch_stride, mask_row_stride, mask_batch_div,
                                               row_mask, col_mask, pad_batch_div, causal, window};
    if (scores == NULL || !attn4j_softmax_args_ok(batch, tq, tv, &masks, convention))
        return ATTN4J_EINVAL;

    const attn4j_softmax_row_fn row_fn = select_row_fn();
    for (int64_t b = 0; b < batch; ++b) {
        const struct attn4j_softmax_batch bm = attn4j_softmax_batch_masks(&masks, tq, tv, b);
        float *scores_b = scores + b * tq * tv;
        for (int64_t i = 0; i < tq; ++i) {
            const struct attn4j_softmax_row_plan p = attn4j_softmax_plan_row(&masks, &bm, tv, i);
            float *row = scores_b + i * tv;
            if (convention != ATTN4J_MASK_SUBTRACT && (p.lo > 0 || p.hi < tv)) {
                softmax_row_narrow(row_fn, row, tv, p.m1, p.m2, p.lo, p.hi, scale, convention);
            } else {
                /* SUBTRACT (every column takes the passes, the range is a lane
                 * mask), or a range that is the whole row. */
                row_fn(row, p.m1, p.m2, tv, p.lo, p.hi, 0, scale, convention);
            }
        }
    }
    return ATTN4J_OK;
}

ATTN4J_API int attn4j_masked_softmax_f32(float *scores, int64_t batch, int64_t tq, int64_t tv,
                                         float scale, const uint8_t *mask,
                                         int64_t mask_batch_stride, int64_t mask_row_stride,
                                         int64_t mask_batch_div, int32_t causal,
                                         int32_t convention)
{
    return attn4j_masked_softmax_ex_f32(scores, batch, tq, tv, scale, mask, mask_batch_stride,
                                        mask_row_stride, mask_batch_div, NULL, NULL, 1, causal, 0,
                                        convention);
}
