/*
 * scores_avx2.c - the tanh scores for AVX2 + FMA, 8 floats per step. Compiled with
 * -mavx2 -mfma; only called after cpu.c has checked the CPU.
 *
 * The same two loop orders as scores_avx512.c (see there): 8 key positions per
 * vector from a transposed block of k when dim <= ATTN4J_KT_MAX_DIM, 8 d per
 * vector otherwise; sums in double.
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx2.h"

#define W 8 /* floats per vector */

ALWAYS_INLINE __m256d add_lo(__m256d acc, __m256 p)
{
    return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
}

ALWAYS_INLINE __m256d add_hi(__m256d acc, __m256 p)
{
    return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
}

/* dim <= ATTN4J_KT_MAX_DIM: 8 key positions per vector. */
ALWAYS_INLINE void by_keys(const float *q, const float *k, float *scores, int64_t tq, int64_t tv,
                           int64_t dim, const float *weights, float inner, float outer,
                           int has_weights)
{
    _Alignas(32) float kt[ATTN4J_KT_MAX_DIM * W];
    const __m256i offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32((int32_t)dim));
    const __m256 vinner = _mm256_set1_ps(inner);
    const __m256 vouter = _mm256_set1_ps(outer);

    for (int64_t j0 = 0; j0 < tv; j0 += W) {
        const __m256i valid = v8_lanes_below(tv - j0);
        const float *kb = k + j0 * dim;
        /* kt[d][l] = k[j0 + l][d]; masked-off lanes are 0 and read nothing. */
        for (int64_t d = 0; d < dim; ++d)
            _mm256_store_ps(kt + d * W, _mm256_mask_i32gather_ps(_mm256_setzero_ps(), kb + d, offsets,
                                                                 _mm256_castsi256_ps(valid), 4));

        for (int64_t i = 0; i < tq; ++i) {
            const float *qi = q + i * dim;
            __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
            for (int64_t d = 0; d < dim; ++d) {
                const __m256 t = _mm256_add_ps(_mm256_set1_ps(qi[d]), _mm256_load_ps(kt + d * W));
                __m256 p = v8_tanh(_mm256_mul_ps(vinner, t));
                if (has_weights)
                    p = _mm256_mul_ps(_mm256_set1_ps(weights[d]), p);
                lo = add_lo(lo, p);
                hi = add_hi(hi, p);
            }
            const __m256 sum = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)),
                                                    _mm256_cvtpd_ps(hi), 1);
            _mm256_maskstore_ps(scores + i * tv + j0, valid, _mm256_mul_ps(vouter, sum));
        }
    }
}

/* dim > ATTN4J_KT_MAX_DIM: 8 d per vector; the tail's missing lanes add 0. */
ALWAYS_INLINE void by_dims(const float *q, const float *k, float *scores, int64_t tq, int64_t tv,
                           int64_t dim, const float *weights, float inner, float outer,
                           int has_weights)
{
    const __m256 vinner = _mm256_set1_ps(inner);
    const __m256i tail = v8_lanes_below(dim % W);
    const int64_t dim_body = dim - dim % W;
    for (int64_t i = 0; i < tq; ++i) {
        const float *qi = q + i * dim;
        for (int64_t j = 0; j < tv; ++j) {
            const float *kj = k + j * dim;
            __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
            for (int64_t d = 0; d < dim_body; d += W) {
                const __m256 t = _mm256_add_ps(_mm256_loadu_ps(qi + d), _mm256_loadu_ps(kj + d));
                __m256 p = v8_tanh(_mm256_mul_ps(vinner, t));
                if (has_weights)
                    p = _mm256_mul_ps(_mm256_loadu_ps(weights + d), p);
                lo = add_lo(lo, p);
                hi = add_hi(hi, p);
            }
            if (dim_body < dim) {
                const int64_t d = dim_body;
                const __m256 t = _mm256_add_ps(_mm256_maskload_ps(qi + d, tail),
                                               _mm256_maskload_ps(kj + d, tail));
                /* Zeroed after tanh: inner = inf would make tanh(inner * 0) NaN. */
                __m256 p = _mm256_and_ps(v8_tanh(_mm256_mul_ps(vinner, t)), _mm256_castsi256_ps(tail));
                if (has_weights)
                    p = _mm256_mul_ps(_mm256_maskload_ps(weights + d, tail), p);
                lo = add_lo(lo, p);
                hi = add_hi(hi, p);
            }
            const __m256d acc = _mm256_add_pd(lo, hi);
            __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
            s2 = _mm_add_sd(s2, _mm_unpackhi_pd(s2, s2));
            scores[i * tv + j] = outer * (float)_mm_cvtsd_f64(s2);
        }
    }
}

void attn4j_tanh_scores_avx2(const float *q, const float *k, float *scores, int64_t tq, int64_t tv,
                             int64_t dim, const float *weights, float inner, float outer)
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

void attn4j_tanh_avx2(const float *x, float *y, int64_t n)
{
    int64_t k = 0;
    for (; k + W <= n; k += W)
        _mm256_storeu_ps(y + k, v8_tanh(_mm256_loadu_ps(x + k)));
    if (k < n) {
        const __m256i tail = v8_lanes_below(n - k);
        _mm256_maskstore_ps(y + k, tail, v8_tanh(_mm256_maskload_ps(x + k, tail)));
    }
}
