/*
 * scores_avx512.c - the tanh scores for AVX-512 (F, BW, VL, DQ), 16 floats per
 * step. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma; only
 * called after cpu.c has checked the CPU.
 *
 * Same float operations per term as attn4j_tanh_scores_scalar in scores.c, with
 * the vector tanh of vmath_avx512.h instead of tanhf. Two loop orders:
 *  - dim <= ATTN4J_KT_MAX_DIM (the usual case): 16 key positions per vector. A
 *    block of 16 k rows is transposed once (one gather per d) into a stack buffer
 *    and reused by every query row, so each lane sums its own score over d, in d
 *    order, as the scalar kernel does, and no horizontal sum is needed. The last
 *    block's missing rows are zero lanes whose results are never stored.
 *  - larger dim: 16 d per vector for one (i, j) at a time, one horizontal sum per
 *    score, amortised over dim / 16 > 16 vectors.
 * The sum is kept in double in both (two accumulators of 8 lanes).
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx512.h"

#define W 16 /* floats per vector */

/* Sixteen float32 sums from the two double accumulators (lanes 0-7, 8-15). */
ALWAYS_INLINE __m512 narrow(__m512d lo, __m512d hi)
{
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
}

ALWAYS_INLINE __m512d widen_hi(__m512 p)
{
    return _mm512_cvtps_pd(_mm512_extractf32x8_ps(p, 1));
}

/* dim <= ATTN4J_KT_MAX_DIM: 16 key positions per vector. `has_weights` is a
 * constant at each call site, so the loop without weights has no multiply. */
ALWAYS_INLINE void by_keys(const float *q, const float *k, float *scores, int64_t tq, int64_t tv,
                           int64_t dim, const float *weights, float inner, float outer,
                           int has_weights)
{
    _Alignas(64) float kt[ATTN4J_KT_MAX_DIM * W];
    /* Lane l of a gather reads row l of the block: offsets l * dim < 16 * 256. */
    const __m512i offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int32_t)dim));
    const __m512 vinner = _mm512_set1_ps(inner);
    const __m512 vouter = _mm512_set1_ps(outer);

    for (int64_t j0 = 0; j0 < tv; j0 += W) {
        const __mmask16 valid = v16_lanes_below(tv - j0);
        const float *kb = k + j0 * dim;
        /* kt[d][l] = k[j0 + l][d]; masked-off lanes are 0 and read nothing. */
        for (int64_t d = 0; d < dim; ++d)
            _mm512_store_ps(kt + d * W,
                            _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, offsets, kb + d, 4));

        for (int64_t i = 0; i < tq; ++i) {
            const float *qi = q + i * dim;
            __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
            for (int64_t d = 0; d < dim; ++d) {
                const __m512 t = _mm512_add_ps(_mm512_set1_ps(qi[d]), _mm512_load_ps(kt + d * W));
                __m512 p = v16_tanh(_mm512_mul_ps(vinner, t));
                if (has_weights)
                    p = _mm512_mul_ps(_mm512_set1_ps(weights[d]), p);
                lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
                hi = _mm512_add_pd(hi, widen_hi(p));
            }
            _mm512_mask_storeu_ps(scores + i * tv + j0, valid, _mm512_mul_ps(vouter, narrow(lo, hi)));
        }
    }
}

/* dim > ATTN4J_KT_MAX_DIM: 16 d per vector; the tail's missing lanes add 0. */
ALWAYS_INLINE void by_dims(const float *q, const float *k, float *scores, int64_t tq, int64_t tv,
                           int64_t dim, const float *weights, float inner, float outer,
                           int has_weights)
{
    const __m512 vinner = _mm512_set1_ps(inner);
    const __mmask16 tail = v16_lanes_below(dim % W);
    const int64_t dim_body = dim - dim % W;
    for (int64_t i = 0; i < tq; ++i) {
        const float *qi = q + i * dim;
        for (int64_t j = 0; j < tv; ++j) {
            const float *kj = k + j * dim;
            __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
            for (int64_t d = 0; d < dim_body; d += W) {
                const __m512 t = _mm512_add_ps(_mm512_loadu_ps(qi + d), _mm512_loadu_ps(kj + d));
                __m512 p = v16_tanh(_mm512_mul_ps(vinner, t));
                if (has_weights)
                    p = _mm512_mul_ps(_mm512_loadu_ps(weights + d), p);
                lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
                hi = _mm512_add_pd(hi, widen_hi(p));
            }
            if (tail != 0) {
                const int64_t d = dim_body;
                const __m512 t = _mm512_add_ps(_mm512_maskz_loadu_ps(tail, qi + d),
                                               _mm512_maskz_loadu_ps(tail, kj + d));
                /* Zeroed after tanh: inner = inf would make tanh(inner * 0) NaN. */
                __m512 p = _mm512_maskz_mov_ps(tail, v16_tanh(_mm512_mul_ps(vinner, t)));
                if (has_weights)
                    p = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, weights + d), p);
                lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(p)));
                hi = _mm512_add_pd(hi, widen_hi(p));
            }
            scores[i * tv + j] = outer * (float)_mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
        }
    }
}

void attn4j_tanh_scores_avx512(const float *q, const float *k, float *scores, int64_t tq,
                               int64_t tv, int64_t dim, const float *weights, float inner,
                               float outer)
{
    if (dim <= ATTN4J_KT_MAX_DIM) {
        if (weights != NULL)
            by_keys(q, k, scores, tq, tv, dim, weights, inner, outer, 1);
        else
            by_keys(q, k, scores, tq, tv, dim, NULL, inner, outer, 0);
    } else {
        if (weights != NULL)
            by_dims(q, k, scores, tq, tv, dim, weights, inner, outer, 1);
        else
            by_dims(q, k, scores, tq, tv, dim, NULL, inner, outer, 0);
    }
}

void attn4j_tanh_avx512(const float *x, float *y, int64_t n)
{
    int64_t k = 0;
    for (; k + W <= n; k += W)
        _mm512_storeu_ps(y + k, v16_tanh(_mm512_loadu_ps(x + k)));
    if (k < n) {
        const __mmask16 tail = v16_lanes_below(n - k);
        _mm512_mask_storeu_ps(y + k, tail, v16_tanh(_mm512_maskz_loadu_ps(tail, x + k)));
    }
}
