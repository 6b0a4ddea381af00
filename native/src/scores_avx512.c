/*
 * scores_avx512.c - the tanh scores for AVX-512 (F, BW, VL, DQ), 16 floats per
 * step. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma; only
 * called after cpu.c has checked the CPU.
 *
 * Same float operations per term as attn4j_tanh_scores_scalar in scores.c, with
 * the vector tanh below instead of tanhf. Two loop orders:
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

#define W 16 /* floats per vector */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* exp(z) for z in [0, 20] or NaN (2|x| after the clamp in tanh16): the exp of
 * softmax_avx512.c without its underflow handling, which these arguments never
 * need; 2^n with n <= 29 is a plain vscalefps. */
ALWAYS_INLINE __m512 exp_pos16(__m512 z)
{
    const __m512 nf = _mm512_roundscale_ps(_mm512_mul_ps(z, _mm512_set1_ps(ATTN4J_LOG2E)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(ATTN4J_LN2_HI), z);
    r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(ATTN4J_LN2_LO), r);

    __m512 p = _mm512_set1_ps(ATTN4J_EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, nf);
}

/* tanh on 16 lanes, see the constants in internal.h. */
ALWAYS_INLINE __m512 tanh16(__m512 x)
{
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512 a = _mm512_andnot_ps(sign, x);

    /* |x| < 0.875: a + a^3 P(a^2). */
    const __m512 s = _mm512_mul_ps(a, a);
    __m512 p = _mm512_set1_ps(ATTN4J_TANH_C15);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C13));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C11));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C9));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C7));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C5));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(ATTN4J_TANH_C3));
    const __m512 small = _mm512_fmadd_ps(p, _mm512_mul_ps(a, s), a);

    /* Otherwise 1 - 2 / (exp(2a) + 1). minps returns its second operand when
     * either is NaN, so a NaN a passes the clamp and comes out NaN. */
    const __m512 z = _mm512_min_ps(_mm512_set1_ps(ATTN4J_TANH_CLAMP), a);
    const __m512 e = exp_pos16(_mm512_add_ps(z, z));
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512 large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));

    /* False for NaN: the large branch carries the NaN. */
    const __mmask16 is_small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(ATTN4J_TANH_SMALL), _CMP_LT_OQ);
    const __m512 t = _mm512_mask_blend_ps(is_small, large, small);
    return _mm512_or_ps(t, _mm512_and_ps(x, sign));
}

/* Bits k < n set (n clamped to [0, 16]). */
ALWAYS_INLINE __mmask16 lanes_below(int64_t n)
{
    const unsigned c = (unsigned)(n < 0 ? 0 : n > W ? W : n);
    return (__mmask16)((1u << c) - 1u);
}

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
        const __mmask16 valid = lanes_below(tv - j0);
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
                __m512 p = tanh16(_mm512_mul_ps(vinner, t));
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
    const __mmask16 tail = lanes_below(dim % W);
    const int64_t dim_body = dim - dim % W;
    for (int64_t i = 0; i < tq; ++i) {
        const float *qi = q + i * dim;
        for (int64_t j = 0; j < tv; ++j) {
            const float *kj = k + j * dim;
            __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
            for (int64_t d = 0; d < dim_body; d += W) {
                const __m512 t = _mm512_add_ps(_mm512_loadu_ps(qi + d), _mm512_loadu_ps(kj + d));
                __m512 p = tanh16(_mm512_mul_ps(vinner, t));
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
                __m512 p = _mm512_maskz_mov_ps(tail, tanh16(_mm512_mul_ps(vinner, t)));
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
        _mm512_storeu_ps(y + k, tanh16(_mm512_loadu_ps(x + k)));
    if (k < n) {
        const __mmask16 tail = lanes_below(n - k);
        _mm512_mask_storeu_ps(y + k, tail, tanh16(_mm512_maskz_loadu_ps(tail, x + k)));
    }
}
