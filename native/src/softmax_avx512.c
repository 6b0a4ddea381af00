/*
 * softmax_avx512.c - the row kernel for AVX-512 (F, BW, VL, DQ), 16 floats per
 * step. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma; only
 * called after cpu.c has checked the CPU.
 *
 * Same three passes and float operations as attn4j_row_scalar in softmax.c. Keep
 * decisions live in mask registers: the mask bytes become a __mmask16 with one
 * vptestmb, the causal boundary is a bit count, and the tail (tv % 16 columns)
 * runs the same code with masked loads and stores, which do not touch the memory
 * of masked-out lanes.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "internal.h"

#define W 16 /* floats per vector */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* exp on 16 lanes, see the constants in internal.h and exp8 in softmax_avx2.c
 * for the scaling by 2^n, done here with vscalefps: normal results directly,
 * results below 2^-126 as the integer bit pattern round(p * 2^(n+149)), so no
 * instruction ever produces a subnormal float (a ~100-cycle microcode assist
 * on x86, which every masked logit would otherwise pay). */
ALWAYS_INLINE __m512 exp16(__m512 x)
{
    /* minps/maxps return the second operand when either is NaN: NaN passes. */
    x = _mm512_max_ps(_mm512_set1_ps(ATTN4J_EXP_LO), _mm512_min_ps(_mm512_set1_ps(ATTN4J_EXP_HI), x));
    const __m512 nf = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(ATTN4J_LOG2E)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(ATTN4J_LN2_HI), x);
    r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(ATTN4J_LN2_LO), r);

    __m512 p = _mm512_set1_ps(ATTN4J_EXP_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(ATTN4J_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));

    const __m512 normal = _mm512_scalef_ps(p, _mm512_max_ps(_mm512_set1_ps(-125.0f), nf));
    const __m512 ns = _mm512_add_ps(_mm512_min_ps(_mm512_set1_ps(-126.0f), nf), _mm512_set1_ps(149.0f));
    const __m512 tiny = _mm512_castsi512_ps(_mm512_cvtps_epi32(_mm512_scalef_ps(p, ns)));
    /* False for NaN: the normal branch carries the NaN. */
    const __mmask16 use_tiny = _mm512_cmp_ps_mask(nf, _mm512_set1_ps(-125.5f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(use_tiny, normal, tiny);
}

/* Bits k < n set (n clamped to [0, 16]). */
ALWAYS_INLINE __mmask16 lanes_below(int64_t n)
{
    const unsigned c = (unsigned)(n < 0 ? 0 : n > W ? W : n);
    return (__mmask16)((1u << c) - 1u);
}

/* The keep lanes of the chunk at column j, whose valid lanes are `valid`. */
ALWAYS_INLINE __mmask16 keep_lanes(const uint8_t *mask_row, int64_t j, __mmask16 valid,
                                   int64_t keep_end, int has_mask)
{
    __mmask16 keep = lanes_below(keep_end - j) & valid;
    if (has_mask) {
        const __m128i bytes = valid == (__mmask16)0xFFFF
                                  ? _mm_loadu_si128((const __m128i *)(const void *)(mask_row + j))
                                  : _mm_maskz_loadu_epi8(valid, mask_row + j);
        keep &= _mm_test_epi8_mask(bytes, bytes);
    }
    return keep;
}

ALWAYS_INLINE __m512 logit16(__m512 x, __mmask16 keep, int32_t convention)
{
    __m512 masked;
    if (convention == ATTN4J_MASK_REPLACE_ZERO)
        masked = _mm512_set1_ps(ATTN4J_REPLACE_ZERO_LOGIT);
    else if (convention == ATTN4J_MASK_REPLACE)
        masked = _mm512_set1_ps(ATTN4J_REPLACE_LOGIT);
    else
        masked = _mm512_sub_ps(x, _mm512_set1_ps(ATTN4J_SUBTRACT_BIAS));
    return _mm512_mask_blend_ps(keep, masked, x);
}

/* Pass 1: logits in place, returns their max. `convention` and `has_mask` are
 * constants at every call site, so each combination gets its own loop. */
ALWAYS_INLINE float pass_logits(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                                float scale, int32_t convention, int has_mask)
{
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + W <= tv; j += W) {
        const __mmask16 keep = keep_lanes(mask_row, j, 0xFFFF, keep_end, has_mask);
        const __m512 l = logit16(_mm512_mul_ps(_mm512_loadu_ps(row + j), vscale), keep, convention);
        _mm512_storeu_ps(row + j, l);
        vmax = _mm512_max_ps(vmax, l);
    }
    if (j < tv) {
        const __mmask16 tail = lanes_below(tv - j);
        const __mmask16 keep = keep_lanes(mask_row, j, tail, keep_end, has_mask);
        const __m512 l = logit16(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + j), vscale), keep, convention);
        _mm512_mask_storeu_ps(row + j, tail, l);
        vmax = _mm512_mask_max_ps(vmax, tail, vmax, l);
    }
    return _mm512_reduce_max_ps(vmax);
}

ALWAYS_INLINE __m512d widen_hi(__m512 e)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
}

/* Pass 2: e = exp(logit - max) in place, returns sum(e) accumulated in double. */
ALWAYS_INLINE double pass_exp(float *row, int64_t tv, float mx)
{
    const __m512 vmx = _mm512_set1_ps(mx);
    __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + W <= tv; j += W) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), vmx));
        _mm512_storeu_ps(row + j, e);
        acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        acc_hi = _mm512_add_pd(acc_hi, widen_hi(e));
    }
    if (j < tv) {
        const __mmask16 tail = lanes_below(tv - j);
        const __m512 e = _mm512_maskz_mov_ps(
            tail, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + j), vmx)));
        _mm512_mask_storeu_ps(row + j, tail, e);
        acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        acc_hi = _mm512_add_pd(acc_hi, widen_hi(e));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(acc_lo, acc_hi));
}

/* Pass 3: e / sum in place; with `zero_masked` (REPLACE_ZERO) masked columns
 * become exactly +0. */
ALWAYS_INLINE void pass_normalise(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                                  float sum, int zero_masked, int has_mask)
{
    const __m512 vs = _mm512_set1_ps(sum);
    int64_t j = 0;
    for (; j + W <= tv; j += W) {
        const __m512 e = _mm512_loadu_ps(row + j);
        const __m512 y = zero_masked
                             ? _mm512_maskz_div_ps(keep_lanes(mask_row, j, 0xFFFF, keep_end, has_mask), e, vs)
                             : _mm512_div_ps(e, vs);
        _mm512_storeu_ps(row + j, y);
    }
    if (j < tv) {
        const __mmask16 tail = lanes_below(tv - j);
        const __m512 e = _mm512_maskz_loadu_ps(tail, row + j);
        const __m512 y = zero_masked
                             ? _mm512_maskz_div_ps(keep_lanes(mask_row, j, tail, keep_end, has_mask), e, vs)
                             : _mm512_div_ps(e, vs);
        _mm512_mask_storeu_ps(row + j, tail, y);
    }
}

void attn4j_row_avx512(float *row, const uint8_t *mask_row, int64_t tv, int64_t keep_end,
                       float scale, int32_t convention)
{
    float mx;
    if (mask_row != NULL) {
        if (convention == ATTN4J_MASK_REPLACE_ZERO)
            mx = pass_logits(row, mask_row, tv, keep_end, scale, ATTN4J_MASK_REPLACE_ZERO, 1);
        else if (convention == ATTN4J_MASK_REPLACE)
            mx = pass_logits(row, mask_row, tv, keep_end, scale, ATTN4J_MASK_REPLACE, 1);
        else
            mx = pass_logits(row, mask_row, tv, keep_end, scale, ATTN4J_MASK_SUBTRACT, 1);
    } else {
        if (convention == ATTN4J_MASK_REPLACE_ZERO)
            mx = pass_logits(row, NULL, tv, keep_end, scale, ATTN4J_MASK_REPLACE_ZERO, 0);
        else if (convention == ATTN4J_MASK_REPLACE)
            mx = pass_logits(row, NULL, tv, keep_end, scale, ATTN4J_MASK_REPLACE, 0);
        else
            mx = pass_logits(row, NULL, tv, keep_end, scale, ATTN4J_MASK_SUBTRACT, 0);
    }

    const float sum = (float)pass_exp(row, tv, mx);

    /* Keras zeroes masked probabilities by multiplying with the mask, so a row that
     * is NaN (sum is NaN) stays NaN at masked positions too: no zeroing then. */
    if (convention != ATTN4J_MASK_REPLACE_ZERO || sum != sum)
        pass_normalise(row, NULL, tv, keep_end, sum, 0, 0);
    else if (mask_row != NULL)
        pass_normalise(row, mask_row, tv, keep_end, sum, 1, 1);
    else
        pass_normalise(row, NULL, tv, keep_end, sum, 1, 0);
}

void attn4j_exp_avx512(const float *x, float *y, int64_t n)
{
    int64_t k = 0;
    for (; k + W <= n; k += W)
        _mm512_storeu_ps(y + k, exp16(_mm512_loadu_ps(x + k)));
    if (k < n) {
        const __mmask16 tail = lanes_below(n - k);
        _mm512_mask_storeu_ps(y + k, tail, exp16(_mm512_maskz_loadu_ps(tail, x + k)));
    }
}
