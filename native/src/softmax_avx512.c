/*
 * softmax_avx512.c - the softmax row kernel for AVX-512 (F, BW, VL, DQ), 16 floats
 * per step. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma; only
 * called after cpu.c has checked the CPU.
 *
 * Same three passes and float operations as attn4j_softmax_row_scalar in
 * softmax.c, with v16_exp of vmath_avx512.h. Keep decisions live in mask
 * registers: the mask bytes become a __mmask16 with one vptestmb per byte mask,
 * the range [lo, hi) is a bit count.
 *
 * The tail (n % 16 columns) goes through the same code under a lane mask, but its
 * vector stays in a register from pass 1 to pass 3 and is stored once, at the
 * end, with plain stores (v16_store_first): the loads of the next row would wait
 * for a masked store of the tail to reach the cache, ~50 ns per row, more than a
 * row of 16 columns costs in all.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "internal.h"
#include "vmath_avx512.h"

#define W 16 /* floats per vector */

/* The lanes of the chunk at j, valid lanes `valid`, that are kept: inside
 * [lo, hi) and allowed by m1 (and, with nmasks == 2, m2). Only called when the
 * row has some masking (a range narrower than the row, or byte masks). */
ALWAYS_INLINE __mmask16 keep_lanes(const uint8_t *m1, const uint8_t *m2, int64_t j, __mmask16 valid,
                                   int64_t lo, int64_t hi, int nmasks)
{
    __mmask16 keep = valid & v16_lanes_below(hi - j) & (__mmask16)~v16_lanes_below(lo - j);
    if (nmasks >= 1) {
        const int full = valid == (__mmask16)0xFFFF;
        const __m128i b1 = full ? _mm_loadu_si128((const __m128i *)(const void *)(m1 + j))
                                : _mm_maskz_loadu_epi8(valid, m1 + j);
        keep = _mm_mask_test_epi8_mask(keep, b1, b1);
        if (nmasks == 2) {
            const __m128i b2 = full ? _mm_loadu_si128((const __m128i *)(const void *)(m2 + j))
                                    : _mm_maskz_loadu_epi8(valid, m2 + j);
            keep = _mm_mask_test_epi8_mask(keep, b2, b2);
        }
    }
    return keep;
}

ALWAYS_INLINE __m512 masked16(__m512 v, int32_t convention)
{
    if (convention == ATTN4J_MASK_REPLACE_ZERO)
        return _mm512_set1_ps(ATTN4J_REPLACE_ZERO_LOGIT);
    if (convention == ATTN4J_MASK_REPLACE)
        return _mm512_set1_ps(ATTN4J_REPLACE_LOGIT);
    return _mm512_sub_ps(v, _mm512_set1_ps(ATTN4J_SUBTRACT_BIAS));
}

/* The logits of the chunk at j from v = scale * scores. */
ALWAYS_INLINE __m512 logit16(__m512 v, const uint8_t *m1, const uint8_t *m2, int64_t j, __mmask16 valid,
                             int64_t lo, int64_t hi, int32_t convention, int nmasks, int masking)
{
    if (!masking)
        return v;
    return _mm512_mask_blend_ps(keep_lanes(m1, m2, j, valid, lo, hi, nmasks), masked16(v, convention), v);
}

/* e / s, and for REPLACE_ZERO +0 (maskz) where the chunk is masked. */
ALWAYS_INLINE __m512 normalise16(__m512 e, __m512 vs, const uint8_t *m1, const uint8_t *m2, int64_t j,
                                 __mmask16 valid, int64_t lo, int64_t hi, int32_t convention, int nmasks,
                                 int masking)
{
    if (convention == ATTN4J_MASK_REPLACE_ZERO && masking)
        return _mm512_maskz_div_ps(keep_lanes(m1, m2, j, valid, lo, hi, nmasks), e, vs);
    return _mm512_div_ps(e, vs);
}

ALWAYS_INLINE __m512d widen_hi(__m512 e)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
}

/* The row kernel; `convention`, `nmasks` (byte masks present: 0, 1, 2) and
 * `masking` (any keep test at all: byte masks or a narrower range) are constants
 * at every call site, so each combination gets its own loops. */
ALWAYS_INLINE float row_impl(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n, int64_t lo,
                             int64_t hi, int64_t n_const, float scale, int32_t convention, int nmasks,
                             int masking)
{
    const int64_t body = n - n % W;
    const __mmask16 tail = v16_lanes_below(n - body);

    /* Pass 1: logits, and their max. */
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < body; j += W) {
        const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + j), vscale);
        const __m512 l = logit16(v, m1, m2, j, 0xFFFF, lo, hi, convention, nmasks, masking);
        _mm512_storeu_ps(x + j, l);
        vmax = _mm512_max_ps(vmax, l);
    }
    __m512 t = _mm512_setzero_ps(); /* the tail, kept in this register */
    if (tail != 0) {
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + body), vscale);
        t = logit16(v, m1, m2, body, tail, lo, hi, convention, nmasks, masking);
        vmax = _mm512_mask_max_ps(vmax, tail, vmax, t);
    }
    float mx = _mm512_reduce_max_ps(vmax);
    const float c = convention == ATTN4J_MASK_REPLACE_ZERO ? ATTN4J_REPLACE_ZERO_LOGIT : ATTN4J_REPLACE_LOGIT;
    if (n_const > 0)
        mx = c > mx ? c : mx;

    /* Pass 2: e = exp(logit - max), summed in double. */
    const __m512 vmx = _mm512_set1_ps(mx);
    __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
    for (int64_t j = 0; j < body; j += W) {
        const __m512 e = v16_exp(_mm512_sub_ps(_mm512_loadu_ps(x + j), vmx));
        _mm512_storeu_ps(x + j, e);
        acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        acc_hi = _mm512_add_pd(acc_hi, widen_hi(e));
    }
    if (tail != 0) {
        t = _mm512_maskz_mov_ps(tail, v16_exp(_mm512_sub_ps(t, vmx)));
        acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(t)));
        acc_hi = _mm512_add_pd(acc_hi, widen_hi(t));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(acc_lo, acc_hi));
    float e_c = 0.0f;
    if (n_const > 0) {
        e_c = _mm512_cvtss_f32(v16_exp(_mm512_set1_ps(c - mx)));
        sum += (double)n_const * (double)e_c;
    }

    /* Pass 3: e / sum; the tail's only store. */
    const float s = (float)sum;
    const __m512 vs = _mm512_set1_ps(s);
    for (int64_t j = 0; j < body; j += W) {
        const __m512 y = normalise16(_mm512_loadu_ps(x + j), vs, m1, m2, j, 0xFFFF, lo, hi, convention,
                                     nmasks, masking);
        _mm512_storeu_ps(x + j, y);
    }
    if (tail != 0)
        v16_store_first(x + body, normalise16(t, vs, m1, m2, body, tail, lo, hi, convention, nmasks, masking),
                        n - body);
    /* Divide only when there are such columns: the divider is pass 3's
     * bottleneck, and a row of one vector would pay for it. */
    return convention == ATTN4J_MASK_REPLACE_ZERO || n_const == 0 ? 0.0f : e_c / s;
}

#define ROW_CASES(conv)                                                                        \
    do {                                                                                       \
        if (!masking)                                                                          \
            return row_impl(x, NULL, NULL, n, lo, hi, n_const, scale, conv, 0, 0);             \
        if (m1 == NULL)                                                                        \
            return row_impl(x, NULL, NULL, n, lo, hi, n_const, scale, conv, 0, 1);             \
        if (m2 == NULL)                                                                        \
            return row_impl(x, m1, NULL, n, lo, hi, n_const, scale, conv, 1, 1);               \
        return row_impl(x, m1, m2, n, lo, hi, n_const, scale, conv, 2, 1);                     \
    } while (0)

float attn4j_softmax_row_avx512(float *x, const uint8_t *m1, const uint8_t *m2, int64_t n, int64_t lo,
                                int64_t hi, int64_t n_const, float scale, int32_t convention)
{
    const int masking = m1 != NULL || lo > 0 || hi < n;
    if (convention == ATTN4J_MASK_REPLACE_ZERO)
        ROW_CASES(ATTN4J_MASK_REPLACE_ZERO);
    if (convention == ATTN4J_MASK_REPLACE)
        ROW_CASES(ATTN4J_MASK_REPLACE);
    ROW_CASES(ATTN4J_MASK_SUBTRACT);
}

void attn4j_exp_avx512(const float *x, float *y, int64_t n)
{
    int64_t k = 0;
    for (; k + W <= n; k += W)
        _mm512_storeu_ps(y + k, v16_exp(_mm512_loadu_ps(x + k)));
    if (k < n) {
        const __mmask16 tail = v16_lanes_below(n - k);
        _mm512_mask_storeu_ps(y + k, tail, v16_exp(_mm512_maskz_loadu_ps(tail, x + k)));
    }
}
