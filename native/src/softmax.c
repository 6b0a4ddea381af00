/*
 * softmax.c - attn4j_masked_softmax_f32: argument checks, the loop over rows, the
 * choice of row kernel, and the scalar row kernel (the reference the vector paths
 * follow operation by operation, and the path for CPUs without AVX2).
 *
 * Every row takes three passes over memory:
 *   1. logit = keep ? scale*s : masked(scale*s), stored in place; track the max
 *   2. e = exp(logit - max), stored in place; sum the e
 *   3. e / sum (a true division, as numpy and Keras do), and for REPLACE_ZERO
 *      masked positions set to 0
 * The float operations of pass 1 and the subtraction logit - max are exactly the
 * float32 operations Keras performs, so they round the same. The sum is kept in
 * double: it costs little next to exp and makes the one rounding of the sum to
 * float the only error it contributes (Keras sums in float32, which is less
 * accurate, not differently defined).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

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

void attn4j_row_scalar(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                       float scale, int32_t convention)
{
    /* A NaN logit never wins the comparison, so mx may miss it; that does not
     * matter: its e is NaN, so the sum and the whole row are NaN either way. */
    float mx = -INFINITY;
    for (int64_t j = 0; j < tv; ++j) {
        const float x = scale * row[j];
        const int keep = j < keep_end && (mask_row == NULL || mask_row[j] != 0);
        const float logit = keep ? x : masked_logit(x, convention);
        row[j] = logit;
        mx = logit > mx ? logit : mx;
    }

    /* expf of a masked logit (d ~ -1e9) underflows, which costs glibc an errno
     * write and the CPU a microcode assist; below -104 the result is +0 anyway. */
    double sum = 0.0;
    for (int64_t j = 0; j < tv; ++j) {
        const float d = row[j] - mx;
        const float e = d < ATTN4J_EXP_LO ? 0.0f : expf(d);
        row[j] = e;
        sum += e;
    }

    const float s = (float)sum;
    /* Keras zeroes masked probabilities by multiplying with the mask, so a row that
     * is NaN (s is NaN) stays NaN at masked positions too: no zeroing then. */
    if (convention == ATTN4J_MASK_REPLACE_ZERO && s == s) {
        for (int64_t j = 0; j < tv; ++j) {
            const int keep = j < keep_end && (mask_row == NULL || mask_row[j] != 0);
            row[j] = keep ? row[j] / s : 0.0f;
        }
    } else {
        for (int64_t j = 0; j < tv; ++j)
            row[j] = row[j] / s;
    }
}

static attn4j_row_fn select_row_fn(void)
{
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        return attn4j_row_avx512;
    case ATTN4J_ISA_AVX2:
        return attn4j_row_avx2;
#endif
    default:
        return attn4j_row_scalar;
    }
}

ATTN4J_API int attn4j_masked_softmax_f32(float *scores, int64_t batch, int64_t tq, int64_t tv,
                                         float scale, const uint8_t *mask,
                                         int64_t mask_batch_stride, int64_t mask_row_stride,
                                         int64_t mask_batch_div, int32_t causal,
                                         int32_t convention)
{
    if (scores == NULL || batch < 1 || tq < 1 || tv < 1 || mask_batch_stride < 0 ||
        mask_row_stride < 0 || mask_batch_div < 1)
        return ATTN4J_EINVAL;
    if (convention != ATTN4J_MASK_SUBTRACT && convention != ATTN4J_MASK_REPLACE_ZERO &&
        convention != ATTN4J_MASK_REPLACE)
        return ATTN4J_EINVAL;
    /* A (batch, tq, tv) no address space can hold: refuse it rather than let the
     * row offsets overflow. */
    if (tq > PTRDIFF_MAX / (int64_t)sizeof(float) / tv ||
        batch > PTRDIFF_MAX / (int64_t)sizeof(float) / tv / tq)
        return ATTN4J_EINVAL;

    const attn4j_row_fn row_fn = select_row_fn();
    for (int64_t b = 0; b < batch; ++b) {
        const uint8_t *mask_b = mask == NULL ? NULL : mask + (b / mask_batch_div) * mask_batch_stride;
        float *scores_b = scores + b * tq * tv;
        for (int64_t i = 0; i < tq; ++i) {
            /* Top-left causal: row i keeps columns 0..i. */
            const int64_t keep_end = causal && i + 1 < tv ? i + 1 : tv;
            row_fn(scores_b + i * tv, mask_b == NULL ? NULL : mask_b + i * mask_row_stride, tv,
                   keep_end, scale, convention);
        }
    }
    return ATTN4J_OK;
}
