/*
 * scores.c - attn4j_tanh_scores_f32: argument checks, the loop over batches, the
 * choice of kernel, and the scalar kernel (libm tanhf; the reference the vector
 * paths follow operation by operation, and the path for CPUs without AVX2).
 *
 * Per term the float32 operations are Keras's, in Keras's order: t = q + k,
 * u = inner * t, tanh(u), p = w * tanh(u). Only the sum differs: Keras (numpy /
 * XLA) adds the p in float32, we add them in double and round once, which is more
 * accurate and never less so. -ffp-contract=off keeps inner * (q + k) and w * th
 * from being fused with anything.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

void attn4j_tanh_scores_scalar(const float *q, const float *k, float *scores, int64_t tq,
                               int64_t tv, int64_t dim, const float *weights, float inner,
                               float outer)
{
    for (int64_t i = 0; i < tq; ++i) {
        const float *qi = q + i * dim;
        for (int64_t j = 0; j < tv; ++j) {
            const float *kj = k + j * dim;
            double sum = 0.0;
            for (int64_t d = 0; d < dim; ++d) {
                const float t = qi[d] + kj[d];
                const float u = inner * t;
                const float th = tanhf(u);
                const float p = weights == NULL ? th : weights[d] * th;
                sum += p;
            }
            scores[i * tv + j] = outer * (float)sum;
        }
    }
}

static attn4j_tanh_scores_fn select_tanh_scores_fn(void)
{
    switch (attn4j_isa_level()) {
#if defined(ATTN4J_HAVE_X86)
    case ATTN4J_ISA_AVX512:
        return attn4j_tanh_scores_avx512;
    case ATTN4J_ISA_AVX2:
        return attn4j_tanh_scores_avx2;
#endif
    default:
        return attn4j_tanh_scores_scalar;
    }
}

ATTN4J_API int attn4j_tanh_scores_f32(const float *q, const float *k, float *scores, int64_t batch,
                                      int64_t tq, int64_t tv, int64_t dim, const float *weights,
                                      float inner, float outer)
{
    if (q == NULL || k == NULL || scores == NULL || batch < 1 || tq < 1 || tv < 1 || dim < 1)
        return ATTN4J_EINVAL;
    /* Shapes no address space can hold: refuse them rather than let the offsets
     * overflow. */
    if (!attn4j_dense_fits(batch, tq, dim) || !attn4j_dense_fits(batch, tv, dim) ||
        !attn4j_dense_fits(batch, tq, tv))
        return ATTN4J_EINVAL;

    const attn4j_tanh_scores_fn fn = select_tanh_scores_fn();
    for (int64_t b = 0; b < batch; ++b)
        fn(q + b * tq * dim, k + b * tv * dim, scores + b * tq * tv, tq, tv, dim, weights, inner,
           outer);
    return ATTN4J_OK;
}
